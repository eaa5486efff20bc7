"""Readers: one read position per consumer, advanced consistently by every view (issue 14, item 7).

The store's rules on a real SQLite file, then the control ops (inbox, history, follow, receive)
on a real running node.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio

from meshtalk.control.operations import Operations
from meshtalk.peer.node import open_node
from meshtalk.peer.store import IncomingResult, Store
from meshtalk.peer.store.schema import MIGRATIONS
from meshtalk.protocol import ConfigError, NodeKey, direct_conversation_id
from tests.conftest import NOW_MS, make_envelope
from tests.test_peer.helpers import fast_config

_counter = [0]


def deliver(store: Store, me: NodeKey | Any, author: NodeKey, text: str) -> int:
    """Store one message from `author` to `me`; its cursor."""
    _counter[0] += 1
    env = make_envelope(author, me, id=_counter[0].to_bytes(16, "big"), lamport=_counter[0],
                        body=text)  # fmt: skip
    [result] = store.messages.store_incoming([(env, b"")], me.peer_id, NOW_MS)
    assert isinstance(result, IncomingResult)
    assert result.cursor is not None
    return result.cursor


def unread_texts(store: Store, reader: str, conversation: bytes | None = None) -> list[Any]:
    return [m.body for m in store.readers.unread(reader, 100, conversation)]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.db")


def test_a_conversation_shown_is_read_and_others_stay_new(
    store: Store, alice: NodeKey, bob: NodeKey, carol: NodeKey
) -> None:
    deliver(store, bob, alice, "a1")
    deliver(store, bob, carol, "c1")
    deliver(store, bob, alice, "a2")
    with_alice = direct_conversation_id(alice.peer_id, bob.peer_id)
    shown = store.messages.latest(with_alice, 10)
    assert store.readers.displayed("cli", with_alice, shown)
    assert unread_texts(store, "cli") == ["c1"]
    assert unread_texts(store, "mcp") == ["a1", "c1", "a2"]  # each reader its own position
    deliver(store, bob, alice, "a3")
    assert unread_texts(store, "cli") == ["c1", "a3"]


def test_a_view_with_a_gap_marks_nothing(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    for text in ("a1", "a2", "a3"):
        deliver(store, bob, alice, text)
    with_alice = direct_conversation_id(alice.peer_id, bob.peer_id)
    assert not store.readers.displayed("cli", with_alice, store.messages.latest(with_alice, 2))
    assert unread_texts(store, "cli") == ["a1", "a2", "a3"]
    assert not store.readers.displayed("cli", None, store.messages.latest(None, 1))
    assert store.readers.displayed("cli", None, store.messages.latest(None, 3))
    assert unread_texts(store, "cli") == []
    assert store.readers.states()["cli"] == (3, {})  # the position caught up: no marks left


def test_the_old_cli_inbox_position_becomes_the_reader_cli(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in ";".join(MIGRATIONS[:2]).split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version=2")  # a store of the version before readers
    db.execute("INSERT INTO consumer_cursors (name, cursor) VALUES ('cli-inbox', 41)")
    db.close()
    store = Store(path)
    assert store.readers.position("cli") == 41
    assert "cli-inbox" not in store.readers.states()
    store.close()


async def test_the_ops_share_one_position_per_reader(
    tmp_path: Path, alice: NodeKey, carol: NodeKey
) -> None:
    async with open_node(tmp_path / "me", fast_config()) as node:
        ops = Operations(node, "me", lambda: None)
        node.add_contact(alice.peer_id, "alice")
        node.add_contact(carol.peer_id, "carol")
        me = node.key
        for author, text in ((alice, "a1"), (carol, "c1"), (alice, "a2")):
            deliver(node.store, me, author, text)
        shown = await ops.history({"conversation": "alice", "reader": "cli"}, _no_emit)
        assert [m["text"] for m in shown] == ["a1", "a2"]
        assert [m["text"] for m in await ops.inbox({}, _no_emit)] == ["c1"]  # default "cli"
        assert await ops.inbox({"reader": "cli"}, _no_emit) == []
        # An agent reading one conversation consumes that conversation only.
        got = await ops.receive({"consumer": "agent", "conversation": "carol"}, _no_emit)
        assert [m["text"] for m in got["messages"]] == ["c1"]
        got = await ops.receive({"consumer": "agent"}, _no_emit)
        assert [m["text"] for m in got["messages"]] == ["a1", "a2"]
        got = await ops.receive({"consumer": "agent"}, _no_emit)
        assert got["messages"] == []
        # history without a reader (a watcher, a script) marks nothing
        deliver(node.store, me, alice, "a3")
        await ops.history({"conversation": "alice"}, _no_emit)
        assert [m["text"] for m in await ops.inbox({"peek": True}, _no_emit)] == ["a3"]
        with pytest.raises(ConfigError, match="reader"):
            await ops.inbox({"reader": ""}, _no_emit)


async def test_follow_marks_what_it_emitted(tmp_path: Path, alice: NodeKey) -> None:
    async with open_node(tmp_path / "me", fast_config()) as node:
        ops = Operations(node, "me", lambda: None)
        node.add_contact(alice.peer_id, "alice")
        seen: list[str] = []

        async def emit(event: dict[str, Any]) -> None:
            seen.append(event["message"]["text"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ops.follow, {"conversation": "alice", "after": 0, "reader": "cli"},
                               emit)  # fmt: skip
            deliver(node.store, node.key, alice, "while chatting")
            with trio.fail_after(5):
                while not seen:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        assert seen == ["while chatting"]
        assert await ops.inbox({}, _no_emit) == []


async def test_prune_op_checks_its_arguments(tmp_path: Path) -> None:
    async with open_node(tmp_path / "me", fast_config()) as node:
        ops = Operations(node, "me", lambda: None)
        for bad in (-1, float("nan"), float("inf"), 10**30):  # NaN and inf overflowed before
            with pytest.raises(ConfigError, match="older_than_days"):
                await ops.prune({"older_than_days": bad}, _no_emit)
            with pytest.raises(ConfigError, match="max_mib"):
                await ops.prune({"max_mib": bad}, _no_emit)
        for op in (ops.inbox, ops.history, ops.receive):  # LIMIT -1 meant no limit at all
            for limit in (-1, 0, 10**6):
                with pytest.raises(ConfigError, match="'limit'"):
                    await op({"limit": limit}, _no_emit)
        nothing = await ops.prune({}, _no_emit)  # no limit given, none configured
        assert nothing["rule"] is None
        assert nothing["deleted"] == 0


async def _no_emit(event: dict[str, Any]) -> None:
    raise AssertionError(f"unexpected event {event}")
