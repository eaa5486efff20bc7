"""The node's local store: one SQLite file (WAL) with contacts, conversations, messages, outbox.

Synchronous and small on purpose: every call is one short transaction, run on the node's trio
thread. Durability: WAL with `synchronous=NORMAL` survives kill -9 of the process (a committed
transaction is in the OS before the call returns); `durability="full"` also survives power loss
at the cost of an fsync per transaction.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from ..profile.paths import private_store_file
from ..protocol.codec import packb
from ..protocol.envelope import Envelope, check_lamport_step, next_lamport, peer_id_from_bytes
from ..protocol.errors import ConfigError, MeshtalkError, StoreError
from ..protocol.keys import PeerId
from .addressbook import AddressBook
from .admission import admit_incoming, claim_direct, create_conversation
from .models import Contact, Conversation, Direction, Message, MessageStatus, Trust
from .rows import (
    MESSAGE_COLUMNS,
    IncomingResult,
    OutboxItem,
    chunks,
    contact_from_row,
    load_value,
    message_from_row,
    pack_ids,
)
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["Store", "OutboxItem", "IncomingResult", "STORE_FILE_NAME"]

STORE_FILE_NAME: Final = "store.db"
_INSERT_MESSAGE: Final = (
    f" INTO messages ({MESSAGE_COLUMNS.replace('cursor, ', '', 1)}, sealed) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
)
_INSERT_INCOMING: Final = "INSERT OR IGNORE" + _INSERT_MESSAGE  # a duplicate is recognised
_INSERT_OUTGOING: Final = "INSERT" + _INSERT_MESSAGE
DEFAULT_MAX_REFUSALS: Final = 1_000
"""Refused peers remembered (the most recent win)."""
_MAX_REFUSAL_TEXT: Final = 1_000


def _raise_lamports(db: sqlite3.Connection, lamports: dict[bytes, int]) -> None:
    """Move each conversation's Lamport counter up to at least the given value."""
    db.executemany(
        "UPDATE conversations SET lamport = MAX(lamport, ?) WHERE id = ?",
        [(lamport, conversation) for conversation, lamport in lamports.items()],
    )


class Store:
    """The SQLite store of one profile. Not thread-safe: use it from the node's thread."""

    def __init__(self, path: Path, durability: Literal["normal", "full"] = "normal") -> None:
        if durability not in ("normal", "full"):
            raise ConfigError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.path = path
        self.max_refusals = DEFAULT_MAX_REFUSALS
        try:
            private_store_file(path)  # 0600 first: SQLite gives -wal, -shm its mode
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={durability.upper()}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            # Checkpoints (copying the WAL into the database, with an fsync) would otherwise run
            # inside whichever commit crosses 1000 pages; `checkpoint()` runs them elsewhere.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        self.book = AddressBook(self)

    def close(self) -> None:
        """Close the database file (checkpointing what the WAL holds)."""
        with contextlib.suppress(sqlite3.DatabaseError):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    @property
    def total_changes(self) -> int:
        """Rows changed through this store since it was opened (grows with every write)."""
        return self._db.total_changes

    def checkpoint(self) -> None:
        """Copy committed WAL pages into the database without blocking the writer.

        Thread-safe: it uses a connection of its own, so the node can run it in a worker
        thread while its trio thread keeps committing.
        """
        db = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"checkpointing the store {self.path} failed: {exc}") from exc
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(sqlite3.DatabaseError):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            hint = "; is the disk full?" if "full" in str(exc) or "I/O" in str(exc) else ""
            raise StoreError(
                f"the store {self.path} failed: {exc} (nothing was changed{hint})"
            ) from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this meshtalk "
                f"understands ({SCHEMA_VERSION}); upgrade meshtalk"
            )
        for number in range(version, SCHEMA_VERSION):
            with self._transaction() as db:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={number + 1}")

    def schema_version(self) -> int:
        """The schema version of the open file."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- settings ---------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """A persisted node setting, or None."""
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        """Persist a node setting."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    # -- contacts ---------------------------------------------------------------------------

    def upsert_contact(
        self,
        peer: PeerId,
        name: str | None,
        addresses: Sequence[str],
        trust: Trust,
        now_ms: int,
    ) -> Contact:
        """Add a contact, or update its name (if given), trust and addresses (merged)."""
        with self._transaction() as db:
            if name is not None:
                owner = db.execute(
                    "SELECT peer_id FROM contacts WHERE name = ?", (name,)
                ).fetchone()
                if owner is not None and owner[0] != peer.to_bytes():
                    raise ConfigError(f"the name {name!r} already belongs to another contact")
            row = db.execute(
                "SELECT addresses, name FROM contacts WHERE peer_id = ?", (peer.to_bytes(),)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO contacts (peer_id, name, trust, addresses, added_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (peer.to_bytes(), name, trust.value, json.dumps(list(addresses)), now_ms),
                )
            else:
                merged = list(dict.fromkeys([*addresses, *json.loads(row[0])]))
                db.execute(
                    "UPDATE contacts SET name = ?, trust = ?, addresses = ? WHERE peer_id = ?",
                    (
                        name if name is not None else row[1],
                        trust.value,
                        json.dumps(merged),
                        peer.to_bytes(),
                    ),
                )
        contact = self.get_contact(peer)
        assert contact is not None
        return contact

    def remove_contact(self, peer: PeerId) -> bool:
        """Forget a contact; its stored messages stay. Returns whether it existed."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM contacts WHERE peer_id = ?", (peer.to_bytes(),))
            return cursor.rowcount > 0

    def get_contact(self, peer: PeerId) -> Contact | None:
        """The contact with this peer ID, or None."""
        row = self._db.execute(
            "SELECT peer_id, name, trust, addresses, added_ms, last_seen_ms FROM contacts "
            "WHERE peer_id = ?",
            (peer.to_bytes(),),
        ).fetchone()
        return None if row is None else contact_from_row(row)

    def find_contact(self, name: str) -> Contact | None:
        """The contact with this name, or None."""
        row = self._db.execute(
            "SELECT peer_id, name, trust, addresses, added_ms, last_seen_ms FROM contacts "
            "WHERE name = ?",
            (name,),
        ).fetchone()
        return None if row is None else contact_from_row(row)

    def contacts(self) -> list[Contact]:
        """All contacts, by name."""
        rows = self._db.execute(
            "SELECT peer_id, name, trust, addresses, added_ms, last_seen_ms FROM contacts "
            "ORDER BY name IS NULL, name, added_ms"
        ).fetchall()
        return [contact_from_row(row) for row in rows]

    def note_seen(self, peer: PeerId, now_ms: int) -> None:
        """Record that a contact was just connected."""
        with self._transaction() as db:
            db.execute(
                "UPDATE contacts SET last_seen_ms = ? WHERE peer_id = ?", (now_ms, peer.to_bytes())
            )

    def record_refusal(self, peer: PeerId, error: str, now_ms: int) -> None:
        """Count a refused attempt by `peer` to deliver to this node."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO refusals (peer_id, count, last_ms, last_error) VALUES (?, 1, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET count = count + 1, last_ms = excluded.last_ms,"
                " last_error = excluded.last_error",
                (peer.to_bytes(), now_ms, error[:_MAX_REFUSAL_TEXT]),
            )
            # Bounded like the address book: every stranger that opens a stream lands here.
            db.execute(
                "DELETE FROM refusals WHERE peer_id IN (SELECT peer_id FROM refusals "
                "ORDER BY last_ms DESC, rowid DESC LIMIT -1 OFFSET ?)",
                (self.max_refusals,),
            )

    def refusals(self) -> dict[PeerId, int]:
        """How many deliveries each refused peer attempted."""
        rows = self._db.execute("SELECT peer_id, count FROM refusals").fetchall()
        return {peer_id_from_bytes(row[0]): row[1] for row in rows}

    # -- conversations ----------------------------------------------------------------------

    def members(self, conversation: bytes) -> tuple[PeerId, ...]:
        """The members of a conversation (empty if it does not exist)."""
        rows = self._db.execute(
            "SELECT peer_id FROM conversation_members WHERE conversation = ? ORDER BY peer_id",
            (conversation,),
        ).fetchall()
        return tuple(peer_id_from_bytes(row[0]) for row in rows)

    def conversations(self, conversation: bytes | None = None) -> list[Conversation]:
        """All conversations (or the one asked for), most recently active first."""
        where, args = ("WHERE c.id = ?", (conversation,)) if conversation is not None else ("", ())
        rows = self._db.execute(
            "SELECT c.id, c.kind, c.name, c.lamport, c.created_ms, MAX(m.cursor), COUNT(m.cursor)"
            " FROM conversations c LEFT JOIN messages m ON m.conversation = c.id "
            f"{where} GROUP BY c.id ORDER BY MAX(m.cursor) IS NULL, MAX(m.cursor) DESC",
            args,
        ).fetchall()
        return [
            Conversation(
                id=row[0],
                kind=row[1],
                name=row[2],
                members=self.members(row[0]),
                lamport=row[3],
                created_ms=row[4],
                last_cursor=row[5],
                message_count=row[6],
            )
            for row in rows
        ]

    # -- messages ---------------------------------------------------------------------------

    def queue_outgoing(
        self,
        conversation: bytes,
        kind: str,
        members: Iterable[PeerId],
        build: Any,
        now_ms: int,
    ) -> tuple[Envelope, int]:
        """Store a new outgoing message and its sealed copies in one transaction.

        Creates the conversation (`kind`, `members`) if needed. `build(lamport) -> (envelope,
        {recipient: sealed})` runs inside the transaction, so the conversation's Lamport counter
        and the outbox can never disagree.
        """
        [result] = self.queue_outgoing_many([(conversation, kind, tuple(members), build)], now_ms)
        if isinstance(result, BaseException):
            raise result
        return result

    def queue_outgoing_many(
        self, items: Sequence[tuple[bytes, str, Sequence[PeerId], Any]], now_ms: int
    ) -> list[tuple[Envelope, int] | Exception]:
        """`queue_outgoing` for several messages in one transaction (a group commit).

        Each item's `build` runs before any of its rows is written, so one that fails (say, a
        body too large) is left out alone and its exception returned in its place.
        """
        results: list[tuple[Envelope, int] | Exception] = []
        lamports: dict[bytes, int] = {}
        outbox: list[tuple[int, bytes, bytes, bytes]] = []
        missing: set[bytes] = set()
        with self._transaction() as db:
            for conversation, kind, members, build in items:
                if conversation not in lamports:
                    row = db.execute(
                        "SELECT kind, lamport FROM conversations WHERE id = ?", (conversation,)
                    ).fetchone()
                    # A direct id held by a named conversation was squatted: claim_direct below
                    # moves that one away.
                    usable = row is not None and (kind != "direct" or row[0] == "direct")
                    lamports[conversation] = int(row[1]) if usable else 0
                    if not usable:
                        missing.add(conversation)
                try:
                    envelope, copies = build(next_lamport(lamports[conversation]))
                except Exception as exc:
                    results.append(exc)
                    continue
                if conversation in missing:  # created only once a message in it succeeds
                    if kind == "direct":
                        claim_direct(db, conversation, (members[0], members[1]), now_ms)
                    else:
                        create_conversation(db, conversation, kind, members, now_ms)
                    missing.discard(conversation)
                lamports[conversation] = envelope.lamport
                cursor = self._insert_message(
                    db, envelope, Direction.OUT, None, MessageStatus.QUEUED, now_ms
                )
                assert cursor is not None  # a fresh random id: a duplicate would be a bug
                outbox.extend((cursor, r.to_bytes(), envelope.id, s) for r, s in copies.items())
                results.append((envelope, cursor))
            db.executemany(
                "INSERT INTO outbox (message_cursor, recipient, message_id, sealed, state) "
                "VALUES (?, ?, ?, ?, 'pending')",
                outbox,
            )
            _raise_lamports(db, lamports)
        return results

    def _insert_message(
        self,
        db: sqlite3.Connection,
        envelope: Envelope,
        direction: Direction,
        sealed: bytes | None,
        status: MessageStatus,
        now_ms: int,
    ) -> int | None:
        cursor = db.execute(
            _INSERT_INCOMING if direction is Direction.IN else _INSERT_OUTGOING,
            (
                envelope.id,
                envelope.conversation,
                envelope.author.to_bytes(),
                pack_ids(envelope.recipients),
                direction.value,
                envelope.kind,
                packb(envelope.body),
                envelope.timestamp_ms,
                envelope.lamport,
                envelope.reply_to,
                None if envelope.metadata is None else packb(envelope.metadata),
                status.value,
                now_ms,
                sealed,
            ),
        )
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def store_incoming(
        self, items: Sequence[tuple[Envelope, bytes]], me: PeerId, now_ms: int
    ) -> list[IncomingResult | MeshtalkError]:
        """Store received envelopes in one transaction; duplicates are recognised, not stored.

        Returns, per item, an IncomingResult or the refusal (see peer/admission.py: the
        conversation it writes to is not the author's, or its Lamport counter jumps too far).
        """
        results: list[IncomingResult | MeshtalkError] = []
        admitted: dict[tuple[bytes, PeerId, tuple[PeerId, ...]], MeshtalkError | None] = {}
        lamports: dict[bytes, int] = {}
        with self._transaction() as db:
            for envelope, sealed in items:
                key = (envelope.conversation, envelope.author, envelope.recipients)
                if key not in admitted:
                    admitted[key] = admit_incoming(db, envelope, me, now_ms)
                refusal = admitted[key]
                if refusal is None:
                    refusal = self._check_lamport(db, envelope, lamports)
                if refusal is not None:
                    results.append(copy.copy(refusal).about(envelope.id))
                    continue
                cursor = self._insert_message(
                    db, envelope, Direction.IN, sealed, MessageStatus.RECEIVED, now_ms
                )
                if cursor is None:  # (author, id) already stored: a duplicate
                    row = db.execute(
                        "SELECT cursor FROM messages WHERE author = ? AND id = ?",
                        (envelope.author.to_bytes(), envelope.id),
                    ).fetchone()
                    results.append(IncomingResult(envelope.id, row[0], duplicate=True))
                    continue
                previous = lamports[envelope.conversation]
                lamports[envelope.conversation] = max(previous, envelope.lamport)
                results.append(IncomingResult(envelope.id, cursor, duplicate=False))
            _raise_lamports(db, lamports)
        return results

    @staticmethod
    def _check_lamport(
        db: sqlite3.Connection, envelope: Envelope, lamports: dict[bytes, int]
    ) -> MeshtalkError | None:
        conversation = envelope.conversation
        if conversation not in lamports:
            row = db.execute(
                "SELECT lamport FROM conversations WHERE id = ?", (conversation,)
            ).fetchone()
            lamports[conversation] = 0 if row is None else int(row[0])
        try:
            check_lamport_step(envelope.lamport, lamports[conversation])
        except MeshtalkError as exc:
            return exc
        return None

    def pending(self, recipient: PeerId, after_cursor: int, limit: int) -> list[OutboxItem]:
        """Outbox copies for `recipient` past `after_cursor`, oldest first."""
        rows = self._db.execute(
            "SELECT message_cursor, message_id, sealed, attempts FROM outbox "
            "WHERE recipient = ? AND state = 'pending' AND message_cursor > ? "
            "ORDER BY message_cursor LIMIT ?",
            (recipient.to_bytes(), after_cursor, limit),
        ).fetchall()
        return [OutboxItem(row[0], row[1], recipient, row[2], row[3]) for row in rows]

    def recipients_with_pending(self) -> list[PeerId]:
        """Every peer that has copies waiting in the outbox."""
        rows = self._db.execute(
            "SELECT DISTINCT recipient FROM outbox WHERE state = 'pending'"
        ).fetchall()
        return [peer_id_from_bytes(row[0]) for row in rows]

    def has_pending(self) -> bool:
        """Whether any sealed copy still waits for an ack (cheap, unlike outbox_size)."""
        row = self._db.execute("SELECT 1 FROM outbox WHERE state = 'pending' LIMIT 1").fetchone()
        return row is not None

    def outbox_size(self) -> int:
        """How many sealed copies wait for an ack."""
        return int(
            self._db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        )

    def mark_sent(self, recipient: PeerId, cursors: Sequence[int]) -> None:
        """Record that these copies were written to the recipient's stream and still wait for acks.

        Each call counts one more attempt for every copy it names.
        """
        with self._transaction() as db:
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
        with self._transaction() as db:
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
                    "NOT EXISTS (SELECT 1 FROM outbox WHERE message_cursor = messages.cursor) "
                    "RETURNING id",
                    cursors,
                ).fetchall()
                delivered.extend(row[0] for row in done)
        return delivered

    def fail(self, recipient: PeerId, message_id: bytes, error: str) -> bool:
        """The recipient refused this copy for good: stop retrying it and mark the message."""
        with self._transaction() as db:
            row = db.execute(
                "UPDATE outbox SET state = 'failed', error = ? WHERE recipient = ? "
                "AND message_id = ? AND state = 'pending' RETURNING message_cursor",
                (error, recipient.to_bytes(), message_id),
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE messages SET status = 'failed', error = ? WHERE cursor = ?",
                (f"{recipient}: {error}", row[0]),
            )
            return True

    def _select(
        self, where: str, args: Sequence[Any], limit: int, newest: bool = False
    ) -> list[Message]:
        order = "DESC" if newest else "ASC"
        rows = self._db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where} ORDER BY cursor {order} LIMIT ?",
            (*args, limit),
        ).fetchall()
        messages = [message_from_row(row) for row in rows]
        return messages[::-1] if newest else messages

    def recent_authorship(self, conversation: bytes) -> Iterator[tuple[str, int, Any]]:
        """(direction, timestamp_ms, metadata) of a conversation's messages, newest first.

        Lazy: the caller reads only as far back as it needs (consume it before the next write).
        """
        rows = self._db.execute(
            "SELECT direction, timestamp_ms, metadata FROM messages WHERE conversation = ? "
            "ORDER BY cursor DESC",
            (conversation,),
        )
        for direction, timestamp_ms, metadata in rows:
            yield direction, timestamp_ms, load_value(metadata)

    def latest(self, conversation: bytes | None, limit: int) -> list[Message]:
        """The newest `limit` messages (of one conversation, or of all), oldest first."""
        if conversation is None:
            return self._select("1 = 1", (), limit, newest=True)
        return self._select("conversation = ?", (conversation,), limit, newest=True)

    def history(self, conversation: bytes, after: int, limit: int) -> list[Message]:
        """Messages of one conversation, both directions, after a cursor, oldest first."""
        return self._select("conversation = ? AND cursor > ?", (conversation, after), limit)

    def all_messages(self, after: int, limit: int) -> list[Message]:
        """Every message of every conversation after a cursor, oldest first."""
        return self._select("cursor > ?", (after,), limit)

    def incoming(self, after: int, limit: int) -> list[Message]:
        """Received messages after a cursor, oldest first."""
        return self._select("direction = 'in' AND cursor > ?", (after,), limit)

    def message(self, author: PeerId, message_id: bytes) -> Message | None:
        """One message by author and id."""
        found = self._select("author = ? AND id = ?", (author.to_bytes(), message_id), 1)
        return found[0] if found else None

    def last_cursor(self) -> int:
        """The newest cursor in the store (0 when empty)."""
        return int(self._db.execute("SELECT COALESCE(MAX(cursor), 0) FROM messages").fetchone()[0])

    def consumer_cursor(self, name: str) -> int:
        """Where a named consumer of incoming messages left off (0 if new)."""
        row = self._db.execute(
            "SELECT cursor FROM consumer_cursors WHERE name = ?", (name,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def set_consumer_cursor(self, name: str, cursor: int) -> None:
        """Remember that a named consumer has handled everything up to `cursor`."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO consumer_cursors (name, cursor) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET cursor = MAX(cursor, excluded.cursor)",
                (name, cursor),
            )
