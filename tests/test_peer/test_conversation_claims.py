"""Nobody writes into a conversation that is not theirs (issue 12, item 3), on real nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshtalk.peer.admission import moved_conversation_id
from meshtalk.protocol import DeliveryFailed, direct_conversation_id
from tests.test_peer.helpers import collect, fast_config, running


async def test_a_third_peer_cannot_write_into_a_known_direct_conversation(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob", "carol") as (alice, bob, carol):
        squatted = direct_conversation_id(alice.peer_id, bob.peer_id)
        with pytest.raises(DeliveryFailed, match="direct conversation"):
            await carol.send("alice", "let me in", conversation=squatted, wait=True, timeout=10)
        await bob.send("alice", "hi alice", wait=True, timeout=10)
        assert [m.body for m in alice.history("bob")] == ["hi alice"]
        assert [c.kind for c in alice.conversations()] == ["direct"]


async def test_a_direct_id_names_its_two_peers_and_no_other_recipient(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob", "carol") as (alice, bob, carol):
        theirs = direct_conversation_id(carol.peer_id, alice.peer_id)
        with pytest.raises(DeliveryFailed, match=r"addressed to .* alone|direct conversation"):
            await carol.send(
                ["alice", "bob"], "a crowd", conversation=theirs, wait=True, timeout=10
            )
        assert alice.store.messages.incoming(0, 10) == []
        assert bob.store.messages.incoming(0, 10) == []


async def test_a_squat_on_an_unknown_direct_id_moves_away_when_its_peer_shows_up(
    tmp_path: Path,
) -> None:
    """Carol opens a 'named' conversation whose id is alice's direct one with bob, before alice
    knows bob. Once bob writes, carol's messages live elsewhere and bob's history is his own."""
    async with running(tmp_path, "alice", "bob", "carol", contacts=False) as (alice, bob, carol):
        alice.add_contact(carol.peer_id, "carol", carol.listen_addrs)
        carol.add_contact(alice.peer_id, "alice", alice.listen_addrs)
        bob.add_contact(alice.peer_id, "alice", alice.listen_addrs)  # alice knows no bob yet
        squatted = direct_conversation_id(alice.peer_id, bob.peer_id)
        await carol.send("alice", "I was here first", conversation=squatted, wait=True, timeout=10)
        [message] = await collect(alice, 1)
        assert message.conversation == squatted

        alice.add_contact(bob.peer_id, "bob", bob.listen_addrs)
        await bob.send("alice", "the real bob", wait=True, timeout=10)
        await alice.send("bob", "the real alice", wait=True, timeout=10)
        assert [m.body for m in alice.history("bob")] == ["the real bob", "the real alice"]
        moved = alice.history(moved_conversation_id(squatted))
        assert [m.body for m in moved] == ["I was here first"]
        [conversation] = alice.store.messages.conversations(squatted)
        assert (conversation.kind, set(conversation.members)) == (
            "direct",
            {alice.peer_id, bob.peer_id},
        )
        with pytest.raises(DeliveryFailed, match="direct conversation"):
            await carol.send("alice", "again", conversation=squatted, wait=True, timeout=10)


async def test_a_send_claims_a_squatted_direct_id_too(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob", "carol") as (alice, bob, carol):
        squatted = direct_conversation_id(alice.peer_id, bob.peer_id)
        alice.remove_contact("bob")
        await carol.send("alice", "first", conversation=squatted, wait=True, timeout=10)
        alice.add_contact(bob.peer_id, "bob", bob.listen_addrs)
        await alice.send("bob", "mine", wait=True, timeout=10)
        assert [m.body for m in alice.history("bob")] == ["mine"]
        assert [m.body for m in alice.history(moved_conversation_id(squatted))] == ["first"]


async def test_a_stranger_may_write_directly_but_not_open_a_named_conversation(
    tmp_path: Path,
) -> None:
    config = fast_config(accept="anyone")
    async with running(tmp_path, "alice", "stranger", config=config, contacts=False) as (
        alice,
        stranger,
    ):
        stranger.add_contact(alice.peer_id, "alice", alice.listen_addrs)
        await stranger.send("alice", "hello, directly", wait=True, timeout=10)
        with pytest.raises(DeliveryFailed, match="not a contact"):
            await stranger.send("alice", "a group", conversation=b"n" * 16, wait=True, timeout=10)
        assert [m.body for m in alice.store.messages.incoming(0, 10)] == ["hello, directly"]
