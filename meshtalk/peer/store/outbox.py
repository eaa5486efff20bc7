"""The outbox: the `outbox` table, one sealed copy per message and recipient until it is acked.

Owns what waits for which peer, the attempts counted per copy, and the message status changes
that acks and refusals cause (sent, delivered, failed). The copies themselves are written with
their message, by Messages.queue_outgoing_many, in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...protocol.envelope import peer_id_from_bytes
from ...protocol.keys import PeerId
from .database import Database
from .rows import CONTROL_KINDS_SQL, OutboxItem, chunks

__all__ = ["Outbox"]


class Outbox:
    """The outbox of a store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def pending(self, recipient: PeerId, after_cursor: int, limit: int) -> list[OutboxItem]:
        """Outbox copies for `recipient` past `after_cursor`, oldest first."""
        rows = self._db.all(
            "SELECT message_cursor, message_id, sealed, attempts FROM outbox "
            "WHERE recipient = ? AND state = 'pending' AND message_cursor > ? "
            "ORDER BY message_cursor LIMIT ?",
            (recipient.to_bytes(), after_cursor, limit),
        )
        return [OutboxItem(row[0], row[1], recipient, row[2], row[3]) for row in rows]

    def recipients_with_pending(self) -> list[PeerId]:
        """Every peer that has copies waiting in the outbox."""
        rows = self._db.all("SELECT DISTINCT recipient FROM outbox WHERE state = 'pending'")
        return [peer_id_from_bytes(row[0]) for row in rows]

    def has_pending(self) -> bool:
        """Whether any sealed copy still waits for an ack (cheap, unlike size)."""
        return self._db.one("SELECT 1 FROM outbox WHERE state = 'pending' LIMIT 1") is not None

    def size(self) -> int:
        """How many sealed copies wait for an ack."""
        return int(self._db.one("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")[0])

    def mark_sent(self, recipient: PeerId, cursors: Sequence[int]) -> None:
        """Record that these copies were written to the recipient's stream and still wait for acks.

        Each call counts one more attempt for every copy it names.
        """
        with self._db.transaction() as db:
            for chunk in chunks(cursors):
                marks = ",".join("?" * len(chunk))
                db.execute(
                    f"UPDATE outbox SET attempts = attempts + 1 WHERE recipient = ? "
                    f"AND message_cursor IN ({marks})",
                    (recipient.to_bytes(), *chunk),
                )
                db.execute(
                    f"UPDATE messages SET status = 'sent' WHERE status = 'queued' "
                    f"AND cursor IN ({marks})",
                    chunk,
                )

    def acknowledge(self, recipient: PeerId, message_ids: Sequence[bytes]) -> list[bytes]:
        """Drop acked copies; returns the ids of messages now delivered to every recipient."""
        delivered: list[bytes] = []
        with self._db.transaction() as db:
            for chunk in chunks(message_ids):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"DELETE FROM outbox WHERE recipient = ? AND message_id IN ({marks}) "
                    "RETURNING message_cursor, message_id",
                    (recipient.to_bytes(), *chunk),
                ).fetchall()
                if not rows:
                    continue  # duplicate acks
                cursors = [row[0] for row in rows]
                marks = ",".join("?" * len(cursors))
                done = db.execute(
                    f"UPDATE messages SET status = 'delivered' WHERE cursor IN ({marks}) AND "
                    "direction = 'out' AND "
                    "NOT EXISTS (SELECT 1 FROM outbox WHERE message_cursor = messages.cursor) "
                    "RETURNING id",
                    cursors,
                ).fetchall()
                delivered.extend(row[0] for row in done)
                _drop_control(db, cursors)
        return delivered

    def fail(self, recipient: PeerId, message_id: bytes, error: str) -> bool:
        """The recipient refused this copy for good: stop retrying it and mark the message."""
        with self._db.transaction() as db:
            row = db.execute(
                "UPDATE outbox SET state = 'failed', error = ? WHERE recipient = ? "
                "AND message_id = ? AND state = 'pending' RETURNING message_cursor",
                (error, recipient.to_bytes(), message_id),
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE messages SET status = 'failed', error = ? WHERE cursor = ? "
                "AND direction = 'out'",
                (f"{recipient}: {error}", row[0]),
            )
            if _is_control(db, row[0]):
                db.execute("DELETE FROM outbox WHERE message_cursor = ?", (row[0],))
                _drop_control(db, [row[0]])
            return True

    def pending_ids(self, recipient: PeerId, *, rooms: bool) -> list[bytes]:
        """Ids of the copies waiting for `recipient`: all of them, or (`rooms` False) those
        not of a room."""
        rooms_too = "" if rooms else (
            "AND NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = m.conversation)"
        )  # fmt: skip
        rows = self._db.all(
            "SELECT o.message_id FROM outbox o JOIN messages m ON m.cursor = o.message_cursor "
            f"WHERE o.recipient = ? AND o.state = 'pending' {rooms_too}",
            (recipient.to_bytes(),),
        )
        return [row[0] for row in rows]

    def room_pending(self, room: bytes, recipient: PeerId) -> list[bytes]:
        """Ids of the copies of `room`'s messages waiting for `recipient`."""
        rows = self._db.all(
            "SELECT o.message_id FROM outbox o JOIN messages m ON m.cursor = o.message_cursor "
            "WHERE o.recipient = ? AND o.state = 'pending' AND m.conversation = ?",
            (recipient.to_bytes(), room),
        )
        return [row[0] for row in rows]

    def queue_copies(self, copies: Sequence[tuple[int, PeerId, bytes, bytes]]) -> int:
        """Queue sealed copies of messages stored already, (cursor, recipient, id, sealed):
        room catch-up forwards received messages this way. A copy of a message already waiting
        for that recipient is skipped; returns how many were queued."""
        with self._db.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO outbox (message_cursor, recipient, message_id, sealed, "
                "state) VALUES (?, ?, ?, ?, 'pending')",
                [(cursor, peer.to_bytes(), mid, sealed) for cursor, peer, mid, sealed in copies],
            )
            return db.total_changes - before


def _is_control(db: sqlite3.Connection, cursor: int) -> bool:
    row = db.execute(
        f"SELECT 1 FROM messages WHERE cursor = ? AND kind IN ({CONTROL_KINDS_SQL})", (cursor,)
    ).fetchone()
    return row is not None


def _drop_control(db: sqlite3.Connection, cursors: Sequence[int]) -> None:
    """Room control messages (protocol/room_wire.py) are gone once no copy of them waits,
    except the newest message row: cursors are rowids, and SQLite would hand a deleted
    largest rowid to the next message, behind a link's write cursor (it stays until the next
    drop). The partial index `messages_room_control` keeps this a scan of control rows only."""
    if not cursors:
        return
    db.execute(
        f"DELETE FROM messages WHERE kind IN ({CONTROL_KINDS_SQL}) AND "
        "cursor < (SELECT MAX(cursor) FROM messages) AND "
        "NOT EXISTS (SELECT 1 FROM outbox WHERE message_cursor = messages.cursor)"
    )
