"""The envelope: one application message, validated on construction, packed with short keys."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Final

from .codec import check_value, packb, unpackb_strict
from .errors import InvalidPeerId, LamportOutOfRange, MalformedEnvelope, MessageTooLarge
from .keys import PeerId, RandomBytes

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_ENVELOPE_SIZE",
    "MAX_RECIPIENTS",
    "MAX_LAMPORT",
    "MAX_LAMPORT_STEP",
    "next_lamport",
    "check_lamport_step",
    "Body",
    "Envelope",
    "new_message_id",
    "direct_conversation_id",
    "peer_id_from_bytes",
]

PROTOCOL_VERSION: Final = 1
MAX_ENVELOPE_SIZE: Final = 1024 * 1024
"""Largest packed envelope, in bytes (body, metadata and all)."""
MAX_RECIPIENTS: Final = 256
ID_LENGTH: Final = 16

Body = Any
"""A body is text (`str`) or plain msgpack data: None, bool, int, float, str, bytes, lists and
str-keyed maps, nested at most `codec.MAX_DEPTH` deep."""

_KIND_RE: Final = re.compile(r"[a-z][a-z0-9._-]{0,31}")
_INT64_MAX: Final = 2**63 - 1
MAX_LAMPORT: Final = 2**53 - 1
"""Largest Lamport counter: fits SQLite's signed 64-bit integers and is exact as a JSON/JS
number. A well-behaved peer adds one per message, so it never gets near it."""
MAX_LAMPORT_STEP: Final = 2**20
"""How far past a conversation's counter an incoming message may jump. A peer that jumps further
is refused (LamportOutOfRange), so reaching MAX_LAMPORT would take over 8 billion messages."""
_REQUIRED_KEYS: Final = frozenset({"v", "id", "k", "c", "a", "r", "t", "l", "b"})
_ALL_KEYS: Final = _REQUIRED_KEYS | {"re", "m"}


def new_message_id(now_ms: int, random_bytes: RandomBytes = os.urandom) -> bytes:
    """A UUIDv7 (time-ordered, 74 random bits) as 16 bytes: sortable and collision-free."""
    rand = bytearray(random_bytes(10))
    rand[0] = 0x70 | (rand[0] & 0x0F)  # version 7
    rand[2] = 0x80 | (rand[2] & 0x3F)  # RFC 9562 variant
    return (now_ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + bytes(rand)


def direct_conversation_id(a: PeerId, b: PeerId) -> bytes:
    """The id of the one-to-one conversation between two peers (the same from either side)."""
    low, high = sorted((a.to_bytes(), b.to_bytes()))
    return hashlib.blake2b(low + high, digest_size=ID_LENGTH, person=b"meshtalk/direct").digest()


def next_lamport(local: int, seen: int = 0) -> int:
    """The counter for a new message: one past everything known, saturating at MAX_LAMPORT."""
    return min(max(local, seen) + 1, MAX_LAMPORT)


def check_lamport_step(lamport: int, local: int) -> None:
    """Refuse an incoming counter that jumps more than MAX_LAMPORT_STEP past `local`."""
    if lamport > local + MAX_LAMPORT_STEP:
        raise LamportOutOfRange(
            f"Lamport counter {lamport} jumps more than {MAX_LAMPORT_STEP} past the "
            f"conversation's {local}"
        )


@functools.lru_cache(maxsize=4096)
def peer_id_from_bytes(raw: bytes) -> PeerId:
    """`PeerId(raw)`, cached: validating a key point costs more than the rest of a message."""
    return PeerId(raw)


_known_kinds: set[str] = {"text"}


def _require_kind(kind: object) -> None:
    if type(kind) is str and kind in _known_kinds:
        return
    if type(kind) is not str or not _KIND_RE.fullmatch(kind):
        raise MalformedEnvelope(
            "envelope kind must be 1-32 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter"
        )
    if len(_known_kinds) < 256:  # remember valid kinds: a regex per message adds up
        _known_kinds.add(kind)


def _require_id(value: object, name: str) -> None:
    if type(value) is not bytes or len(value) != ID_LENGTH:
        raise MalformedEnvelope(f"envelope {name} must be {ID_LENGTH} bytes")


def _require_int(value: object, name: str, maximum: int) -> None:
    if type(value) is not int or not 0 <= value <= maximum:
        raise MalformedEnvelope(f"envelope {name} must be an integer from 0 to {maximum}")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message as its author wrote and signed it. Every field is checked on construction."""

    id: bytes
    conversation: bytes
    author: PeerId
    recipients: tuple[PeerId, ...]
    timestamp_ms: int
    lamport: int
    body: Body
    kind: str = "text"
    reply_to: bytes | None = None
    metadata: dict[str, Any] | None = field(default=None)
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        # Written for speed as well as strictness: this runs for every message opened.
        if type(self.version) is not int or self.version != PROTOCOL_VERSION:
            raise MalformedEnvelope(
                f"envelope version {self.version!r} is not supported (this node speaks "
                f"{PROTOCOL_VERSION})"
            )
        _require_id(self.id, "id")
        _require_id(self.conversation, "conversation id")
        if self.reply_to is not None:
            _require_id(self.reply_to, "reply-to id")
        _require_kind(self.kind)
        if type(self.author) is not PeerId:
            raise MalformedEnvelope("envelope author must be a PeerId")
        recipients = self.recipients
        if type(recipients) is not tuple or not 1 <= len(recipients) <= MAX_RECIPIENTS:
            raise MalformedEnvelope(
                f"envelope recipients must be a tuple of 1 to {MAX_RECIPIENTS} PeerIds"
            )
        for recipient in recipients:
            if type(recipient) is not PeerId:
                raise MalformedEnvelope("envelope recipients must be PeerIds")
        if len(recipients) > 1 and len(set(recipients)) != len(recipients):
            raise MalformedEnvelope("envelope recipients list the same peer twice")
        _require_int(self.timestamp_ms, "timestamp", _INT64_MAX)
        if type(self.lamport) is not int or not 0 <= self.lamport <= MAX_LAMPORT:
            if type(self.lamport) is not int or self.lamport < 0:
                raise MalformedEnvelope("envelope Lamport counter must be an integer >= 0")
            raise LamportOutOfRange(
                f"envelope Lamport counter must be from 0 to {MAX_LAMPORT}, not {self.lamport}"
            )
        if type(self.body) is not str:
            check_value(self.body, MalformedEnvelope, "envelope body")
        if self.metadata is not None:
            if type(self.metadata) is not dict:
                raise MalformedEnvelope("envelope metadata must be a map with string keys")
            check_value(self.metadata, MalformedEnvelope, "envelope metadata")

    def to_wire(self) -> dict[str, Any]:
        """The msgpack map of this envelope, with its short keys, in canonical order."""
        wire: dict[str, Any] = {
            "v": self.version,
            "id": self.id,
            "k": self.kind,
            "c": self.conversation,
            "a": self.author.to_bytes(),
            "r": [r.to_bytes() for r in self.recipients],
            "t": self.timestamp_ms,
            "l": self.lamport,
        }
        if self.reply_to is not None:
            wire["re"] = self.reply_to
        wire["b"] = self.body
        if self.metadata is not None:
            wire["m"] = self.metadata
        return wire

    def pack(self) -> bytes:
        """The envelope as msgpack bytes (what the author signs)."""
        data = packb(self.to_wire())
        if len(data) > MAX_ENVELOPE_SIZE:
            raise MessageTooLarge(
                f"envelope is {len(data)} bytes packed; the limit is {MAX_ENVELOPE_SIZE}"
            )
        return data

    @classmethod
    def unpack(cls, data: bytes) -> Envelope:
        """Decode and validate packed envelope bytes; raise MalformedEnvelope on any defect."""
        if len(data) > MAX_ENVELOPE_SIZE:
            raise MessageTooLarge(
                f"envelope is {len(data)} bytes; the limit is {MAX_ENVELOPE_SIZE}"
            )
        wire = unpackb_strict(data, MalformedEnvelope, "envelope")
        return cls.from_wire(wire)

    @classmethod
    def from_wire(cls, wire: object) -> Envelope:
        """Build an envelope from its decoded msgpack map, checking every field."""
        if type(wire) is not dict:
            raise MalformedEnvelope("envelope must be a msgpack map")
        keys = wire.keys()
        if not (keys >= _REQUIRED_KEYS and keys <= _ALL_KEYS):
            missing = ", ".join(sorted(_REQUIRED_KEYS - keys))
            unknown = ", ".join(sorted(map(str, keys - _ALL_KEYS)))
            raise MalformedEnvelope(
                f"envelope lacks required fields: {missing}"
                if missing
                else f"envelope has unknown fields: {unknown}"
            )
        raw_recipients = wire["r"]
        if type(raw_recipients) is not list:
            raise MalformedEnvelope("envelope recipients must be a list of peer ID bytes")
        try:
            author_id = peer_id_from_bytes(wire["a"])
            recipients = tuple(map(peer_id_from_bytes, raw_recipients))
        except (InvalidPeerId, TypeError) as exc:
            raise MalformedEnvelope(f"envelope names an invalid peer: {exc}") from exc
        return cls(
            version=wire["v"],
            id=wire["id"],
            kind=wire["k"],
            conversation=wire["c"],
            author=author_id,
            recipients=recipients,
            timestamp_ms=wire["t"],
            lamport=wire["l"],
            reply_to=wire.get("re"),
            body=wire["b"],
            metadata=wire.get("m"),
        )
