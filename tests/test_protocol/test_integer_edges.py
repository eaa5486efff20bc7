"""Every integer field of every sans-I/O decoder, at the integer edges (issue 12).

For each field, a message is decoded with the field at 0, 1, 2^31, 2^32, 2^53 - 1, 2^53,
2^63 - 1, 2^63, 2^64 - 1, -1 and -2^63 (the whole msgpack range), and with a bool, a float and a
str in its place. The decoder either returns the value, within the field's documented bound, or
raises a MeshtalkError subclass; never another exception type. Integers outside msgpack's range
(below -2^63, above 2^64 - 1) cannot be packed, so they cannot arrive.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshtalk.protocol import (
    MAX_LAMPORT,
    NEED_DATA,
    ClockSkew,
    Envelope,
    ErrorFrame,
    FrameDecoder,
    FrameTooLarge,
    HelloFrame,
    InvalidCode,
    LamportOutOfRange,
    MalformedEnvelope,
    MalformedFrame,
    MeshtalkError,
    MessageFrame,
    UnsupportedVersion,
    decode_frame_body,
    encode_uvarint,
    open_sealed,
    packb,
    seal,
)
from meshtalk.protocol.codec import check_value
from meshtalk.protocol.control import (
    MAX_CONTROL_MESSAGE,
    decode_control,
    encode_control,
    read_reply,
    read_request,
)
from meshtalk.protocol.pairing import (
    MAX_EXPIRES_MS,
    JoinerHandshake,
    OffererHandshake,
    decode_pair_message,
    parse_invite,
)
from tests.conftest import NOW_MS, fixed_key, make_envelope

EDGES = [0, 1, 2**31, 2**32, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63)]
U16_EDGES = [*EDGES, 0xFFFF, 0x10000]
WRONG_TYPES: list[Any] = [True, False, 1.0, 0.5, "1"]
BEYOND_MSGPACK = [2**64, -(2**63) - 1, 2**100]
INT64_MAX = 2**63 - 1

ALICE, BOB = fixed_key("alice"), fixed_key("bob")
integers = st.sampled_from(EDGES) | st.integers()
few = settings(max_examples=60)


def cases(fields: list[str], edges: list[int] = EDGES) -> list[Any]:
    """(field, value) pairs named like `t=2**63`, every edge then every wrong type."""
    return [
        pytest.param(name, value, id=f"{name}={value!r}")
        for name in fields
        for value in [*edges, *WRONG_TYPES]
    ]


def is_int(value: object) -> bool:
    return type(value) is int


def in_msgpack(value: int) -> bool:
    return -(2**63) <= value <= 2**64 - 1


def outcome(decode: Callable[[], Any]) -> Any | MeshtalkError:
    """The decoded value, or the MeshtalkError raised; any other exception fails the test."""
    try:
        return decode()
    except MeshtalkError as exc:
        return exc


# --- msgpack itself: what can arrive at all -------------------------------------------------


@pytest.mark.parametrize("value", BEYOND_MSGPACK, ids=repr)
def test_integers_beyond_msgpack_cannot_be_packed(value: int) -> None:
    with pytest.raises(OverflowError):
        msgpack.packb(value)
    with pytest.raises(MalformedEnvelope, match="64-bit range"):
        check_value([value], MalformedEnvelope, "body")


@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_every_integer_msgpack_can_carry_round_trips(value: int) -> None:
    assert msgpack.unpackb(packb(value)) == value
    check_value({"n": [value]}, MalformedEnvelope, "body")


@given(st.binary(min_size=1, max_size=9).map(lambda tail: bytes([0xCF]) + tail.ljust(8, b"\xff")))
@few
def test_no_msgpack_bytes_decode_to_an_integer_beyond_its_range(data: bytes) -> None:
    value = msgpack.unpackb(data[:9])
    assert in_msgpack(value)


# --- frames: the length prefix -----------------------------------------------------------


def leb128(value: int) -> bytes:
    """An unsigned LEB128 of any size (encode_uvarint stops at 2^63 - 1, as the spec says)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


PREFIX_EDGES = [v for v in EDGES if v >= 0]


@pytest.mark.parametrize("value", PREFIX_EDGES, ids=repr)
def test_uvarint_encodes_up_to_2_63_minus_1_and_refuses_the_rest(value: int) -> None:
    if value <= INT64_MAX:
        assert encode_uvarint(value) == leb128(value)
        assert len(encode_uvarint(value)) <= 9
    else:
        with pytest.raises(ValueError, match="out of range"):
            encode_uvarint(value)


@pytest.mark.parametrize("value", [-1, -(2**63)], ids=repr)
def test_uvarint_refuses_negative_values(value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_uvarint(value)


@pytest.mark.parametrize("max_frame_size", [1024, 2**64], ids=["default-ish", "unbounded"])
@pytest.mark.parametrize("value", PREFIX_EDGES, ids=repr)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_a_length_prefix_at_each_edge(value: int, max_frame_size: int, bytewise: bool) -> None:
    """0 is an empty frame; above the cap is FrameTooLarge as soon as it shows; 2^63 and
    2^64 - 1 take 10 bytes, one past the 9-byte limit (2^63's first 9 bytes say 0, so it is
    refused as too long, not too large); anything else waits for its body."""
    prefix = leb128(value)
    decoder: FrameDecoder[Any] = FrameDecoder(max_frame_size)
    chunks = [prefix[i : i + 1] for i in range(len(prefix))] if bytewise else [prefix]

    def feed() -> Any:
        result: Any = NEED_DATA
        for chunk in chunks:
            decoder.receive_data(chunk)
            result = decoder.next_frame()
        return result

    result = outcome(feed)
    if value == 0:
        assert isinstance(result, MalformedFrame)
    elif value & INT64_MAX > max_frame_size:  # what the first 9 bytes say is already too much
        assert isinstance(result, FrameTooLarge)
    elif len(prefix) > 9:
        assert isinstance(result, MalformedFrame)
        assert "longer than 9 bytes" in str(result)
    else:
        assert result is NEED_DATA
        assert decoder.buffered == len(prefix)
    if isinstance(result, MeshtalkError):  # broken for good, with the same type
        with pytest.raises(type(result)):
            decoder.next_frame()


@pytest.mark.parametrize(
    "prefix",
    [b"\x80\x00", b"\xff" * 8 + b"\x00", b"\x80" * 8 + b"\x01", b"\x80" * 9 + b"\x01"],
    ids=["2-byte-zero", "9-byte-non-minimal", "9-byte-2**56", "10-byte-2**63"],
)
def test_long_prefixes_are_refused_or_capped(prefix: bytes) -> None:
    decoder: FrameDecoder[Any] = FrameDecoder(2**64)
    decoder.receive_data(prefix)
    result = outcome(decoder.next_frame)
    if prefix == b"\x80" * 8 + b"\x01":  # 2^56: minimal, 9 bytes, within an unbounded cap
        assert result is NEED_DATA
    else:
        assert isinstance(result, MalformedFrame)


@given(integers)
@few
def test_any_integer_as_a_length_prefix(value: int) -> None:
    decoder: FrameDecoder[Any] = FrameDecoder(1024)
    if value < 0:
        with pytest.raises(ValueError, match="out of range"):
            encode_uvarint(value)
        return
    decoder.receive_data(leb128(value))
    result = outcome(decoder.next_frame)
    assert result is NEED_DATA if 0 < value <= 1024 else isinstance(result, MeshtalkError)


# --- frames: the body ----------------------------------------------------------------------

VALID_BODIES: dict[int, list[Any]] = {
    0: [0, [1], "agent"],
    1: [1, b"sealed"],
    2: [2, [bytes(16)]],
    3: [3, 102, "text", None],
}


def frame_body(field: str, value: Any) -> bytes:
    if field == "type":
        return packb([value, b"x"])
    if field == "hello.version":
        return packb([0, [value], "agent"])
    if field == "hello.versions[1]":
        return packb([0, [1, value], "agent"])
    if field == "hello.agent":
        return packb([0, [1], value])
    if field == "message.sealed":
        return packb([1, value])
    if field == "ack.id":
        return packb([2, [value]])
    if field == "error.code":
        return packb([3, value, "text", None])
    if field == "error.text":
        return packb([3, 102, value, None])
    if field == "error.ref":
        return packb([3, 102, "text", value])
    raise AssertionError(field)


TEXT_FIELDS = ("hello.agent", "error.text", "pake.nameplate")
FRAME_FIELDS = [
    "type",
    "hello.version",
    "hello.versions[1]",
    "hello.agent",
    "message.sealed",
    "ack.id",
    "error.code",
    "error.text",
    "error.ref",
]


@pytest.mark.parametrize(("field", "value"), cases(FRAME_FIELDS, U16_EDGES))
def test_frame_fields_at_the_integer_edges(field: str, value: Any) -> None:
    frame = outcome(lambda: decode_frame_body(frame_body(field, value)))
    u16 = is_int(value) and 0 <= value <= 0xFFFF
    if field == "type":  # [type, b"x"] is a MESSAGE frame; as any other type, wrong fields
        if is_int(value) and value == 1:
            assert frame == MessageFrame(b"x")
        else:
            assert isinstance(frame, MalformedFrame)
    elif field.startswith("hello.version"):
        if u16 and value >= 1:
            assert isinstance(frame, HelloFrame)
            assert frame.versions[-1] == value
        else:
            assert isinstance(frame, MalformedFrame)
    elif field == "error.code":
        if u16:
            assert isinstance(frame, ErrorFrame)
            assert frame.code == value
            assert isinstance(frame.to_exception(), MeshtalkError)
        else:
            assert isinstance(frame, MalformedFrame)
    elif field in TEXT_FIELDS and value == "1":
        assert isinstance(frame, HelloFrame | ErrorFrame)
    else:  # no other frame field is an integer: every integer is refused
        assert isinstance(frame, MalformedFrame)


@pytest.mark.parametrize("kind", range(4))
@given(value=integers)
@few
def test_any_integer_in_any_frame_position(kind: int, value: int) -> None:
    if not in_msgpack(value):
        with pytest.raises(OverflowError):
            packb(value)
        return
    body = VALID_BODIES[kind]
    for position in range(len(body)):
        changed = [*body[:position], value, *body[position + 1 :]]
        frame = outcome(lambda c=changed: decode_frame_body(packb(c)))  # type: ignore[misc]
        if isinstance(frame, HelloFrame):
            assert all(1 <= v <= 0xFFFF for v in frame.versions)
        elif isinstance(frame, ErrorFrame):
            assert 0 <= frame.code <= 0xFFFF
        else:
            assert isinstance(frame, MeshtalkError | MessageFrame)


# --- envelope ------------------------------------------------------------------------------

ENVELOPE = make_envelope(ALICE, BOB)


def envelope_with(field: str, value: Any) -> dict[str, Any]:
    wire = ENVELOPE.to_wire()
    if field == "b[]":
        wire["b"] = [value]
    elif field == "m":
        wire["m"] = {"n": value, "deep": [[{"x": value}]]}
    else:
        wire[field] = value
    return wire


ENVELOPE_BOUNDS: dict[str, Callable[[int], bool]] = {
    "v": lambda v: v == 1,
    "t": lambda v: 0 <= v <= INT64_MAX,
    "l": lambda v: 0 <= v <= MAX_LAMPORT,
    "b": in_msgpack,
    "b[]": in_msgpack,
    "m": in_msgpack,
}
DATA_FIELDS = ("b", "b[]", "m")  # plain msgpack data: bools and floats are data too


def check_envelope(field: str, value: Any, result: Envelope | MeshtalkError) -> None:
    in_bound = is_int(value) and ENVELOPE_BOUNDS[field](value)
    if in_bound or field in DATA_FIELDS:
        assert isinstance(result, Envelope), (field, value, result)
        assert result.to_wire() == envelope_with(field, value)  # round-trips, type and all
        assert Envelope.unpack(result.pack()) == result
        return
    assert isinstance(result, MeshtalkError), (field, value, result)
    if field == "l" and is_int(value) and value > MAX_LAMPORT:
        assert isinstance(result, LamportOutOfRange)
    else:
        assert isinstance(result, MalformedEnvelope)


@pytest.mark.parametrize(("field", "value"), cases(list(ENVELOPE_BOUNDS)))
def test_envelope_fields_at_the_integer_edges(field: str, value: Any) -> None:
    packed = packb(envelope_with(field, value))
    check_envelope(field, value, outcome(lambda: Envelope.unpack(packed)))


@pytest.mark.parametrize("field", list(ENVELOPE_BOUNDS))
@pytest.mark.parametrize("value", BEYOND_MSGPACK, ids=repr)
def test_envelope_values_beyond_msgpack_are_refused_when_built(field: str, value: int) -> None:
    """Nothing can carry them on the wire; a local caller building one gets a MeshtalkError."""
    wire = envelope_with(field, value)
    with pytest.raises(OverflowError):
        packb(wire)
    with pytest.raises((MalformedEnvelope, LamportOutOfRange)):
        Envelope.from_wire(wire)


@pytest.mark.parametrize("field", list(ENVELOPE_BOUNDS))
@given(value=integers)
@few
def test_envelope_fields_hold_any_integer(field: str, value: int) -> None:
    wire = envelope_with(field, value)
    if not in_msgpack(value):
        with pytest.raises(OverflowError):
            packb(wire)
        return
    packed = packb(wire)
    check_envelope(field, value, outcome(lambda: Envelope.unpack(packed)))


# --- sealing: the envelope inside a sealed box, and the sealed version ---------------------


def sealed_wire(wire: dict[str, Any]) -> bytes:
    """Seal any map, signed by ALICE for BOB (a hostile or buggy author can)."""
    import os

    from nacl.bindings import crypto_box_easy_afternm

    from meshtalk.protocol import SIGNING_CONTEXT

    packed = packb(wire)
    nonce = os.urandom(24)
    box = crypto_box_easy_afternm(
        ALICE.sign(SIGNING_CONTEXT + packed) + packed, nonce, ALICE.shared_key(BOB.peer_id)
    )
    return packb([1, ALICE.peer_id.to_bytes(), BOB.peer_id.to_bytes(), nonce + box])


@pytest.mark.parametrize(("field", "value"), cases(["v", "t", "l", "b", "m"]))
def test_a_signed_envelope_at_the_edges_opens_or_is_refused_with_its_id(
    field: str, value: Any
) -> None:
    result = outcome(lambda: open_sealed(sealed_wire(envelope_with(field, value)), BOB, NOW_MS))
    if isinstance(result, MeshtalkError):
        assert result.message_id == ENVELOPE.id  # the sender can fail that one message
    if field == "t" and isinstance(result, MeshtalkError) and is_int(value):
        assert isinstance(result, ClockSkew if 0 <= value <= INT64_MAX else MalformedEnvelope)
    elif field == "t" and is_int(value):
        assert value == NOW_MS  # never: no edge is within five minutes of now
    else:
        check_envelope(field, value, result)


@pytest.mark.parametrize("value", [*U16_EDGES, *WRONG_TYPES], ids=repr)
def test_the_sealed_version_at_the_integer_edges(value: Any) -> None:
    outer = msgpack.unpackb(seal(ENVELOPE, ALICE, BOB.peer_id))
    outer[0] = value
    result = outcome(lambda: open_sealed(packb(outer), BOB, NOW_MS))
    if is_int(value) and value == 1:
        assert result == ENVELOPE
    elif is_int(value):
        assert isinstance(result, UnsupportedVersion)
    else:
        assert isinstance(result, MalformedEnvelope)


@given(integers)
@few
def test_the_sealed_version_holds_any_integer(value: int) -> None:
    if not in_msgpack(value):
        return
    outer = msgpack.unpackb(seal(ENVELOPE, ALICE, BOB.peer_id))
    outer[0] = value
    result = outcome(lambda: open_sealed(packb(outer), BOB, NOW_MS))
    assert result == ENVELOPE if value == 1 else isinstance(result, UnsupportedVersion)


# --- control -------------------------------------------------------------------------------


def control_decode(message: dict[str, Any]) -> dict[str, Any]:
    decoder: FrameDecoder[dict[str, Any]] = FrameDecoder(MAX_CONTROL_MESSAGE, decode_control)
    decoder.receive_data(encode_control(message))
    decoded = decoder.next_frame()
    assert isinstance(decoded, dict)
    return decoded


def control_case(field: str, value: Any) -> Any:
    if field.startswith("request."):
        request: dict[str, Any] = {"v": 1, "id": 7, "op": "status", "args": {}}
        request[field.removeprefix("request.")] = value
        return read_request(control_decode(request))
    if field == "reply.id":
        return read_reply(control_decode({"id": value, "ok": True, "result": value}))
    if field == "reply.ok":
        return read_reply(control_decode({"id": 7, "ok": value, "result": 1}))
    if field == "error.code":
        detail = {"code": value, "type": "X", "message": "refused"}
        return read_reply(control_decode({"id": 7, "ok": False, "error": detail}))
    if field == "event.id":
        return read_reply(control_decode({"id": value, "event": {"n": value}}))
    raise AssertionError(field)


CONTROL_FIELDS = ["request.v", "request.id", "reply.id", "reply.ok", "error.code", "event.id"]


@pytest.mark.parametrize(("field", "value"), cases(CONTROL_FIELDS))
def test_control_fields_at_the_integer_edges(field: str, value: Any) -> None:
    result = outcome(lambda: control_case(field, value))
    if field == "request.v":
        if is_int(value) and value == 1:
            assert result == (7, "status", {})
        else:
            assert isinstance(result, UnsupportedVersion)
    elif field == "request.id":  # any msgpack integer: the node only echoes it back
        if is_int(value):
            assert result == (value, "status", {})
        else:
            assert isinstance(result, MalformedFrame)
    elif field == "reply.id":  # the client reads one request at a time: the id is not used
        assert result == (True, value)
    elif field == "event.id":
        assert result == (False, {"n": value})
    elif field == "reply.ok":  # only `true` is success; anything else needs an error map
        assert result == (True, 1) if value is True else isinstance(result, MalformedFrame)
    else:  # error.code: a known code is its type, anything else the generic MeshtalkError
        assert isinstance(result, MeshtalkError)
        if not is_int(value) or not 0 <= value <= 0xFFFF:
            assert type(result) is MeshtalkError


@pytest.mark.parametrize("field", CONTROL_FIELDS)
@given(value=integers)
@few
def test_control_fields_hold_any_integer(field: str, value: int) -> None:
    if not in_msgpack(value):
        with pytest.raises(OverflowError):
            encode_control({"id": value})
        return
    result = outcome(lambda: control_case(field, value))
    assert isinstance(result, tuple | MeshtalkError)


# --- pairing -------------------------------------------------------------------------------


def invite_token(expires: Any) -> str:
    body = packb([ALICE.peer_id.to_bytes(), ["/ip4/127.0.0.1/tcp/1"], bytes(8), bytes(16), expires])
    return "mt1" + base64.urlsafe_b64encode(body).decode().rstrip("=")


def joiner() -> JoinerHandshake:
    return JoinerHandshake("code:7", b"7-a-b", ALICE.peer_id, BOB.peer_id, lambda n: bytes(n))


def offerer() -> OffererHandshake:
    return OffererHandshake(b"7-a-b", BOB.peer_id, ALICE.peer_id, lambda n: bytes(n))


def pairing_case(field: str, value: Any) -> Any:
    if field == "invite.expires_ms":
        return parse_invite(invite_token(value)).expires_ms
    if field == "t":
        return decode_pair_message(packb({"t": value, "msg": b""}))
    if field == "error.code":  # the other side's ERROR, at each step of each side
        message = decode_pair_message(packb({"t": "error", "code": value, "message": "no"}))
        for step in (
            lambda: joiner().receive_reply(message, None),  # type: ignore[arg-type]
            lambda: offerer().receive_pake(message),
            lambda: OffererHandshake.nameplate_of(message),
        ):
            error = outcome(step)
            assert isinstance(error, MeshtalkError)
        raise error
    if field == "pake.nameplate":
        return OffererHandshake.nameplate_of({"t": "pake", "nameplate": value, "msg": b""})
    if field in ("pake.msg", "reply.msg", "reply.confirm"):
        kind, name = field.split(".")
        message = {"t": kind, "msg": b"\x00" * 33, "confirm": b"\x00" * 32, name: value}
        if kind == "pake":
            return offerer().receive_pake(decode_pair_message(packb(message)))
        return joiner().receive_reply(decode_pair_message(packb(message)), None)  # type: ignore[arg-type]
    raise AssertionError(field)


PAIRING_FIELDS = [
    "invite.expires_ms",
    "t",
    "error.code",
    "pake.nameplate",
    "pake.msg",
    "reply.msg",
    "reply.confirm",
]


@pytest.mark.parametrize(("field", "value"), cases(PAIRING_FIELDS))
def test_pairing_fields_at_the_integer_edges(field: str, value: Any) -> None:
    result = outcome(lambda: pairing_case(field, value))
    if field == "invite.expires_ms":
        if is_int(value) and 0 <= value <= MAX_EXPIRES_MS:
            assert result == value
        else:
            assert isinstance(result, InvalidCode)
    elif field == "error.code":
        assert isinstance(result, MeshtalkError)
        if not is_int(value) or not 0 <= value <= 0xFFFF:
            assert type(result) is MeshtalkError or isinstance(result, MalformedFrame)
    elif field in TEXT_FIELDS and value == "1":
        assert result == "1"
    else:  # no other pairing field is an integer
        assert isinstance(result, MalformedFrame)


@pytest.mark.parametrize("field", PAIRING_FIELDS)
@given(value=integers)
@few
def test_pairing_fields_hold_any_integer(field: str, value: int) -> None:
    if not in_msgpack(value):
        with pytest.raises(OverflowError):
            packb(value)
        return
    result = outcome(lambda: pairing_case(field, value))
    if field == "invite.expires_ms" and not isinstance(result, MeshtalkError):
        assert 0 <= result <= MAX_EXPIRES_MS
    else:
        assert isinstance(result, MeshtalkError)
