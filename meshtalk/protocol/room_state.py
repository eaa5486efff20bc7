"""A room's membership log and the member set every holder computes the same way from it.

`RoomLog` holds a room's signed entries (`rooms`), deduplicated by hash, and `state()` replays
them into a `RoomState`. The replay is a pure function of the set of entries held, so members
holding the same entries agree on the members, whatever order the entries arrived in.

Rules of the replay (an entry that breaks one is not an error: it is skipped and listed in
`RoomState.rejected` with the reason, because concurrent changes can make an entry that was
valid when signed invalid later, and every member must skip the same ones):

- Order: by (lamport, signer's peer ID bytes, id, hash). The create entry alone has Lamport 0,
  so it comes first; its signer is the first member and admin. No other create is accepted.
- Authority: an entry applies only if its signer is an admin at that point of the replay,
  except a leave (a remove whose member is its signer), which any member may sign.
- add: a new member joins, unless the room has `MAX_MEMBERS`; adding a member updates its
  display name and addresses (a way to publish new addresses) and nothing else.
  remove: the member and its admin rights go; it may be added again later.
  promote/demote: only of a member that is not/is an admin; rename sets the room name.
- At least one admin: a demote that would leave no admin is skipped. When the last admin
  leaves, the member added earliest (lowest added Lamport, then peer ID bytes) becomes admin.
  When the last member leaves, the room is empty and nothing applies any more.
- Races resolve by the order: of an add and a remove of the same member, whichever sorts later
  wins; an entry by an admin who was removed earlier in the order is skipped.

Membership over time: `RoomState.was_member(peer, lamport)` says whether `peer` was a member
at Lamport `lamport`, i.e. `add < lamport < remove` for one of its intervals. A member that saw
its add writes after it; a message at the removal's Lamport or later is concurrent with or
after the removal, and the removal wins. This assumes one Lamport clock per room for entries
and messages (a node signs each with `max(everything seen in the room) + 1`).

What this does not promise: a signer chooses its own Lamport counter, so an admin can back-date
an entry (and a member a message) to a time when it still had the right; every member then
accepts it alike, so the state still converges, but removal does not stop a removed party
from forging "old" entries or messages. Nodes should apply `check_lamport_step` against their
room clock when an entry or message arrives and refuse one far below what they had already
seen from its signer. `RoomLog` accepts any well-formed entry for its room (up to
`MAX_LOG_ENTRIES`); taking entries only from members is the caller's job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from .envelope import ID_LENGTH, next_lamport
from .keys import PeerId
from .room_errors import InvalidRoomEntry, RoomError
from .rooms import MAX_ENTRY_SIZE, MembershipEntry, RoomOp, SignedEntry, entry_hash, parse_entry

__all__ = [
    "MAX_MEMBERS",
    "MAX_LOG_ENTRIES",
    "Member",
    "Interval",
    "RejectedEntry",
    "RoomState",
    "RoomLog",
    "replay_order",
]

MAX_MEMBERS: Final = 64
MAX_LOG_ENTRIES: Final = 4096
"""Most entries a room's log holds; a full log refuses new ones (RoomError)."""
_DIGEST_PERSON: Final = b"meshtalk/roomlog"


@dataclass(frozen=True, slots=True)
class Member:
    """A member as the log says: display name, addresses, admin rights, when it was added."""

    peer: PeerId
    name: str
    addresses: tuple[str, ...]
    admin: bool
    added_lamport: int


@dataclass(frozen=True, slots=True)
class Interval:
    """A stretch of membership: from its add's Lamport to its removal's (both exclusive)."""

    start: int
    end: int | None = None
    """None while the member is still in the room."""

    def contains(self, lamport: int) -> bool:
        """Whether a message at `lamport` falls inside this stretch."""
        return self.start < lamport and (self.end is None or lamport < self.end)


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    """An entry the replay skipped, and why."""

    hash: bytes
    signer: PeerId
    op: RoomOp
    lamport: int
    reason: str


@dataclass(frozen=True)
class RoomState:
    """What a room's log says now: its name, members and admins, and who was a member when."""

    room: bytes
    name: str
    creator: PeerId
    members: Mapping[PeerId, Member]
    intervals: Mapping[PeerId, tuple[Interval, ...]]
    """Every peer that was ever a member, with its stretches of membership in order."""
    rejected: tuple[RejectedEntry, ...]
    """The entries the replay skipped, in replay order."""
    lamport: int
    """The highest Lamport counter of an applied entry."""

    @property
    def admins(self) -> frozenset[PeerId]:
        """The members with admin rights."""
        return frozenset(peer for peer, member in self.members.items() if member.admin)

    def is_member(self, peer: PeerId) -> bool:
        """Whether `peer` is a member now."""
        return peer in self.members

    def is_admin(self, peer: PeerId) -> bool:
        """Whether `peer` is an admin now."""
        member = self.members.get(peer)
        return member is not None and member.admin

    def was_member(self, peer: PeerId, lamport: int) -> bool:
        """Whether `peer` was a member at `lamport` (see the module docstring for the rule)."""
        return any(interval.contains(lamport) for interval in self.intervals.get(peer, ()))


def replay_order(entry: SignedEntry) -> tuple[int, bytes, bytes, bytes]:
    """The sort key of the replay: (lamport, signer's peer ID bytes, id, hash)."""
    e = entry.entry
    return (e.lamport, e.signer.to_bytes(), e.id, entry.hash)


class _Replay:
    """The member set while entries are applied one by one in replay order."""

    def __init__(self, room: bytes, create: MembershipEntry) -> None:
        self.room = room
        self.creator = create.signer
        self.name = create.name or ""
        self.members = {create.signer: Member(create.signer, "", (), True, 0)}
        self.intervals: dict[PeerId, list[Interval]] = {create.signer: [Interval(0)]}
        self.rejected: list[RejectedEntry] = []
        self.lamport = 0

    def apply(self, signed: SignedEntry) -> None:
        """Apply one entry, or record why it is skipped."""
        entry = signed.entry
        reason = self._authority(entry) or _HANDLERS[entry.op](self, entry)
        if reason:
            self.rejected.append(
                RejectedEntry(signed.hash, entry.signer, entry.op, entry.lamport, reason)
            )
        else:
            self.lamport = entry.lamport

    def _authority(self, entry: MembershipEntry) -> str | None:
        signer = self.members.get(entry.signer)
        if signer is None:
            return "its signer is not a member at that point"
        if entry.op is RoomOp.REMOVE and entry.member == entry.signer:
            return None  # a leave
        if not signer.admin:
            return "its signer is not an admin at that point"
        return None

    def _create(self, entry: MembershipEntry) -> str | None:
        return "a room has one create entry"

    def _add(self, entry: MembershipEntry) -> str | None:
        # MembershipEntry guarantees both for an add; the asserts tell mypy.
        assert entry.member is not None
        assert entry.name is not None
        current = self.members.get(entry.member)
        if current is not None:
            self.members[entry.member] = replace(
                current, name=entry.name, addresses=entry.addresses
            )
            return None
        if len(self.members) >= MAX_MEMBERS:
            return f"the room already has {MAX_MEMBERS} members"
        self.members[entry.member] = Member(
            entry.member, entry.name, entry.addresses, False, entry.lamport
        )
        self.intervals.setdefault(entry.member, []).append(Interval(entry.lamport))
        return None

    def _remove(self, entry: MembershipEntry) -> str | None:
        assert entry.member is not None
        if self.members.pop(entry.member, None) is None:
            return "the member it removes is not a member"
        spans = self.intervals[entry.member]
        spans[-1] = Interval(spans[-1].start, entry.lamport)
        if self.members and not any(m.admin for m in self.members.values()):
            # Only a leave can get here: an admin removing another stays an admin.
            heir = min(self.members.values(), key=lambda m: (m.added_lamport, m.peer.to_bytes()))
            self.members[heir.peer] = replace(heir, admin=True)
        return None

    def _promote(self, entry: MembershipEntry) -> str | None:
        assert entry.member is not None
        member = self.members.get(entry.member)
        if member is None:
            return "the member it promotes is not a member"
        if member.admin:
            return "the member it promotes is an admin already"
        self.members[entry.member] = replace(member, admin=True)
        return None

    def _demote(self, entry: MembershipEntry) -> str | None:
        assert entry.member is not None
        member = self.members.get(entry.member)
        if member is None or not member.admin:
            return "the member it demotes is not an admin"
        if sum(m.admin for m in self.members.values()) == 1:
            return "it would leave the room without an admin"
        self.members[entry.member] = replace(member, admin=False)
        return None

    def _rename(self, entry: MembershipEntry) -> str | None:
        self.name = entry.name or ""
        return None

    def state(self) -> RoomState:
        """The result, frozen."""
        return RoomState(
            room=self.room,
            name=self.name,
            creator=self.creator,
            members=MappingProxyType(dict(self.members)),
            intervals=MappingProxyType({p: tuple(s) for p, s in self.intervals.items()}),
            rejected=tuple(self.rejected),
            lamport=self.lamport,
        )


_HANDLERS: Final = {
    RoomOp.CREATE: _Replay._create,
    RoomOp.ADD: _Replay._add,
    RoomOp.REMOVE: _Replay._remove,
    RoomOp.PROMOTE: _Replay._promote,
    RoomOp.DEMOTE: _Replay._demote,
    RoomOp.RENAME: _Replay._rename,
}
"""What each op does in the replay; every op has a handler (a test checks)."""


class RoomLog:
    """The signed entries held for one room, and the state they give. Bytes in, no I/O."""

    def __init__(self, room: bytes) -> None:
        if type(room) is not bytes or len(room) != ID_LENGTH:
            raise InvalidRoomEntry(f"a room id is {ID_LENGTH} bytes")
        self._room = room
        self._entries: dict[bytes, SignedEntry] = {}
        self._create: SignedEntry | None = None
        self._sorted: list[SignedEntry] | None = None
        self._state: RoomState | None = None

    @classmethod
    def from_create(cls, data: bytes) -> RoomLog:
        """A new log holding a create entry (the room's id is that entry's hash)."""
        signed = parse_entry(data)
        if signed.entry.op is not RoomOp.CREATE:
            raise InvalidRoomEntry(f"a room starts with a create entry, not {signed.entry.op}")
        log = cls(signed.room)
        log.add(data)
        return log

    @property
    def room(self) -> bytes:
        """The room's id."""
        return self._room

    @property
    def has_create(self) -> bool:
        """Whether the room's create entry is held (without it there is no state)."""
        return self._create is not None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_hash: object) -> bool:
        return entry_hash in self._entries

    def add(self, data: bytes) -> bool:
        """Verify and keep one signed entry; False if it was held already.

        Raises InvalidRoomEntry if it is malformed, badly signed or for another room, and
        RoomError if the log is full. Whether it applies is decided by `state()`.
        """
        if type(data) is bytes and len(data) <= MAX_ENTRY_SIZE and entry_hash(data) in self:
            return False  # held, so verified already: catch-up resends many
        signed = parse_entry(data)
        if signed.room != self._room:
            raise InvalidRoomEntry(
                f"{signed.entry.op} entry is for room {signed.room.hex()}, not {self._room.hex()}"
            )
        if len(self._entries) >= MAX_LOG_ENTRIES:
            raise RoomError(f"room {self._room.hex()} holds {MAX_LOG_ENTRIES} log entries already")
        self._entries[signed.hash] = signed
        if signed.entry.op is RoomOp.CREATE:
            self._create = signed
        self._sorted = self._state = None
        return True

    def _replay_order(self) -> list[SignedEntry]:
        if self._sorted is None:
            self._sorted = sorted(self._entries.values(), key=replay_order)
        return self._sorted

    def state(self) -> RoomState:
        """The room as its log says now (computed once per change, then cached)."""
        if self._state is None:
            if self._create is None:
                raise RoomError(f"the log of room {self._room.hex()} lacks its create entry")
            replay = _Replay(self._room, self._create.entry)
            for signed in self._replay_order()[1:]:  # [0] is the create (Lamport 0)
                replay.apply(signed)
            self._state = replay.state()
        return self._state

    def next_lamport(self, seen: int = 0) -> int:
        """The Lamport counter for a new entry: past every applied entry and `seen`.

        Skipped entries do not count, so nobody can push the room's clock by signing
        entries that never apply.
        """
        return next_lamport(self.state().lamport, seen)

    def entries(self) -> tuple[bytes, ...]:
        """Every held entry's signed bytes, in replay order (for export and forwarding)."""
        return tuple(signed.data for signed in self._replay_order())

    def hashes(self) -> frozenset[bytes]:
        """The hashes of the held entries: what a peer compares with its own."""
        return frozenset(self._entries)

    def digest(self) -> bytes:
        """16 bytes that differ when two logs of the room hold different entries."""
        joined = b"".join(sorted(self._entries))
        return hashlib.blake2b(joined, digest_size=16, person=_DIGEST_PERSON).digest()

    def missing(self, their_hashes: Collection[bytes]) -> tuple[bytes, ...]:
        """The signed entries held here that are not among `their_hashes`, in replay order."""
        if len(their_hashes) > MAX_LOG_ENTRIES:
            raise RoomError(f"a room log summary lists at most {MAX_LOG_ENTRIES} entries")
        theirs = frozenset(their_hashes)
        return tuple(s.data for s in self._replay_order() if s.hash not in theirs)
