"""Retention's cost: write N received messages (real seal/open sizes), prune, measure.

    .venv/bin/python bench/prune.py                # --messages 100000 --size 300

Prints the store's size on disk before and after, what prune forgot, how long it took, the
longest single batch (how long the node's loop is held), and the same for an older store
(auto_vacuum NONE), whose first release is a full VACUUM. Also the cost of the forgotten-id
check on receiving: store_incoming with and without records of forgotten ids.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshtalk.peer.retention import prune
from meshtalk.peer.store import PruneRule, Store
from meshtalk.peer.store.pruning import Pruner
from meshtalk.protocol import Envelope, NodeKey, direct_conversation_id

NOW_MS = 1_790_000_000_000
DAY_MS = 24 * 3600 * 1000


def disk(path: Path) -> int:
    """The store file's size (the WAL is checkpointed first, as the node does every second)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return os.path.getsize(path)


def fill(store: Store, me: NodeKey, peer: NodeKey, n: int, size: int, base: int = 0) -> float:
    conversation = direct_conversation_id(peer.peer_id, me.peer_id)
    sealed = os.urandom(size + 250)  # a sealed copy is kept with each received message
    started = time.perf_counter()
    for start in range(0, n, 500):
        batch = [
            (Envelope(id=(base + i).to_bytes(16, "big"), conversation=conversation,
                      author=peer.peer_id, recipients=(me.peer_id,),
                      timestamp_ms=NOW_MS - 10 * DAY_MS, lamport=base + i + 1,
                      body="x" * size), sealed)
            for i in range(start, min(n, start + 500))
        ]  # fmt: skip
        store.messages.store_incoming(batch, me.peer_id, NOW_MS - 10 * DAY_MS)
    return time.perf_counter() - started


def longest_batch(store: Store) -> float:
    """Time the slowest single 500-row batch of a second, identical prune (on a refill)."""
    worst = 0.0
    original = Pruner.batch

    def timed(self: Pruner, *args: object, **kwargs: object) -> object:
        nonlocal worst
        started = time.perf_counter()
        result = original(self, *args, **kwargs)  # type: ignore[arg-type]
        worst = max(worst, time.perf_counter() - started)
        return result

    Pruner.batch = timed  # type: ignore[method-assign]
    try:
        trio.run(lambda: prune(store, PruneRule(before_ms=NOW_MS - DAY_MS), NOW_MS, 30 * DAY_MS))
    finally:
        Pruner.batch = original  # type: ignore[method-assign]
    return worst


def run(n: int, size: int, older: bool) -> None:
    me, peer = NodeKey.generate(), NodeKey.generate()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store.db"
        if older:  # as made before this version: auto_vacuum NONE
            Store(path).close()
            db = sqlite3.connect(path)
            db.execute("PRAGMA auto_vacuum=NONE")
            db.execute("VACUUM")
            db.close()
        store = Store(path)
        wrote = fill(store, me, peer, n, size)
        store.readers.advance("cli", store.messages.last_cursor())
        store.checkpoint(True)
        before = disk(path)
        started = time.perf_counter()
        report = trio.run(
            lambda: prune(
                store, PruneRule(before_ms=NOW_MS - DAY_MS), NOW_MS, 30 * DAY_MS, release=True
            )
        )
        took = time.perf_counter() - started
        kind = "older store (auto_vacuum NONE)" if older else "new store (incremental)"
        print(f"{kind}: {n:,} messages of {size} B written in {wrote:.1f} s")
        print(f"  on disk before {before / 2**20:8.1f} MiB, after {disk(path) / 2**20:8.1f} MiB")
        print(f"  prune forgot {report.deleted:,} in {took:.2f} s (with release), "
              f"{report.deleted / took:,.0f} /s")  # fmt: skip
        print(f"  forgotten-id records: {store.db.one('SELECT COUNT(*) FROM forgotten')[0]:,}")
        fill(store, me, peer, n, size, base=n)
        store.readers.advance("cli", store.messages.last_cursor())
        print(f"  longest batch (node loop held): {longest_batch(store) * 1000:.1f} ms")
        print(f"  after refilling and pruning again without release: {disk(path) / 2**20:.1f} "
              f"MiB on disk, {store.pruner.free_bytes() / 2**20:.1f} MiB free inside")  # fmt: skip
        store.close()


def check_cost(n: int) -> None:
    me, peer = NodeKey.generate(), NodeKey.generate()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "store.db")
        empty = fill(store, me, peer, n, 300)
        with store.db.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO forgotten VALUES (?, 0)",
                [(int.from_bytes(os.urandom(8), "big", signed=True),) for _ in range(n)],
            )
        full = fill(store, me, peer, n, 300, base=n)
        print(f"receiving {n:,}: {n / empty:,.0f} /s with no forgotten ids, {n / full:,.0f} /s "
              f"with {n:,} records")  # fmt: skip
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=300)
    args = parser.parse_args()
    run(args.messages, args.size, older=False)
    run(args.messages, args.size, older=True)
    check_cost(args.messages)


if __name__ == "__main__":
    main()
