"""Pairing real nodes with a code found through a real rendezvous point, and with invites."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from meshtalk.discovery import open_rendezvous_point
from meshtalk.net.host import PrefixedStream, reset_quietly, to_libp2p_id
from meshtalk.peer import pair_common, pair_joining
from meshtalk.peer.models import Trust
from meshtalk.peer.node import Node, open_node
from meshtalk.peer.pair_joining import SETTLE
from meshtalk.peer.pairing import PairOffer
from meshtalk.peer.store import AddressSource
from meshtalk.protocol import (
    CodeExpired,
    FrameTooLarge,
    InvalidCode,
    MalformedFrame,
    NodeKey,
    NoPairingOffer,
    PairingError,
    WrongCode,
)
from meshtalk.protocol.codec import packb
from meshtalk.protocol.pairing import (
    MAX_PAIR_MESSAGE,
    PAIR_PROTOCOL,
    JoinerHandshake,
    decode_pair_message,
    parse_code,
    parse_invite,
)
from tests.test_peer.helpers import collect, fast_config


@asynccontextmanager
async def two_nodes(tmp_path: Path, *names: str) -> AsyncIterator[list[Node]]:
    """Nodes that share a rendezvous point and know nothing of each other."""
    async with (
        open_rendezvous_point(NodeKey.generate()) as (_, addresses),
        AsyncExitStack() as stack,
    ):
        yield [
            await stack.enter_async_context(
                open_node(tmp_path / name, fast_config(rendezvous=addresses, name=name))
            )
            for name in names or ("alice", "bob")
        ]


def wrong_code_for(offer: PairOffer) -> str:
    """The same number with other words (so the joiner finds the offer but fails the PAKE)."""
    assert offer.code is not None
    number, first, second = offer.code.split("-")
    other = "zinc" if second != "zinc" else "yak"
    return f"{number}-{first}-{other}"


async def pair(offerer: Node, joiner: Node, code: str | None = None) -> tuple[object, object]:
    """Run both sides at once; returns what each side returned or raised."""
    return await pair_offer(offerer, joiner, offerer.pairing.offer(ttl=30), code)


async def pair_offer(
    offerer: Node, joiner: Node, offer: PairOffer, code: str | None = None
) -> tuple[object, object]:
    """`pair` with an offer the test already made."""
    results: dict[str, object] = {}

    async def offering() -> None:
        try:
            results["offer"] = await offerer.pairing.wait(offer)
        except Exception as exc:
            results["offer"] = exc

    async def joining() -> None:
        try:
            results["join"] = await joiner.pairing.join(code or offer.code or "", timeout=10)
        except Exception as exc:
            results["join"] = exc

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(offering)
            nursery.start_soon(joining)
    return results["offer"], results["join"]


async def test_a_code_pairs_two_strangers_who_then_talk(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        on_alice, on_bob = await pair(alice, bob)
        assert on_alice == alice.contact(bob.peer_id)
        assert on_bob == bob.contact(alice.peer_id)
        assert alice.contact("bob").trust is Trust.TRUSTED
        assert bob.contact("alice").addresses  # pinned with its addresses
        await bob.send("alice", "hello after pairing", wait=True, timeout=10)
        assert (await collect(alice, 1))[0].body == "hello after pairing"


async def test_a_wrong_code_fails_on_both_sides_adds_nothing_and_spends_the_code(
    tmp_path: Path,
) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        offer = alice.pairing.offer(ttl=30)
        wrong = wrong_code_for(offer)
        async with trio.open_nursery() as nursery:
            waiting = nursery.start_soon
            results: dict[str, BaseException] = {}

            async def offering() -> None:
                with pytest.raises(WrongCode) as caught:
                    await alice.pairing.wait(offer)
                results["offer"] = caught.value

            waiting(offering)
            with pytest.raises(WrongCode, match="did not match"):
                await bob.pairing.join(wrong, timeout=10)
        assert isinstance(results["offer"], WrongCode)
        assert alice.contacts() == []
        assert bob.contacts() == []
        # the right code is now refused by the offerer still registered for it, once the
        # search settles (any peer could say "used", so it alone does not end a search early)
        with trio.fail_after(SETTLE + 5), pytest.raises(CodeExpired, match="already used"):
            await bob.pairing.join(offer.code or "", timeout=60)
        assert bob.contacts() == []


async def test_codes_expire(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        offer = alice.pairing.offer(ttl=2)  # time to register at the point
        with pytest.raises(CodeExpired, match="expired"):
            await alice.pairing.wait(offer)
        # found at the point, where the registration lapses later: told why once it settles
        with trio.fail_after(SETTLE + 5), pytest.raises(CodeExpired, match="expired") as caught:
            await bob.pairing.join(offer.code or "", timeout=60)
        assert caught.value.remote


async def test_an_unknown_or_malformed_code_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InvalidCode, match="7-amber-falcon"):
        parse_code("seven-amber-falcon")
    with pytest.raises(InvalidCode):
        parse_code("7-amber-notaword")
    async with two_nodes(tmp_path) as (_, bob):
        with pytest.raises(NoPairingOffer, match="no node offering"):
            await bob.pairing.join("7-amber-falcon", timeout=1.0)


async def test_an_invite_pairs_while_the_inviter_runs_no_command(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        token, _ = alice.pairing.invite(ttl=60)
    # the invite outlives a restart of alice's node; bob knows only the token
    config = fast_config(mdns=False)
    async with (
        open_node(tmp_path / "alice", config) as alice,
        open_node(tmp_path / "bob", config) as bob,
    ):
        contact = await bob.pairing.join_invite(token, timeout=10)
        assert contact.peer_id == alice.peer_id
        assert alice.contact(bob.peer_id).name == "bob"
        await alice.send("bob", "hi from the inviter", wait=True, timeout=10)
        with pytest.raises(CodeExpired):  # single use
            await bob.pairing.join_invite(token, timeout=5)


async def test_pairing_again_keeps_one_contact_and_its_name(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        await pair(alice, bob)
        bob.add_contact(alice.peer_id, "my-alice")
        await pair(alice, bob)
        assert [c.name for c in bob.contacts()] == ["my-alice"]
        assert len(alice.contacts()) == 1


async def test_a_code_finds_its_offer_on_the_lan_by_mdns_alone(tmp_path: Path) -> None:
    config = fast_config(mdns=True, mdns_interfaces=["127.0.0.1"])
    async with (
        open_node(tmp_path / "alice", config) as alice,
        open_node(tmp_path / "bob", config) as bob,
    ):
        on_alice, on_bob = await pair(alice, bob)
        assert on_alice == alice.contact(bob.peer_id)
        assert on_bob == bob.contact(alice.peer_id)


async def test_a_used_or_cancelled_code_is_refused_at_once_by_the_offerer(tmp_path: Path) -> None:
    """The offerer remembers ended codes a while: the joiner hears why now, not after 60 s."""
    config = fast_config(mdns=True, mdns_interfaces=["127.0.0.1"])
    async with (
        open_node(tmp_path / "alice", config) as alice,
        open_node(tmp_path / "bob", config) as bob,
        open_node(tmp_path / "carol", config) as carol,
    ):
        used = alice.pairing.offer(ttl=30)
        await pair_offer(alice, bob, used)
        cancelled = alice.pairing.offer(ttl=30)
        alice.pairing.cancel(cancelled)
        await carol.wait_known(alice.peer_id, timeout=15)
        for offer, why in ((used, "already used"), (cancelled, "cancelled")):
            with trio.fail_after(10), pytest.raises(CodeExpired, match=why) as caught:
                await carol.pairing.join(offer.code or "", timeout=60)
            assert caught.value.remote
        assert carol.contacts() == []


async def test_a_code_no_node_offers_is_refused_within_seconds_on_the_lan(tmp_path: Path) -> None:
    """Every peer on the LAN says it has no such offer: the joiner says so after a few seconds
    (SETTLE), not after its 60 s; the offer with another number stands."""
    config = fast_config(mdns=True)  # on loopback only: the nodes listen on 127.0.0.1
    async with (
        open_node(tmp_path / "alice", config) as alice,
        open_node(tmp_path / "bob", config) as bob,
        open_node(tmp_path / "carol", config) as carol,
    ):
        offer = alice.pairing.offer(ttl=60)
        number, *words = (offer.code or "").split("-")
        other = f"{int(number) % 999 + 1}-{'-'.join(words)}"
        await carol.wait_known(alice.peer_id, timeout=15)
        await carol.wait_known(bob.peer_id, timeout=15)
        started = trio.current_time()
        with trio.fail_after(30), pytest.raises(NoPairingOffer, match="no node offers") as caught:
            await carol.pairing.join(other, timeout=60)
        assert trio.current_time() - started < pair_joining.SETTLE + 5
        assert "each answered that it has no such offer" in str(caught.value)
        assert not offer.used
        assert not offer.done.is_set()


async def test_paired_nodes_reconnect_later_without_a_code_or_the_point(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        await pair(alice, bob)
    # the point is gone; both restart from their profiles and find each other from the pairing
    config = fast_config()
    async with (
        open_node(tmp_path / "alice", config) as alice,
        open_node(tmp_path / "bob", config) as bob,
    ):
        await alice.send("bob", "still paired?", wait=True, timeout=10)
        await bob.send("alice", "yes", wait=True, timeout=10)


async def test_a_peer_cannot_take_a_name_that_is_another_peers_id(tmp_path: Path) -> None:
    victim = str(NodeKey.generate().peer_id)  # names are resolved before peer IDs
    async with two_nodes(tmp_path, "alice", victim) as (alice, impostor):
        on_alice, _ = await pair(alice, impostor)
        assert on_alice == alice.contact(impostor.peer_id)
        assert alice.contact(impostor.peer_id).name is None
        assert str(alice.resolve(victim)) == victim


# -- strangers at a live offer ---------------------------------------------------------------

NOT_ON_CURVE = (2).to_bytes(32, "little")  # y = 2 has no x on Ed25519
REFUSED = (FrameTooLarge.code, MalformedFrame.code, PairingError.code)


@asynccontextmanager
async def raw_pair_stream(
    stranger: Node, target: Node, encode: Callable[[Any], bytes] = packb
) -> AsyncIterator[PrefixedStream[dict[str, Any]]]:
    """A pairing stream from `stranger` to `target` on which the test writes what it likes."""
    stranger.discovery.learn(target.peer_id, target.listen_addrs, AddressSource.BOOTSTRAP)
    await stranger.dial(target.peer_id)
    raw = await stranger.host.new_stream(to_libp2p_id(target.peer_id), [PAIR_PROTOCOL])
    try:
        yield PrefixedStream(raw, MAX_PAIR_MESSAGE, encode, decode_pair_message)
    finally:
        await reset_quietly(raw)


async def answer_to(stranger: Node, target: Node, message: Any) -> dict[str, Any] | None:
    """What `target` answers to one message (dict, or raw bytes sent as one frame body)."""
    encode = (lambda m: m) if isinstance(message, bytes) else packb
    async with raw_pair_stream(stranger, target, encode) as stream:
        await stream.write(message)
        with trio.fail_after(10):
            return await stream.read()


def invalid_pake_messages(nameplate: str) -> list[Any]:
    """Each is refused without a guess at the code: wrong sizes, points off the curve..."""

    def pake(msg: Any) -> dict[str, Any]:
        return {"t": "pake", "nameplate": nameplate, "msg": msg}

    return [
        b"\xc1",  # not msgpack
        bytes(MAX_PAIR_MESSAGE + 1),  # too large
        packb(["pake", nameplate]),  # msgpack, not a map
        {"t": "pake", "nameplate": nameplate},  # no msg
        pake("a string"),
        pake(b""),
        pake(b"A"),
        pake(b"A" + NOT_ON_CURVE),  # 33 bytes, the right size, not a point
        pake(b"A" + NOT_ON_CURVE + bytes(32) + b"\x01"),  # 66 bytes (the fuzzer's find)
        pake(b"A" + bytes(32)),  # a point outside the prime-order group
        pake(b"A" + (1).to_bytes(32, "little")),  # the identity element
        pake(b"B" + (4).to_bytes(32, "little")),  # the offerer's own side
        pake(b"A" + bytes(64)),  # 65 bytes
        pake(bytes(16000)),
        {"t": "confirm", "confirm": bytes(32), "info": b""},  # CONFIRM before any PAKE
    ]


@pytest.mark.slow  # over 6 s
async def test_invalid_pake_messages_are_refused_and_leave_the_offer_to_the_real_joiner(
    tmp_path: Path,
) -> None:
    async with two_nodes(tmp_path, "alice", "bob", "mallory") as (alice, bob, mallory):
        offer = alice.pairing.offer(ttl=60)
        for message in invalid_pake_messages(offer.nameplate):
            answer = await answer_to(mallory, alice, message)
            assert answer is not None, message
            assert answer["t"] == "error", message
            assert answer["code"] in REFUSED, answer
            assert not offer.used, message
            assert not offer.done.is_set(), message
        # the code still works for the person who has it
        async with trio.open_nursery() as nursery:
            nursery.start_soon(alice.pairing.wait, offer)
            contact = await bob.pairing.join(offer.code or "", timeout=10)
        assert contact.peer_id == alice.peer_id
        assert alice.contact(bob.peer_id).trust is Trust.TRUSTED
        assert [c.peer_id for c in alice.contacts()] == [bob.peer_id]


@pytest.mark.slow  # over 6 s
async def test_an_invalid_pake_message_does_not_spend_an_invite(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, "alice", "bob", "mallory") as (alice, bob, mallory):
        token, _ = alice.pairing.invite(ttl=60)
        nameplate = parse_invite(token).nameplate
        for message in invalid_pake_messages(nameplate)[3:]:  # the ones that name the invite
            answer = await answer_to(mallory, alice, message)
            assert answer is not None
            assert answer["code"] in REFUSED, answer
        contact = await bob.pairing.join_invite(token, timeout=10)
        assert contact.peer_id == alice.peer_id


async def test_a_valid_pake_message_is_the_one_guess_even_from_many_strangers_at_once(
    tmp_path: Path,
) -> None:
    """Ten strangers race with well-formed guesses: exactly one gets a REPLY (its guess), the
    others and then the real joiner are told the code is used."""
    async with two_nodes(tmp_path, "alice", "bob", "mallory") as (alice, bob, mallory):
        offer = alice.pairing.offer(ttl=60)
        guess = wrong_code_for(offer).encode()
        answers: list[dict[str, Any] | None] = []

        async def stranger() -> None:
            handshake = JoinerHandshake(
                offer.nameplate, guess, mallory.peer_id, alice.peer_id, os.urandom
            )
            answers.append(await answer_to(mallory, alice, handshake.start()))

        mallory.discovery.learn(alice.peer_id, alice.listen_addrs, AddressSource.BOOTSTRAP)
        await mallory.dial(alice.peer_id)
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(stranger)
        with pytest.raises(PairingError, match="used up"):  # the guesser left after the REPLY
            await alice.pairing.wait(offer)
        kinds = sorted(a["t"] if a is not None else "closed" for a in answers)
        assert kinds == ["error"] * 9 + ["reply"]
        assert all(a["code"] == CodeExpired.code for a in answers if a and a["t"] == "error")
        # the offer is gone with its one guess (and was never registered: it ended before wait)
        with pytest.raises(NoPairingOffer, match="no peer was registered for number"):
            await bob.pairing.join(offer.code or "", timeout=1.5)
        assert alice.contacts() == []


async def test_a_stranger_that_goes_silent_holds_nothing_for_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pair_common, "STEP_TIMEOUT", 0.5)
    async with two_nodes(tmp_path, "alice", "bob", "mallory") as (alice, bob, mallory):
        offer = alice.pairing.offer(ttl=60)
        # silent before any message: the offerer stops waiting, the offer is untouched
        async with raw_pair_stream(mallory, alice) as stream:
            with trio.fail_after(5):
                answer = await stream.read()
        assert answer is not None
        assert (answer["code"], answer["message"]) == (
            PairingError.code,
            "no pairing message within 0.5 s",
        )
        assert not offer.used
        on_alice, _ = await pair_offer(alice, bob, offer)
        assert on_alice == alice.contact(bob.peer_id)
        # silent after a valid PAKE message: that was the guess; the offer ends, and says why
        offer = alice.pairing.offer(ttl=60)
        handshake = JoinerHandshake(
            offer.nameplate, b"1-not-it", mallory.peer_id, alice.peer_id, os.urandom
        )
        async with raw_pair_stream(mallory, alice) as stream:
            await stream.write(handshake.start())
            with trio.fail_after(5):
                assert (await stream.read() or {}).get("t") == "reply"
                with pytest.raises(PairingError, match="went silent"):
                    await alice.pairing.wait(offer)
