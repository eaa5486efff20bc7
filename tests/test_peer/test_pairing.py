"""Pairing real nodes with a code found through a real rendezvous point, and with invites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio

from meshtalk.discovery import open_rendezvous_point
from meshtalk.peer.models import Trust
from meshtalk.peer.node import Node, open_node
from meshtalk.peer.pairing import PairOffer
from meshtalk.protocol import (
    CodeExpired,
    InvalidCode,
    NodeKey,
    NoPairingOffer,
    WrongCode,
)
from meshtalk.protocol.pairing import parse_code
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
    offer = offerer.pairing.offer(ttl=30)
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
        # the right code now finds nothing: one try per code
        with pytest.raises(NoPairingOffer):
            await bob.pairing.join(offer.code or "", timeout=1.5)
        assert bob.contacts() == []


async def test_codes_expire(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (alice, bob):
        offer = alice.pairing.offer(ttl=0.3)
        with pytest.raises(CodeExpired, match="expired"):
            await alice.pairing.wait(offer)
        with pytest.raises(NoPairingOffer):
            await bob.pairing.join(offer.code or "", timeout=1.0)


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
