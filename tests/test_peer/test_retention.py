"""Retention on real SQLite stores: what prune forgets, what it keeps, and the space after."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import trio

from meshtalk.peer.config import NodeConfig
from meshtalk.peer.retention import DAY_MS, keep_pruned, prune, retention_rule
from meshtalk.peer.store import IncomingResult, PruneRule, Store
from meshtalk.protocol import NodeKey, direct_conversation_id, seal
from tests.conftest import NOW_MS, make_envelope

KEEP_IDS_MS = 30 * DAY_MS


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.db")


def receive(store: Store, me: NodeKey, author: NodeKey, n: int, stored_ms: int, tag: int = 0,
            size: int = 10) -> list[int]:  # fmt: skip
    """Store n incoming messages from `author`; their cursors."""
    cursors = []
    for i in range(n):
        env = make_envelope(author, me, id=bytes([tag, i % 256, i // 256]) + b"\0" * 13,
                            lamport=i + 1, body="x" * size, timestamp_ms=stored_ms)  # fmt: skip
        [result] = store.messages.store_incoming([(env, b"")], me.peer_id, stored_ms)
        assert isinstance(result, IncomingResult), result
        assert not result.duplicate
        assert result.cursor is not None
        cursors.append(result.cursor)
    return cursors


def send(store: Store, me: NodeKey, to: NodeKey, n: int, now_ms: int, tag: int = 1) -> list[int]:
    """Queue n outgoing messages to `to`; their cursors."""
    conversation = direct_conversation_id(me.peer_id, to.peer_id)
    cursors = []
    for i in range(n):

        def build(lamport: int, i: int = i) -> tuple[object, dict]:
            env = make_envelope(me, to, id=bytes([tag, i % 256, i // 256]) + b"\1" * 13,
                                lamport=lamport, timestamp_ms=now_ms)  # fmt: skip
            return env, {to.peer_id: seal(env, me, to.peer_id)}

        [(_, cursor)] = store.messages.queue_outgoing_many(
            [(conversation, "direct", (me.peer_id, to.peer_id), build)], now_ms
        )
        cursors.append(cursor)
    return cursors


def cursors_left(store: Store) -> list[int]:
    return [m.cursor for m in store.messages.all_messages(0, 100_000)]


def run_prune(store: Store, rule: PruneRule, **kwargs: bool):  # type: ignore[no-untyped-def]
    return trio.run(lambda: prune(store, rule, NOW_MS, KEEP_IDS_MS, **kwargs))


def test_prune_forgets_only_old_read_and_delivered_messages(
    store: Store, alice: NodeKey, bob: NodeKey
) -> None:
    old = NOW_MS - 10 * DAY_MS
    read = receive(store, bob, alice, 3, old)
    unread = receive(store, bob, alice, 2, old, tag=2)
    store.readers.advance("cli", read[-1])
    store.readers.advance("mcp", unread[-1])
    queued = send(store, bob, alice, 2, old)
    store.outbox.acknowledge(alice.peer_id, [m.id for m in store.messages.all_messages(
        queued[0] - 1, 1)])  # fmt: skip
    young = receive(store, bob, alice, 2, NOW_MS, tag=3)
    store.readers.advance("cli", young[-1])
    store.readers.advance("mcp", young[-1])

    report = run_prune(store, retention_rule(NOW_MS, 5, None))
    assert report.deleted == 6  # the five received (both readers are past them now), one sent
    assert report.kept_unread == 0
    assert report.kept_pending == 1  # the one still in the outbox
    assert cursors_left(store) == [queued[1], *young]


def test_a_message_unread_by_any_reader_is_kept(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    old = NOW_MS - 10 * DAY_MS
    cursors = receive(store, bob, alice, 4, old)
    receive(store, bob, alice, 1, NOW_MS, tag=9)  # the newest row, never forgotten
    store.readers.advance("cli", cursors[-1])
    store.readers.advance("agent", cursors[1])
    report = run_prune(store, PruneRule(before_ms=NOW_MS - DAY_MS))
    assert report.deleted == 2
    assert report.kept_unread == 2
    assert report.unread_by == ["agent"]
    assert cursors_left(store)[:2] == cursors[2:]


def test_a_conversation_mark_counts_as_read(store: Store, alice: NodeKey, bob: NodeKey,
                                            carol: NodeKey) -> None:  # fmt: skip
    old = NOW_MS - 10 * DAY_MS
    from_alice = receive(store, bob, alice, 2, old)
    from_carol = receive(store, bob, carol, 2, old, tag=4)
    receive(store, bob, alice, 1, NOW_MS, tag=9)
    alice_conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
    store.readers.advance("cli", from_alice[-1], alice_conversation)  # only alice's were shown
    report = run_prune(store, PruneRule(before_ms=NOW_MS - DAY_MS))
    assert report.deleted == 2
    assert cursors_left(store)[:2] == from_carol


def test_without_any_reader_nothing_received_is_forgotten(
    store: Store, alice: NodeKey, bob: NodeKey
) -> None:
    receive(store, bob, alice, 3, NOW_MS - 10 * DAY_MS)
    report = run_prune(store, PruneRule(before_ms=NOW_MS))
    assert report.deleted == 0
    assert report.kept_unread == 2
    assert len(cursors_left(store)) == 3


def test_a_forgotten_message_sent_again_is_a_duplicate_and_the_counter_stays(
    store: Store, alice: NodeKey, bob: NodeKey
) -> None:
    old = NOW_MS - 10 * DAY_MS
    env = make_envelope(alice, bob, id=b"f" * 16, lamport=40, timestamp_ms=old)
    store.messages.store_incoming([(env, b"")], bob.peer_id, old)
    newest = receive(store, bob, alice, 1, NOW_MS, tag=9)
    store.readers.advance("cli", newest[-1])
    assert run_prune(store, PruneRule(before_ms=NOW_MS - DAY_MS)).deleted == 1
    assert store.messages.message(alice.peer_id, b"f" * 16) is None
    [again] = store.messages.store_incoming([(env, b"")], bob.peer_id, NOW_MS)
    assert isinstance(again, IncomingResult)
    assert again.duplicate
    assert again.cursor is None
    assert store.messages.message(alice.peer_id, b"f" * 16) is None
    [conversation] = store.messages.conversations()
    assert conversation.lamport == 40  # Lamport counters live in conversations, not messages
    # Once the id is past the receivers' age limit, its record goes: the receiver refuses the
    # envelope as too old before it reaches the store.
    trio.run(lambda: prune(store, PruneRule(before_ms=0), NOW_MS + KEEP_IDS_MS, KEEP_IDS_MS))
    assert store.db.one("SELECT COUNT(*) FROM forgotten")[0] == 0


def test_a_dry_run_changes_nothing(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    cursors = receive(store, bob, alice, 5, NOW_MS - 10 * DAY_MS)
    store.readers.advance("cli", cursors[-1])
    report = run_prune(store, PruneRule(before_ms=NOW_MS), dry_run=True)
    assert report.deleted == 4
    assert report.dry_run
    assert cursors_left(store) == cursors


def test_the_newest_row_is_kept_so_cursors_never_go_back(
    store: Store, alice: NodeKey, bob: NodeKey
) -> None:
    cursors = receive(store, bob, alice, 3, NOW_MS - 10 * DAY_MS)
    store.readers.advance("cli", cursors[-1])
    run_prune(store, PruneRule(before_ms=NOW_MS))
    assert cursors_left(store) == [cursors[-1]]
    [later] = receive(store, bob, alice, 1, NOW_MS, tag=5)
    assert later > cursors[-1]


def test_size_limit_forgets_the_oldest_and_gives_space_back(
    tmp_path: Path, alice: NodeKey, bob: NodeKey
) -> None:
    store = Store(tmp_path / "store.db")
    cursors = receive(store, bob, alice, 2000, NOW_MS, size=2000)
    store.readers.advance("cli", cursors[-1])
    before = os.path.getsize(store.path) + os.path.getsize(f"{store.path}-wal")
    assert store.pruner.used_bytes() > 4 * 1024 * 1024
    report = run_prune(store, PruneRule(max_bytes=1024 * 1024), release=True)
    assert 1400 < report.deleted < 2000
    assert store.pruner.used_bytes() <= 1024 * 1024
    assert cursors_left(store)[-1] == cursors[-1]  # the newest are the ones kept
    assert report.released
    assert report.file_bytes_after < before / 2
    assert os.path.getsize(f"{store.path}-wal") == 0
    store.close()


def test_an_older_store_is_vacuumed_once_and_then_incremental(
    tmp_path: Path, alice: NodeKey, bob: NodeKey
) -> None:
    path = tmp_path / "store.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA auto_vacuum=NONE")
    db.execute("VACUUM")  # as a store made before this version
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    db.close()
    store = Store(path)
    assert not store.pruner.incremental()
    cursors = receive(store, bob, alice, 500, NOW_MS - 10 * DAY_MS, size=2000)
    store.readers.advance("cli", cursors[-1])
    report = run_prune(store, PruneRule(before_ms=NOW_MS), release=True)
    assert report.deleted == 499
    assert report.released
    assert store.pruner.incremental()
    assert report.file_bytes_after < report.file_bytes_before / 4
    store.close()


async def test_the_node_applies_retention_at_start_and_every_hour(
    tmp_path: Path, alice: NodeKey, bob: NodeKey, autojump_clock: trio.testing.MockClock
) -> None:
    store = Store(tmp_path / "store.db")
    now = [NOW_MS]
    config = NodeConfig(retain_days=1, clock=lambda: now[0])
    first = receive(store, bob, alice, 3, NOW_MS - 2 * DAY_MS)
    second = receive(store, bob, alice, 3, NOW_MS, tag=1)
    store.readers.advance("cli", second[-1])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_pruned, store, config)
        await trio.sleep(1)
        assert cursors_left(store) == second  # at start: the ones older than a day
        now[0] += DAY_MS + 1
        await trio.sleep(3000)
        assert cursors_left(store) == second  # not yet an hour
        await trio.sleep(700)
        assert cursors_left(store) == [second[-1]]
        nursery.cancel_scope.cancel()
    assert first
    store.close()


async def test_no_retention_configured_means_no_task(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    with trio.fail_after(1):
        await keep_pruned(store, NodeConfig())  # returns at once: nothing to apply
    store.close()
