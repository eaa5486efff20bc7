"""Rooms held by this node: the `rooms` and `room_entries` tables.

Owns which rooms this node keeps (issue 16), each room's signed membership log entries and
its Lamport clock here. The rules of the log (who may sign what, the member set) are the
sans-I/O `RoomLog` in protocol/room_state.py; this part only keeps its entries durable, and
every entry is verified by `RoomLog.add` before it is written.

- A room also has a row in `conversations` with the room's id, kind 'group' and the room's
  name, so that its messages (conversation id = room id) are stored, listed and read like any
  other conversation's. Its `conversation_members` follow the log's current members on every
  change. Admitting a room message must still ask the room's state (`was_member` at the
  message's Lamport counter), not only those rows.
- A conversation already stored under a room's id when the room arrives was opened by a peer
  that knew the id before this node held the room: it moves, with its messages, to
  `moved_conversation_id(room)` (as admission.py does for a squatted direct id), so nothing
  the room's members did not write shows up in the room's history.
- One Lamport clock per room: entries and messages are signed with `bump_lamport`, which moves
  `rooms.lamport` and the conversation's counter together; storing entries raises both to the
  log's state.
- Bounds: at most `max_rooms` rooms (left ones count too: forgetting a room is not built
  yet), the log's own `MAX_LOG_ENTRIES` per room, and a cache of rebuilt logs of at most
  `CACHE_ENTRIES` entries in all (a log of 4,096 entries of up to 4 KiB is 16 MiB at worst).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ...protocol.codec import unpackb_strict
from ...protocol.envelope import MAX_LAMPORT, next_lamport
from ...protocol.errors import ProtocolError, StoreError
from ...protocol.room_errors import RoomError, UnknownRoom
from ...protocol.room_state import MAX_LOG_ENTRIES, RoomLog, RoomState
from ...protocol.rooms import entry_hash
from ..admission import move_conversation
from .database import Database

__all__ = ["RoomStore", "RoomSummary", "DEFAULT_MAX_ROOMS", "CACHE_ENTRIES"]

DEFAULT_MAX_ROOMS: Final = 1_000
"""Rooms one node holds at most (1,000 full logs would be 16 GiB on disk; entries are ~300 B)."""
CACHE_ENTRIES: Final = 16_384
"""Log entries kept in memory over all cached rooms (64 MiB at worst); the most recent stays."""
_MIN_PREFIX: Final = 4
"""Fewest hex digits `find` takes as the start of a room id."""
_LISTED: Final = 10
_SUMMARY_COLUMNS: Final = "id, name, members, created_ms, joined_ms, left_ms, lamport"


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """A room as `rooms()` lists it (name and member count as its log says now)."""

    id: bytes
    name: str
    members: int
    created_ms: int
    """The create entry's timestamp (the creator's clock; informational)."""
    joined_ms: int
    """When this node stored the room (or joined it again after leaving)."""
    left_ms: int | None
    lamport: int
    """The room's Lamport clock on this node."""

    @property
    def left(self) -> bool:
        """Whether this node left the room (it keeps the log and the messages)."""
        return self.left_ms is not None


def _summary(row: sqlite3.Row) -> RoomSummary:
    return RoomSummary(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def _label(summary: RoomSummary) -> str:
    return f"{summary.name} ({summary.id.hex()[:8]})"


def _entry_fields(data: bytes) -> dict[str, object]:
    """The body of an entry `RoomLog` has verified: decoding only, no signature check."""
    body, _ = unpackb_strict(data, ProtocolError, "room entry")
    fields: dict[str, object] = unpackb_strict(body, ProtocolError, "room entry body")
    return fields


def _claim_conversation(db: sqlite3.Connection, room: bytes, name: str, now_ms: int) -> None:
    """Create the room's 'group' conversation, moving a conversation squatting on its id."""
    row = db.execute("SELECT kind FROM conversations WHERE id = ?", (room,)).fetchone()
    if row is not None:
        if row[0] == "direct":  # a 16-byte hash collision: not going to happen, never merge
            raise RoomError(f"room {room.hex()} has the id of a direct conversation held here")
        move_conversation(db, room)
    db.execute(
        "INSERT INTO conversations (id, kind, name, created_ms) VALUES (?, 'group', ?, ?)",
        (room, name, now_ms),
    )


def _write_state(db: sqlite3.Connection, room: bytes, state: RoomState) -> None:
    """Copy what the log says now into the room's rows and its conversation's."""
    db.execute(
        "UPDATE rooms SET name = ?, members = ?, lamport = MAX(lamport, ?) WHERE id = ?",
        (state.name, len(state.members), state.lamport, room),
    )
    db.execute(
        "UPDATE conversations SET name = ?, lamport = MAX(lamport, ?) WHERE id = ?",
        (state.name, state.lamport, room),
    )
    now = {peer.to_bytes() for peer in state.members}
    rows = db.execute(
        "SELECT peer_id FROM conversation_members WHERE conversation = ?", (room,)
    ).fetchall()
    held = {row[0] for row in rows}
    db.executemany(
        "DELETE FROM conversation_members WHERE conversation = ? AND peer_id = ?",
        [(room, peer) for peer in held - now],
    )
    db.executemany(
        "INSERT INTO conversation_members (conversation, peer_id) VALUES (?, ?)",
        [(room, peer) for peer in sorted(now - held)],
    )


class RoomStore:
    """The rooms of a store and their membership logs. Not thread-safe, like the Database."""

    def __init__(self, db: Database, max_rooms: int = DEFAULT_MAX_ROOMS) -> None:
        self._db = db
        self.max_rooms = max_rooms
        self._cache: OrderedDict[bytes, RoomLog] = OrderedDict()

    # -- rooms ------------------------------------------------------------------------------

    def create(self, create_entry: bytes, now_ms: int) -> bytes:
        """Store a room from its signed create entry (made here, or received when joining);
        returns the room's id, the entry's hash.

        Idempotent: a room held already is left as it is, except that one this node had left
        is joined again (`left_ms` cleared, `joined_ms` set to `now_ms`). Raises
        InvalidRoomEntry for anything but a valid create entry, RoomError when this node holds
        `max_rooms` rooms already.
        """
        log = RoomLog.from_create(create_entry)
        room, state = log.room, log.state()
        with self._db.transaction() as db:
            row = db.execute("SELECT left_ms FROM rooms WHERE id = ?", (room,)).fetchone()
            if row is not None:
                if row[0] is not None:
                    db.execute(
                        "UPDATE rooms SET left_ms = NULL, joined_ms = ? WHERE id = ?",
                        (now_ms, room),
                    )
                return room
            (count,) = db.execute("SELECT COUNT(*) FROM rooms").fetchone()
            if count >= self.max_rooms:
                raise RoomError(
                    f"this node holds {count} rooms, the most it keeps ({self.max_rooms}); "
                    "the rooms it left count too"
                )
            _claim_conversation(db, room, state.name, now_ms)
            db.execute(
                "INSERT INTO rooms (id, name, created_ms, joined_ms) VALUES (?, ?, ?, ?)",
                (room, state.name, _entry_fields(create_entry)["t"], now_ms),
            )
            _insert_entries(db, room, [create_entry])
            _write_state(db, room, state)
        self._remember(room, log)
        return room

    def leave(self, room: bytes, now_ms: int) -> None:
        """Mark a room as left by this node (its log and messages stay). Leaving again keeps
        the first time. Signing the leave entry itself is the caller's (`add_entries`)."""
        with self._db.transaction() as db:
            cursor = db.execute(
                "UPDATE rooms SET left_ms = COALESCE(left_ms, ?) WHERE id = ?", (now_ms, room)
            )
            if cursor.rowcount == 0:
                raise _unknown(room)

    def bump_lamport(self, room: bytes, seen: int = 0) -> int:
        """The Lamport counter for a new entry or message in `room`, persisted: one past the
        room's clock here and `seen` (saturating at MAX_LAMPORT).

        The room's one clock is both `rooms.lamport` and its conversation's counter (which
        `Messages.queue_outgoing_many` moves): this reads the larger and moves both.
        A `seen` from the wire must have passed `check_lamport_step` first.
        """
        if type(seen) is not int or seen < 0:
            raise RoomError(f"a Lamport counter seen must be an integer from 0, not {seen!r}")
        with self._db.transaction() as db:
            row = db.execute(
                "SELECT r.lamport, COALESCE(c.lamport, 0) FROM rooms r "
                "LEFT JOIN conversations c ON c.id = r.id WHERE r.id = ?",
                (room,),
            ).fetchone()
            if row is None:
                raise _unknown(room)
            lamport = next_lamport(max(row[0], row[1]), min(seen, MAX_LAMPORT))
            db.execute("UPDATE rooms SET lamport = ? WHERE id = ?", (lamport, room))
            db.execute(
                "UPDATE conversations SET lamport = MAX(lamport, ?) WHERE id = ?", (lamport, room)
            )
        return lamport

    def is_held(self, room: bytes, *, joined: bool = False) -> bool:
        """Whether `room` is held here (with `joined`: and this node has not left it)."""
        row = self._db.one("SELECT left_ms FROM rooms WHERE id = ?", (room,))
        return row is not None and not (joined and row[0] is not None)

    def rooms(self) -> list[RoomSummary]:
        """Every room held: the ones this node is in first, then by name."""
        rows = self._db.all(
            f"SELECT {_SUMMARY_COLUMNS} FROM rooms ORDER BY left_ms IS NOT NULL, name, id"
        )
        return [_summary(row) for row in rows]

    def summary(self, room: bytes) -> RoomSummary:
        """One room as `rooms()` lists it; UnknownRoom if it is not held."""
        row = self._db.one(f"SELECT {_SUMMARY_COLUMNS} FROM rooms WHERE id = ?", (room,))
        if row is None:
            raise _unknown(room)
        return _summary(row)

    def find(self, text: str) -> bytes:
        """The id of the room `text` names: its id in hex, its name (exactly, else ignoring
        case), or the start of its id in hex (at least 4 digits). A name that several rooms
        have prefers the ones this node is in. UnknownRoom if none matches, RoomError if the
        match is ambiguous; both messages list what is held.
        """
        held = self.rooms()
        key = text.strip().lower()
        tests: tuple[Callable[[RoomSummary], bool], ...] = (
            lambda r: r.id.hex() == key,
            lambda r: r.name == text,
            lambda r: r.name.casefold() == text.casefold(),
            lambda r: len(key) >= _MIN_PREFIX and r.id.hex().startswith(key),
        )
        for test in tests:
            found = [r for r in held if test(r)]
            if len(found) > 1 and any(not r.left for r in found):
                found = [r for r in found if not r.left]
            if len(found) == 1:
                return found[0].id
            if found:
                raise RoomError(
                    f"{text[:80]!r} matches several rooms: {_listing(found)}; use more of an id"
                )
        listed = f"the rooms held are {_listing(held)}" if held else "this node holds no rooms"
        raise UnknownRoom(f"no room is named {text[:80]!r} or has that id; {listed}")

    # -- the membership log -----------------------------------------------------------------

    def add_entries(self, room: bytes, entries: Sequence[bytes]) -> int:
        """Verify signed entries of `room`'s log and store the new ones; returns how many were
        new. All or nothing: one invalid entry (InvalidRoomEntry) or a full log (RoomError)
        and none is stored. The room's name, members and clock follow the new state.
        """
        if len(entries) > MAX_LOG_ENTRIES:
            raise RoomError(f"at most {MAX_LOG_ENTRIES} room log entries at once")
        log = self.log(room)
        try:
            with self._db.transaction() as db:
                new = [data for data in entries if log.add(data)]
                if new:
                    _insert_entries(db, room, new)
                    _write_state(db, room, log.state())
        except BaseException:
            # The cached log may hold entries the rollback took away: rebuild it from rows.
            self._cache.pop(room, None)
            raise
        self._remember(room, log)
        return len(new)

    def log(self, room: bytes) -> RoomLog:
        """The room's log, rebuilt from its rows once and then kept (bounded) in memory.

        Read it, do not add to it: entries go through `add_entries`, or the store and the
        log disagree. UnknownRoom if the room is not held.
        """
        log = self._cache.get(room)
        if log is not None:
            self._cache.move_to_end(room)
            return log
        if self._db.one("SELECT 1 FROM rooms WHERE id = ?", (room,)) is None:
            raise _unknown(room)
        log = RoomLog(room)
        rows = self._db.all("SELECT data FROM room_entries WHERE room = ?", (room,))
        try:
            for (data,) in rows:
                log.add(data)
            log.state()
        except RoomError as exc:  # verified before it was written: the file was damaged
            raise StoreError(f"the stored log of room {room.hex()} is damaged: {exc}") from exc
        self._remember(room, log)
        return log

    def state(self, room: bytes) -> RoomState:
        """What the room's log says now: name, members, admins, who was a member when."""
        return self.log(room).state()

    def _remember(self, room: bytes, log: RoomLog) -> None:
        self._cache[room] = log
        self._cache.move_to_end(room)
        total = sum(len(held) for held in self._cache.values())
        while total > CACHE_ENTRIES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            total -= len(dropped)


def _unknown(room: bytes) -> UnknownRoom:
    return UnknownRoom(f"no room {room.hex()} is held here; see `meshtalk room list`")


def _listing(rooms: Sequence[RoomSummary]) -> str:
    shown = ", ".join(_label(r) for r in rooms[:_LISTED])
    return shown + (f" and {len(rooms) - _LISTED} more" if len(rooms) > _LISTED else "")


def _insert_entries(db: sqlite3.Connection, room: bytes, entries: Sequence[bytes]) -> None:
    rows = []
    for data in entries:
        fields = _entry_fields(data)
        rows.append((room, entry_hash(data), fields["l"], fields["s"], data))
    db.executemany(
        "INSERT INTO room_entries (room, hash, lamport, signer, data) VALUES (?, ?, ?, ?, ?)", rows
    )
