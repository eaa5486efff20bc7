"""The SQLite store on real files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from meshtalk.peer.models import Contact, Direction, MessageStatus, Trust
from meshtalk.peer.store import IncomingResult, Store
from meshtalk.peer.store.rows import PAGE_BYTES
from meshtalk.peer.store.schema import SCHEMA_VERSION
from meshtalk.protocol import (
    ConfigError,
    ConversationMismatch,
    Envelope,
    NodeKey,
    StoreError,
    direct_conversation_id,
    seal,
)
from tests.conftest import NOW_MS, fixed_key, make_envelope


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.db")


def outgoing(store: Store, author: NodeKey, *to: NodeKey, body: str = "hi") -> tuple[Envelope, int]:
    conversation = direct_conversation_id(author.peer_id, to[0].peer_id)
    members = (author.peer_id, to[0].peer_id)

    def build(lamport: int) -> tuple[Envelope, dict]:
        env = make_envelope(author, *to, body=body, lamport=lamport, id=bytes([lamport]) * 16)
        return env, {r.peer_id: seal(env, author, r.peer_id) for r in to}

    [result] = store.messages.queue_outgoing_many(
        [(conversation, "direct", members, build)], NOW_MS
    )
    assert isinstance(result, tuple), result
    return result


def named(store: Store, name: str) -> Contact | None:
    return next((c for c in store.contacts.all() if c.name == name), None)


def test_schema_is_versioned_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store(path).close()
    Store(path).close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="upgrade meshtalk"):
        Store(path)


def test_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store(path)


def test_contacts(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    store.contacts.upsert(bob.peer_id, "bob", ["/ip4/127.0.0.1/tcp/1"], Trust.TRUSTED, NOW_MS)
    store.contacts.upsert(bob.peer_id, None, ["/ip4/127.0.0.1/tcp/2"], Trust.TRUSTED, NOW_MS)
    contact = named(store, "bob")
    assert contact is not None
    assert contact.peer_id == bob.peer_id
    assert contact.addresses == ("/ip4/127.0.0.1/tcp/2", "/ip4/127.0.0.1/tcp/1")
    with pytest.raises(ConfigError, match="already belongs"):
        store.contacts.upsert(alice.peer_id, "bob", [], Trust.TRUSTED, NOW_MS)
    store.contacts.upsert(bob.peer_id, "robert", [], Trust.BLOCKED, NOW_MS)
    assert named(store, "bob") is None
    assert store.contacts.get(bob.peer_id).trust is Trust.BLOCKED  # type: ignore[union-attr]
    assert store.contacts.remove(bob.peer_id)
    assert not store.contacts.remove(bob.peer_id)
    assert store.contacts.all() == []


def test_outgoing_lifecycle(store: Store, alice: NodeKey, bob: NodeKey, carol: NodeKey) -> None:
    env, cursor = outgoing(store, alice, bob, carol)
    assert env.lamport == 1
    [pending] = store.outbox.pending(bob.peer_id, 0, 10)
    assert pending.message_id == env.id
    assert store.outbox.size() == 2
    store.outbox.mark_sent(bob.peer_id, [cursor])
    assert store.messages.history(env.conversation, 0, 10)[0].status is MessageStatus.SENT
    assert store.outbox.acknowledge(bob.peer_id, [env.id]) == []  # carol has not acked yet
    assert store.outbox.acknowledge(bob.peer_id, [env.id]) == []  # duplicate ack: harmless
    assert store.outbox.acknowledge(carol.peer_id, [env.id]) == [env.id]
    [message] = store.messages.history(env.conversation, 0, 10)
    assert message.status is MessageStatus.DELIVERED
    assert message.direction is Direction.OUT
    assert store.outbox.size() == 0
    env2, _ = outgoing(store, alice, bob)
    assert env2.lamport == 2


def test_failure_stops_retries(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    env, _ = outgoing(store, alice, bob)
    assert store.outbox.fail(bob.peer_id, env.id, "NotAuthorized: go away")
    assert store.outbox.pending(bob.peer_id, 0, 10) == []
    [message] = store.messages.history(env.conversation, 0, 10)
    assert message.status is MessageStatus.FAILED
    assert "go away" in (message.error or "")


def test_statuses_of_many_messages_in_one_call(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    first, _ = outgoing(store, alice, bob)
    second, _ = outgoing(store, alice, bob)
    store.outbox.fail(bob.peer_id, second.id, "NotAuthorized: go away")
    unknown = bytes(16)
    ids = [
        first.id,
        second.id,
        unknown,
        *(bytes([7, n % 256, n // 256]) * 5 + b"x" for n in range(600)),
    ]
    found = store.messages.statuses(alice.peer_id, ids)  # more than one query's worth of ids
    assert found.keys() == {first.id, second.id}
    assert found[first.id] == ("queued", None)
    assert found[second.id][0] == "failed"
    assert "go away" in (found[second.id][1] or "")
    assert store.messages.statuses(bob.peer_id, [first.id]) == {}  # by author


def test_build_failure_rolls_back(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)

    def build(lamport: int) -> None:
        raise ValueError("sealing failed")

    item = (conversation, "direct", (alice.peer_id,), build)
    [failed] = store.messages.queue_outgoing_many([item], NOW_MS)
    assert isinstance(failed, ValueError)
    assert "sealing failed" in str(failed)
    assert store.messages.conversations() == []
    assert store.outbox.size() == 0


def test_incoming_dedup_and_conversations(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    env = make_envelope(alice, bob, lamport=5)
    sealed = seal(env, alice, bob.peer_id)
    [first] = store.messages.store_incoming([(env, sealed)], bob.peer_id, NOW_MS)
    [again] = store.messages.store_incoming([(env, sealed)], bob.peer_id, NOW_MS)
    assert isinstance(first, IncomingResult)
    assert isinstance(again, IncomingResult)
    assert not first.duplicate
    assert again.duplicate
    assert again.cursor == first.cursor
    [conversation] = store.messages.conversations()
    assert conversation.kind == "direct"
    assert conversation.lamport == 5
    assert set(conversation.members) == {alice.peer_id, bob.peer_id}
    [message] = store.messages.incoming(0, 10)
    assert message.body == "hello"
    assert message.author == alice.peer_id


def test_pages_are_cut_by_stored_bytes(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    big = PAGE_BYTES // 3 - 1000  # three fit in a page (with their metadata), four do not
    for n in range(6):
        env = make_envelope(alice, bob, id=bytes([n]) * 16, lamport=n + 1, body=f"{n}" * big)
        store.messages.store_incoming([(env, b"")], bob.peer_id, NOW_MS)
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
    pages = {
        "incoming": store.messages.incoming(0, 1000),
        "history": store.messages.history(conversation, 0, 1000),
        "all": store.messages.all_messages(0, 1000),
        "unread": store.readers.unread("cli", 1000),
    }
    for name, page in pages.items():
        assert [m.body[0] for m in page] == ["0", "1", "2"], name
    newest = store.messages.latest(conversation, 1000)
    assert [m.body[0] for m in newest] == ["3", "4", "5"]  # the newest that fit, oldest first
    rest = store.messages.incoming(pages["incoming"][-1].cursor, 1000)
    assert [m.body[0] for m in rest] == ["3", "4", "5"]
    assert len(store.messages.incoming(0, 2)) == 2  # the count still cuts first


def test_a_page_holds_its_first_message_whatever_its_size(
    store: Store, alice: NodeKey, bob: NodeKey
) -> None:
    env = make_envelope(alice, bob, body="x" * (PAGE_BYTES + 10))
    store.messages.store_incoming([(env, b"")], bob.peer_id, NOW_MS)
    [message] = store.messages.incoming(0, 10)  # not an empty page a reader would stop at
    assert len(message.body) == PAGE_BYTES + 10
    store.contacts.upsert(bob.peer_id, "bob", (), Trust.TRUSTED, NOW_MS)  # a write after


def test_group_membership_is_enforced(store: Store, alice: NodeKey, bob: NodeKey) -> None:
    mallory = fixed_key("mallory")
    group = b"g" * 16
    for key in (alice, mallory):
        store.contacts.upsert(key.peer_id, None, (), Trust.TRUSTED, NOW_MS)
    env = make_envelope(alice, bob, conversation=group)
    store.messages.store_incoming([(env, b"")], bob.peer_id, NOW_MS)
    intruder = make_envelope(mallory, bob, conversation=group, id=b"m" * 16)
    [result] = store.messages.store_incoming([(intruder, b"")], bob.peer_id, NOW_MS)
    assert isinstance(result, ConversationMismatch)
    assert "not a member" in str(result)
    assert result.message_id == b"m" * 16


def test_consumer_cursors_only_move_forward(store: Store) -> None:
    assert store.messages.consumer_cursor("agent") == 0
    store.messages.set_consumer_cursor("agent", 7)
    store.messages.set_consumer_cursor("agent", 3)
    assert store.messages.consumer_cursor("agent") == 7


def test_group_commit_isolates_a_failing_message(
    store: Store, alice: NodeKey, bob: NodeKey
) -> None:
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
    members = (alice.peer_id, bob.peer_id)

    def good(n: int) -> object:
        def build(lamport: int) -> tuple[Envelope, dict]:
            env = make_envelope(alice, bob, body=f"m{n}", lamport=lamport, id=bytes([n]) * 16)
            return env, {bob.peer_id: seal(env, alice, bob.peer_id)}

        return build

    def bad(lamport: int) -> None:
        raise ValueError("too large")

    items = [(conversation, "direct", members, b) for b in (good(1), bad, good(2))]
    first, failed, second = store.messages.queue_outgoing_many(items, NOW_MS)
    assert isinstance(failed, ValueError)
    assert isinstance(first, tuple)
    assert isinstance(second, tuple)
    assert [m.lamport for m in store.messages.history(conversation, 0, 10)] == [1, 2]
    assert [m.body for m in store.messages.history(conversation, 0, 10)] == ["m1", "m2"]
    assert len(store.outbox.pending(bob.peer_id, 0, 10)) == 2
    assert store.messages.conversations()[0].lamport == 2


def test_refusals_keep_only_the_most_recent_peers(store: Store) -> None:
    store.contacts.max_refusals = 5
    strangers = [fixed_key(f"stranger{i}").peer_id for i in range(20)]
    for when, peer in enumerate(strangers):
        store.contacts.record_refusal(peer, "NotAuthorized: " + "x" * 5000, NOW_MS + when)
    store.contacts.record_refusal(strangers[-1], "again", NOW_MS + 99)
    refusals = store.contacts.refusals()
    assert set(refusals) == set(strangers[-5:])
    assert refusals[strangers[-1]] == 2
    [text] = store.db.one("SELECT max(length(last_error)) FROM refusals")
    assert text <= 1_000


def test_an_acked_room_control_row_that_is_newest_stays_so_the_next_cursor_moves_on(
    store: Store,
) -> None:
    """Control rows (room-sync, room-log) are deleted once acked, but never the newest
    message row: SQLite would give its rowid, the cursor, to the next message, which would
    then sit behind the link's write cursor and never be sent (found in stop 27)."""
    alice, bob = fixed_key("alice"), fixed_key("bob")
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)

    def queue(kind: str, n: int) -> int:
        def build(lamport: int) -> tuple[Envelope, dict]:
            env = make_envelope(alice, bob, kind=kind, lamport=lamport, id=bytes([n]) * 16)
            return env, {bob.peer_id: seal(env, alice, bob.peer_id)}

        [result] = store.messages.queue_outgoing_many(
            [(conversation, "direct", (alice.peer_id, bob.peer_id), build)], NOW_MS
        )
        assert isinstance(result, tuple), result
        return result[1]

    queue("room-sync", 1)
    newest = queue("room-sync", 2)
    store.outbox.acknowledge(bob.peer_id, [bytes([1]) * 16, bytes([2]) * 16])
    kept = [row[0] for row in store.db.all("SELECT cursor FROM messages")]
    assert kept == [newest]  # an acked control row goes, but not the newest:
    written = newest  # a link has written up to it
    following = queue("text", 3)
    assert following > written
    [pending] = store.outbox.pending(bob.peer_id, written, 10)
    assert (pending.cursor, pending.message_id) == (following, bytes([3]) * 16)
