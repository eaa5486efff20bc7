"""Which conversation an incoming message may write to, checked inside the store's transaction.

A **direct** conversation's id is derived from its two peers (`direct_conversation_id`), so the
receiver derives it too: a message carrying the id of the receiver's direct conversation with its
author must be addressed to the receiver alone, and any other author is refused. Anybody can
compute the id of someone else's direct conversation, so a **named** conversation (any other
id) is opened only by a trusted contact, never with an id that is the receiver's direct
conversation with a peer it knows, and afterwards only its members (whatever the creator's
signed recipients said) may write to it. If a named conversation turns out to squat on a direct
id the receiver did not know yet (its peer shows up later), the squatter's conversation is moved
to an id of its own before the direct one is used: nothing is deleted, and nothing a third peer
wrote shows up in the history of two others.

Lamport counters: an incoming counter may be at most `MAX_LAMPORT_STEP` past the
conversation's own (see protocol/envelope.py), so no peer can push a node's clock to the edge.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from typing import Final

from ..protocol.envelope import Envelope, direct_conversation_id, peer_id_from_bytes
from ..protocol.errors import ConversationMismatch, MeshtalkError, NotAuthorized
from ..protocol.keys import PeerId

__all__ = [
    "admit_incoming",
    "claim_direct",
    "create_conversation",
    "move_conversation",
    "moved_conversation_id",
]

_MOVED_PERSON: Final = b"meshtalk/moved"


def moved_conversation_id(conversation: bytes) -> bytes:
    """Where a named conversation that squatted on a direct id is moved to (local only)."""
    return hashlib.blake2b(conversation, digest_size=16, person=_MOVED_PERSON).digest()


def create_conversation(
    db: sqlite3.Connection,
    conversation: bytes,
    kind: str,
    members: Iterable[PeerId],
    now_ms: int,
) -> None:
    """Insert a conversation row and its members."""
    db.execute(
        "INSERT INTO conversations (id, kind, name, created_ms) VALUES (?, ?, NULL, ?)",
        (conversation, kind, now_ms),
    )
    db.executemany(
        "INSERT OR IGNORE INTO conversation_members (conversation, peer_id) VALUES (?, ?)",
        [(conversation, m.to_bytes()) for m in members],
    )


def claim_direct(
    db: sqlite3.Connection, conversation: bytes, peers: tuple[PeerId, PeerId], now_ms: int
) -> None:
    """Make sure `conversation` exists as the direct conversation of `peers`.

    A named conversation already stored under that id was opened by a third peer before these two
    talked: it moves, with its messages and members, to `moved_conversation_id(conversation)`.
    """
    row = db.execute("SELECT kind FROM conversations WHERE id = ?", (conversation,)).fetchone()
    if row is not None and row[0] == "direct":
        return
    if row is not None:
        move_conversation(db, conversation)
    create_conversation(db, conversation, "direct", peers, now_ms)


def move_conversation(db: sqlite3.Connection, conversation: bytes) -> None:
    """Move a conversation that squats on an id somebody else's conversation needs (a direct
    one's, a room's) to `moved_conversation_id(conversation)`, with its members, messages and
    read marks: nothing is deleted, and nothing it holds shows up in the other's history."""
    moved = moved_conversation_id(conversation)
    db.execute(
        "INSERT INTO conversations (id, kind, name, lamport, created_ms) "
        "SELECT ?, kind, name, lamport, created_ms FROM conversations WHERE id = ?",
        (moved, conversation),
    )
    for table in ("conversation_members", "messages", "reader_marks"):
        db.execute(
            f"UPDATE {table} SET conversation = ? WHERE conversation = ?", (moved, conversation)
        )
    db.execute("DELETE FROM conversations WHERE id = ?", (conversation,))


def _known_peers(db: sqlite3.Connection) -> list[PeerId]:
    rows = db.execute(
        "SELECT peer_id FROM contacts UNION SELECT peer_id FROM addresses "
        "UNION SELECT peer_id FROM conversation_members"
    ).fetchall()
    peers = []
    for (raw,) in rows:
        try:
            peers.append(peer_id_from_bytes(raw))
        except MeshtalkError:  # stored by an older version without the check: not a peer
            continue
    return peers


def admit_incoming(
    db: sqlite3.Connection, envelope: Envelope, me: PeerId, now_ms: int
) -> MeshtalkError | None:
    """Create or check the conversation `envelope` writes to; the refusal, or None to store it."""
    conversation, author = envelope.conversation, envelope.author
    if conversation == direct_conversation_id(author, me):
        if envelope.recipients != (me,):
            return ConversationMismatch(
                f"a message in the direct conversation of {author} and {me} must be addressed "
                f"to {me} alone"
            ).about(envelope.id)
        claim_direct(db, conversation, (author, me), now_ms)
        return None
    row = db.execute("SELECT kind FROM conversations WHERE id = ?", (conversation,)).fetchone()
    if row is None:
        return _open_named(db, envelope, me, now_ms)
    if row[0] == "direct":
        return ConversationMismatch(
            f"{author} wrote to conversation {conversation.hex()}, the direct conversation of "
            "two other peers"
        ).about(envelope.id)
    member = db.execute(
        "SELECT 1 FROM conversation_members WHERE conversation = ? AND peer_id = ?",
        (conversation, author.to_bytes()),
    ).fetchone()
    if member is None:
        return ConversationMismatch(
            f"{author} is not a member of conversation {conversation.hex()}"
        ).about(envelope.id)
    return None


def _open_named(
    db: sqlite3.Connection, envelope: Envelope, me: PeerId, now_ms: int
) -> MeshtalkError | None:
    conversation, author = envelope.conversation, envelope.author
    trust = db.execute(
        "SELECT trust FROM contacts WHERE peer_id = ?", (author.to_bytes(),)
    ).fetchone()
    if trust is None or trust[0] != "trusted":
        return NotAuthorized(
            f"{author} is not a contact, so it cannot open the conversation {conversation.hex()} "
            "here; only direct messages are accepted from it"
        ).about(envelope.id)
    # The direct conversation of the author with a recipient, or of this node with any peer it
    # knows: never a named one. (Another pair's direct id can do no harm here.)
    pairs = [(author, r) for r in envelope.recipients if r != author]
    pairs += [(me, peer) for peer in _known_peers(db) if peer != me]
    for a, b in pairs:
        if direct_conversation_id(a, b) == conversation:
            return ConversationMismatch(
                f"{author} wrote to conversation {conversation.hex()}, the direct conversation "
                f"of {a} and {b}"
            ).about(envelope.id)
    create_conversation(
        db, conversation, "group", dict.fromkeys((author, *envelope.recipients)), now_ms
    )
    return None
