"""Readers: the `consumer_cursors` and `reader_marks` tables, one read position per consumer.

A reader is a short name (the CLI's `inbox`, `history` and `chat` use "cli", the MCP server
"mcp", a program its own). What it has read is described by two things:

- its **position** (`consumer_cursors.cursor`): every received message up to that cursor is read;
- its **marks** (`reader_marks`): in one conversation, every received message up to that cursor
  is read too (what `history CONVERSATION` or a chat showed of it, beyond the position).

A received message is **new** (unread) for a reader when its cursor is past both the reader's
position and the reader's mark in the message's conversation. Positions and marks only move
forward. A view advances them only over what it showed without a gap (see `displayed`), so a
message is never marked read that no view of that reader showed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from ..models import Message
from .database import Database
from .rows import MESSAGE_COLUMNS, message_page

__all__ = ["Readers", "ReaderState"]

# Received messages unread by reader ?1 past cursor ?2 (in every conversation).
_UNREAD: Final = (
    "FROM messages m WHERE m.direction = 'in' AND m.cursor > ?2 AND m.cursor > "
    "COALESCE((SELECT r.cursor FROM reader_marks r WHERE r.reader = ?1 "
    "AND r.conversation = m.conversation), 0)"
)
_COLUMNS: Final = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))

ReaderState = tuple[int, dict[bytes, int]]  # (position, {conversation: mark})


def _position(db: sqlite3.Connection, reader: str) -> int:
    row = db.execute("SELECT cursor FROM consumer_cursors WHERE name = ?", (reader,)).fetchone()
    return 0 if row is None else int(row[0])


def _advance(db: sqlite3.Connection, reader: str, cursor: int) -> None:
    db.execute(
        "INSERT INTO consumer_cursors (name, cursor) VALUES (?, ?) ON CONFLICT (name) "
        "DO UPDATE SET cursor = MAX(cursor, excluded.cursor)",
        (reader, cursor),
    )
    position = _position(db, reader)
    db.execute(  # marks the position has caught up with say nothing more
        "DELETE FROM reader_marks WHERE reader = ? AND cursor <= ?", (reader, position)
    )


def _mark(db: sqlite3.Connection, reader: str, conversation: bytes, cursor: int) -> None:
    if cursor <= _position(db, reader):
        return
    db.execute(
        "INSERT INTO reader_marks (reader, conversation, cursor) VALUES (?, ?, ?) "
        "ON CONFLICT (reader, conversation) DO UPDATE SET cursor = MAX(cursor, excluded.cursor)",
        (reader, conversation, cursor),
    )
    if db.execute("SELECT 1 FROM consumer_cursors WHERE name = ?", (reader,)).fetchone() is None:
        # A reader exists once it has a position (0: nothing read beyond its marks yet), so
        # pruning knows it and keeps what it has not read.
        db.execute("INSERT INTO consumer_cursors (name, cursor) VALUES (?, 0)", (reader,))


class Readers:
    """The read positions of a store's readers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def position(self, reader: str) -> int:
        """Up to which cursor `reader` has read every received message (0 if new)."""
        row = self._db.one("SELECT cursor FROM consumer_cursors WHERE name = ?", (reader,))
        return 0 if row is None else int(row[0])

    def unread(
        self,
        reader: str,
        limit: int,
        conversation: bytes | None = None,
        after: int = 0,
        before: int | None = None,
    ) -> list[Message]:
        """Received messages new to `reader` (past `after`, before `before`), oldest first."""
        where, args = _UNREAD, [reader, max(after, self.position(reader))]
        if conversation is not None:
            where, args = f"{where} AND m.conversation = ?3", [*args, conversation]
        if before is not None:
            where, args = f"{where} AND m.cursor < ?{len(args) + 1}", [*args, before]
        rows = self._db.rows(
            f"SELECT {_COLUMNS} {where} ORDER BY m.cursor LIMIT ?{len(args) + 1}", [*args, limit]
        )
        return message_page(rows)

    def advance(self, reader: str, cursor: int, conversation: bytes | None = None) -> None:
        """`reader` has read every received message up to `cursor` (in `conversation`, or all)."""
        with self._db.transaction() as db:
            if conversation is None:
                _advance(db, reader, cursor)
            else:
                _mark(db, reader, conversation, cursor)

    def displayed(self, reader: str, conversation: bytes | None, shown: Sequence[Message]) -> bool:
        """A view of `reader` showed `shown` (consecutive messages of `conversation`, or of all).

        Advances the reader to the last one shown, unless a message new to the reader comes
        before the first one shown (a gap the view did not show): then nothing changes, and
        False is returned, so what was never shown stays new.
        """
        if not shown:
            return False
        first, last = shown[0].cursor, shown[-1].cursor
        with self._db.transaction() as db:
            args: list[Any] = [reader, _position(db, reader), first]
            scope = ""
            if conversation is not None:
                scope, args = " AND m.conversation = ?4", [*args, conversation]
            gap = db.execute(f"SELECT 1 {_UNREAD} AND m.cursor < ?3{scope} LIMIT 1", args)
            if gap.fetchone() is not None:
                return False
            if conversation is None:
                _advance(db, reader, last)
            else:
                _mark(db, reader, conversation, last)
        return True

    def states(self) -> dict[str, ReaderState]:
        """Every reader's position and marks (what pruning must keep)."""
        states: dict[str, ReaderState] = {
            str(name): (int(cursor), {})
            for name, cursor in self._db.all("SELECT name, cursor FROM consumer_cursors")
        }
        for reader, conversation, cursor in self._db.all(
            "SELECT reader, conversation, cursor FROM reader_marks"
        ):
            states.setdefault(str(reader), (0, {}))[1][bytes(conversation)] = int(cursor)
        return states
