"""The bodies of the envelopes rooms travel in: invites, joins, log pushes and sync summaries.

Every one of them is an ordinary signed, sealed envelope on the message stream; its `kind`
says which body it carries. Two are visible messages of a direct conversation, two are room
control that a node handles and acknowledges without storing:

    room-invite  direct, admin -> contact   {"room": id, "name": str, "log": [entry, ...]}
    room-join    direct, invitee -> admin   {"room": id, "name": str, "addresses": [str, ...]}
    room-log     room, member -> member     {"log": [entry, ...]}
    room-sync    room, member -> member     {"hashes": [hash, ...], "authors": [[peer, l, n], ...],
                                             "want": bool}

An invite carries the room's log (at most `MAX_LOG_PUSH_BYTES` of it, the create entry first),
so the invitee can check the room before it consents. A join is that consent; the admin who
invited then signs the add entry. A sync summary lists the log entries the sender holds and,
per author, the highest Lamport counter and the number of that author's messages it holds;
the other member answers with the entries the sender lacks and, when the summary says `want`,
the messages it lacks (peer/room_sync.py).
Parsing checks every bound before it builds anything; a body that breaks one is a RoomError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .envelope import ID_LENGTH, MAX_LAMPORT, peer_id_from_bytes
from .errors import InvalidPeerId
from .keys import PeerId
from .room_errors import RoomError
from .room_state import MAX_LOG_ENTRIES
from .rooms import MAX_ADDRESS_LENGTH, MAX_ADDRESSES, MAX_ENTRY_SIZE, MAX_NAME_LENGTH

__all__ = [
    "KIND_INVITE",
    "KIND_JOIN",
    "KIND_LOG",
    "KIND_SYNC",
    "CONTROL_KINDS",
    "MAX_LOG_PUSH_BYTES",
    "MAX_SYNC_AUTHORS",
    "RoomInvite",
    "RoomJoin",
    "AuthorMark",
    "SyncSummary",
    "log_body",
    "parse_log",
    "split_log",
]

KIND_INVITE: Final = "room-invite"
KIND_JOIN: Final = "room-join"
KIND_LOG: Final = "room-log"
KIND_SYNC: Final = "room-sync"
CONTROL_KINDS: Final = frozenset({KIND_LOG, KIND_SYNC})
"""Kinds a node acts on and acknowledges without storing them as messages."""
MAX_LOG_PUSH_BYTES: Final = 512 * 1024
"""Most entry bytes in one invite or log push (an envelope is at most 1 MiB)."""
MAX_SYNC_AUTHORS: Final = 4 * 64
"""Most authors a sync summary lists (a room has at most 64 members at a time)."""
MAX_COUNT: Final = 2**40


def _map(body: object, kind: str, keys: frozenset[str]) -> dict[str, Any]:
    if type(body) is not dict or set(body) != keys:
        raise RoomError(f"a {kind} body must be a map with exactly the keys {sorted(keys)}")
    return body


def _room_id(value: object, kind: str) -> bytes:
    if type(value) is not bytes or len(value) != ID_LENGTH:
        raise RoomError(f"a {kind} names its room by its {ID_LENGTH}-byte id")
    return value


def _name(value: object, kind: str) -> str:
    if type(value) is not str or len(value) > MAX_NAME_LENGTH:
        raise RoomError(f"a {kind} name must be text of at most {MAX_NAME_LENGTH} characters")
    return value


def _peer(value: object, kind: str) -> PeerId:
    if type(value) is not bytes:
        raise RoomError(f"a {kind} names peers by their peer ID bytes")
    try:
        return peer_id_from_bytes(value)
    except InvalidPeerId as exc:
        raise RoomError(f"a {kind} names an invalid peer ID: {exc}") from exc


def _entries(value: object, kind: str) -> tuple[bytes, ...]:
    if type(value) is not list or len(value) > MAX_LOG_ENTRIES:
        raise RoomError(f"a {kind} carries a list of at most {MAX_LOG_ENTRIES} log entries")
    total = 0
    for entry in value:
        if type(entry) is not bytes or len(entry) > MAX_ENTRY_SIZE:
            raise RoomError(f"a {kind} log entry must be bytes, at most {MAX_ENTRY_SIZE}")
        total += len(entry)
    if total > MAX_LOG_PUSH_BYTES:
        raise RoomError(f"a {kind} carries at most {MAX_LOG_PUSH_BYTES} bytes of log entries")
    return tuple(value)


def split_log(entries: Sequence[bytes]) -> list[tuple[bytes, ...]]:
    """Entries in pushes of at most `MAX_LOG_PUSH_BYTES` each, in the order given."""
    pushes: list[tuple[bytes, ...]] = []
    current: list[bytes] = []
    size = 0
    for entry in entries:
        if current and size + len(entry) > MAX_LOG_PUSH_BYTES:
            pushes.append(tuple(current))
            current, size = [], 0
        current.append(entry)
        size += len(entry)
    if current:
        pushes.append(tuple(current))
    return pushes


def log_body(entries: Sequence[bytes]) -> dict[str, Any]:
    """The body of a room-log push (use `split_log` first for a long log)."""
    return {"log": list(entries)}


def parse_log(body: object) -> tuple[bytes, ...]:
    """The entries a room-log push carries."""
    return _entries(_map(body, KIND_LOG, frozenset({"log"}))["log"], KIND_LOG)


@dataclass(frozen=True, slots=True)
class RoomInvite:
    """An admin's invitation to a room, with the room's log (or its first part)."""

    room: bytes
    name: str
    log: tuple[bytes, ...]

    def to_body(self) -> dict[str, Any]:
        """The envelope body."""
        return {"room": self.room, "name": self.name, "log": list(self.log)}

    @classmethod
    def parse(cls, body: object) -> RoomInvite:
        """An invite from an envelope body; RoomError if it breaks a bound."""
        fields = _map(body, KIND_INVITE, frozenset({"room", "name", "log"}))
        entries = _entries(fields["log"], KIND_INVITE)
        if not entries:
            raise RoomError("a room invite carries at least the room's create entry")
        return cls(
            _room_id(fields["room"], KIND_INVITE), _name(fields["name"], KIND_INVITE), entries
        )


@dataclass(frozen=True, slots=True)
class RoomJoin:
    """An invitee's consent: add me to the room, with this display name and these addresses."""

    room: bytes
    name: str
    addresses: tuple[str, ...]

    def to_body(self) -> dict[str, Any]:
        """The envelope body."""
        return {"room": self.room, "name": self.name, "addresses": list(self.addresses)}

    @classmethod
    def parse(cls, body: object) -> RoomJoin:
        """A join from an envelope body; RoomError if it breaks a bound."""
        fields = _map(body, KIND_JOIN, frozenset({"room", "name", "addresses"}))
        addresses = fields["addresses"]
        if (
            type(addresses) is not list
            or len(addresses) > MAX_ADDRESSES
            or any(type(a) is not str or not 0 < len(a) <= MAX_ADDRESS_LENGTH for a in addresses)
        ):
            raise RoomError(
                f"a room join lists at most {MAX_ADDRESSES} addresses of 1-"
                f"{MAX_ADDRESS_LENGTH} characters"
            )
        return cls(
            _room_id(fields["room"], KIND_JOIN),
            _name(fields["name"], KIND_JOIN),
            tuple(addresses),
        )


@dataclass(frozen=True, slots=True)
class AuthorMark:
    """What a member holds of one author's messages in a room."""

    author: PeerId
    lamport: int
    """The highest Lamport counter of the author's messages held."""
    count: int
    """How many of the author's messages are held."""


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """What a member holds of a room: its log entries' hashes and a mark per author; `want`:
    the sender asks this member for the messages it lacks (it asks one member at a time)."""

    hashes: tuple[bytes, ...]
    authors: tuple[AuthorMark, ...]
    want: bool = False

    def to_body(self) -> dict[str, Any]:
        """The envelope body."""
        marks = [[m.author.to_bytes(), m.lamport, m.count] for m in self.authors]
        return {"hashes": list(self.hashes), "authors": marks, "want": self.want}

    @classmethod
    def parse(cls, body: object) -> SyncSummary:
        """A summary from an envelope body; RoomError if it breaks a bound."""
        fields = _map(body, KIND_SYNC, frozenset({"hashes", "authors", "want"}))
        hashes, authors, want = fields["hashes"], fields["authors"], fields["want"]
        if type(want) is not bool:
            raise RoomError("a room sync's 'want' is true or false")
        if (
            type(hashes) is not list
            or len(hashes) > MAX_LOG_ENTRIES
            or any(type(h) is not bytes or len(h) != ID_LENGTH for h in hashes)
        ):
            raise RoomError(f"a room sync lists at most {MAX_LOG_ENTRIES} 16-byte entry hashes")
        if type(authors) is not list or len(authors) > MAX_SYNC_AUTHORS:
            raise RoomError(f"a room sync lists at most {MAX_SYNC_AUTHORS} authors")
        marks: dict[PeerId, AuthorMark] = {}
        for mark in authors:
            if (
                type(mark) is not list
                or len(mark) != 3
                or type(mark[1]) is not int
                or not 0 <= mark[1] <= MAX_LAMPORT
                or type(mark[2]) is not int
                or not 0 <= mark[2] <= MAX_COUNT
            ):
                raise RoomError("a room sync author mark is [peer ID, lamport, count]")
            author = _peer(mark[0], KIND_SYNC)
            if author in marks:
                raise RoomError(f"a room sync lists {author} twice")
            marks[author] = AuthorMark(author, mark[1], mark[2])
        return cls(tuple(hashes), tuple(marks.values()), want)
