"""Real nodes on 127.0.0.1 exchanging messages."""

from __future__ import annotations

import collections
import socket
from pathlib import Path

import pytest
import trio

from meshtalk.peer.models import Direction, MessageStatus
from meshtalk.peer.node import open_node
from meshtalk.peer.store import Store
from meshtalk.protocol import (
    ConfigError,
    DeliveryFailed,
    DeliveryTimeout,
    NodeKey,
    ProfileLocked,
    UnknownPeer,
    direct_conversation_id,
)
from tests.test_peer.helpers import collect, fast_config, port_of, running


async def test_two_nodes_talk_both_ways(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        first = await alice.send("bob", "hello bob", wait=True)
        await bob.send("alice", {"reply": "hello alice", "n": 1}, reply_to=first, wait=True)
        [got_by_bob] = await collect(bob, 1)
        [got_by_alice] = await collect(alice, 1)
        assert got_by_bob.body == "hello bob"
        assert got_by_bob.author == alice.peer_id
        assert got_by_alice.body == {"reply": "hello alice", "n": 1}
        assert got_by_alice.reply_to == first
        # Both sides see the same conversation, in order, with their own directions.
        conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
        for node, first_direction in ((alice, Direction.OUT), (bob, Direction.IN)):
            history = node.history(conversation)
            assert [m.lamport for m in history] == [1, 2]
            assert history[0].direction is first_direction
            assert history[0].body == "hello bob"
        assert alice.history("bob")[0].status is MessageStatus.DELIVERED
        assert [c.id for c in bob.conversations()] == [conversation]


async def test_cursors_resume_where_the_consumer_left_off(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        for i in range(5):
            await alice.send("bob", f"m{i}", wait=True)
        seen = []
        async for message in bob.messages(consumer="agent"):
            seen.append(message.body)
            if len(seen) == 3:
                break
        # The third was being handled when the consumer stopped: it is handed out again.
        again = await collect(bob, 3, after=bob.store.messages.consumer_cursor("agent"))
        assert [m.body for m in again] == ["m2", "m3", "m4"]
        page = bob.history("alice", after=again[0].cursor, limit=1)
        assert [m.body for m in page] == ["m3"]


async def test_three_nodes(tmp_path: Path) -> None:
    async with running(tmp_path, "a", "b", "c") as nodes:
        names = ["a", "b", "c"]
        for node, name in zip(nodes, names, strict=True):
            for other in names:
                if other != name:
                    await node.send(other, f"{name}->{other}")
        for node, name in zip(nodes, names, strict=True):
            got = await collect(node, 2)
            assert sorted(m.body for m in got) == sorted(f"{o}->{name}" for o in names if o != name)


async def test_group_conversation(tmp_path: Path) -> None:
    async with running(tmp_path, "a", "b", "c") as (a, b, c):
        group = b"G" * 16
        await a.send(["b", "c"], "hello group", conversation=group, wait=True)
        for node in (b, c):
            [message] = await collect(node, 1)
            assert message.conversation == group
            assert set(message.recipients) == {b.peer_id, c.peer_id}
        await b.send(["a", "c"], "hi all", conversation=group, wait=True)
        assert [m.body for m in c.history(group)] == ["hello group", "hi all"]


async def test_receiver_offline_then_back(tmp_path: Path) -> None:
    config = fast_config()
    async with open_node(tmp_path / "alice", config) as alice:
        async with open_node(tmp_path / "bob", config) as bob:
            bob_id, bob_addrs, bob_port = bob.peer_id, bob.listen_addrs, port_of(bob)
            bob.add_contact(alice.peer_id, "alice", alice.listen_addrs)
        alice.add_contact(bob_id, "bob", bob_addrs)
        ids = [await alice.send("bob", f"while offline {i}") for i in range(20)]
        with pytest.raises(DeliveryTimeout, match="stays queued"):
            await alice.send("bob", "last", wait=True, timeout=0.5)
        failed = alice.statistics_counter["delivery_interruptions"]
        with trio.fail_after(10):  # a few more redelivery attempts fail
            while alice.statistics_counter["delivery_interruptions"] < failed + 3:
                await trio.sleep(0.01)
        assert alice.statistics().outbox == 21
        back = fast_config(listen=[f"/ip4/127.0.0.1/tcp/{bob_port}"])
        async with open_node(tmp_path / "bob", back) as bob:
            got = await collect(bob, 21)
            assert [m.body for m in got] == [f"while offline {i}" for i in range(20)] + ["last"]
            assert await alice.wait_flushed(timeout=10)
            # a message sent after the outbox emptied arrives after anything redelivered
            await alice.send("bob", "after", wait=True, timeout=10)
            assert [m.body for m in bob.history("alice")] == [m.body for m in got] + ["after"]
            assert len(bob.store.messages.incoming(0, 100)) == 22  # nothing doubled
        delivered = MessageStatus.DELIVERED
        assert all(
            alice.store.messages.message(alice.peer_id, i).status is delivered  # type: ignore[union-attr]
            for i in ids
        )


async def test_unknown_peer_is_refused_and_counted(tmp_path: Path) -> None:
    async with running(tmp_path, "bob", "mallory", contacts=False) as (bob, mallory):
        mallory.add_contact(bob.peer_id, "bob", bob.listen_addrs)
        # a refusal at the door is final and said at once, not after the timeout (issue 14)
        with trio.fail_after(5), pytest.raises(DeliveryFailed, match=r"peer refused: .*does not"):
            await mallory.send("bob", "let me in", wait=True, timeout=60.0)
        [sent] = mallory.history("bob")
        assert sent.status is MessageStatus.FAILED
        assert "NotAuthorized" in (sent.error or "")
        assert mallory.statistics().outbox == 0
        assert bob.store.messages.incoming(0, 10) == []
        assert bob.store.contacts.refusals()[mallory.peer_id] >= 1
        link = mallory.statistics().links[str(bob.peer_id)]
        assert "NotAuthorized" in (link.last_error or "")


async def test_api_errors(tmp_path: Path) -> None:
    async with running(tmp_path, "alice") as (alice,):
        with pytest.raises(UnknownPeer, match="no contact or room is named"):
            await alice.send("nobody", "hi")
        stranger = NodeKey.generate().peer_id
        with pytest.raises(UnknownPeer, match="add it first"):
            await alice.send(stranger, "hi")
        with pytest.raises(ConfigError, match="own contact"):
            alice.add_contact(alice.peer_id)
        with pytest.raises(ConfigError, match="multiaddr"):
            alice.add_contact(stranger, "s", ["not an address"])
        with pytest.raises(ProfileLocked, match="in use"):
            async with open_node(tmp_path / "alice"):
                pass


async def test_the_wal_is_checkpointed_after_writes_not_while_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints: list[Path] = []
    original = Store.checkpoint
    looks: collections.Counter[Path] = collections.Counter()
    changes = Store.total_changes

    def counted(store: Store) -> None:
        checkpoints.append(store.path)
        original(store)

    def looked_at(store: Store) -> int:  # only the checkpointer reads it
        looks[store.path] += 1
        return changes.fget(store)

    monkeypatch.setattr(Store, "checkpoint", counted)
    monkeypatch.setattr(Store, "total_changes", property(looked_at))
    config = fast_config(checkpoint_interval=0.05)
    async with running(tmp_path, "alice", "bob", config=config) as nodes:

        async def turns(count: int) -> None:
            """Until each node's checkpointer has looked at its store `count` more times (once a
            turn, twice in a turn that checkpoints): a positive sign that it ran, not a sleep."""
            until = {node.store.path: looks[node.store.path] + count for node in nodes}
            with trio.fail_after(10):
                while any(looks[path] < n for path, n in until.items()):
                    await trio.sleep(0.01)

        await turns(3)  # the start's writes are checkpointed
        checkpoints.clear()
        await turns(4)  # idle
        assert checkpoints == []
        await nodes[0].send("bob", "hello", wait=True)
        await turns(3)
        assert nodes[0].store.path in checkpoints


async def test_contact_names_are_checked(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        for bad in (str(NodeKey.generate().peer_id), "x" * 65, "  "):
            with pytest.raises(ConfigError, match="contact name"):
                alice.add_contact(bob.peer_id, bad)
        assert alice.contact(bob.peer_id).name == "bob"


async def test_errors_from_the_block_are_not_wrapped(tmp_path: Path) -> None:
    with pytest.raises(UnknownPeer):
        async with open_node(tmp_path / "alice") as alice:
            await alice.send("nobody", "hi")
    # The profile is free again afterwards.
    async with open_node(tmp_path / "alice") as alice:
        assert alice.listen_addrs


async def test_a_restarted_node_keeps_its_port_so_contacts_reach_it(tmp_path: Path) -> None:
    async with open_node(tmp_path / "alice", fast_config()) as alice:
        async with open_node(tmp_path / "bob", fast_config()) as bob:
            port = port_of(bob)
            bob.add_contact(alice.peer_id, "alice", alice.listen_addrs)
            alice.add_contact(bob.peer_id, "bob", bob.listen_addrs)
        await alice.send("bob", "while bob restarts")
        async with open_node(tmp_path / "bob", fast_config()) as bob:
            assert port_of(bob) == port  # same config (port 0), same port as last time
            [message] = await collect(bob, 1)
            assert message.body == "while bob restarts"


async def test_a_taken_port_is_a_clear_error_or_a_fresh_port(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        taken = blocker.getsockname()[1]
        fixed = fast_config(listen=[f"/ip4/127.0.0.1/tcp/{taken}"])
        with pytest.raises(ConfigError, match="cannot listen"):
            async with open_node(tmp_path / "alice", fixed):
                pass
        async with open_node(tmp_path / "bob", fast_config()) as bob:
            remembered = port_of(bob)
        blocker.close()
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", remembered))
        blocker.listen()
        async with open_node(tmp_path / "bob", fast_config()) as bob:
            assert port_of(bob) != remembered  # its old port is taken: it listens elsewhere
    finally:
        blocker.close()
