"""Messages of the libp2p rendezvous protocol (`/rendezvous/1.0.0`), encoded by hand.

The schema is the one in the libp2p rendezvous specification (proto2, `message Message`); each
message travels as an unsigned-varint length prefix plus the protobuf body, the framing
`FrameDecoder(decode=decode_message)` reads. The encoder and decoder here cover exactly that
schema: unknown fields are skipped as protobuf requires, groups and malformed varints are
refused, and every length is checked against the bytes that are really there.

The schema is proto2, so a field that is absent reads as its default: a message without `type`
is a REGISTER (0) and a response without `status` is OK (0). Clients with proto3-style encoders
(js-libp2p's, and any that omit default values) send REGISTER exactly so. The encoder still
writes `type`, `status` and `ttl` even when zero, as rust-libp2p requires. An absent TTL
decodes as None and a TTL of 0 as 0; the point reads both as "the default TTL".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from .errors import MalformedFrame
from .frames import encode_uvarint

__all__ = [
    "PROTOCOL_ID",
    "MAX_NAMESPACE_LENGTH",
    "MAX_MESSAGE_SIZE",
    "MessageType",
    "Status",
    "Register",
    "RegisterResponse",
    "Unregister",
    "Discover",
    "DiscoverResponse",
    "RendezvousMessage",
    "encode_message",
    "decode_message",
]

PROTOCOL_ID: Final = "/rendezvous/1.0.0"
MAX_NAMESPACE_LENGTH: Final = 255  # the spec's limit
MAX_MESSAGE_SIZE: Final = 4 * 1024 * 1024  # a DISCOVER response with many records


class MessageType(enum.IntEnum):
    """`Message.type` in the spec."""

    REGISTER = 0
    REGISTER_RESPONSE = 1
    UNREGISTER = 2
    DISCOVER = 3
    DISCOVER_RESPONSE = 4


class Status(enum.IntEnum):
    """`Message.ResponseStatus` in the spec."""

    OK = 0
    E_INVALID_NAMESPACE = 100
    E_INVALID_SIGNED_PEER_RECORD = 101
    E_INVALID_TTL = 102
    E_INVALID_COOKIE = 103
    E_NOT_AUTHORIZED = 200
    E_INTERNAL_ERROR = 300
    E_UNAVAILABLE = 400


@dataclass(frozen=True, slots=True)
class Register:
    """REGISTER: put my signed peer record under `ns` for `ttl` seconds (None: the default)."""

    ns: str
    signed_peer_record: bytes
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class RegisterResponse:
    """The answer to REGISTER: a status and, when OK, the TTL the point granted."""

    status: int
    status_text: str = ""
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class Unregister:
    """UNREGISTER: remove my registration under `ns` (the spec sends no response)."""

    ns: str


@dataclass(frozen=True, slots=True)
class Discover:
    """DISCOVER: up to `limit` registrations under `ns` (empty: every namespace) after `cookie`."""

    ns: str = ""
    limit: int | None = None
    cookie: bytes = b""


@dataclass(frozen=True, slots=True)
class DiscoverResponse:
    """The answer to DISCOVER: registrations and a cookie to ask for the next ones."""

    status: int
    registrations: tuple[Register, ...] = field(default_factory=tuple)
    cookie: bytes = b""
    status_text: str = ""


RendezvousMessage = Register | RegisterResponse | Unregister | Discover | DiscoverResponse

# -- protobuf wire format ----------------------------------------------------------------------

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _key(number: int, wire_type: int) -> bytes:
    return encode_uvarint(number << 3 | wire_type)


def _uint(number: int, value: int | None) -> bytes:
    if value is None:
        return b""
    if not 0 <= value < 1 << 63:  # the spec says uint64; nothing sane needs the top bit
        raise ValueError(f"field {number} must be an unsigned integer below 2**63")
    return _key(number, _VARINT) + encode_uvarint(value)


def _bytes(number: int, value: bytes) -> bytes:
    return _key(number, _LEN) + encode_uvarint(len(value)) + value


def _text(number: int, value: str) -> bytes:
    return _bytes(number, value.encode())


def _register_body(message: Register) -> bytes:
    return _text(1, message.ns) + _bytes(2, message.signed_peer_record) + _uint(3, message.ttl)


def encode_message(message: RendezvousMessage) -> bytes:
    """The protobuf body of one rendezvous message (without its length prefix)."""
    if isinstance(message, Register):
        return _uint(1, MessageType.REGISTER) + _bytes(2, _register_body(message))
    if isinstance(message, RegisterResponse):
        body = _uint(1, message.status) + _uint(3, message.ttl)
        if message.status_text:
            body += _text(2, message.status_text)
        return _uint(1, MessageType.REGISTER_RESPONSE) + _bytes(3, body)
    if isinstance(message, Unregister):
        return _uint(1, MessageType.UNREGISTER) + _bytes(4, _text(1, message.ns))
    if isinstance(message, Discover):
        body = _text(1, message.ns) + _uint(2, message.limit)
        if message.cookie:
            body += _bytes(3, message.cookie)
        return _uint(1, MessageType.DISCOVER) + _bytes(5, body)
    if isinstance(message, DiscoverResponse):
        body = b"".join(_bytes(1, _register_body(r)) for r in message.registrations)
        if message.cookie:
            body += _bytes(2, message.cookie)
        body += _uint(3, message.status)
        if message.status_text:
            body += _text(4, message.status_text)
        return _uint(1, MessageType.DISCOVER_RESPONSE) + _bytes(6, body)
    raise TypeError(f"not a rendezvous message: {message!r}")


Fields = dict[int, list[int | bytes]]


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    if pos < len(data) and data[pos] < 0x80:
        return data[pos], pos + 1
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise MalformedFrame("rendezvous message ends inside a varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << 64:
                raise MalformedFrame("rendezvous message has a varint above 64 bits")
            return value, pos
    raise MalformedFrame("rendezvous message has a varint longer than 10 bytes")


def _parse(data: bytes) -> Fields:
    """Every field of one protobuf message; unknown wire types 1 and 5 are skipped."""
    fields: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise MalformedFrame("rendezvous message has a field numbered 0")
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
            fields.setdefault(number, []).append(value)
        elif wire_type == _LEN:
            length, pos = _read_varint(data, pos)
            if length > len(data) - pos:
                raise MalformedFrame("rendezvous message field runs past the end")
            fields.setdefault(number, []).append(data[pos : pos + length])
            pos += length
        elif wire_type in (_I64, _I32):
            pos += 8 if wire_type == _I64 else 4
            if pos > len(data):
                raise MalformedFrame("rendezvous message field runs past the end")
        else:
            raise MalformedFrame(f"rendezvous message uses unsupported wire type {wire_type}")
    return fields


def _last(fields: Fields, number: int, kind: type[int] | type[bytes]) -> int | bytes | None:
    # protobuf: the last occurrence of a non-repeated field wins
    values = fields.get(number)
    if not values:
        return None
    value = values[-1]
    if not isinstance(value, kind):
        raise MalformedFrame(f"rendezvous message field {number} has the wrong wire type")
    return value


def _get_uint(fields: Fields, number: int) -> int | None:
    value = _last(fields, number, int)
    assert value is None or isinstance(value, int)
    return value


def _get_bytes(fields: Fields, number: int) -> bytes | None:
    value = _last(fields, number, bytes)
    assert value is None or isinstance(value, bytes)
    return value


def _get_text(fields: Fields, number: int) -> str:
    # No length check here: the frame cap bounds every field, and the point answers a long
    # namespace with E_INVALID_NAMESPACE rather than a decoding error.
    raw = _get_bytes(fields, number) or b""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MalformedFrame(f"rendezvous message field {number} is not UTF-8") from None


def _decode_register(data: bytes) -> Register:
    fields = _parse(data)
    ns = _get_text(fields, 1)
    return Register(ns, _get_bytes(fields, 2) or b"", _get_uint(fields, 3))


def _submessage(fields: Fields, number: int, name: str) -> Fields:
    body = _get_bytes(fields, number)
    if body is None:
        raise MalformedFrame(f"rendezvous {name} message has no {name} body")
    return _parse(body)


def decode_message(body: bytes) -> RendezvousMessage:
    """Decode one rendezvous message body; raises MalformedFrame on anything invalid."""
    outer = _parse(body)
    kind = _get_uint(outer, 1)
    if kind is None:
        kind = MessageType.REGISTER  # proto2: an absent enum field reads as its default (0)
    if kind == MessageType.REGISTER:
        raw = _get_bytes(outer, 2)
        if raw is None:
            raise MalformedFrame("rendezvous REGISTER message has no register body")
        return _decode_register(raw)
    if kind == MessageType.REGISTER_RESPONSE:
        fields = _submessage(outer, 3, "REGISTER_RESPONSE")
        return RegisterResponse(
            _get_uint(fields, 1) or 0, _get_text(fields, 2), _get_uint(fields, 3)
        )
    if kind == MessageType.UNREGISTER:
        fields = _submessage(outer, 4, "UNREGISTER")
        return Unregister(_get_text(fields, 1))
    if kind == MessageType.DISCOVER:
        fields = _submessage(outer, 5, "DISCOVER")
        return Discover(
            _get_text(fields, 1),
            _get_uint(fields, 2),
            _get_bytes(fields, 3) or b"",
        )
    if kind == MessageType.DISCOVER_RESPONSE:
        fields = _submessage(outer, 6, "DISCOVER_RESPONSE")
        registrations = []
        for item in fields.get(1, []):
            if not isinstance(item, bytes):
                raise MalformedFrame("rendezvous registration has the wrong wire type")
            registrations.append(_decode_register(item))
        return DiscoverResponse(
            _get_uint(fields, 3) or 0,
            tuple(registrations),
            _get_bytes(fields, 2) or b"",
            _get_text(fields, 4),
        )
    raise MalformedFrame(f"unknown rendezvous message type {kind}")
