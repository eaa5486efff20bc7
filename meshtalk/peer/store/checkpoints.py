"""Keeping the write-ahead log short, from a worker thread, off the commit path."""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from ...protocol.errors import MeshtalkError

__all__ = ["keep_wal_short"]


class Checkpointable(Protocol):
    """What checkpointing needs of the store."""

    @property
    def total_changes(self) -> int:
        """Rows changed since the store opened."""
        ...

    def checkpoint(self) -> None:
        """Move the WAL into the database file."""
        ...


logger = logging.getLogger("meshtalk.node")


async def keep_wal_short(store: Checkpointable, interval: float) -> None:
    """Checkpoint every `interval` seconds while the store changes (skipped while idle)."""
    checkpointed_at = store.total_changes
    while True:
        await trio.sleep(interval)
        if store.total_changes == checkpointed_at:
            continue
        checkpointed_at = store.total_changes
        try:
            await trio.to_thread.run_sync(store.checkpoint)
        except MeshtalkError as exc:
            logger.warning("%s", exc)
        except Exception:  # the WAL just grows until the next try; the node goes on
            logger.exception("checkpointing the store failed unexpectedly")
