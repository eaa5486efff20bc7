"""A room's membership log entries: signed by their signer, bounded, one byte form each.

A signed entry is the msgpack array `[body, signature]` (at most `MAX_ENTRY_SIZE` bytes), with
`signature = Ed25519(signer, ENTRY_CONTEXT || body)`. `body` is a msgpack map with short keys
in this order (`parse_entry` refuses any other order or encoding):

    v   1 (the entry format's version)
    r   room id, 16 bytes; absent in a create entry (the room id is derived from that entry)
    id  16 random bytes (a UUIDv7): makes every entry, and so every room id, unique
    s   signer's peer ID, 38 bytes
    l   Lamport counter: 0 in a create entry, 1..MAX_LAMPORT in every other
    t   timestamp, ms since the epoch (informational; the order never depends on it)
    o   op: create | add | remove | promote | demote | rename
    m   the member concerned (add, remove, promote, demote)
    n   create, rename: room name (1-64 characters); add: member's display name (0-64, "": none)
    a   add: the member's addresses (at most 8, each 1-256 printable ASCII characters)

An entry's `hash` is the 16-byte BLAKE2b of its signed bytes, and a room's id is the hash of its
create entry: the id commits to the creator, so whoever holds the id can check the whole log.
Both encodings are checked to be canonical and libsodium refuses malleable signatures, so an
entry has exactly one byte form and one hash; logs are deduplicated and compared by hash.
Who may sign what, and the member set computed from a log, are in `room_state`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

from .codec import packb, unpackb_strict
from .envelope import ID_LENGTH, MAX_LAMPORT, new_message_id, peer_id_from_bytes
from .errors import InvalidPeerId, ProtocolError
from .keys import NodeKey, PeerId, RandomBytes
from .room_errors import InvalidRoomEntry

__all__ = [
    "ENTRY_VERSION",
    "ENTRY_CONTEXT",
    "MAX_ENTRY_SIZE",
    "MAX_NAME_LENGTH",
    "MAX_ADDRESSES",
    "MAX_ADDRESS_LENGTH",
    "NO_ROOM",
    "RoomOp",
    "MembershipEntry",
    "SignedEntry",
    "entry_hash",
    "sign_entry",
    "parse_entry",
    "create_entry",
    "add_entry",
    "member_entry",
    "rename_entry",
]

ENTRY_VERSION: Final = 1
ENTRY_CONTEXT: Final = b"meshtalk/room-entry/v1\x00"
"""Prefix of every signed entry, so these signatures can't pass for envelopes or handshakes."""
MAX_ENTRY_SIZE: Final = 4096
"""Largest signed entry, in bytes; checked before anything is decoded."""
MAX_NAME_LENGTH: Final = 64
MAX_ADDRESSES: Final = 8
MAX_ADDRESS_LENGTH: Final = 256
NO_ROOM: Final = bytes(ID_LENGTH)
"""The `room` of a create entry, which names no room: the room's id is that entry's hash."""
MAX_TIMESTAMP_MS: Final = 2**63 - 1
_SIGNATURE_SIZE: Final = 64
# A fixed list, not unicodedata: every node must refuse exactly the same names whatever its
# Python's Unicode version, or logs would diverge. C0/C1 controls, DEL, zero-width and
# bidirectional formatting characters (they make one name look like another), line separators.
_BAD_NAME_CHARS: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)
_ADDRESS_RE: Final = re.compile(rf"[!-~]{{1,{MAX_ADDRESS_LENGTH}}}")


class RoomOp(StrEnum):
    """What a membership log entry does."""

    CREATE = "create"
    ADD = "add"
    REMOVE = "remove"
    PROMOTE = "promote"
    DEMOTE = "demote"
    RENAME = "rename"


_MEMBER_OPS: Final = frozenset({RoomOp.ADD, RoomOp.REMOVE, RoomOp.PROMOTE, RoomOp.DEMOTE})
_OP_KEYS: Final = {
    RoomOp.CREATE: frozenset({"n"}),
    RoomOp.ADD: frozenset({"r", "m", "n", "a"}),
    RoomOp.REMOVE: frozenset({"r", "m"}),
    RoomOp.PROMOTE: frozenset({"r", "m"}),
    RoomOp.DEMOTE: frozenset({"r", "m"}),
    RoomOp.RENAME: frozenset({"r", "n"}),
}
"""The op-specific keys of each op's body; anything not in this table is refused."""
_COMMON_KEYS: Final = frozenset({"v", "id", "s", "l", "t", "o"})
_OP_VALUES: Final = frozenset(op.value for op in RoomOp)
_OPS: Final = ", ".join(op.value for op in RoomOp)


def _require_id(value: object, what: str) -> None:
    if type(value) is not bytes or len(value) != ID_LENGTH:
        raise InvalidRoomEntry(f"room entry {what} must be {ID_LENGTH} bytes")


def _require_int(value: object, what: str, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:  # type(): a bool is no counter
        raise InvalidRoomEntry(f"room entry {what} must be an integer from {low} to {high}")


def _require_name(value: object, what: str, min_length: int) -> None:
    if type(value) is not str or not min_length <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidRoomEntry(
            f"room entry {what} must be a string of {min_length} to {MAX_NAME_LENGTH} characters"
        )
    if _BAD_NAME_CHARS.search(value):
        raise InvalidRoomEntry(f"room entry {what} contains control or formatting characters")
    if min_length and not value.strip():
        raise InvalidRoomEntry(f"room entry {what} is only white space")


def _require_addresses(value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_ADDRESSES:
        raise InvalidRoomEntry(f"room entry addresses must be at most {MAX_ADDRESSES} strings")
    for address in value:
        if type(address) is not str or not _ADDRESS_RE.fullmatch(address):
            raise InvalidRoomEntry(
                f"room entry address must be 1-{MAX_ADDRESS_LENGTH} printable ASCII, no spaces"
            )


@dataclass(frozen=True, slots=True)
class MembershipEntry:
    """One change to a room, as its signer wrote it. Every field is checked on construction."""

    room: bytes
    id: bytes
    signer: PeerId
    lamport: int
    timestamp_ms: int
    op: RoomOp
    member: PeerId | None = None
    name: str | None = None
    addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if type(self.op) is not RoomOp:
            raise InvalidRoomEntry(f"room entry op must be one of: {_OPS}")
        _require_id(self.id, "id")
        if self.op is RoomOp.CREATE:
            if self.room != NO_ROOM:
                raise InvalidRoomEntry("a create entry names no room: the room id is its hash")
            _require_int(self.lamport, "Lamport counter of a create", 0, 0)
        else:
            _require_id(self.room, "room id")
            if self.room == NO_ROOM:
                raise InvalidRoomEntry(f"room entry ({self.op}) must name its room")
            _require_int(self.lamport, "Lamport counter", 1, MAX_LAMPORT)
        if type(self.signer) is not PeerId:
            raise InvalidRoomEntry("room entry signer must be a PeerId")
        _require_int(self.timestamp_ms, "timestamp", 0, MAX_TIMESTAMP_MS)
        if self.op in _MEMBER_OPS:
            if type(self.member) is not PeerId:
                raise InvalidRoomEntry(f"room entry ({self.op}) must name a member (a PeerId)")
        elif self.member is not None:
            raise InvalidRoomEntry(f"room entry ({self.op}) names no member")
        if self.op is RoomOp.ADD:
            _require_name(self.name, "member name", 0)
            _require_addresses(self.addresses)
            return
        if self.op in (RoomOp.CREATE, RoomOp.RENAME):
            _require_name(self.name, "room name", 1)
        elif self.name is not None:
            raise InvalidRoomEntry(f"room entry ({self.op}) carries no name")
        if self.addresses != ():
            raise InvalidRoomEntry(f"room entry ({self.op}) carries no addresses")

    def to_wire(self) -> dict[str, Any]:
        """The body's msgpack map, keys in their canonical order (see the module docstring)."""
        wire: dict[str, Any] = {"v": ENTRY_VERSION}
        if self.op is not RoomOp.CREATE:
            wire["r"] = self.room
        wire["id"] = self.id
        wire["s"] = self.signer.to_bytes()
        wire["l"] = self.lamport
        wire["t"] = self.timestamp_ms
        wire["o"] = self.op.value
        if self.member is not None:
            wire["m"] = self.member.to_bytes()
        if self.name is not None:
            wire["n"] = self.name
        if self.op is RoomOp.ADD:
            wire["a"] = list(self.addresses)
        return wire

    @classmethod
    def from_wire(cls, wire: object) -> MembershipEntry:
        """Build an entry from its decoded body map, checking every field."""
        if type(wire) is not dict:
            raise InvalidRoomEntry("room entry body must be a msgpack map")
        version = wire.get("v")
        if type(version) is not int or version != ENTRY_VERSION:
            raise InvalidRoomEntry(
                f"room entry version {version!r} is not supported (this node reads {ENTRY_VERSION})"
            )
        raw_op = wire.get("o")
        if type(raw_op) is not str or raw_op not in _OP_VALUES:
            raise InvalidRoomEntry(f"room entry op must be one of: {_OPS}")
        op = RoomOp(raw_op)
        expected = _COMMON_KEYS | _OP_KEYS[op]
        if wire.keys() != expected:
            want, got = ", ".join(sorted(expected)), ", ".join(sorted(map(str, wire)))
            raise InvalidRoomEntry(f"room entry ({op}) must have the fields {want}, not {got}")
        addresses = wire.get("a", [])
        if type(addresses) is not list:
            raise InvalidRoomEntry("room entry addresses must be a list of strings")
        return cls(
            room=wire.get("r", NO_ROOM),
            id=wire["id"],
            signer=_peer(wire["s"], "signer"),
            lamport=wire["l"],
            timestamp_ms=wire["t"],
            op=op,
            member=_peer(wire["m"], "member") if "m" in wire else None,
            name=wire.get("n"),
            addresses=tuple(addresses),
        )


def _peer(raw: object, what: str) -> PeerId:
    if type(raw) is not bytes:
        raise InvalidRoomEntry(f"room entry {what} must be peer ID bytes")
    try:
        return peer_id_from_bytes(raw)
    except InvalidPeerId as exc:
        raise InvalidRoomEntry(f"room entry {what} is not a valid peer ID: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SignedEntry:
    """A verified entry with the exact bytes its signer signed (kept for forwarding, export)."""

    entry: MembershipEntry
    data: bytes
    hash: bytes
    """`entry_hash(data)`: what logs deduplicate and compare entries by."""

    @property
    def room(self) -> bytes:
        """The room this entry belongs to (for a create entry, the room it creates)."""
        return self.hash if self.entry.op is RoomOp.CREATE else self.entry.room


def entry_hash(data: bytes) -> bytes:
    """The 16-byte hash of a signed entry; a create entry's hash is its room's id."""
    return hashlib.blake2b(data, digest_size=ID_LENGTH).digest()


def sign_entry(key: NodeKey, entry: MembershipEntry) -> bytes:
    """The signed bytes of `entry`, which `key` must be the signer of."""
    if entry.signer != key.peer_id:
        raise InvalidRoomEntry(
            f"room entry names {entry.signer} as signer but the key belongs to {key.peer_id}"
        )
    body = packb(entry.to_wire())
    data = packb([body, key.sign(ENTRY_CONTEXT + body)])
    if len(data) > MAX_ENTRY_SIZE:  # the field bounds keep it near 2.5 KiB; never trust that
        raise InvalidRoomEntry(f"room entry is {len(data)} bytes; the limit is {MAX_ENTRY_SIZE}")
    return data


def _unpack(data: bytes, what: str) -> Any:
    try:
        return unpackb_strict(data, ProtocolError, what)
    except ProtocolError as exc:  # unpackb_strict names a ProtocolError class; rooms have their own
        raise InvalidRoomEntry(str(exc)) from exc


def parse_entry(data: bytes) -> SignedEntry:
    """Decode, validate and verify signed entry bytes; raise InvalidRoomEntry on any defect.

    This checks the entry on its own; whether its signer may make the change is the log's
    business (`RoomLog` in `room_state`), since that depends on the other entries.
    """
    if type(data) is not bytes:
        raise InvalidRoomEntry("a room entry must be bytes")
    if len(data) > MAX_ENTRY_SIZE:
        raise InvalidRoomEntry(f"room entry is {len(data)} bytes; the limit is {MAX_ENTRY_SIZE}")
    outer = _unpack(data, "room entry")
    if (
        type(outer) is not list
        or len(outer) != 2
        or type(outer[0]) is not bytes
        or type(outer[1]) is not bytes
        or len(outer[1]) != _SIGNATURE_SIZE
    ):
        raise InvalidRoomEntry("room entry must be a msgpack array [body, 64-byte signature]")
    body, signature = outer
    if packb(outer) != data:
        raise InvalidRoomEntry("room entry is not packed canonically")
    entry = MembershipEntry.from_wire(_unpack(body, "room entry body"))
    if packb(entry.to_wire()) != body:
        raise InvalidRoomEntry("room entry body is not packed canonically")
    try:
        crypto_sign_open(signature + ENTRY_CONTEXT + body, entry.signer.public_key)
    except CryptoError as exc:
        raise InvalidRoomEntry(
            f"room entry signature does not verify against its signer {entry.signer}"
        ) from exc
    return SignedEntry(entry, data, entry_hash(data))


def _signed(
    key: NodeKey,
    room: bytes,
    lamport: int,
    now_ms: int,
    random_bytes: RandomBytes,
    op: RoomOp,
    **fields: Any,
) -> bytes:
    entry = MembershipEntry(
        room=room,
        id=new_message_id(now_ms, random_bytes),
        signer=key.peer_id,
        lamport=lamport,
        timestamp_ms=now_ms,
        op=op,
        **fields,
    )
    return sign_entry(key, entry)


def create_entry(
    key: NodeKey, name: str, now_ms: int, random_bytes: RandomBytes = os.urandom
) -> bytes:
    """A new room's create entry, signed by its creator; the room id is `entry_hash` of it."""
    return _signed(key, NO_ROOM, 0, now_ms, random_bytes, RoomOp.CREATE, name=name)


def add_entry(
    key: NodeKey,
    room: bytes,
    member: PeerId,
    name: str,
    addresses: tuple[str, ...],
    lamport: int,
    now_ms: int,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """Add `member` (display name, addresses) to `room`; on a member, update those two."""
    return _signed(
        key,
        room,
        lamport,
        now_ms,
        random_bytes,
        RoomOp.ADD,
        member=member,
        name=name,
        addresses=addresses,
    )


def member_entry(
    key: NodeKey,
    op: RoomOp,
    room: bytes,
    member: PeerId,
    lamport: int,
    now_ms: int,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """A REMOVE (with `member=key.peer_id`, a leave), PROMOTE (to admin) or DEMOTE (admin
    rights taken, still a member) of `member` in `room`."""
    if op not in (RoomOp.REMOVE, RoomOp.PROMOTE, RoomOp.DEMOTE):
        raise InvalidRoomEntry(f"member_entry makes remove, promote or demote entries, not {op}")
    return _signed(key, room, lamport, now_ms, random_bytes, op, member=member)


def rename_entry(
    key: NodeKey,
    room: bytes,
    name: str,
    lamport: int,
    now_ms: int,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """Give `room` a new name."""
    return _signed(key, room, lamport, now_ms, random_bytes, RoomOp.RENAME, name=name)
