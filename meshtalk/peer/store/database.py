"""The store's SQLite file: the connection, its pragmas, transactions, migrations and settings.

Owns the one `sqlite3` connection of a profile's store; the parts (messages, outbox, contacts,
address book) read through its query helpers and write through `transaction()`.

Synchronous and small on purpose: every call is one short transaction, run on the node's trio
thread. Durability: WAL with `synchronous=NORMAL` survives kill -9 of the process (a committed
transaction is in the OS before the call returns); `durability="full"` also survives power loss
at the cost of an fsync per transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from ...profile.paths import private_store_file
from ...protocol.errors import ConfigError, StoreError
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["Database"]


class Database:
    """The SQLite file of one profile's store. Not thread-safe: use it from the node's thread."""

    def __init__(self, path: Path, durability: Literal["normal", "full"] = "normal") -> None:
        if durability not in ("normal", "full"):
            raise ConfigError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.path = path
        try:
            private_store_file(path)  # 0600 first: SQLite gives -wal, -shm its mode
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Before the first table: a new store can give pruned pages back to the file
            # system (store/pruning.py). An older store keeps its mode until a VACUUM.
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            # A large prune writes many pages to the WAL; the file is cut back to this size
            # once they are checkpointed instead of staying at its largest.
            self._db.execute("PRAGMA journal_size_limit=67108864")
            self._db.execute(f"PRAGMA synchronous={durability.upper()}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            # Checkpoints (copying the WAL into the database, with an fsync) would otherwise run
            # inside whichever commit crosses 1000 pages; `checkpoint()` runs them elsewhere.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc

    def close(self) -> None:
        """Close the database file (checkpointing what the WAL holds)."""
        with contextlib.suppress(sqlite3.DatabaseError):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    @property
    def total_changes(self) -> int:
        """Rows changed through this store since it was opened (grows with every write)."""
        return self._db.total_changes

    def checkpoint(self, truncate: bool = False) -> None:
        """Copy committed WAL pages into the database without blocking the writer.

        Thread-safe: it uses a connection of its own, so the node can run it in a worker
        thread while its trio thread keeps committing. With `truncate`, it also waits for the
        writer (up to 5 s) to empty the WAL file (after a prune gave pages back).
        """
        db = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        try:
            db.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"checkpointing the store {self.path} failed: {exc}") from exc
        finally:
            db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE), committed when the block ends.

        An exception in the block rolls it back and propagates; a database error (a full disk,
        an I/O error) rolls back too and becomes a StoreError saying nothing was changed.
        """
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

    def incremental_vacuum(self, pages: int) -> None:
        """Give up to `pages` free pages back to the file system (0: all of them), on a store
        with auto_vacuum=INCREMENTAL. The file shrinks when the WAL is next checkpointed."""
        try:
            # executescript steps the pragma to its end; execute() would free one page only.
            self._db.executescript(f"PRAGMA incremental_vacuum({int(pages)})")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"freeing pages of the store {self.path} failed: {exc}") from exc

    def vacuum(self, incremental: bool = True) -> None:
        """Rewrite the whole file without its free pages (VACUUM), switching it to incremental
        auto-vacuum when asked. Blocks every writer while it runs (seconds per GiB) and needs
        free disk space for a second copy."""
        try:
            self._db.execute(f"PRAGMA auto_vacuum={'INCREMENTAL' if incremental else 'NONE'}")
            self._db.execute("VACUUM")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"vacuuming the store {self.path} failed: {exc} (nothing was changed; is the "
                "disk full?)"
            ) from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this meshtalk "
                f"understands ({SCHEMA_VERSION}); upgrade meshtalk"
            )
        for number in range(version, SCHEMA_VERSION):
            with self.transaction() as db:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={number + 1}")

    # -- reads ------------------------------------------------------------------------------

    def one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first row of a query, or None."""
        return self._db.execute(sql, args).fetchone()

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Every row of a query."""
        return self._db.execute(sql, args).fetchall()

    def rows(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """The rows of a query, read lazily (consume or close them before the next write)."""
        return self._db.execute(sql, args)

    # -- settings ---------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """A persisted node setting, or None."""
        row = self.one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        """Persist a node setting."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))
