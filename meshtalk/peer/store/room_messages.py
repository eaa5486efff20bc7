"""Room messages in the store: who may write to a room, held-back messages, and catch-up.

- **Admission** (`RoomMessages.check`, asked by `Messages.store_incoming` inside its
  transaction): a message to a room held here is stored when its author was a member when it
  wrote (`RoomState.was_member` at its Lamport counter), whether or not the author is a
  contact. A node that left the room takes nothing more in it. A message by a peer the log
  does not show as a member (yet) is **held back** in `room_held`, because the add entry that
  vouches for it may still be on its way from another member; a current member's message
  dated before its own add is refused. At most `MAX_HELD_PER_ROOM` are held per room, for at
  most `HELD_DAYS`.
- **Release** (`release`): after new log entries, held messages are stored as if they had
  just arrived; the ones still not admitted stay held, the ones refused now are dropped.
- **Catch-up**: `marks` summarises what this node holds of a room per author (the highest
  Lamport counter and the count), and `forwards` picks the messages a member that sent its
  marks lacks: every message of an author past the member's mark, and all of that author's
  messages when the member holds fewer below its mark than this node has for it (a gap),
  only those the member was a signed recipient of, at most `MAX_FORWARDS` per summary.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ...protocol.envelope import Envelope, direct_conversation_id, peer_id_from_bytes
from ...protocol.errors import MeshtalkError
from ...protocol.keys import PeerId
from ...protocol.room_errors import NotAMember
from ...protocol.room_wire import (
    KIND_INVITE,
    MAX_SYNC_AUTHORS,
    AuthorMark,
    RoomInvite,
)
from ...protocol.sealing import verify_signed
from .database import Database
from .rows import CONTROL_KINDS_SQL, IncomingResult, load_value, within_budget

if TYPE_CHECKING:
    from .messages import Incoming, RoomVerdict
    from .rooms import RoomStore

__all__ = [
    "RoomMessages",
    "Forward",
    "ReceivedInvite",
    "MAX_HELD_PER_ROOM",
    "HELD_DAYS",
    "MAX_FORWARDS",
    "OrderKey",
]

OrderKey = tuple[int, bytes, bytes]
"""A message's place in its conversation's order: (Lamport, author's peer ID bytes, id)."""

MAX_HELD_PER_ROOM: Final = 1_000
HELD_DAYS: Final = 7
MAX_FORWARDS: Final = 10_000
"""Most messages one sync summary is answered with; the rest follow the next summary."""
MAX_INVITES_READ: Final = 1_000
"""Most recent invites `invites` reads (older ones are still messages, in their conversation)."""
_DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class Forward:
    """A stored room message another member lacks: its cursor, id and the author's signed bytes."""

    cursor: int
    id: bytes
    signed: bytes


@dataclass(frozen=True, slots=True)
class ReceivedInvite:
    """An invite a contact sent this node, as stored in their direct conversation."""

    inviter: PeerId
    invite: RoomInvite
    timestamp_ms: int


class RoomMessages:
    """Room admission, held-back messages and catch-up queries over one store."""

    def __init__(self, db: Database, rooms: RoomStore, me: PeerId | None) -> None:
        self._db = db
        self._rooms = rooms
        self._me = me

    def check(self, db: sqlite3.Connection, envelope: Envelope) -> RoomVerdict | None:
        """The room rules for an incoming message; None when its conversation is no room."""
        room, author = envelope.conversation, envelope.author
        row = db.execute("SELECT left_ms FROM rooms WHERE id = ?", (room,)).fetchone()
        if row is None:
            return None
        if row[0] is not None:
            return NotAMember(f"this node left room {room.hex()}; it takes no more messages")
        state = self._rooms.state(room)
        if author == self._me or state.was_member(author, envelope.lamport):
            return "admit"
        if state.is_member(author):
            return NotAMember(
                f"{author} wrote to room {room.hex()} at Lamport {envelope.lamport}, before it "
                "was added"
            )
        (held,) = db.execute("SELECT COUNT(*) FROM room_held WHERE room = ?", (room,)).fetchone()
        if held >= MAX_HELD_PER_ROOM:
            return NotAMember(
                f"{author} is not a member of room {room.hex()} here, and {held} messages of "
                "authors not known as members wait already"
            )
        return "hold"

    def release(self, room: bytes, store: Callable[[Sequence[Incoming]], Sequence[object]]) -> int:
        """Store the held messages of `room` its log admits now (`store` is the node's
        `store_incoming`); drop those refused now and the expired. Returns how many were stored."""
        rows = self._db.all(
            "SELECT author, id, signed, sealed, received_ms FROM room_held WHERE room = ? "
            "ORDER BY received_ms",
            (room,),
        )
        if not rows:
            return 0
        items: list[Incoming] = []
        keys: list[tuple[bytes, bytes]] = []
        for author, message_id, signed, sealed, _ in rows:
            keys.append((author, message_id))
            items.append((verify_signed(signed, None).envelope, sealed, signed))
        results = store(items)
        done = [
            key
            for key, result in zip(keys, results, strict=True)
            if not (isinstance(result, IncomingResult) and result.held)
        ]
        stored = sum(
            1 for r in results if isinstance(r, IncomingResult) and not r.held and not r.duplicate
        )
        with self._db.transaction() as db:
            db.executemany("DELETE FROM room_held WHERE author = ? AND id = ?", done)
        return stored

    def expire_held(self, now_ms: int) -> int:
        """Forget held messages older than `HELD_DAYS`; returns how many."""
        with self._db.transaction() as db:
            cursor = db.execute(
                "DELETE FROM room_held WHERE received_ms < ?", (now_ms - HELD_DAYS * _DAY_MS,)
            )
            return cursor.rowcount

    def signed_count(self, conversation: bytes, upto: int) -> tuple[int, int]:
        """How many of a conversation's messages up to cursor `upto` (control kinds aside)
        have signed bytes, and how many have none (stored before signed bytes were kept)."""
        signed, every = self._db.one(
            "SELECT COUNT(signed), COUNT(*) FROM messages WHERE conversation = ? "
            f"AND cursor <= ? AND kind NOT IN ({CONTROL_KINDS_SQL})",
            (conversation, upto),
        )
        return int(signed), int(every) - int(signed)

    def signed_page(
        self, conversation: bytes, upto: int, after: OrderKey | None, limit: int = 1000
    ) -> list[tuple[OrderKey, bytes]]:
        """The next signed messages of a conversation (up to cursor `upto`, control kinds
        aside) in its order, after `after`: at most `limit`, and about PAGE_BYTES."""
        lamport, author, message_id = after if after is not None else (-1, b"", b"")
        rows = self._db.rows(
            "SELECT lamport, author, id, signed FROM messages WHERE conversation = ? "
            f"AND cursor <= ? AND kind NOT IN ({CONTROL_KINDS_SQL}) AND signed IS NOT NULL "
            "AND (lamport, author, id) > (?, ?, ?) ORDER BY lamport, author, id LIMIT ?",
            (conversation, upto, lamport, author, message_id, limit),
        )
        return within_budget(rows, lambda row: len(row[3]), lambda row: (row[:3], row[3]))

    def held(self, room: bytes) -> int:
        """How many messages of `room` are held back."""
        return int(self._db.one("SELECT COUNT(*) FROM room_held WHERE room = ?", (room,))[0])

    # -- catch-up ---------------------------------------------------------------------------

    def marks(self, room: bytes) -> tuple[AuthorMark, ...]:
        """Per author, the highest Lamport counter and the number of its messages held here."""
        rows = self._db.all(
            "SELECT author, MAX(lamport), COUNT(*) FROM messages WHERE conversation = ? "
            f"AND kind NOT IN ({CONTROL_KINDS_SQL}) "
            "GROUP BY author ORDER BY MAX(lamport) DESC LIMIT ?",
            (room, MAX_SYNC_AUTHORS),
        )
        return tuple(AuthorMark(peer_id_from_bytes(a), lamport, n) for a, lamport, n in rows)

    def forwards(self, room: bytes, member: PeerId, theirs: Sequence[AuthorMark]) -> list[Forward]:
        """The messages of `room` held here that `member` lacks by its marks, oldest first."""
        marks = {mark.author: mark for mark in theirs}
        rows = self._db.all(
            "SELECT cursor, id, author, lamport, recipients, signed FROM messages "
            f"WHERE conversation = ? AND kind NOT IN ({CONTROL_KINDS_SQL}) AND signed IS NOT NULL "
            "AND author != ? ORDER BY lamport, cursor",
            (room, member.to_bytes()),
        )
        below: dict[bytes, list[Forward]] = {}
        forwards: list[Forward] = []
        for cursor, message_id, author, lamport, recipients, signed in rows:
            if member.to_bytes() not in load_value(recipients):
                continue  # not sealed to it: a member added later gets nothing from before
            mark = marks.get(peer_id_from_bytes(author))
            forward = Forward(cursor, message_id, signed)
            if mark is None or lamport > mark.lamport:
                forwards.append(forward)
            else:
                below.setdefault(author, []).append(forward)
        for author, held_here in below.items():
            mark = marks[peer_id_from_bytes(author)]
            if len(held_here) > mark.count:  # it misses some below its mark: send them all
                forwards.extend(held_here)
        forwards.sort(key=lambda f: f.cursor)
        return forwards[:MAX_FORWARDS]

    # -- invites ----------------------------------------------------------------------------

    def invites(self) -> list[ReceivedInvite]:
        """The invites received, newest first (bodies that do not parse are skipped)."""
        rows = self._db.all(
            "SELECT author, body, timestamp_ms FROM messages WHERE kind = ? AND direction = 'in' "
            "ORDER BY cursor DESC LIMIT ?",
            (KIND_INVITE, MAX_INVITES_READ),
        )
        found: list[ReceivedInvite] = []
        for author, body, timestamp_ms in rows:
            try:
                invite = RoomInvite.parse(load_value(body))
            except MeshtalkError:
                continue
            found.append(ReceivedInvite(peer_id_from_bytes(author), invite, timestamp_ms))
        return found

    def invited(self, room: bytes, peer: PeerId) -> bool:
        """Whether this node sent `peer` an invite to `room`."""
        if self._me is None:
            return False
        rows = self._db.all(
            "SELECT body FROM messages WHERE conversation = ? AND kind = ? AND direction = 'out'",
            (direct_conversation_id(self._me, peer), KIND_INVITE),
        )
        for (body,) in rows:
            value = load_value(body)
            if isinstance(value, dict) and value.get("room") == room:
                return True
        return False
