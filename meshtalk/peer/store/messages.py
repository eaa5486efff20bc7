"""Messages and conversations: the `conversations`, `conversation_members`, `messages` and
`consumer_cursors` tables.

Owns writing outgoing messages (with their outbox copies, in the same transaction), storing
received ones (deduplicated, admitted by peer/admission.py, Lamport-checked) and reading them
back by cursor.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Literal

from ...protocol.codec import packb
from ...protocol.envelope import Envelope, check_lamport_step, next_lamport, peer_id_from_bytes
from ...protocol.errors import InternalError, MeshtalkError
from ...protocol.keys import PeerId
from ...protocol.room_wire import CONTROL_KINDS
from ..admission import admit_incoming, claim_direct, create_conversation
from ..models import Conversation, Direction, Message, MessageStatus
from .database import Database
from .pruning import forgotten_key
from .rows import MESSAGE_COLUMNS, IncomingResult, load_value, message_page, pack_ids

__all__ = ["Messages"]

_INSERT_MESSAGE: Final = (
    f" INTO messages ({MESSAGE_COLUMNS.replace('cursor, ', '', 1)}, sealed, signed) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)"
)
_VISIBLE: Final = "kind NOT IN ({})".format(", ".join(f"'{k}'" for k in sorted(CONTROL_KINDS)))
"""Room control messages (a sync summary, a log push) wait in the outbox like any message, so
they have rows until acked; no reader ever sees them."""

RoomCheck = Callable[[sqlite3.Connection, Envelope], "RoomVerdict | None"]
"""What the room store says of an incoming message (None: its conversation is not a room)."""
RoomVerdict = Literal["admit", "hold"] | MeshtalkError
Incoming = tuple[Envelope, bytes] | tuple[Envelope, bytes, bytes]
"""A received envelope with its sealed copy, and optionally the bytes its author signed."""
_INSERT_INCOMING: Final = "INSERT OR IGNORE" + _INSERT_MESSAGE  # a duplicate is recognised
_INSERT_OUTGOING: Final = "INSERT" + _INSERT_MESSAGE


def _raise_lamports(db: sqlite3.Connection, lamports: dict[bytes, int]) -> None:
    """Move each conversation's Lamport counter up to at least the given value."""
    db.executemany(
        "UPDATE conversations SET lamport = MAX(lamport, ?) WHERE id = ?",
        [(lamport, conversation) for conversation, lamport in lamports.items()],
    )


class Messages:
    """The messages and conversations of a store."""

    def __init__(self, db: Database, room_check: RoomCheck | None = None) -> None:
        """`room_check(db, envelope)`: the room rules for a message to a room held here (see
        store/room_messages.py), asked inside the transaction that stores it."""
        self._db = db
        self._room_check = room_check

    # -- conversations ----------------------------------------------------------------------

    def members(self, conversation: bytes) -> tuple[PeerId, ...]:
        """The members of a conversation (empty if it does not exist)."""
        rows = self._db.all(
            "SELECT peer_id FROM conversation_members WHERE conversation = ? ORDER BY peer_id",
            (conversation,),
        )
        return tuple(peer_id_from_bytes(row[0]) for row in rows)

    def conversations(self, conversation: bytes | None = None) -> list[Conversation]:
        """All conversations (or the one asked for), most recently active first."""
        where, args = ("WHERE c.id = ?", (conversation,)) if conversation is not None else ("", ())
        rows = self._db.all(
            "SELECT c.id, c.kind, c.name, c.lamport, c.created_ms, MAX(m.cursor), COUNT(m.cursor)"
            " FROM conversations c LEFT JOIN messages m ON m.conversation = c.id "
            f"AND m.{_VISIBLE} "
            f"{where} GROUP BY c.id ORDER BY MAX(m.cursor) IS NULL, MAX(m.cursor) DESC",
            args,
        )
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

    # -- writing ----------------------------------------------------------------------------

    def queue_outgoing_many(
        self, items: Sequence[tuple[bytes, str, Sequence[PeerId], Any]], now_ms: int
    ) -> list[tuple[Envelope, int] | Exception]:
        """Store new outgoing messages and their sealed copies in one transaction (a group commit).

        Each item is (conversation, kind, members, build): the conversation is created (`kind`,
        `members`) if needed, and `build(lamport) -> (envelope, {recipient: sealed}, signed)`
        runs inside the transaction, so the conversation's Lamport counter and the outbox can
        never disagree (`signed`, the bytes the author signed, may be left out: it is kept for
        forwarding and transcripts).
        Each item's `build` runs before any of its rows is written, so one that fails (say, a
        body too large) is left out alone and its exception returned in its place.
        """
        results: list[tuple[Envelope, int] | Exception] = []
        lamports: dict[bytes, int] = {}
        outbox: list[tuple[int, bytes, bytes, bytes]] = []
        missing: set[bytes] = set()
        with self._db.transaction() as db:
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
                    envelope, copies, *signed = build(next_lamport(lamports[conversation]))
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
                cursor = _insert_message(
                    db, envelope, Direction.OUT, None, MessageStatus.QUEUED, now_ms, *signed[:1]
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

    def store_incoming(
        self, items: Sequence[Incoming], me: PeerId, now_ms: int
    ) -> list[IncomingResult | MeshtalkError]:
        """Store received envelopes in one transaction; duplicates are recognised, not stored.

        Each item is (envelope, sealed copy) or (envelope, sealed copy, signed bytes). A
        duplicate of a message retention forgot is recognised by its record in `forgotten`
        (store/pruning.py) and comes back with cursor None. A room message whose author this
        node's log of the room does not show as a member yet is held back (`held`, cursor None;
        store/room_messages.py releases it when the log admits its author).

        Returns, per item, an IncomingResult or the refusal (see peer/admission.py: the
        conversation it writes to is not the author's, or its Lamport counter jumps too far).
        """
        results: list[IncomingResult | MeshtalkError] = []
        admitted: dict[tuple[bytes, PeerId, tuple[PeerId, ...]], MeshtalkError | None] = {}
        lamports: dict[bytes, int] = {}
        with self._db.transaction() as db:
            for envelope, sealed, *signed in items:
                if _forgotten(db, envelope):  # pruned, re-sent: acked again, not stored again
                    results.append(IncomingResult(envelope.id, None, duplicate=True))
                    continue
                verdict = self._room_check(db, envelope) if self._room_check else None
                if verdict is None:
                    key = (envelope.conversation, envelope.author, envelope.recipients)
                    if key not in admitted:
                        admitted[key] = admit_incoming(db, envelope, me, now_ms)
                    refusal = admitted[key]
                elif verdict == "hold":
                    _hold(db, envelope, sealed, signed[0] if signed else None, now_ms)
                    results.append(IncomingResult(envelope.id, None, duplicate=False, held=True))
                    continue
                else:
                    refusal = None if verdict == "admit" else verdict
                if refusal is None:
                    refusal = _check_lamport(db, envelope, lamports)
                if refusal is not None:
                    results.append(copy.copy(refusal).about(envelope.id))
                    continue
                cursor = _insert_message(
                    db, envelope, Direction.IN, sealed, MessageStatus.RECEIVED, now_ms, *signed
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

    # -- reading ----------------------------------------------------------------------------

    def _select(
        self, where: str, args: Sequence[Any], limit: int, newest: bool = False
    ) -> list[Message]:
        # Every page is at most `limit` messages and about PAGE_BYTES (rows.py): a short page
        # does not mean there are no more.
        order = "DESC" if newest else "ASC"
        rows = self._db.rows(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE ({where}) AND {_VISIBLE} "
            f"ORDER BY cursor {order} LIMIT ?",
            (*args, limit),
        )
        messages = message_page(rows)
        return messages[::-1] if newest else messages

    def recent_authorship(self, conversation: bytes) -> Iterator[tuple[str, int, Any]]:
        """(direction, timestamp_ms, metadata) of a conversation's messages, newest first.

        Lazy: the caller reads only as far back as it needs (consume it before the next write).
        """
        rows = self._db.rows(
            "SELECT direction, timestamp_ms, metadata FROM messages WHERE conversation = ? "
            f"AND {_VISIBLE} ORDER BY cursor DESC",
            (conversation,),
        )
        for direction, timestamp_ms, metadata in rows:
            yield direction, timestamp_ms, load_value(metadata)

    def latest(self, conversation: bytes | None, limit: int) -> list[Message]:
        """The newest `limit` messages (of one conversation, or of all), oldest first.

        A room's are in the room's total order, (Lamport, author, id), the same on every
        member whatever order they arrived in (docs/rooms.md); other conversations in the
        order this node stored them."""
        if conversation is None:
            return self._select("1 = 1", (), limit, newest=True)
        if self._db.one("SELECT 1 FROM rooms WHERE id = ?", (conversation,)) is not None:
            rows = self._db.rows(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation = ? AND {_VISIBLE} "
                "ORDER BY lamport DESC, author DESC, id DESC LIMIT ?",
                (conversation, limit),
            )
            return message_page(rows)[::-1]
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

    def statuses(self, author: PeerId, ids: Sequence[bytes]) -> dict[bytes, tuple[str, str | None]]:
        """The status and error of each of `author`'s messages `ids` (missing ones left out),
        in one query per 500 ids."""
        found: dict[bytes, tuple[str, str | None]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._db.all(
                "SELECT id, status, error FROM messages WHERE author = ? AND id IN "
                f"({', '.join('?' * len(chunk))})",
                (author.to_bytes(), *chunk),
            )
            found.update((row[0], (str(row[1]), row[2])) for row in rows)
        return found

    def last_cursor(self) -> int:
        """The newest cursor in the store (0 when empty)."""
        return int(self._db.one("SELECT COALESCE(MAX(cursor), 0) FROM messages")[0])

    # -- consumer cursors -------------------------------------------------------------------

    def consumer_cursor(self, name: str) -> int:
        """Where a named consumer of incoming messages left off (0 if new)."""
        row = self._db.one("SELECT cursor FROM consumer_cursors WHERE name = ?", (name,))
        return 0 if row is None else int(row[0])

    def set_consumer_cursor(self, name: str, cursor: int) -> None:
        """Remember that a named consumer has handled everything up to `cursor`."""
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO consumer_cursors (name, cursor) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET cursor = MAX(cursor, excluded.cursor)",
                (name, cursor),
            )


def _insert_message(
    db: sqlite3.Connection,
    envelope: Envelope,
    direction: Direction,
    sealed: bytes | None,
    status: MessageStatus,
    now_ms: int,
    signed: bytes | None = None,
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
            signed,
        ),
    )
    return cursor.lastrowid if cursor.rowcount == 1 else None


def _hold(
    db: sqlite3.Connection, envelope: Envelope, sealed: bytes, signed: bytes | None, now_ms: int
) -> None:
    """Keep a room message back until the room's log admits its author."""
    if signed is None:
        raise InternalError("a room message is held only with the bytes its author signed")
    db.execute(
        "INSERT OR IGNORE INTO room_held (room, author, id, signed, sealed, received_ms) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (envelope.conversation, envelope.author.to_bytes(), envelope.id, signed, sealed, now_ms),
    )


def _forgotten(db: sqlite3.Connection, envelope: Envelope) -> bool:
    key = forgotten_key(envelope.author.to_bytes(), envelope.id)
    return db.execute("SELECT 1 FROM forgotten WHERE key = ?", (key,)).fetchone() is not None


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
