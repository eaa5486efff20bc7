"""Envelope validation, packing and strict decoding."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from meshtalk.protocol import (
    MAX_DEPTH,
    MAX_ENVELOPE_SIZE,
    MAX_LAMPORT,
    MAX_LAMPORT_STEP,
    Envelope,
    LamportOutOfRange,
    MalformedEnvelope,
    MessageTooLarge,
    NodeKey,
    check_lamport_step,
    direct_conversation_id,
    new_message_id,
    next_lamport,
    packb,
)
from tests.conftest import NOW_MS, make_envelope


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", b"short"),
        ("id", "0123456789abcdef"),
        ("conversation", b"x" * 17),
        ("reply_to", b"x" * 15),
        ("kind", ""),
        ("kind", "Text"),
        ("kind", "9lives"),
        ("kind", "k" * 33),
        ("author", "12D3KooW..."),
        ("recipients", ()),
        ("recipients", ["not", "a tuple"]),
        ("timestamp_ms", -1),
        ("timestamp_ms", 2**63),
        ("timestamp_ms", True),
        ("timestamp_ms", 1.5),
        ("lamport", -1),
        ("lamport", -(2**63)),
        ("lamport", 1.0),
        ("version", 2),
        ("version", True),
        ("body", {1: "int key"}),
        ("body", {"set": {1, 2}}),
        ("body", 2**64),
        ("body", nested(MAX_DEPTH + 1)),
        ("metadata", ["not", "a map"]),
        ("metadata", {"k": object()}),
    ],
)
def test_invalid_fields_are_refused(
    alice: NodeKey, bob: NodeKey, field: str, value: object
) -> None:
    with pytest.raises(MalformedEnvelope):
        make_envelope(alice, bob, **{field: value})


@pytest.mark.parametrize("lamport", [MAX_LAMPORT + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64])
def test_a_lamport_counter_above_the_cap_is_refused(
    alice: NodeKey, bob: NodeKey, lamport: int
) -> None:
    with pytest.raises(LamportOutOfRange, match="Lamport counter must be from 0 to"):
        make_envelope(alice, bob, lamport=lamport)


@pytest.mark.parametrize("lamport", [0, 1, 2**31, 2**32, MAX_LAMPORT])
def test_a_lamport_counter_up_to_the_cap_round_trips(
    alice: NodeKey, bob: NodeKey, lamport: int
) -> None:
    envelope = make_envelope(alice, bob, lamport=lamport)
    assert Envelope.unpack(envelope.pack()).lamport == lamport


def test_the_lamport_rule_saturates_and_bounds_jumps() -> None:
    assert next_lamport(0) == 1
    assert next_lamport(5, 9) == 10
    assert next_lamport(9, 5) == 10
    assert next_lamport(MAX_LAMPORT) == MAX_LAMPORT
    assert next_lamport(0, MAX_LAMPORT) == MAX_LAMPORT
    check_lamport_step(MAX_LAMPORT_STEP, 0)
    with pytest.raises(LamportOutOfRange, match="jumps more than"):
        check_lamport_step(MAX_LAMPORT_STEP + 1, 0)


def test_duplicate_recipients_refused(alice: NodeKey, bob: NodeKey) -> None:
    with pytest.raises(MalformedEnvelope, match="twice"):
        make_envelope(alice, bob, bob)


@pytest.mark.parametrize(
    "body",
    [
        "plain text",
        "",
        "ünïcødé ✓",
        b"\x00binary",
        None,
        42,
        -(2**63),
        2**64 - 1,
        3.25,
        True,
        [1, "two", b"3", None],
        {"tool": "search", "args": {"q": "mesh", "n": 3}, "ok": True},
        nested(MAX_DEPTH),
    ],
)
def test_pack_unpack_round_trip(alice: NodeKey, bob: NodeKey, body: Any) -> None:
    envelope = make_envelope(
        alice, bob, body=body, kind="data", reply_to=b"r" * 16, metadata={"trace": "t-1"}
    )
    assert Envelope.unpack(envelope.pack()) == envelope


def test_optional_fields_are_omitted(alice: NodeKey, bob: NodeKey) -> None:
    wire = msgpack.unpackb(make_envelope(alice, bob).pack())
    assert list(wire) == ["v", "id", "k", "c", "a", "r", "t", "l", "b"]


def wire_of(envelope: Envelope, **changes: Any) -> bytes:
    wire = envelope.to_wire()
    for key, value in changes.items():
        if value is KeyError:
            del wire[key]
        else:
            wire[key] = value
    return packb(wire)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"x": 1}, "unknown fields: x"),
        ({"b": KeyError}, "lacks required fields: b"),
        ({"a": "text"}, "invalid peer"),
        ({"a": b"\x00" * 38}, "invalid peer"),
        ({"r": "text"}, "recipients"),
        ({"r": [b"\x00" * 38]}, "invalid peer"),
        ({"r": []}, "recipients"),
        ({"id": "text"}, "id"),
        ({"t": "soon"}, "timestamp"),
    ],
)
def test_strict_decoding(
    alice: NodeKey, bob: NodeKey, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(MalformedEnvelope, match=message):
        Envelope.unpack(wire_of(make_envelope(alice, bob), **changes))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        b"\x93\x01\x02\x03",  # an array, not a map
        b"\x81\xa1v\x01\x00",  # trailing byte
        b"\x82\xa1v\x01\xa1v\x01",  # duplicate key
        b"\x81\x01\x01",  # integer key
        b"\x81\xa1v\xd6\xff\x00\x00\x00\x01",  # timestamp extension
        b"\x81\xa1v\xd4\x05\x00",  # other extension
        b"\x81\xa1v\xa2\xff\xfe",  # invalid UTF-8
        b"\x91" * 2000 + b"\x01",  # absurd nesting
    ],
)
def test_garbage_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        Envelope.unpack(data)


def test_nested_body_beyond_limit_refused_on_decode(alice: NodeKey, bob: NodeKey) -> None:
    data = wire_of(make_envelope(alice, bob), b=nested(MAX_DEPTH + 1))
    with pytest.raises(MalformedEnvelope, match="deeper"):
        Envelope.unpack(data)


def test_size_limit(alice: NodeKey, bob: NodeKey) -> None:
    fits = make_envelope(alice, bob, body="x" * (MAX_ENVELOPE_SIZE - 200))
    assert len(fits.pack()) <= MAX_ENVELOPE_SIZE
    too_big = make_envelope(alice, bob, body="x" * MAX_ENVELOPE_SIZE)
    with pytest.raises(MessageTooLarge):
        too_big.pack()
    with pytest.raises(MessageTooLarge):
        Envelope.unpack(b"\x80" * (MAX_ENVELOPE_SIZE + 1))


def test_message_ids_are_uuid7_and_time_ordered() -> None:
    first = new_message_id(NOW_MS, lambda n: b"\xff" * n)
    later = new_message_id(NOW_MS + 1, lambda n: b"\x00" * n)
    assert len(first) == 16
    assert first[6] >> 4 == 7
    assert first[8] >> 6 == 0b10
    assert later[6] >> 4 == 7
    assert int.from_bytes(first[:6], "big") == NOW_MS
    assert first < later
    assert new_message_id(NOW_MS) != new_message_id(NOW_MS)


def test_direct_conversation_id(alice: NodeKey, bob: NodeKey, carol: NodeKey) -> None:
    ab = direct_conversation_id(alice.peer_id, bob.peer_id)
    assert ab == direct_conversation_id(bob.peer_id, alice.peer_id)
    assert len(ab) == 16
    assert ab != direct_conversation_id(alice.peer_id, carol.peer_id)
