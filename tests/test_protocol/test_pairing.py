"""The pairing handshake and codes, sans-I/O: fixed randomness, no network."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshtalk.protocol import MeshtalkError, NodeKey
from meshtalk.protocol.errors import InvalidCode, MalformedFrame, PairingError, WrongCode
from meshtalk.protocol.pairing import (
    JoinerHandshake,
    OffererHandshake,
    PeerInfo,
    decode_pair_message,
    encode_invite,
    encode_pair_message,
    error_message,
    new_code,
    new_invite,
    parse_code,
    parse_invite,
)
from meshtalk.protocol.wordlist import WORDS
from tests.conftest import fixed_key

ALICE, BOB, MALLORY = (fixed_key(n).peer_id for n in ("alice", "bob", "mallory"))


def counter_bytes() -> Any:
    counter = itertools.count()
    return lambda n: bytes(next(counter) % 256 for _ in range(n))


def wire(message: dict[str, Any]) -> dict[str, Any]:
    return decode_pair_message(encode_pair_message(message))


def run(joiner_password: bytes, offerer_password: bytes, joiner_sees: Any = ALICE,
        offerer_sees: Any = BOB) -> tuple[PeerInfo, PeerInfo]:  # fmt: skip
    """Run the whole exchange; returns (what alice learned, what bob learned)."""
    joiner = JoinerHandshake("code:7", joiner_password, BOB, joiner_sees, counter_bytes())
    offerer = OffererHandshake(offerer_password, ALICE, offerer_sees, counter_bytes())
    first = wire(joiner.start())
    assert OffererHandshake.nameplate_of(first) == "code:7"
    reply = wire(offerer.receive_pake(first))
    confirm = wire(joiner.receive_reply(reply, PeerInfo("bob", ("/ip4/127.0.0.1/tcp/2",))))
    learned, info = offerer.receive_confirm(confirm, PeerInfo("alice", ("/ip4/127.0.0.1/tcp/1",)))
    return learned, joiner.receive_info(wire(info))


def test_codes_are_a_number_and_two_words() -> None:
    assert len(WORDS) == len(set(WORDS)) == 256
    code = new_code(counter_bytes())
    number, first, second = code.text.split("-")
    assert 1 <= int(number) <= 999
    assert {first, second} <= set(WORDS)
    assert parse_code(f"  {code.text.upper()} ") == code
    assert parse_code(code.text.replace("-", " ")) == code
    assert code.nameplate == f"code:{number}"


@pytest.mark.parametrize(
    "text", ["", "7", "7-amber", "0-amber-falcon", "1000-amber-falcon", "7-amber-nope",
             "x-amber-falcon", "7-amber-falcon-extra"],
)  # fmt: skip
def test_malformed_codes_say_what_a_code_looks_like(text: str) -> None:
    with pytest.raises(InvalidCode, match="7-amber-falcon"):
        parse_code(text)


def test_the_same_code_pairs_and_each_side_learns_the_others_info() -> None:
    alice_learned, bob_learned = run(b"7-amber-falcon", b"7-amber-falcon")
    assert alice_learned == PeerInfo("bob", ("/ip4/127.0.0.1/tcp/2",))
    assert bob_learned == PeerInfo("alice", ("/ip4/127.0.0.1/tcp/1",))


def test_a_different_code_fails_at_the_joiner() -> None:
    with pytest.raises(WrongCode, match="did not match"):
        run(b"7-amber-falcon", b"7-amber-fossil")


def test_a_relay_in_the_middle_cannot_complete_without_the_code() -> None:
    # Each side sees mallory's peer ID on its connection, so the identities differ
    with pytest.raises(WrongCode):
        run(b"7-amber-falcon", b"7-amber-falcon", joiner_sees=MALLORY, offerer_sees=MALLORY)


def test_a_forged_confirmation_fails_at_the_offerer() -> None:
    joiner = JoinerHandshake("code:7", b"7-a-b", BOB, ALICE, counter_bytes())
    offerer = OffererHandshake(b"7-a-b", ALICE, BOB, counter_bytes())
    offerer.receive_pake(wire(joiner.start()))
    forged = {"t": "confirm", "confirm": b"\x00" * 32, "info": b"x" * 60}
    with pytest.raises(WrongCode):
        offerer.receive_confirm(forged, PeerInfo(None, ()))


def test_errors_from_the_other_side_come_back_typed() -> None:
    joiner = JoinerHandshake("code:7", b"7-a-b", BOB, ALICE, counter_bytes())
    joiner.start()
    with pytest.raises(WrongCode, match="nope") as caught:
        joiner.receive_reply(wire(error_message(WrongCode("nope"))), PeerInfo(None, ()))
    assert caught.value.remote  # the other side said so: "peer refused: nope"
    assert str(caught.value) == "peer refused: nope"
    with pytest.raises(PairingError):
        joiner.receive_info({"t": "info", "info": b""})  # before any confirmation


@pytest.mark.parametrize(
    "message",
    [{"t": "pake"}, {"t": "pake", "nameplate": 7}, {"t": "pake", "nameplate": "x" * 65},
     {"t": "reply", "msg": b"x"}, {"t": "error", "code": "x"}],
)  # fmt: skip
def test_malformed_messages(message: dict[str, Any]) -> None:
    with pytest.raises(MalformedFrame):
        OffererHandshake.nameplate_of(message)


def test_a_bad_pake_message_is_a_pairing_error() -> None:
    offerer = OffererHandshake(b"7-a-b", ALICE, BOB, counter_bytes())
    with pytest.raises(PairingError, match="invalid PAKE"):
        offerer.receive_pake({"t": "pake", "nameplate": "code:7", "msg": b"\x00" * 33})


@given(st.binary(max_size=200))
def test_decoding_garbage_raises_only_meshtalk_errors(data: bytes) -> None:
    with contextlib.suppress(MeshtalkError):
        decode_pair_message(data)


def test_invites_round_trip_and_refuse_damage() -> None:
    invite = new_invite(ALICE, ["/ip4/127.0.0.1/tcp/1"], 123, counter_bytes())
    token = encode_invite(invite)
    assert token.startswith("mt1")
    assert " " not in token
    assert parse_invite(f" {token}\n") == invite
    for damaged in (token[:-4], token[:3], "xyz" + token[3:], token + "!!", "mt1" + "A" * 5000):
        with pytest.raises(InvalidCode, match="damaged"):
            parse_invite(damaged)


def test_info_is_checked() -> None:
    with pytest.raises(MalformedFrame):
        PeerInfo.from_wire({"name": "x" * 65})
    with pytest.raises(MalformedFrame):
        PeerInfo.from_wire({"addresses": ["a"] * 33})
    with pytest.raises(MalformedFrame):
        PeerInfo.from_wire([1])
    assert PeerInfo.from_wire({}) == PeerInfo(None, ())


def test_keys_are_fixed_per_name() -> None:
    assert fixed_key("alice").peer_id == ALICE
    assert NodeKey.generate().peer_id != ALICE


# -- invalid PAKE messages: always a typed error, never spake2's own exceptions ---------------

NOT_ON_CURVE = (2).to_bytes(32, "little")  # y = 2 has no x on Ed25519
EDGE_SIZES = (0, 1, 31, 32, 33, 34, 64, 65, 66, 67, 1024)


def offerer() -> OffererHandshake:
    return OffererHandshake(b"7-a-b", ALICE, BOB, counter_bytes())


def joiner() -> JoinerHandshake:
    handshake = JoinerHandshake("code:7", b"7-a-b", BOB, ALICE, counter_bytes())
    handshake.start()
    return handshake


def to_offerer(msg: Any) -> None:
    offerer().receive_pake({"t": "pake", "nameplate": "code:7", "msg": msg})


def to_joiner(msg: Any, confirm: Any = b"\x00" * 32) -> None:
    joiner().receive_reply({"t": "reply", "msg": msg, "confirm": confirm}, PeerInfo(None, ()))


@pytest.mark.parametrize(
    "element",
    [NOT_ON_CURVE, NOT_ON_CURVE + bytes(33), NOT_ON_CURVE + bytes(34), bytes(32),
     (1).to_bytes(32, "little")],
    ids=["33-not-on-curve", "66-not-on-curve", "67-not-on-curve", "33-small-order",
         "33-identity"],
)  # fmt: skip
def test_a_pake_message_off_the_curve_or_the_group_is_a_pairing_error(element: bytes) -> None:
    # (the 66-byte one is what a fuzzer found: spake2 raised its own NotOnCurve)
    with pytest.raises(PairingError, match="invalid PAKE"):
        to_offerer(b"A" + element)
    with pytest.raises(PairingError, match="invalid PAKE"):
        to_joiner(b"B" + element)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_only_a_side_byte_and_one_element_is_a_pake_message(size: int) -> None:
    valid_a = JoinerHandshake("code:7", b"7-a-b", BOB, ALICE, counter_bytes()).start()["msg"]
    valid_b = offerer().receive_pake({"t": "pake", "nameplate": "code:7", "msg": valid_a})["msg"]
    if size == 33:  # the right size: accepted (and the one guess)
        to_offerer(valid_a)
        with pytest.raises(WrongCode):  # a valid element, a confirmation that does not match
            to_joiner(valid_b)
        return
    padded_a = (valid_a * 40)[:size]
    padded_b = (valid_b * 40)[:size]
    with pytest.raises(PairingError, match=f"{size} bytes"):
        to_offerer(padded_a)
    with pytest.raises(PairingError, match=f"{size} bytes"):
        to_joiner(padded_b)


@pytest.mark.parametrize("msg", [None, 7, "A" * 33, [b"A"], {"x": 1}])
def test_a_pake_field_of_the_wrong_type_is_a_malformed_frame(msg: Any) -> None:
    with pytest.raises(MalformedFrame):
        to_offerer(msg)
    with pytest.raises(MalformedFrame):
        to_joiner(msg)
    with pytest.raises(MalformedFrame):
        to_joiner(b"B" + bytes(32), confirm=msg)


@given(
    side=st.sampled_from([b"A", b"B", b"S", b"\x00", b""]),
    body=st.one_of(
        st.sampled_from([max(0, n - 1) for n in EDGE_SIZES]).flatmap(
            lambda n: st.binary(min_size=n, max_size=n)
        ),
        st.binary(max_size=100),
    ),
)
def test_any_bytes_as_a_pake_message_raise_only_meshtalk_errors(side: bytes, body: bytes) -> None:
    for deliver in (to_offerer, to_joiner):
        with contextlib.suppress(MeshtalkError):
            deliver(side + body)


def test_one_handshake_takes_one_pake_message() -> None:
    handshake = offerer()
    first = wire(JoinerHandshake("code:7", b"7-a-b", BOB, ALICE, counter_bytes()).start())
    handshake.receive_pake(first)
    with pytest.raises(PairingError, match="second PAKE"):
        handshake.receive_pake(first)


def test_an_invalid_pake_message_is_refused_before_the_offerer_does_its_own_part() -> None:
    # the cheap checks come before spake2's start(): refusing costs little, and changes nothing
    handshake = offerer()
    for element in (NOT_ON_CURVE, bytes(32), (1).to_bytes(32, "little")):
        with pytest.raises(PairingError, match="invalid PAKE"):
            handshake.receive_pake({"t": "pake", "nameplate": "code:7", "msg": b"A" + element})
    first = wire(JoinerHandshake("code:7", b"7-a-b", BOB, ALICE, counter_bytes()).start())
    assert handshake.receive_pake(first)["t"] == "reply"
