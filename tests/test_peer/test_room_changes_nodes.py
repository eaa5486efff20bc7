"""Membership changes between real nodes on 127.0.0.1: promote, demote and rename, and two
admins changing the room at once on two nodes (every member converges on the same set)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from meshtalk.peer.node import Node, open_node
from meshtalk.protocol import PairingError
from meshtalk.protocol.room_errors import NotRoomAdmin, RoomError
from meshtalk.protocol.room_state import replay_order
from meshtalk.protocol.rooms import RoomOp, SignedEntry, parse_entry
from tests.test_peer.helpers import fast_config
from tests.test_peer.test_rooms_nodes import _room_messages, room_of

pytestmark = pytest.mark.timeout(90)


def _state_of(node: Node) -> tuple[str, frozenset[str], frozenset[str]]:
    """Name, members and admins of the node's one room, from its log (member or not)."""
    [room] = node.rooms()
    members = node.members(room.id)
    return (
        room.name,
        frozenset(str(m.peer) for m in members),
        frozenset(str(m.peer) for m in members if m.admin),
    )


def _signed_by(node: Node, op: RoomOp) -> SignedEntry:
    """The newest `op` entry `node` signed in its room "team"."""
    entries = [parse_entry(d) for d in node.store.rooms.log(node.room("team").id).entries()]
    return max(
        (e for e in entries if e.entry.signer == node.peer_id and e.entry.op is op),
        key=replay_order,
    )


async def _until_all_hold(nodes: list[Node], expected: object, timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while any(_state_of(node) != expected for node in nodes):
            await trio.sleep(0.05)


async def test_promote_demote_and_rename_reach_every_member(tmp_path: Path) -> None:
    async with room_of(tmp_path, "alice", "bob", "carol") as nodes:
        alice, bob, carol = nodes
        ids = [str(n.peer_id) for n in nodes]
        with pytest.raises(NotRoomAdmin):
            await bob.rename_room("team", "bob's now")
        with pytest.raises(RoomError, match="only admin"):
            await alice.demote_member("team", alice.peer_id)
        with pytest.raises(RoomError, match="not an admin"):
            await alice.demote_member("team", "carol")  # by its name in the room

        await alice.promote_member("team", "bob")
        await _until_all_hold(nodes, ("team", frozenset(ids), frozenset(ids[:2])))
        with pytest.raises(RoomError, match="admin of room 'team' already"):
            await bob.promote_member("team", alice.peer_id)

        await bob.rename_room("team", "roadmap")  # bob is an admin now
        await bob.demote_member("roadmap", alice.peer_id)
        await _until_all_hold(nodes, ("roadmap", frozenset(ids), frozenset(ids[1:2])))
        with pytest.raises(NotRoomAdmin):
            await alice.remove_member("roadmap", carol.peer_id)
        await carol.send("roadmap", "renamed, and still here", wait=True)
        assert await _room_messages(alice, "roadmap", 1) == ["renamed, and still here"]


async def test_two_admins_changing_the_room_at_once_converge_on_every_member(
    tmp_path: Path,
) -> None:
    """alice demotes bob while bob removes alice, each signing before the other's entry
    arrives: the replay order (Lamport, signer, ...) decides; the first to apply takes the
    other's rights away, and the second is skipped alike on every member."""
    async with room_of(tmp_path, "alice", "bob", "carol", "dave") as nodes:
        alice, bob, carol, dave = nodes
        everyone = frozenset(str(n.peer_id) for n in nodes)
        await alice.promote_member("team", bob.peer_id)
        both = frozenset({str(alice.peer_id), str(bob.peer_id)})
        await _until_all_hold(nodes, ("team", everyone, both))

        async with trio.open_nursery() as nursery:  # both sign in the same scheduling round
            nursery.start_soon(alice.demote_member, "team", bob.peer_id)
            nursery.start_soon(bob.remove_member, "team", alice.peer_id)

        demote = _signed_by(alice, RoomOp.DEMOTE)
        removal = _signed_by(bob, RoomOp.REMOVE)
        if replay_order(demote) < replay_order(removal):  # alice's demote applies first
            expected = ("team", everyone, frozenset({str(alice.peer_id)}))
            admin, skipped = alice, removal
        else:  # bob's removal of alice applies first; alice's demote is by a non-member
            expected = ("team", everyone - {str(alice.peer_id)}, frozenset({str(bob.peer_id)}))
            admin, skipped = bob, demote
        await _until_all_hold(nodes, expected)  # alice too, removed or not
        for node in nodes:  # the loser's entry skipped wherever it is held; a member that
            # learned of the loser's loss first refuses its push (no longer a member or admin)
            state = node.store.rooms.state(node.room("team").id)
            assert {rejected.hash for rejected in state.rejected} <= {skipped.hash}
        winner = removal if skipped is demote else demote
        assert all(winner.hash in n.store.rooms.log(n.room("team").id) for n in nodes)
        await admin.send("team", "after the race", wait=True)
        assert await _room_messages(dave, "team", 1) == ["after the race"]
        assert await _room_messages(carol, "team", 1) == ["after the race"]


async def test_a_removal_racing_a_promotion_of_the_same_member_converges(tmp_path: Path) -> None:
    """bob promotes dave while carol removes him: whichever applies first, dave ends up out
    (a promote of a non-member is skipped; a removal of an admin by an admin applies)."""
    async with room_of(tmp_path, "bob", "carol", "dave") as nodes:
        bob, carol, dave = nodes
        await bob.promote_member("team", carol.peer_id)
        admins = frozenset({str(bob.peer_id), str(carol.peer_id)})
        everyone = frozenset(str(n.peer_id) for n in nodes)
        await _until_all_hold(nodes, ("team", everyone, admins))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(bob.promote_member, "team", dave.peer_id)
            nursery.start_soon(carol.remove_member, "team", dave.peer_id)

        promote, removal = _signed_by(bob, RoomOp.PROMOTE), _signed_by(carol, RoomOp.REMOVE)
        skipped = [promote.hash] if replay_order(removal) < replay_order(promote) else []
        await _until_all_hold(nodes, ("team", everyone - {str(dave.peer_id)}, admins))
        for node in (bob, carol):  # dave, out, may not take bob's push after carol's
            state = node.store.rooms.state(node.room("team").id)
            assert [rejected.hash for rejected in state.rejected] == skipped


async def test_a_room_token_brings_in_an_agent_that_was_no_contact(tmp_path: Path) -> None:
    async with room_of(tmp_path, "alice", "bob") as (alice, bob):
        with pytest.raises(NotRoomAdmin):
            bob.room_token("team")
        token, expires_ms = alice.room_token("team", ttl=600)
        assert token.startswith("mtr1")
        assert 599_000 <= expires_ms - alice.clock() <= 600_000
        async with open_node(tmp_path / "carol", fast_config()) as carol:
            assert carol.contacts() == []
            joined = await carol.join_room_token(token, timeout=30)
            assert (joined.name, joined.members, joined.left_ms) == ("team", 3, None)
            assert [c.peer_id for c in carol.contacts()] == [alice.peer_id]  # paired with her
            everyone = frozenset(str(n.peer_id) for n in (alice, bob, carol))
            await _until_all_hold([alice, bob, carol], ("team", everyone, frozenset(
                {str(alice.peer_id)}
            )))  # fmt: skip
            await carol.send("team", "hello from the token", wait=True)
            assert await _room_messages(bob, "team", 1) == ["hello from the token"]

            async with open_node(tmp_path / "dave", fast_config()) as dave:  # one use only
                with pytest.raises(PairingError, match="this invite was used"):
                    await dave.join_room_token(token, timeout=10)
                assert dave.rooms() == []
