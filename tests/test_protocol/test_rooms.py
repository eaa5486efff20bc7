"""Room membership log: entries (format, signature, bounds) and the state replayed from them."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshtalk.protocol import MAX_LAMPORT, NodeKey, PeerId, packb
from meshtalk.protocol.room_errors import InvalidRoomEntry, RoomError
from meshtalk.protocol.room_state import (
    _HANDLERS,
    MAX_LOG_ENTRIES,
    MAX_MEMBERS,
    Interval,
    RoomLog,
    RoomState,
)
from meshtalk.protocol.rooms import (
    ENTRY_CONTEXT,
    MAX_ENTRY_SIZE,
    NO_ROOM,
    MembershipEntry,
    RoomOp,
    add_entry,
    create_entry,
    entry_hash,
    member_entry,
    parse_entry,
    rename_entry,
    sign_entry,
)
from tests.conftest import NOW_MS, fixed_key
from tests.test_protocol.test_boundary import FORBIDDEN, loaded_modules

pytestmark = pytest.mark.timeout(60)

ALICE, BOB, CAROL, DAVE, ERIN = (fixed_key(n) for n in ("alice", "bob", "carol", "dave", "erin"))
ADDRS = ("/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001")


def rng(seed: int = 1) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


_counter = iter(range(10**9))


def fresh() -> Callable[[int], bytes]:
    """A random source unique to each call, so no two entries share an id by accident."""
    return rng(next(_counter))


def new_room(name: str = "team") -> tuple[bytes, RoomLog]:
    data = create_entry(ALICE, name, NOW_MS, rng(0))
    return data, RoomLog.from_create(data)


def add(key: NodeKey, room: bytes, who: NodeKey, lamport: int, name: str = "") -> bytes:
    return add_entry(key, room, who.peer_id, name, ADDRS, lamport, NOW_MS, fresh())


def change(key: NodeKey, op: RoomOp, room: bytes, who: NodeKey, lamport: int) -> bytes:
    return member_entry(key, op, room, who.peer_id, lamport, NOW_MS, fresh())


def sign_raw(key: NodeKey, body: dict[str, Any]) -> bytes:
    """Sign an arbitrary body correctly, so only its values can be wrong."""
    packed = packb(body)
    return packb([packed, key.sign(ENTRY_CONTEXT + packed)])


def body_of(data: bytes) -> dict[str, Any]:
    body, _ = msgpack.unpackb(data)
    result: dict[str, Any] = msgpack.unpackb(body)
    return result


def members(state: RoomState) -> set[PeerId]:
    return set(state.members)


# --- entries ------------------------------------------------------------------------------


def test_create_round_trip_and_room_id() -> None:
    data, log = new_room("ops room")
    signed = parse_entry(data)
    assert signed.data == data
    assert signed.hash == entry_hash(data) == signed.room == log.room
    entry = signed.entry
    assert (entry.op, entry.name, entry.signer, entry.lamport) == (
        RoomOp.CREATE,
        "ops room",
        ALICE.peer_id,
        0,
    )
    assert entry.room == NO_ROOM
    assert "r" not in body_of(data)
    state = log.state()
    assert state.name == "ops room"
    assert state.creator == ALICE.peer_id
    assert state.admins == {ALICE.peer_id}
    assert state.was_member(ALICE.peer_id, 1)


def test_two_creates_make_two_rooms() -> None:
    assert new_room()[1].room != RoomLog.from_create(create_entry(ALICE, "team", NOW_MS)).room


def test_add_round_trip() -> None:
    _, log = new_room()
    data = add(ALICE, log.room, BOB, 1, name="Bob the agent")
    entry = parse_entry(data).entry
    assert entry == MembershipEntry(
        room=log.room,
        id=entry.id,
        signer=ALICE.peer_id,
        lamport=1,
        timestamp_ms=NOW_MS,
        op=RoomOp.ADD,
        member=BOB.peer_id,
        name="Bob the agent",
        addresses=ADDRS,
    )
    assert log.add(data)
    bob = log.state().members[BOB.peer_id]
    assert (bob.name, bob.addresses, bob.admin, bob.added_lamport) == (
        "Bob the agent",
        ADDRS,
        False,
        1,
    )


def test_signature_by_another_key_is_refused() -> None:
    _, log = new_room()
    body, _ = msgpack.unpackb(add(ALICE, log.room, BOB, 1))
    forged = packb([body, BOB.sign(ENTRY_CONTEXT + body)])
    with pytest.raises(InvalidRoomEntry, match="signature does not verify"):
        parse_entry(forged)


def test_signature_without_the_context_is_refused() -> None:
    _, log = new_room()
    body, _ = msgpack.unpackb(add(ALICE, log.room, BOB, 1))
    with pytest.raises(InvalidRoomEntry, match="signature"):
        parse_entry(packb([body, ALICE.sign(body)]))


def test_every_single_byte_tamper_is_refused() -> None:
    _, log = new_room()
    data = add(ALICE, log.room, BOB, 1, name="bob")
    for position in range(len(data)):
        for flip in (0x01, 0x80):
            tampered = bytearray(data)
            tampered[position] ^= flip
            with pytest.raises(InvalidRoomEntry):
                parse_entry(bytes(tampered))


def test_every_truncation_is_refused() -> None:
    data = create_entry(ALICE, "team", NOW_MS, rng())
    for length in range(len(data)):
        with pytest.raises(InvalidRoomEntry):
            parse_entry(data[:length])


def test_oversize_is_refused_before_decoding() -> None:
    huge = packb([b"x" * MAX_ENTRY_SIZE, b"s" * 64])
    with pytest.raises(InvalidRoomEntry, match=f"limit is {MAX_ENTRY_SIZE}"):
        parse_entry(huge)
    with pytest.raises(InvalidRoomEntry, match="limit"):
        parse_entry(b"\xc1" * (MAX_ENTRY_SIZE + 1))  # not msgpack at all: never decoded


def test_largest_valid_entry_fits() -> None:
    _, log = new_room()
    addresses = tuple("/dns4/" + "h" * 250 for _ in range(8))
    data = add_entry(ALICE, log.room, BOB.peer_id, "\U0001f600" * 64, addresses, 1, NOW_MS)
    assert len(data) <= MAX_ENTRY_SIZE
    assert parse_entry(data).entry.addresses == addresses


def test_non_canonical_encodings_are_refused() -> None:
    data = create_entry(ALICE, "team", NOW_MS, rng())
    body, signature = msgpack.unpackb(data)
    # The same array with the body as bin32 instead of bin8: same content, other bytes.
    wide = b"\x92\xc6" + len(body).to_bytes(4, "big") + body + packb(signature)
    assert msgpack.unpackb(wide) == [body, signature]
    with pytest.raises(InvalidRoomEntry, match="canonically"):
        parse_entry(wide)
    # A correctly signed body with its keys in another order.
    reordered = dict(reversed(list(body_of(data).items())))
    with pytest.raises(InvalidRoomEntry, match="body is not packed canonically"):
        parse_entry(sign_raw(ALICE, reordered))


def test_sign_entry_refuses_another_signer() -> None:
    entry = parse_entry(create_entry(ALICE, "team", NOW_MS)).entry
    with pytest.raises(InvalidRoomEntry, match="signer"):
        sign_entry(BOB, entry)


def _hostile_bodies() -> list[tuple[str, dict[str, Any]]]:
    room = entry_hash(create_entry(ALICE, "team", NOW_MS, rng(0)))
    base: dict[str, Any] = {
        "v": 1,
        "r": room,
        "id": bytes(range(16)),
        "s": ALICE.peer_id.to_bytes(),
        "l": 1,
        "t": NOW_MS,
        "o": "add",
        "m": BOB.peer_id.to_bytes(),
        "n": "bob",
        "a": list(ADDRS),
    }
    cases: list[tuple[str, dict[str, Any]]] = [
        ("l", {"l": 2**64 - 1}),
        ("l", {"l": MAX_LAMPORT + 1}),
        ("l", {"l": -1}),
        ("l", {"l": True}),
        ("l", {"l": 0}),
        ("l", {"l": 1.0}),
        ("t", {"t": 2**63}),
        ("t", {"t": -5}),
        ("t", {"t": "now"}),
        ("v", {"v": 2}),
        ("v", {"v": "1"}),
        ("id", {"id": b"short"}),
        ("id", {"id": "0123456789abcdef"}),
        ("r", {"r": b"\x00" * 16}),
        ("r", {"r": b"\x01" * 15}),
        ("s", {"s": 12345}),
        ("s", {"s": b"\x00" * 38}),
        ("m", {"m": "bob"}),
        ("m", {"m": b"\x00\x24\x08\x01\x12\x20" + b"\x00" * 32}),
        ("o", {"o": "delete"}),
        ("o", {"o": 3}),
        ("n", {"n": b"bob"}),
        ("n", {"n": "b" * 65}),
        ("n", {"n": "bob\x00"}),
        ("n", {"n": "bob\u202e"}),
        ("n", {"n": "bob\n"}),
        ("n", {"n": None}),
        ("a", {"a": {"x": 1}}),
        ("a", {"a": [1, 2]}),
        ("a", {"a": ["/ip4/" + "1" * 252]}),
        ("a", {"a": ["/ip4/1.2.3.4 /tcp/1"]}),
        ("a", {"a": [""]}),
        ("a", {"a": ["/ip4/1.2.3.4/tcp/1"] * 9}),
        ("extra", {"x": 1}),
    ]
    bodies = [(what, base | change) for what, change in cases]
    missing = dict(base)
    del missing["m"]
    bodies.append(("missing", missing))
    rename = {k: v for k, v in base.items() if k not in ("m", "a")} | {"o": "rename", "n": " "}
    bodies.append(("blank room name", rename))
    bodies.append(("empty room name", rename | {"n": ""}))
    remove_with_name = {k: v for k, v in base.items() if k != "a"} | {"o": "remove"}
    bodies.append(("remove with name", remove_with_name))
    create_with_room = {k: v for k, v in base.items() if k not in ("m", "a")} | {"o": "create"}
    bodies.append(("create with room", create_with_room | {"l": 0}))
    create = {k: v for k, v in create_with_room.items() if k != "r"}
    bodies.append(("create at lamport 1", create))
    return bodies


@pytest.mark.parametrize(("what", "body"), _hostile_bodies())
def test_hostile_values_are_refused(what: str, body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRoomEntry):
        parse_entry(sign_raw(ALICE, body))


def test_hostile_bodies_differ_from_a_valid_one_only_in_the_value() -> None:
    valid = _hostile_bodies()[0][1] | {"l": 1}
    assert parse_entry(sign_raw(ALICE, valid)).entry.lamport == 1  # the fixture is sound


@pytest.mark.parametrize(
    "fields",
    [
        {"addresses": ADDRS * 5},
        {"addresses": ["/ip4/1.2.3.4"]},  # a list, not a tuple
        {"name": "x" * 65},
    ],
)
def test_constructors_check_their_arguments(fields: dict[str, Any]) -> None:
    args: dict[str, Any] = {"name": "bob", "addresses": ADDRS} | fields
    with pytest.raises(InvalidRoomEntry):
        add_entry(ALICE, bytes(16 * [1]), BOB.peer_id, lamport=1, now_ms=NOW_MS, **args)
    with pytest.raises(InvalidRoomEntry, match="remove, promote or demote"):
        member_entry(ALICE, RoomOp.ADD, bytes(16 * [1]), BOB.peer_id, 1, NOW_MS)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_invalid_room_entry(data: bytes) -> None:
    with pytest.raises(InvalidRoomEntry):
        parse_entry(data)


# --- the log ------------------------------------------------------------------------------


def test_dedup_by_hash() -> None:
    _, log = new_room()
    data = add(ALICE, log.room, BOB, 1)
    assert log.add(data)
    assert not log.add(data)
    assert len(log) == 2
    assert entry_hash(data) in log


def test_entry_for_another_room_is_refused() -> None:
    _, log = new_room()
    other = RoomLog.from_create(create_entry(ALICE, "other", NOW_MS, rng(9)))
    with pytest.raises(InvalidRoomEntry, match="for room"):
        log.add(add(ALICE, other.room, BOB, 1))
    with pytest.raises(InvalidRoomEntry, match="for room"):
        log.add(create_entry(ALICE, "other", NOW_MS, rng(9)))
    assert len(log) == 1


def test_log_without_create_has_no_state() -> None:
    data, full = new_room()
    log = RoomLog(full.room)
    log.add(add(ALICE, full.room, BOB, 1))
    assert not log.has_create
    with pytest.raises(RoomError, match="create"):
        log.state()
    log.add(data)
    assert log.state().is_member(BOB.peer_id)
    with pytest.raises(InvalidRoomEntry, match="create"):
        RoomLog.from_create(add(ALICE, full.room, BOB, 1))
    with pytest.raises(InvalidRoomEntry):
        RoomLog(b"short")


def test_non_admin_changes_are_ignored() -> None:
    _, log = new_room()
    log.add(add(ALICE, log.room, BOB, 1))
    log.add(add(BOB, log.room, CAROL, 2))
    log.add(change(BOB, RoomOp.REMOVE, log.room, ALICE, 3))
    log.add(rename_entry(BOB, log.room, "bob's", 3, NOW_MS, fresh()))
    log.add(add(DAVE, log.room, ERIN, 3))  # not even a member
    state = log.state()
    assert members(state) == {ALICE.peer_id, BOB.peer_id}
    assert state.name == "team"
    reasons = [r.reason for r in state.rejected]
    assert reasons.count("its signer is not an admin at that point") == 3
    assert "its signer is not a member at that point" in reasons


def test_promoted_member_may_change_membership() -> None:
    _, log = new_room()
    for data in (
        add(ALICE, log.room, BOB, 1),
        change(ALICE, RoomOp.PROMOTE, log.room, BOB, 2),
        add(BOB, log.room, CAROL, 3),
        change(ALICE, RoomOp.PROMOTE, log.room, BOB, 4),
    ):
        log.add(data)
    state = log.state()
    assert state.admins == {ALICE.peer_id, BOB.peer_id}
    assert state.is_member(CAROL.peer_id)
    assert [r.reason for r in state.rejected] == ["the member it promotes is an admin already"]


def test_removed_admin_loses_its_rights() -> None:
    _, log = new_room()
    for data in (
        add(ALICE, log.room, BOB, 1),
        change(ALICE, RoomOp.PROMOTE, log.room, BOB, 2),
        change(ALICE, RoomOp.REMOVE, log.room, BOB, 3),
        add(BOB, log.room, CAROL, 4),
    ):
        log.add(data)
    state = log.state()
    assert state.admins == {ALICE.peer_id}
    assert not state.is_member(CAROL.peer_id)
    assert state.rejected[0].signer == BOB.peer_id


def test_leave_by_a_member() -> None:
    _, log = new_room()
    log.add(add(ALICE, log.room, BOB, 1))
    log.add(change(BOB, RoomOp.REMOVE, log.room, BOB, 2))
    state = log.state()
    assert members(state) == {ALICE.peer_id}
    assert state.intervals[BOB.peer_id] == (Interval(1, 2),)
    assert not state.rejected


def test_last_admin_leaving_makes_the_earliest_member_admin() -> None:
    _, log = new_room()
    for data in (
        add(ALICE, log.room, CAROL, 1),
        add(ALICE, log.room, BOB, 2),
        change(ALICE, RoomOp.REMOVE, log.room, ALICE, 3),
    ):
        log.add(data)
    state = log.state()
    assert state.admins == {CAROL.peer_id}
    assert members(state) == {BOB.peer_id, CAROL.peer_id}


def test_demoting_the_last_admin_is_ignored() -> None:
    _, log = new_room()
    log.add(add(ALICE, log.room, BOB, 1))
    log.add(change(ALICE, RoomOp.DEMOTE, log.room, ALICE, 2))
    assert log.state().admins == {ALICE.peer_id}
    assert log.state().rejected[0].reason == "it would leave the room without an admin"
    log.add(change(ALICE, RoomOp.PROMOTE, log.room, BOB, 3))
    log.add(change(ALICE, RoomOp.DEMOTE, log.room, ALICE, 4))
    assert log.state().admins == {BOB.peer_id}


def test_last_member_leaving_empties_the_room() -> None:
    _, log = new_room()
    log.add(change(ALICE, RoomOp.REMOVE, log.room, ALICE, 1))
    log.add(add(ALICE, log.room, BOB, 2))
    state = log.state()
    assert not state.members
    assert not state.admins
    assert state.rejected[0].reason == "its signer is not a member at that point"


def test_member_cap() -> None:
    _, log = new_room()
    others = [fixed_key(f"member-{i}") for i in range(MAX_MEMBERS)]
    for lamport, key in enumerate(others, start=1):
        log.add(add(ALICE, log.room, key, lamport))
    state = log.state()
    assert len(state.members) == MAX_MEMBERS
    assert not state.is_member(others[-1].peer_id)
    assert state.rejected[-1].reason == f"the room already has {MAX_MEMBERS} members"
    log.add(change(ALICE, RoomOp.REMOVE, log.room, others[0], 100))
    log.add(add(ALICE, log.room, others[-1], 101))
    assert log.state().is_member(others[-1].peer_id)
    assert len(log.state().members) == MAX_MEMBERS


def test_readd_and_was_member_intervals() -> None:
    _, log = new_room()
    for data in (
        add(ALICE, log.room, BOB, 2),
        change(ALICE, RoomOp.REMOVE, log.room, BOB, 5),
        add(ALICE, log.room, BOB, 9, name="back"),
    ):
        log.add(data)
    state = log.state()
    assert state.intervals[BOB.peer_id] == (Interval(2, 5), Interval(9))
    bob = BOB.peer_id
    assert [state.was_member(bob, n) for n in range(12)] == [
        n in (3, 4) or n >= 10 for n in range(12)
    ]
    assert state.members[bob].added_lamport == 9
    assert state.was_member(ALICE.peer_id, 1)
    assert not state.was_member(ALICE.peer_id, 0)
    assert not state.was_member(CAROL.peer_id, 3)


def test_add_of_a_member_updates_name_and_addresses_only() -> None:
    _, log = new_room()
    log.add(add(ALICE, log.room, BOB, 1, name="bob"))
    log.add(change(ALICE, RoomOp.PROMOTE, log.room, BOB, 2))
    log.add(add_entry(ALICE, log.room, BOB.peer_id, "robert", (), 3, NOW_MS, fresh()))
    bob = log.state().members[BOB.peer_id]
    assert (bob.name, bob.addresses, bob.admin, bob.added_lamport) == ("robert", (), True, 1)
    assert log.state().intervals[BOB.peer_id] == (Interval(1),)


def test_rename() -> None:
    _, log = new_room()
    log.add(rename_entry(ALICE, log.room, "renamed", 1, NOW_MS, fresh()))
    assert log.state().name == "renamed"


def _race() -> tuple[bytes, list[bytes]]:
    """Two admins change the room at the same Lamport counters without seeing each other."""
    create, log = new_room()
    room = log.room
    return create, [
        add(ALICE, room, BOB, 1),
        change(ALICE, RoomOp.PROMOTE, room, BOB, 2),
        add(ALICE, room, CAROL, 3),
        add(BOB, room, DAVE, 3),
        # concurrent, at 4: alice removes carol while bob re-adds her with a new name
        change(ALICE, RoomOp.REMOVE, room, CAROL, 4),
        add(BOB, room, CAROL, 4, name="carol2"),
        # concurrent, at 5: bob removes dave while alice updates (re-adds) him
        change(BOB, RoomOp.REMOVE, room, DAVE, 5),
        add(ALICE, room, DAVE, 5, name="dave2"),
        # concurrent, at 6: alice removes bob while bob adds erin
        change(ALICE, RoomOp.REMOVE, room, BOB, 6),
        add(BOB, room, ERIN, 6),
    ]


def test_races_resolve_by_order() -> None:
    create, entries = _race()
    log = RoomLog.from_create(create)
    for data in entries:
        log.add(data)
    state = log.state()
    alice_first = ALICE.peer_id.to_bytes() < BOB.peer_id.to_bytes()
    # At each Lamport counter the entry whose signer sorts later is applied last and wins.
    assert state.is_member(CAROL.peer_id) is alice_first  # bob's re-add after alice's remove
    assert state.is_member(DAVE.peer_id) is not alice_first
    assert state.is_member(ERIN.peer_id) is not alice_first
    assert not state.is_member(BOB.peer_id)


@given(st.permutations(list(range(11))))
def test_any_insertion_order_converges(order: list[int]) -> None:
    create, entries = _race()
    everything = [create, *entries]
    reference = RoomLog.from_create(create)
    for data in entries:
        reference.add(data)
    log = RoomLog(reference.room)
    for index in order:
        log.add(everything[index])
    assert log.state() == reference.state()
    assert log.digest() == reference.digest()
    assert log.entries() == reference.entries()


def test_next_lamport_counts_applied_entries_only() -> None:
    _, log = new_room()
    assert log.next_lamport() == 1
    log.add(add(ALICE, log.room, BOB, 7))
    assert log.next_lamport() == 8
    assert log.next_lamport(seen=20) == 21
    log.add(add(BOB, log.room, CAROL, MAX_LAMPORT))  # bob is no admin: skipped
    assert log.next_lamport() == 8
    log.add(add(ALICE, log.room, CAROL, MAX_LAMPORT))
    assert log.next_lamport() == MAX_LAMPORT  # saturates


def test_catch_up_summary() -> None:
    create, entries = _race()
    mine, theirs = RoomLog.from_create(create), RoomLog.from_create(create)
    for data in entries:
        mine.add(data)
    for data in entries[:4]:
        theirs.add(data)
    assert mine.digest() != theirs.digest()
    assert theirs.missing(mine.hashes()) == ()
    to_send = mine.missing(theirs.hashes())
    assert set(to_send) == set(entries[4:])
    assert list(to_send) == [d for d in mine.entries() if d in to_send]  # in replay order
    for data in to_send:
        assert theirs.add(data)
    assert theirs.digest() == mine.digest()
    assert theirs.state() == mine.state()
    with pytest.raises(RoomError, match="at most"):
        mine.missing([bytes(16)] * (MAX_LOG_ENTRIES + 1))


def test_log_is_capped() -> None:
    _, log = new_room()
    for lamport in range(1, MAX_LOG_ENTRIES):
        log.add(rename_entry(ALICE, log.room, f"n{lamport}", lamport, NOW_MS, fresh()))
    assert len(log) == MAX_LOG_ENTRIES
    extra = rename_entry(ALICE, log.room, "one too many", MAX_LOG_ENTRIES, NOW_MS, fresh())
    with pytest.raises(RoomError, match=f"{MAX_LOG_ENTRIES} log entries"):
        log.add(extra)
    assert not log.add(log.entries()[-1])  # a held entry is still recognised
    assert log.state().name == f"n{MAX_LOG_ENTRIES - 1}"


def test_every_op_has_a_replay_handler() -> None:
    assert set(_HANDLERS) == set(RoomOp)


def test_room_modules_stay_sans_io() -> None:
    modules = loaded_modules("import meshtalk.protocol.room_state")
    assert "meshtalk.protocol.rooms" in modules
    assert not {m for m in modules if m.split(".")[0] in FORBIDDEN}
