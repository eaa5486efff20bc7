"""Forgetting old messages: what retention may delete, in short transactions, and the space after.

A message may be forgotten when it is **done**: sent and acknowledged by every recipient
(`delivered`, with no copy left in the outbox), or received and **read by every reader**
(store/readers.py; with no reader at all, nothing received counts as read). Never a message that
is queued, sent but unacked, or failed (those stay for the user to see), never one newer than a
reader's position, and never the newest row (cursors are rowids without AUTOINCREMENT: the
newest row keeps the next cursor above every cursor handed out).

What is forgotten: the message row (body, sealed bytes, metadata). What stays: conversations and
their members, and their Lamport counters (kept in `conversations`, never derived from
messages), readers, contacts. A **compact record** of each forgotten id (64 bits of
BLAKE2b(author, id) and the author's timestamp, in `forgotten`) stays while a peer could still
deliver it: the receiver refuses envelopes older than its max_age_ms (30 days by default)
before they reach the store, so a record older than that is dropped; until then a re-sent
forgotten message is acknowledged as a duplicate and not stored again.

Space: deleted rows free pages inside the file (SQLite's freelist), which new messages reuse,
so a store under retention stops growing. The file itself shrinks only by vacuuming:
`release_space` runs `incremental_vacuum` on a store created with auto_vacuum=INCREMENTAL
(every store created by this version), or a full VACUUM otherwise (which also switches the
store to incremental, once).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from .database import Database
from .readers import ReaderState

__all__ = ["PruneRule", "PruneBatch", "Pruner", "forgotten_key"]

_ROW_OVERHEAD: Final = 120  # bytes a message row and its index entries take beyond its blobs


def forgotten_key(author: bytes, message_id: bytes) -> int:
    """The `forgotten` table's key of a message: 64 bits of BLAKE2b(author, id), signed."""
    digest = hashlib.blake2b(author + message_id, digest_size=8, person=b"meshtalk/forgot").digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True, slots=True)
class PruneRule:
    """What to forget: messages stored before `before_ms`, and/or the oldest while the store's
    used pages exceed `max_bytes`; of one conversation or of all (None: no such limit)."""

    before_ms: int | None = None
    max_bytes: int | None = None
    conversation: bytes | None = None


@dataclass(slots=True)
class PruneBatch:
    """What one batch did (or would do, for a dry run)."""

    deleted: int = 0
    deleted_bytes: int = 0  # the rows' blobs plus an estimate of their overhead
    kept_unread: int = 0
    kept_pending: int = 0  # queued, unacked or failed
    next_cursor: int = 0  # where the next batch resumes
    done: bool = False  # nothing more to forget under the rule
    unread_by: set[str] = field(default_factory=set)


def _unread_by(cursor: int, conversation: bytes, readers: dict[str, ReaderState]) -> set[str]:
    """The readers that have not read this received message (empty: read by all)."""
    if not readers:
        return {"(no reader)"}
    return {
        name
        for name, (position, marks) in readers.items()
        if cursor > position and cursor > marks.get(conversation, 0)
    }


class Pruner:
    """Deletes done messages of a store in bounded batches; measures and releases space."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- space -------------------------------------------------------------------------------

    def _pragma(self, name: str) -> int:
        return int(self._db.one(f"PRAGMA {name}")[0])

    def used_bytes(self) -> int:
        """Bytes of the store's pages in use (the file minus its free pages)."""
        return (self._pragma("page_count") - self._pragma("freelist_count")) * self._pragma(
            "page_size"
        )

    def free_bytes(self) -> int:
        """Bytes of free pages inside the file (reused by new rows, or released by vacuuming)."""
        return self._pragma("freelist_count") * self._pragma("page_size")

    def incremental(self) -> bool:
        """Whether the store was created with auto_vacuum=INCREMENTAL."""
        return self._pragma("auto_vacuum") == 2

    def release_space(self, pages: int | None = None) -> None:
        """Give free pages back to the file system (see the module's docstring).

        `pages` bounds an incremental step (None: all); a store without incremental
        auto-vacuum is rewritten whole by VACUUM, which blocks writers while it runs.
        """
        if self.incremental():
            self._db.incremental_vacuum(pages or 0)
        else:
            self._db.vacuum(incremental=True)

    # -- forgetting --------------------------------------------------------------------------

    def batch(
        self,
        rule: PruneRule,
        readers: dict[str, ReaderState],
        after: int,
        now_ms: int,
        keep_ids_ms: int,
        limit: int = 500,
        dry_run: bool = False,
        assumed_freed: int = 0,
    ) -> PruneBatch:
        """Forget up to `limit` done messages past cursor `after`, oldest first, in one
        transaction. A record of each forgotten id stays while its timestamp is younger than
        `keep_ids_ms` (the receivers' max_age_ms). A dry run deletes nothing: `assumed_freed` is
        then what its earlier batches would have freed, as if they had."""
        result = PruneBatch(next_cursor=after)
        excess = None
        if rule.max_bytes is not None:
            excess = max(0, self.used_bytes() - assumed_freed - rule.max_bytes)
        if rule.before_ms is None and not excess:
            result.done = True
            return result
        with self._db.transaction() as db:
            newest = db.execute("SELECT COALESCE(MAX(cursor), 0) FROM messages").fetchone()[0]
            doomed = self._choose(db, rule, readers, excess, limit, newest, result)
            if not dry_run:
                _delete(db, doomed, now_ms - keep_ids_ms)
            else:
                db.execute("SELECT 1")  # nothing written: the transaction commits empty
        return result

    def _choose(
        self,
        db: sqlite3.Connection,
        rule: PruneRule,
        readers: dict[str, ReaderState],
        excess: int | None,
        limit: int,
        newest: int,
        result: PruneBatch,
    ) -> list[tuple[int, bytes, bytes, int]]:
        args: list[Any] = [result.next_cursor, newest]
        where = "cursor > ? AND cursor < ?"
        if rule.conversation is not None:
            where, args = f"conversation = ? AND {where}", [rule.conversation, *args]
        rows = db.execute(
            "SELECT cursor, id, author, conversation, direction, status, stored_ms, timestamp_ms,"
            " length(body) + COALESCE(length(sealed), 0) + COALESCE(length(metadata), 0),"
            " EXISTS (SELECT 1 FROM outbox WHERE message_cursor = messages.cursor)"
            f" FROM messages WHERE {where} ORDER BY cursor LIMIT ?",
            [*args, limit],
        ).fetchall()
        doomed: list[tuple[int, bytes, bytes, int]] = []
        freed = 0
        for cursor, mid, author, conv, direction, status, stored, stamp, size, queued in rows:
            if rule.before_ms is None or stored >= rule.before_ms:  # not old
                if not excess:
                    result.done = True  # stored in cursor order: the rest is younger still
                    break
                if freed >= excess:
                    break  # maybe enough: the next batch measures the pages again
            result.next_cursor = cursor
            if queued or status not in ("received", "delivered"):
                result.kept_pending += 1
                continue
            if direction == "in":
                unread = _unread_by(cursor, conv, readers)
                if unread:
                    result.kept_unread += 1
                    result.unread_by |= unread
                    continue
            doomed.append((cursor, mid, author, stamp))
            freed += size + _ROW_OVERHEAD
        else:
            result.done = len(rows) < limit
        result.deleted, result.deleted_bytes = len(doomed), freed
        return doomed

    def forget_expired_ids(self, before_ms: int, start: int, limit: int = 5000) -> int | None:
        """Drop records of forgotten ids timestamped before `before_ms`, among the next `limit`
        keys from `start` (the walk begins at -2**63); returns where to go on, None at the end."""
        with self._db.transaction() as db:
            rows = db.execute(
                "SELECT key, timestamp_ms FROM forgotten WHERE key >= ? ORDER BY key LIMIT ?",
                (start, limit),
            ).fetchall()
            db.executemany(
                "DELETE FROM forgotten WHERE key = ?", [(k,) for k, t in rows if t < before_ms]
            )
        if len(rows) < limit or rows[-1][0] == 2**63 - 1:
            return None
        return int(rows[-1][0]) + 1


def _delete(db: sqlite3.Connection, doomed: Iterable[tuple[int, bytes, bytes, int]], keep_from: int
            ) -> None:  # fmt: skip
    doomed = list(doomed)
    db.executemany(
        "INSERT OR IGNORE INTO forgotten (key, timestamp_ms) VALUES (?, ?)",
        [(forgotten_key(author, mid), stamp) for _, mid, author, stamp in doomed
         if stamp >= keep_from],
    )  # fmt: skip
    db.executemany("DELETE FROM messages WHERE cursor = ?", [(c,) for c, *_ in doomed])
