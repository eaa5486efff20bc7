"""Retention: forgetting done messages by age and/or size, now (`prune`) or hourly (`keep_pruned`).

What may be forgotten, and what stays, is store/pruning.py's docstring. Here: running it in
batches of a few hundred rows, each its own short write transaction, with a turn of the trio loop
between them (sends and receives go on during a long prune); dropping expired records of
forgotten ids; giving the space back when asked; and the figures a user wants to see.

Cost (bench/prune.py, 2-core VM, 50,000 received messages of 300 B, 54.7 MiB on disk): prune
forgot them at ~12,000 messages/s including giving the pages back (4.3 s; the file went to
1.2 MiB), the longest single transaction held the node's loop 32-36 ms, and receiving with
50,000 forgotten-id records in the table was 5 % slower (12,132/s against 12,768/s).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import trio

from ..protocol.errors import MeshtalkError
from .store import PruneRule

if TYPE_CHECKING:
    from .config import NodeConfig
    from .store import Store

__all__ = ["PruneReport", "keep_pruned", "prune", "retention_rule"]

logger = logging.getLogger("meshtalk.node")

DAY_MS: Final = 24 * 3600 * 1000
MIB: Final = 1024 * 1024
RETENTION_INTERVAL: Final = 3600.0  # seconds between two runs of the profile's retention
_BATCH: Final = 200  # rows a transaction: tens of ms of the node's loop at most


@dataclass(slots=True)
class PruneReport:
    """What a prune did (or would do, for a dry run)."""

    dry_run: bool
    deleted: int = 0
    deleted_bytes: int = 0  # an estimate: the messages' bytes and their rows' overhead
    kept_unread: int = 0
    kept_pending: int = 0
    unread_by: list[str] = field(default_factory=list)
    file_bytes_before: int = 0
    file_bytes_after: int = 0
    free_bytes: int = 0  # free pages left inside the file (reused by new messages)
    released: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The report as plain values (the `prune` control op's answer)."""
        return {name: getattr(self, name) for name in self.__slots__}


def retention_rule(
    now_ms: int,
    older_than_days: float | None,
    max_mib: float | None,
    conversation: bytes | None = None,
) -> PruneRule | None:
    """The rule for these limits (None or 0: no such limit); None when there is none at all."""
    before = now_ms - int(older_than_days * DAY_MS) if older_than_days else None
    max_bytes = int(max_mib * MIB) if max_mib else None
    if before is None and max_bytes is None:
        return None
    return PruneRule(before, max_bytes, conversation)


def _file_bytes(store: Store) -> int:
    """The store's bytes on disk: its file and its write-ahead log."""
    total = 0
    for path in (store.path, store.path.with_name(store.path.name + "-wal")):
        try:
            total += os.path.getsize(path)
        except OSError:
            continue
    return total


async def prune(
    store: Store,
    rule: PruneRule,
    now_ms: int,
    keep_ids_ms: int,
    *,
    dry_run: bool = False,
    release: bool = False,
) -> PruneReport:
    """Forget what `rule` says, in batches; with `release`, give the freed pages back.

    `keep_ids_ms`: how long a forgotten id must still be recognised (the node's max_age_ms).
    """
    report = PruneReport(dry_run=dry_run, file_bytes_before=_file_bytes(store))
    started = time.perf_counter()
    after, unread_by = 0, set()
    while True:
        # Read for each batch: a reader that appeared meanwhile protects what it has not read.
        readers = store.readers.states()
        batch = store.pruner.batch(
            rule, readers, after, now_ms, keep_ids_ms, _BATCH, dry_run,
            report.deleted_bytes if dry_run else 0,
        )  # fmt: skip
        report.deleted += batch.deleted
        report.deleted_bytes += batch.deleted_bytes
        report.kept_unread += batch.kept_unread
        report.kept_pending += batch.kept_pending
        unread_by |= batch.unread_by
        after = batch.next_cursor
        if batch.done:
            break
        await trio.lowlevel.checkpoint()  # the node's other work between two write transactions
    if not dry_run:
        await _forget_expired_ids(store, now_ms - keep_ids_ms)
        if release and report.deleted:
            store.pruner.release_space()
            # In WAL mode the file shrinks when the WAL is checkpointed; empty the WAL too.
            await trio.to_thread.run_sync(store.checkpoint, True)
            report.released = True
    report.unread_by = sorted(unread_by)
    report.file_bytes_after = _file_bytes(store)
    report.free_bytes = store.pruner.free_bytes()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def _forget_expired_ids(store: Store, before_ms: int) -> None:
    key: int | None = -(2**63)
    while key is not None:
        key = store.pruner.forget_expired_ids(before_ms, key)
        await trio.lowlevel.checkpoint()


async def keep_pruned(store: Store, config: NodeConfig, interval: float = RETENTION_INTERVAL
                      ) -> None:  # fmt: skip
    """Apply `config`'s retention (retain_days, retain_mib) at start and every `interval` s.

    Ages are measured on `config.clock`; a forgotten id is recognised for `config.max_age_ms`.

    Freed pages stay in the file for new messages (no vacuum here): a store under retention
    stops growing; `meshtalk prune` gives space back to the file system.
    """
    while True:
        now_ms = config.clock()
        rule = retention_rule(now_ms, config.retain_days, config.retain_mib)
        if rule is None:
            return
        try:
            report = await prune(store, rule, now_ms, config.max_age_ms)
        except MeshtalkError as exc:
            logger.warning("retention: %s", exc)
        else:
            if report.deleted:
                logger.info(
                    "retention forgot %d messages in %.2f s (%d kept unread, %d queued or failed)",
                    report.deleted, report.seconds, report.kept_unread, report.kept_pending,
                )  # fmt: skip
        await trio.sleep(interval)
