"""Rows of the store and their conversion to the API's models."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ...protocol.codec import packb, unpackb_strict
from ...protocol.envelope import peer_id_from_bytes
from ...protocol.errors import MalformedEnvelope
from ...protocol.keys import PeerId
from ...protocol.room_wire import CONTROL_KINDS
from ..models import Contact, Direction, Message, MessageStatus, Trust

T = TypeVar("T")

CONTROL_KINDS_SQL: Final = ", ".join(f"'{kind}'" for kind in sorted(CONTROL_KINDS))
"""The room control kinds as an SQL list (`kind IN (...)`): never shown, never forwarded."""

__all__ = [
    "MESSAGE_COLUMNS",
    "PAGE_BYTES",
    "message_page",
    "within_budget",
    "OutboxItem",
    "IncomingResult",
    "chunks",
    "pack_ids",
    "message_from_row",
    "contact_from_row",
    "load_value",
]

MESSAGE_COLUMNS: Final = (
    "cursor, id, conversation, author, recipients, direction, kind, body, timestamp_ms, "
    "lamport, reply_to, metadata, status, error, stored_ms"
)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One sealed copy waiting for its recipient's ack."""

    cursor: int
    message_id: bytes
    recipient: PeerId
    sealed: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class IncomingResult:
    """What storing one received envelope did: stored anew, or a duplicate of a stored one."""

    message_id: bytes
    cursor: int | None
    duplicate: bool
    held: bool = False
    """A room message kept back until the room's log admits its author (cursor None)."""


def chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Slices of at most `size` values (SQLite limits the parameters of one statement)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def pack_ids(peers: Iterable[PeerId]) -> bytes:
    """A list of peer IDs as stored (msgpack of their bytes)."""
    return packb([p.to_bytes() for p in peers])


def _peers(blob: bytes) -> tuple[PeerId, ...]:
    return tuple(peer_id_from_bytes(raw) for raw in unpackb_strict(blob, MalformedEnvelope, "ids"))


def load_value(blob: bytes | None) -> Any:
    """A msgpack value stored in a column (None stays None)."""
    return None if blob is None else unpackb_strict(blob, MalformedEnvelope, "stored value")


def message_from_row(row: sqlite3.Row) -> Message:
    """A Message from a row selected with MESSAGE_COLUMNS."""
    return Message(
        cursor=row[0],
        id=row[1],
        conversation=row[2],
        author=peer_id_from_bytes(row[3]),
        recipients=_peers(row[4]),
        direction=Direction(row[5]),
        kind=row[6],
        body=load_value(row[7]),
        timestamp_ms=row[8],
        lamport=row[9],
        reply_to=row[10],
        metadata=load_value(row[11]),
        status=MessageStatus(row[12]),
        error=row[13],
        stored_ms=row[14],
    )


PAGE_BYTES: Final = 1024 * 1024
"""The stored bytes (body and metadata) of one page of messages, past its first message.

A page is also cut by count (`limit`), but 1,000 messages near the 1 MiB limit would be a GiB
in the node's memory, and a reply far over the control socket's 8 MiB frame: a contact could
make `history` unreadable. A view shows a body about twice (text and body; six times for bytes
as hex), so a page's reply stays near 6 MiB at most. Readers page on with the last cursor."""


def within_budget(
    rows: sqlite3.Cursor, size: Callable[[Any], int], make: Callable[[Any], T]
) -> list[T]:
    """`make(row)` of the first rows whose `size`s add up to PAGE_BYTES; always the first
    one. The rest of the query is not read, and the cursor is closed."""
    page: list[T] = []
    used = 0
    with contextlib.closing(rows):
        for row in rows:
            used += size(row)
            if page and used > PAGE_BYTES:
                break
            page.append(make(row))
    return page


def message_page(rows: sqlite3.Cursor) -> list[Message]:
    """The messages of `rows` (selected with MESSAGE_COLUMNS), up to PAGE_BYTES of stored
    bodies and metadata."""
    return within_budget(rows, lambda row: len(row[7] or b"") + len(row[11] or b""),
                         message_from_row)  # fmt: skip


def contact_from_row(row: sqlite3.Row) -> Contact:
    """A Contact from a contacts row."""
    return Contact(
        peer_id=peer_id_from_bytes(row[0]),
        name=row[1],
        trust=Trust(row[2]),
        addresses=tuple(json.loads(row[3])),
        added_ms=row[4],
        last_seen_ms=row[5],
    )
