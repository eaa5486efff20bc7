"""The node's local store: one SQLite file (WAL) shared by the parts that own its tables.

- `database.py`: the connection, pragmas, transactions, migrations, checkpoints and settings;
- `messages.py`: conversations and messages (sent and received);
- `readers.py`: each reader's read position (what is new to it);
- `pruning.py`: forgetting done messages (retention) and giving the space back;
- `outbox.py`: the sealed copies waiting for acks;
- `contacts.py`: contacts and refused peers;
- `addressbook.py`: every address learned for a peer;
- `rooms.py`: the rooms held, their signed membership logs and Lamport clocks;
- `schema.py` and `rows.py`: the migrations, and the rows as the API's models.

`Store` opens the Database and builds the parts on it: `store.messages`, `store.outbox`,
`store.contacts`, `store.book`, `store.readers`, `store.pruner`, `store.rooms`,
`store.room_messages`, with `store.db`
for settings and transactions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from .addressbook import AddressBook, AddressSource, KnownAddress
from .checkpoints import keep_wal_short
from .contacts import ContactTable
from .database import Database
from .messages import Messages
from .outbox import Outbox
from .pruning import PruneBatch, Pruner, PruneRule
from .readers import Readers
from .room_messages import RoomMessages
from .rooms import RoomStore, RoomSummary
from .rows import IncomingResult, OutboxItem

if TYPE_CHECKING:
    from ...protocol.keys import PeerId

__all__ = [
    "keep_wal_short",
    "Store",
    "STORE_FILE_NAME",
    "IncomingResult",
    "OutboxItem",
    "Database",
    "AddressBook",
    "AddressSource",
    "KnownAddress",
    "PruneBatch",
    "PruneRule",
    "Readers",
    "RoomStore",
    "RoomSummary",
]

STORE_FILE_NAME: Final = "store.db"


class Store:
    """The SQLite store of one profile. Not thread-safe: use it from the node's thread."""

    def __init__(
        self,
        path: Path,
        durability: Literal["normal", "full"] = "normal",
        *,
        me: PeerId | None = None,
    ) -> None:
        """`me`: the node's own peer ID (room admission tells its own messages by it)."""
        self.path = path
        self.db = Database(path, durability)
        self.messages = Messages(self.db, lambda db, env: self.room_messages.check(db, env))
        self.outbox = Outbox(self.db)
        self.contacts = ContactTable(self.db)
        self.book = AddressBook(self.db)
        self.readers = Readers(self.db)
        self.pruner = Pruner(self.db)
        self.rooms = RoomStore(self.db)
        self.room_messages = RoomMessages(self.db, self.rooms, me)

    def close(self) -> None:
        """Close the database file (checkpointing what the WAL holds)."""
        self.db.close()

    @property
    def total_changes(self) -> int:
        """Rows changed through this store since it was opened (grows with every write)."""
        return self.db.total_changes

    def checkpoint(self, truncate: bool = False) -> None:
        """Copy committed WAL pages into the database without blocking the writer (thread-safe);
        `truncate` also empties the WAL file, waiting for the writer."""
        self.db.checkpoint(truncate)
