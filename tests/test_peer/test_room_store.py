"""The rooms of a store on real SQLite files: durability, atomic log writes, bounds, lookups."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from meshtalk.peer.admission import moved_conversation_id
from meshtalk.peer.models import Trust
from meshtalk.peer.store import RoomStore, Store
from meshtalk.peer.store import rooms as rooms_module
from meshtalk.peer.store.schema import MIGRATIONS, SCHEMA_VERSION
from meshtalk.protocol import NodeKey, StoreError
from meshtalk.protocol.room_errors import InvalidRoomEntry, RoomError, UnknownRoom
from meshtalk.protocol.room_state import MAX_LOG_ENTRIES, RoomLog
from meshtalk.protocol.rooms import (
    RoomOp,
    add_entry,
    create_entry,
    entry_hash,
    member_entry,
    rename_entry,
)
from tests.conftest import NOW_MS, fixed_key, make_envelope

pytestmark = pytest.mark.timeout(60)

ALICE, BOB, CAROL, DAVE = (fixed_key(n) for n in ("alice", "bob", "carol", "dave"))
ADDRS = ("/ip4/127.0.0.1/tcp/4001",)
_seeds = iter(range(10**9))


def fresh() -> Callable[[int], bytes]:
    """A random source unique to each call, so no two entries share an id by accident."""
    return random.Random(next(_seeds)).randbytes


def new_create(name: str = "team", key: NodeKey = ALICE) -> bytes:
    return create_entry(key, name, NOW_MS, fresh())


def add(key: NodeKey, room: bytes, who: NodeKey, lamport: int) -> bytes:
    return add_entry(key, room, who.peer_id, "", ADDRS, lamport, NOW_MS, fresh())


def change(key: NodeKey, op: RoomOp, room: bytes, who: NodeKey, lamport: int) -> bytes:
    return member_entry(key, op, room, who.peer_id, lamport, NOW_MS, fresh())


def rename(key: NodeKey, room: bytes, name: str, lamport: int) -> bytes:
    return rename_entry(key, room, name, lamport, NOW_MS, fresh())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(path: Path) -> Store:
    return Store(path)


def entry_rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM room_entries").fetchone()[0])
    finally:
        db.close()


def test_a_room_survives_reopening(path: Path, store: Store) -> None:
    room = store.rooms.create(new_create("team"), NOW_MS)
    assert (
        store.rooms.add_entries(room, [add(ALICE, room, BOB, 1), add(ALICE, room, CAROL, 2)]) == 2
    )
    assert store.rooms.add_entries(room, [rename(ALICE, room, "ops", 3)]) == 1
    assert store.rooms.bump_lamport(room) == 4
    before = store.rooms.log(room)
    store.close()

    again = Store(path)
    log = again.rooms.log(room)
    assert log is not before  # rebuilt from the rows, not the old object
    assert log.entries() == before.entries()
    assert log.digest() == before.digest()
    state = again.rooms.state(room)
    assert state.name == "ops"
    assert set(state.members) == {ALICE.peer_id, BOB.peer_id, CAROL.peer_id}
    assert state.admins == {ALICE.peer_id}
    [summary] = again.rooms.rooms()
    assert (summary.id, summary.name, summary.members, summary.left) == (room, "ops", 3, False)
    assert (summary.created_ms, summary.joined_ms, summary.lamport) == (NOW_MS, NOW_MS, 4)
    assert again.rooms.bump_lamport(room) == 5  # the clock was persisted
    [conversation] = again.messages.conversations()
    assert (conversation.id, conversation.kind, conversation.name) == (room, "group", "ops")
    assert set(conversation.members) == set(state.members)


def test_create_is_idempotent_and_joins_a_left_room_again(store: Store) -> None:
    data = new_create()
    room = store.rooms.create(data, NOW_MS)
    assert room == entry_hash(data)
    assert store.rooms.create(data, NOW_MS + 5) == room
    assert store.rooms.summary(room).joined_ms == NOW_MS  # held already: unchanged
    store.rooms.leave(room, NOW_MS + 10)
    store.rooms.leave(room, NOW_MS + 20)  # leaving again keeps the first time
    assert store.rooms.summary(room).left_ms == NOW_MS + 10
    assert store.rooms.rooms()[0].left
    assert store.rooms.create(data, NOW_MS + 30) == room
    summary = store.rooms.summary(room)
    assert (summary.left_ms, summary.joined_ms) == (None, NOW_MS + 30)
    assert len(store.rooms.log(room)) == 1


def test_create_refuses_anything_but_a_create_entry(store: Store) -> None:
    room = entry_hash(new_create())
    with pytest.raises(InvalidRoomEntry, match="starts with a create entry"):
        store.rooms.create(add(ALICE, room, BOB, 1), NOW_MS)
    with pytest.raises(InvalidRoomEntry):
        store.rooms.create(b"\x92\xc4\x01x\xc4\x01y", NOW_MS)
    assert store.rooms.rooms() == []
    assert store.messages.conversations() == []


def test_invalid_entries_are_refused_atomically(path: Path, store: Store) -> None:
    room = store.rooms.create(new_create(), NOW_MS)
    other = store.rooms.create(new_create("other"), NOW_MS)
    good = add(ALICE, room, BOB, 1)
    tampered = bytearray(add(ALICE, room, CAROL, 2))
    tampered[-1] ^= 1  # the signature's last byte
    with pytest.raises(InvalidRoomEntry, match="signature does not verify"):
        store.rooms.add_entries(room, [good, bytes(tampered)])
    with pytest.raises(InvalidRoomEntry, match="not " + room.hex()):
        store.rooms.add_entries(room, [good, add(ALICE, other, CAROL, 1)])
    with pytest.raises(InvalidRoomEntry, match="must be bytes"):
        store.rooms.add_entries(room, [good, "text"])  # type: ignore[list-item]
    assert entry_rows(path) == 2  # the two creates, nothing of the refused batches
    assert len(store.rooms.log(room)) == 1  # nor in the cached log
    assert set(store.rooms.state(room).members) == {ALICE.peer_id}
    store.close()
    again = Store(path)
    assert len(again.rooms.log(room)) == 1
    assert again.rooms.add_entries(room, [good, good]) == 1  # the same entry twice: one new
    assert again.rooms.add_entries(room, [good]) == 0


def test_a_failed_commit_leaves_no_entry_in_the_cached_log(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = store.rooms.create(new_create(), NOW_MS)
    store.rooms.log(room)  # cached

    def disk_full(*args: object) -> None:
        raise StoreError("the store failed: database or disk is full (nothing was changed)")

    monkeypatch.setattr(rooms_module, "_write_state", disk_full)
    with pytest.raises(StoreError, match="disk is full"):
        store.rooms.add_entries(room, [add(ALICE, room, BOB, 1)])
    monkeypatch.undo()
    assert len(store.rooms.log(room)) == 1
    assert not store.rooms.state(room).is_member(BOB.peer_id)


def test_a_full_log_refuses_more_and_keeps_what_it_had(path: Path, store: Store) -> None:
    room = store.rooms.create(new_create(), NOW_MS)
    names = [rename(ALICE, room, f"name {n}", n) for n in range(1, MAX_LOG_ENTRIES)]
    assert store.rooms.add_entries(room, names) == MAX_LOG_ENTRIES - 1
    with pytest.raises(RoomError, match=f"holds {MAX_LOG_ENTRIES} log entries"):
        store.rooms.add_entries(room, [add(ALICE, room, BOB, MAX_LOG_ENTRIES)])
    with pytest.raises(RoomError, match="at most"):
        store.rooms.add_entries(room, [names[0]] * (MAX_LOG_ENTRIES + 1))
    assert store.rooms.add_entries(room, names[:10]) == 0  # held ones are still fine
    store.close()
    again = Store(path)
    assert len(again.rooms.log(room)) == MAX_LOG_ENTRIES
    assert again.rooms.state(room).name == f"name {MAX_LOG_ENTRIES - 1}"
    assert again.rooms.summary(room).lamport == MAX_LOG_ENTRIES - 1


def concurrent_changes() -> tuple[bytes, bytes, list[bytes]]:
    """A room where two admins change membership at the same Lamport counters."""
    create = new_create()
    room = entry_hash(create)
    setup = [
        add(ALICE, room, BOB, 1),
        add(ALICE, room, CAROL, 2),
        change(ALICE, RoomOp.PROMOTE, room, BOB, 3),
    ]
    races = [
        change(ALICE, RoomOp.REMOVE, room, CAROL, 4),  # alice removes carol ...
        add(BOB, room, DAVE, 4),  # ... while bob adds dave
        rename(ALICE, room, "alice's", 5),
        rename(BOB, room, "bob's", 5),
        change(BOB, RoomOp.REMOVE, room, ALICE, 6),  # each removes the other
        change(ALICE, RoomOp.REMOVE, room, BOB, 6),
        add(BOB, room, CAROL, 6),
    ]
    return create, room, setup + races


def test_two_admins_concurrent_entries_converge_after_reopening(tmp_path: Path) -> None:
    create, room, entries = concurrent_changes()
    expected = RoomLog.from_create(create)
    for data in entries:
        expected.add(data)
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    a, b = Store(first), Store(second)
    a.rooms.create(create, NOW_MS)
    b.rooms.create(create, NOW_MS)
    assert a.rooms.add_entries(room, entries) == len(entries)  # one batch, in order
    for data in reversed(entries):  # one at a time, backwards, some twice
        b.rooms.add_entries(room, [data, entries[0]])
    a.close()
    b.close()
    a, b = Store(first), Store(second)
    assert a.rooms.state(room) == b.rooms.state(room) == expected.state()
    assert a.rooms.log(room).digest() == b.rooms.log(room).digest()
    state = a.rooms.state(room)
    assert a.rooms.summary(room).members == len(state.members)
    assert set(a.messages.members(room)) == set(state.members)
    assert a.rooms.summary(room).name == state.name
    assert a.rooms.bump_lamport(room) == state.lamport + 1


def test_members_follow_the_log_in_the_conversation(store: Store) -> None:
    room = store.rooms.create(new_create(), NOW_MS)
    store.rooms.add_entries(room, [add(ALICE, room, BOB, 1), add(ALICE, room, CAROL, 2)])
    assert set(store.messages.members(room)) == {ALICE.peer_id, BOB.peer_id, CAROL.peer_id}
    store.rooms.add_entries(room, [change(ALICE, RoomOp.REMOVE, room, BOB, 3)])
    assert set(store.messages.members(room)) == {ALICE.peer_id, CAROL.peer_id}
    assert store.rooms.summary(room).members == 2


def test_one_lamport_clock_for_entries_and_messages(store: Store) -> None:
    room = store.rooms.create(new_create(), NOW_MS)
    assert store.rooms.bump_lamport(room) == 1
    assert store.rooms.bump_lamport(room, seen=10) == 11
    assert store.messages.conversations(room)[0].lamport == 11
    store.rooms.add_entries(room, [add(ALICE, room, BOB, 20)])  # a newer entry moves it
    assert store.rooms.summary(room).lamport == 20
    store.rooms.add_entries(room, [add(BOB, room, CAROL, 30)])  # skipped: not an admin
    assert store.rooms.summary(room).lamport == 20

    def build(lamport: int) -> tuple[object, dict[object, bytes]]:
        env = make_envelope(ALICE, BOB, conversation=room, lamport=lamport, id=b"m" * 16)
        return env, {}

    [(envelope, _)] = store.messages.queue_outgoing_many(  # type: ignore[misc]
        [(room, "group", (ALICE.peer_id, BOB.peer_id), build)], NOW_MS
    )
    assert envelope.lamport == 21
    assert store.rooms.bump_lamport(room) == 22  # past the message too
    with pytest.raises(RoomError, match="integer from 0"):
        store.rooms.bump_lamport(room, seen=-1)


def test_find_by_id_name_and_prefix(store: Store) -> None:
    team = store.rooms.create(new_create("Team"), NOW_MS)
    ops = store.rooms.create(new_create("ops"), NOW_MS)
    assert store.rooms.find(team.hex()) == team
    assert store.rooms.find(ops.hex().upper()) == ops
    assert store.rooms.find("Team") == team
    assert store.rooms.find("team") == team  # no exact match: ignoring case
    assert store.rooms.find(ops.hex()[:8]) == ops
    assert store.rooms.find(f" {ops.hex()[:8]} ") == ops
    with pytest.raises(UnknownRoom):
        store.rooms.find(ops.hex()[:3])  # too short to be taken as a prefix


def test_find_prefers_rooms_this_node_is_in_and_refuses_ambiguity(store: Store) -> None:
    old = store.rooms.create(new_create("team"), NOW_MS)
    store.rooms.leave(old, NOW_MS)
    new = store.rooms.create(new_create("team"), NOW_MS)
    assert store.rooms.find("team") == new
    store.rooms.leave(new, NOW_MS)
    with pytest.raises(RoomError, match="matches several rooms") as caught:
        store.rooms.find("team")
    assert not isinstance(caught.value, UnknownRoom)
    assert old.hex()[:8] in str(caught.value)
    assert new.hex()[:8] in str(caught.value)


def test_unknown_rooms_say_what_is_held(store: Store) -> None:
    with pytest.raises(UnknownRoom, match="this node holds no rooms"):
        store.rooms.find("team")
    room = store.rooms.create(new_create("team"), NOW_MS)
    with pytest.raises(UnknownRoom) as caught:
        store.rooms.find("x" * 1000)
    message = str(caught.value)
    assert f"team ({room.hex()[:8]})" in message
    assert len(message) < 200  # the query is cut short
    missing = bytes(16)
    for call in (
        lambda: store.rooms.log(missing),
        lambda: store.rooms.state(missing),
        lambda: store.rooms.summary(missing),
        lambda: store.rooms.leave(missing, NOW_MS),
        lambda: store.rooms.bump_lamport(missing),
        lambda: store.rooms.add_entries(missing, []),
    ):
        with pytest.raises(UnknownRoom, match=f"no room {missing.hex()} is held here"):
            call()


def test_rooms_per_node_are_capped(store: Store) -> None:
    rooms = RoomStore(store.db, max_rooms=2)
    first = rooms.create(new_create("one"), NOW_MS)
    rooms.create(new_create("two"), NOW_MS)
    rooms.leave(first, NOW_MS)
    with pytest.raises(RoomError, match=r"holds 2 rooms, the most it keeps \(2\)"):
        rooms.create(new_create("three"), NOW_MS)
    assert [r.name for r in rooms.rooms()] == ["two", "one"]  # joined first, then left
    assert store.messages.conversations(entry_hash(new_create("three"))) == []


def test_the_cache_of_logs_is_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rooms_module, "CACHE_ENTRIES", 4)
    rooms = [store.rooms.create(new_create(f"r{n}"), NOW_MS) for n in range(3)]
    big = rooms[0]
    store.rooms.add_entries(big, [rename(ALICE, big, f"n{n}", n) for n in range(1, 6)])
    assert list(store.rooms._cache) == [big]  # over the budget alone: only the latest stays
    assert store.rooms.state(rooms[1]).name == "r1"  # rebuilt from its rows
    assert store.rooms.state(big).name == "n5"


def test_a_damaged_entry_row_is_a_store_error(path: Path, store: Store) -> None:
    room = store.rooms.create(new_create(), NOW_MS)
    store.rooms.add_entries(room, [add(ALICE, room, BOB, 1)])
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE room_entries SET data = ? WHERE lamport = 1", (b"garbage",))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=f"stored log of room {room.hex()} is damaged"):
        Store(path).rooms.log(room)


def test_a_conversation_squatting_on_the_room_id_moves_away(store: Store) -> None:
    data = new_create()
    room = entry_hash(data)
    store.contacts.upsert(CAROL.peer_id, None, (), Trust.TRUSTED, NOW_MS)
    squat = make_envelope(CAROL, ALICE, conversation=room)
    store.messages.store_incoming([(squat, b"")], ALICE.peer_id, NOW_MS)
    assert store.rooms.create(data, NOW_MS) == room
    moved = moved_conversation_id(room)
    assert [m.author for m in store.messages.history(moved, 0, 10)] == [CAROL.peer_id]
    assert store.messages.history(room, 0, 10) == []
    [conversation] = store.messages.conversations(room)
    assert (conversation.kind, conversation.name, conversation.members) == (
        "group",
        "team",
        (ALICE.peer_id,),
    )


def test_a_version_3_store_gets_rooms_and_signed_envelopes(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for statement in ";".join(MIGRATIONS[:3]).split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version=3")  # a store of the version before rooms
    db.execute("INSERT INTO settings (key, value) VALUES ('kept', 'yes')")
    db.close()
    store = Store(path)
    envelope = make_envelope(ALICE, BOB)
    store.messages.store_incoming([(envelope, b"sealed")], BOB.peer_id, NOW_MS)
    assert store.db.one("PRAGMA user_version")[0] == SCHEMA_VERSION == 6
    indexes = {row[1] for row in store.db.all("PRAGMA index_list(messages)")}
    assert "messages_in_order" in indexes  # version 6: transcripts a page at a time
    assert store.db.get_setting("kept") == "yes"
    assert store.db.one("SELECT signed FROM messages") == (None,)
    room = store.rooms.create(new_create(), NOW_MS)
    assert store.rooms.find("team") == room


def test_latest_shows_a_room_in_its_total_order_whatever_the_arrival(path: Path) -> None:
    store = Store(path, me=ALICE.peer_id)
    room = store.rooms.create(new_create(), NOW_MS)
    store.rooms.add_entries(room, [add(ALICE, room, BOB, 1), add(ALICE, room, CAROL, 2)])
    arrivals = [(CAROL, 10, b"c" * 16), (BOB, 5, b"b" * 16), (BOB, 10, b"a" * 16)]
    for author, lamport, message_id in arrivals:  # catch-up brings older ones later
        envelope = make_envelope(author, ALICE, conversation=room, lamport=lamport, id=message_id)
        [result] = store.messages.store_incoming([(envelope, b"")], author.peer_id, NOW_MS)
        assert not result.duplicate
    by_arrival = [(m.author, m.lamport) for m in store.messages.history(room, 0, 10)]
    assert by_arrival == [(CAROL.peer_id, 10), (BOB.peer_id, 5), (BOB.peer_id, 10)]
    tie = sorted([BOB.peer_id, CAROL.peer_id], key=lambda p: p.to_bytes())
    expected = [(BOB.peer_id, 5), *((peer, 10) for peer in tie)]
    assert [(m.author, m.lamport) for m in store.messages.latest(room, 10)] == expected
    assert [(m.author, m.lamport) for m in store.messages.latest(room, 2)] == expected[1:]
