"""The rendezvous message codec: the spec's schema, byte for byte, and a strict decoder."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshtalk.protocol import MalformedFrame
from meshtalk.protocol.frames import NEED_DATA, FrameDecoder, encode_uvarint
from meshtalk.protocol.rendezvous import (
    Discover,
    DiscoverResponse,
    MessageType,
    Register,
    RegisterResponse,
    RendezvousMessage,
    Status,
    Unregister,
    decode_message,
    encode_message,
)

MESSAGES: list[RendezvousMessage] = [
    Register("meshtalk/default", b"\x0a\x01record", 7200),
    Register("ns", b"r", None),
    RegisterResponse(Status.OK, ttl=7200),
    RegisterResponse(Status.E_INVALID_TTL, "TTL 0 s is outside 120..259200 s"),
    Unregister("meshtalk/default"),
    Discover("meshtalk/default", 100, b"cookie"),
    Discover(),
    DiscoverResponse(Status.OK, (Register("a", b"1", 60), Register("b", b"2", 61)), b"next"),
    DiscoverResponse(Status.E_INVALID_COOKIE, status_text="bad cookie"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_a_round_trip(message: RendezvousMessage) -> None:
    assert decode_message(encode_message(message)) == message


def test_bytes_match_the_proto2_encoding_other_implementations_expect() -> None:
    # type, status and ttl are written even when 0 (rust-libp2p refuses messages without them)
    assert encode_message(Register("x", b"\x01", 7200)).hex() == "080012090a017812010118a038"
    assert encode_message(RegisterResponse(Status.OK, ttl=7200)).hex() == "08011a05080018a038"
    assert encode_message(Discover("x", 0)).hex() == "08032a050a01781000"


def test_absent_and_zero_ttl_are_different() -> None:
    assert decode_message(encode_message(Register("x", b"r", 0))).ttl == 0  # type: ignore[union-attr]
    assert decode_message(encode_message(Register("x", b"r", None))).ttl is None  # type: ignore[union-attr]


def test_absent_enum_fields_read_as_their_proto2_defaults() -> None:
    # What js-libp2p's (proto3-style) encoder sends for REGISTER: no type (REGISTER = 0) and
    # no ttl (0, "the default"); every default-valued field is simply left out.
    assert decode_message(bytes.fromhex("12060a0178120101")) == Register("x", b"\x01", None)
    # a REGISTER_RESPONSE or DISCOVER_RESPONSE without status: OK
    assert decode_message(bytes.fromhex("08011a0318a038")) == RegisterResponse(Status.OK, "", 7200)
    assert decode_message(bytes.fromhex("08043200")) == DiscoverResponse(Status.OK)
    # a DISCOVER with nothing but its type and an empty body: every namespace, default limit
    assert decode_message(bytes.fromhex("08032a00")) == Discover("", None, b"")


def test_unknown_fields_are_skipped() -> None:
    body = encode_message(Unregister("ns"))
    # field 9 as varint, field 10 as fixed64, field 11 as fixed32, field 12 as bytes
    extra = bytes([9 << 3 | 0, 5, 10 << 3 | 1]) + b"\0" * 8 + bytes([11 << 3 | 5]) + b"\0" * 4
    extra += bytes([12 << 3 | 2, 1, 0xFF])
    assert decode_message(body + extra) == Unregister("ns")


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"", "no register body"),  # no type: a REGISTER, but without its body
        (bytes([0x08, 0x09]), "unknown rendezvous message type 9"),
        (bytes([0x08, 0x00]), "no register body"),
        (bytes([0x08, 0x02]), "no UNREGISTER body"),
        (bytes([0x08]), "ends inside a varint"),
        (bytes([0x08]) + b"\xff" * 11, "longer than 10 bytes"),
        (bytes([0x08, 0x03, 0x2A, 0x05, 0x0A]), "runs past the end"),
        (bytes([0x0B]), "unsupported wire type 3"),
        (bytes([0x00, 0x00]), "numbered 0"),
        (bytes([0x0A, 0x00]), "wrong wire type"),
        (bytes([0x08, 0x02, 0x22, 0x03, 0x0A, 0x01, 0xFF]), "not UTF-8"),
        (bytes([0x09]) + b"\0" * 3, "runs past the end"),
    ],
)
def test_the_decoder_refuses_malformed_messages(body: bytes, complaint: str) -> None:
    with pytest.raises(MalformedFrame, match=complaint):
        decode_message(body)


def test_the_frame_decoder_reads_length_prefixed_messages() -> None:
    decoder: FrameDecoder[RendezvousMessage] = FrameDecoder(1000, decode_message)
    data = b"".join(encode_uvarint(len(b)) + b for b in map(encode_message, MESSAGES))
    for index in range(0, len(data), 7):
        decoder.receive_data(data[index : index + 7])
    got = []
    while (message := decoder.next_frame()) is not NEED_DATA:
        got.append(message)
    assert got == MESSAGES


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_malformed_frame(data: bytes) -> None:
    with contextlib.suppress(MalformedFrame):
        decode_message(data)


@given(st.sampled_from(MESSAGES), st.integers(min_value=0), st.integers(0, 255))
def test_any_corruption_decodes_or_raises_malformed_frame(
    message: RendezvousMessage, position: int, value: int
) -> None:
    body = bytearray(encode_message(message))
    body[position % len(body)] = value
    with contextlib.suppress(MalformedFrame):
        decode_message(bytes(body))


# -- integers at the edges, in every integer field ------------------------------------------

EDGES = [0, 1, 2**31, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63)]


def pb_varint(value: int) -> bytes:
    """A protobuf varint; a negative value as int64 does it (ten bytes, two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pb_uint(number: int, value: int) -> bytes:
    return encode_uvarint(number << 3) + pb_varint(value)


def pb_bytes(number: int, value: bytes) -> bytes:
    return encode_uvarint(number << 3 | 2) + encode_uvarint(len(value)) + value


REGISTER_BODY = pb_bytes(1, b"ns") + pb_bytes(2, b"record")


def edge_messages(value: int) -> dict[str, bytes]:
    """One rendezvous message per integer field, with `value` in that field."""
    return {
        "type": pb_uint(1, value) + pb_bytes(2, REGISTER_BODY),
        "Register.ttl": pb_bytes(2, REGISTER_BODY + pb_uint(3, value)),
        "RegisterResponse.status": pb_uint(1, 1) + pb_bytes(3, pb_uint(1, value)),
        "RegisterResponse.ttl": pb_uint(1, 1) + pb_bytes(3, pb_uint(3, value)),
        "Discover.limit": pb_uint(1, 3) + pb_bytes(5, pb_uint(2, value)),
        "DiscoverResponse.status": pb_uint(1, 4) + pb_bytes(6, pb_uint(3, value)),
        "DiscoverResponse.registration.ttl": pb_uint(1, 4)
        + pb_bytes(6, pb_bytes(1, REGISTER_BODY + pb_uint(3, value))),
    }


@pytest.mark.parametrize("value", EDGES)
def test_integer_edges_decode_within_64_bits_or_raise_malformed_frame(value: int) -> None:
    for field_name, body in edge_messages(value).items():
        try:
            message = decode_message(body)
        except MalformedFrame:
            # only the message type can be refused: an unknown one, or one whose body is not
            # the REGISTER body these messages carry
            assert field_name == "type"
            assert value != MessageType.REGISTER
            continue
        if field_name == "type":
            assert message == Register("ns", b"record", None)
        integers = [getattr(message, name, None) for name in ("ttl", "limit", "status")]
        integers += [r.ttl for r in getattr(message, "registrations", ())]
        for number in integers:
            assert number is None or 0 <= number < 2**64, (field_name, number)
