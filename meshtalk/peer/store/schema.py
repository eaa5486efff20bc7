"""The SQLite schema of a node's store, as a list of migrations (index + 1 = schema version).

Never edit a released migration: append a new one. `PRAGMA user_version` records how many have
been applied; a store newer than this code is refused rather than misread.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: Final[list[str]] = [
    # 1: contacts, conversations, messages, outbox, refusals, consumer cursors, node settings
    """
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE contacts (
        peer_id      BLOB PRIMARY KEY,
        name         TEXT UNIQUE,
        trust        TEXT NOT NULL CHECK (trust IN ('trusted', 'blocked')),
        addresses    TEXT NOT NULL DEFAULT '[]',
        added_ms     INTEGER NOT NULL,
        last_seen_ms INTEGER
    );
    CREATE TABLE conversations (
        id         BLOB PRIMARY KEY,
        kind       TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
        name       TEXT,
        lamport    INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE conversation_members (
        conversation BLOB NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        peer_id      BLOB NOT NULL,
        PRIMARY KEY (conversation, peer_id)
    );
    CREATE TABLE messages (
        -- Messages are never deleted, so rowids only grow: cursors stay monotonic without the
        -- cost of AUTOINCREMENT (one more b-tree write per insert). A future "forget old
        -- messages" feature must keep the newest row or switch to AUTOINCREMENT.
        cursor       INTEGER PRIMARY KEY,
        id           BLOB NOT NULL,
        author       BLOB NOT NULL,
        conversation BLOB NOT NULL REFERENCES conversations(id),
        direction    TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        kind         TEXT NOT NULL,
        recipients   BLOB NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        lamport      INTEGER NOT NULL,
        reply_to     BLOB,
        body         BLOB NOT NULL,
        metadata     BLOB,
        sealed       BLOB,
        status       TEXT NOT NULL
            CHECK (status IN ('received', 'queued', 'sent', 'delivered', 'failed')),
        error        TEXT,
        stored_ms    INTEGER NOT NULL,
        UNIQUE (author, id)
    );
    CREATE INDEX messages_by_conversation ON messages (conversation, cursor);
    CREATE INDEX messages_incoming ON messages (cursor) WHERE direction = 'in';
    CREATE TABLE outbox (
        message_cursor  INTEGER NOT NULL REFERENCES messages(cursor),
        recipient       BLOB NOT NULL,
        message_id      BLOB NOT NULL,
        sealed          BLOB NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        error           TEXT,
        PRIMARY KEY (recipient, message_cursor),
        UNIQUE (recipient, message_id)
    );
    CREATE INDEX outbox_by_message ON outbox (message_cursor);
    CREATE TABLE refusals (
        peer_id    BLOB PRIMARY KEY,
        count      INTEGER NOT NULL,
        last_ms    INTEGER NOT NULL,
        last_error TEXT NOT NULL
    );
    CREATE TABLE consumer_cursors (
        name   TEXT PRIMARY KEY,
        cursor INTEGER NOT NULL
    );
    """,
    # 2: the address book: every address learned for a peer, once per source, with when
    """
    CREATE TABLE addresses (
        peer_id       BLOB NOT NULL,
        address       TEXT NOT NULL,
        source        TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms  INTEGER NOT NULL,
        PRIMARY KEY (peer_id, address, source)
    );
    CREATE INDEX addresses_by_last_seen ON addresses (last_seen_ms);
    """,
    # 3: readers (issue 14): the CLI's inbox position becomes the reader "cli"; a reader's
    # position in one conversation (what `history` or `chat` showed of it) beyond its global
    # one; and a compact record of forgotten (pruned) message ids, so that a peer re-sending
    # one is taken as a duplicate, not a new message, while its timestamp is still accepted
    """
    INSERT OR IGNORE INTO consumer_cursors (name, cursor)
        SELECT 'cli', cursor FROM consumer_cursors WHERE name = 'cli-inbox';
    DELETE FROM consumer_cursors WHERE name = 'cli-inbox';
    CREATE TABLE reader_marks (
        reader       TEXT NOT NULL,
        conversation BLOB NOT NULL,
        cursor       INTEGER NOT NULL,
        PRIMARY KEY (reader, conversation)
    ) WITHOUT ROWID;
    CREATE TABLE forgotten (
        -- 64 bits of BLAKE2b(author, id) as the rowid: ~20 bytes a message instead of ~100
        key          INTEGER PRIMARY KEY,
        timestamp_ms INTEGER NOT NULL
    );
    """,
    # 4: rooms (issue 16, store/rooms.py): a room held here (its name and member count as its
    # log says, when this node joined and left it, its Lamport clock here), the signed entries
    # of its membership log (with their replay key, lamport and signer), and a message's signed
    # envelope, exactly the bytes its author signed (kept for forwarding and transcripts, NULL
    # in the rows stored before). A room also has a 'group' conversation with the room's id
    """
    CREATE TABLE rooms (
        id         BLOB PRIMARY KEY CHECK (length(id) = 16),
        name       TEXT NOT NULL,
        members    INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        joined_ms  INTEGER NOT NULL,
        left_ms    INTEGER,
        lamport    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE room_entries (
        room    BLOB NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        hash    BLOB NOT NULL,
        lamport INTEGER NOT NULL,
        signer  BLOB NOT NULL,
        data    BLOB NOT NULL,
        PRIMARY KEY (room, hash)
    );
    ALTER TABLE messages ADD COLUMN signed BLOB;
    """,
    # 5: room messages held back (store/room_messages.py): signed by an author this node's log
    # of the room does not show as a member yet (an add entry still on its way); each is
    # stored as a message once the log admits its author, or forgotten when it expires; and
    # an index of the room control messages waiting to be dropped (store/outbox.py)
    """
    CREATE TABLE room_held (
        room        BLOB NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        author      BLOB NOT NULL,
        id          BLOB NOT NULL,
        signed      BLOB NOT NULL,
        sealed      BLOB NOT NULL,
        received_ms INTEGER NOT NULL,
        PRIMARY KEY (author, id)
    );
    CREATE INDEX room_held_by_room ON room_held (room, received_ms);
    CREATE INDEX messages_room_control ON messages (cursor)
        WHERE kind IN ('room-log', 'room-sync');
    """,
    # 6: a conversation's messages in its order (Lamport, author, id), for transcripts
    # exported a page at a time and a room's newest messages without sorting the whole room
    """
    CREATE INDEX messages_in_order ON messages (conversation, lamport, author, id);
    """,
]

SCHEMA_VERSION: Final = len(MIGRATIONS)
