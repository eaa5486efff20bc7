"""Nodes that find each other through a rendezvous point, a bootstrap list, and their address
book once the point is gone. Real nodes, real point, 127.0.0.1."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from meshtalk.discovery import RegistryLimits, open_rendezvous_point
from meshtalk.peer.node import Node, open_node
from meshtalk.protocol import NodeKey
from tests.test_peer.helpers import collect, fast_config, introduce, port_of


async def wait_until_known(node: Node, others: list[Node], timeout: float = 10) -> None:
    """Wait until `node` holds an address for each of `others`."""
    with trio.fail_after(timeout):
        for other in others:
            await node.wait_known(other.peer_id)


@pytest.mark.slow  # over 6 s
async def test_five_nodes_meet_at_a_point_and_talk_pairwise(tmp_path: Path) -> None:
    async with open_rendezvous_point(NodeKey.generate()) as (point, addresses):
        config = fast_config(rendezvous=addresses)
        async with AsyncExitStack() as stack:
            nodes = [
                await stack.enter_async_context(open_node(tmp_path / f"n{i}", config))
                for i in range(5)
            ]
            for node in nodes:
                await wait_until_known(node, [o for o in nodes if o is not node])
            assert point.statistics().registry.registrations == 5
            introduce(nodes, with_addresses=False)
            for node in nodes:
                for other in nodes:
                    if other is not node:
                        await node.send(other.peer_id, f"{node.peer_id} to {other.peer_id}")
            for node in nodes:
                got = await collect(node, 4)
                assert {m.author for m in got} == {o.peer_id for o in nodes if o is not node}
            sources = {p.peer_id: p.sources for p in nodes[0].peers()}
            assert all("rendezvous" in sources[o.peer_id] for o in nodes[1:])
            stats = nodes[0].statistics().discovery.rendezvous[0]
            assert stats.state == "registered"


async def test_known_peers_keep_talking_when_the_point_is_gone(tmp_path: Path) -> None:
    async with open_rendezvous_point(NodeKey.generate()) as (_, addresses):
        config = fast_config(rendezvous=addresses)
        async with open_node(tmp_path / "a", config) as a, open_node(tmp_path / "b", config) as b:
            await wait_until_known(a, [b])
            await wait_until_known(b, [a])
            introduce([a, b], with_addresses=False)
            await a.send(b.peer_id, "while the point is up", wait=True, timeout=10)
    # the point is gone; both nodes restart (same profiles) and still reach each other
    async with open_node(tmp_path / "a", config) as a, open_node(tmp_path / "b", config) as b:
        await a.send(b.peer_id, "after the point left", wait=True, timeout=10)
        await b.send(a.peer_id, "and back", wait=True, timeout=10)
        assert [m.text for m in await collect(b, 2)] == [
            "while the point is up",
            "after the point left",
        ]
        assert a.statistics().discovery.rendezvous[0].state != "registered"


async def test_a_message_waits_until_discovery_finds_its_recipient(tmp_path: Path) -> None:
    async with open_rendezvous_point(NodeKey.generate()) as (_, addresses):
        config = fast_config(rendezvous=addresses)
        bob_key_home = tmp_path / "b"
        async with open_node(bob_key_home, fast_config()) as bob:  # creates bob's identity
            bob_id = bob.peer_id
        async with open_node(tmp_path / "a", config) as alice:
            alice.add_contact(bob_id, "bob")  # no address known
            await alice.send("bob", "queued before bob was anywhere")
            with trio.fail_after(10):  # a round at the point is done: it asked, bob was not there
                while alice.statistics().discovery.rendezvous[0].state != "registered":
                    await trio.sleep(0.02)
            assert alice.store.outbox.size() == 1
            async with open_node(bob_key_home, config) as bob:
                bob.add_contact(alice.peer_id, "alice")
                assert (await collect(bob, 1))[0].text == "queued before bob was anywhere"
                assert await alice.wait_flushed(10)


async def test_a_running_node_registers_again_when_its_point_restarts(tmp_path: Path) -> None:
    key = NodeKey.generate()
    async with open_rendezvous_point(key) as (_, addresses):
        listen = [addresses[0].split("/p2p/")[0]]  # a free port for the point to come back on
    config = fast_config(rendezvous=addresses, discover_interval=(0.1, 0.3), retry_max=0.3)
    async with open_node(tmp_path / "a", config) as a:
        for _ in range(2):  # the point starts after the node, then restarts empty
            async with open_rendezvous_point(key, listen) as (point, _):
                with trio.fail_after(10):
                    while point.statistics().registry.registrations != 1:
                        await trio.sleep(0.05)
                # a peer that arrives now is found with a fresh cookie
                async with open_node(tmp_path / "c", config) as c:
                    await wait_until_known(a, [c])
        stats = a.statistics().discovery.rendezvous[0]
        assert stats.registrations >= 2


async def test_any_node_can_serve_the_point(tmp_path: Path) -> None:
    async with open_node(tmp_path / "p", fast_config(rendezvous_point=True)) as hub:
        config = fast_config(rendezvous=hub.listen_addrs[:1])
        async with open_node(tmp_path / "a", config) as a, open_node(tmp_path / "b", config) as b:
            await wait_until_known(a, [b])
            await wait_until_known(b, [a])
            introduce([a, b], with_addresses=False)
            await a.send(b.peer_id, "met at a node that serves a point", wait=True, timeout=10)
            assert hub.statistics().discovery.point.registry.registrations == 2


async def test_bootstrap_peers_are_dialed_and_remembered(tmp_path: Path) -> None:
    async with open_node(tmp_path / "a", fast_config()) as a:
        config = fast_config(bootstrap=a.listen_addrs[:1])
        async with open_node(tmp_path / "b", config) as b:
            await wait_until_known(b, [a])
            with trio.fail_after(10):
                while (
                    "identify" not in next(p for p in b.peers() if p.peer_id == a.peer_id).sources
                ):
                    await trio.sleep(0.05)
            assert f"/ip4/127.0.0.1/tcp/{port_of(a)}" in b.addresses_of(a.peer_id)


async def test_a_dead_address_is_skipped_for_a_live_one(tmp_path: Path) -> None:
    async with (
        open_node(tmp_path / "a", fast_config()) as a,
        open_node(tmp_path / "b", fast_config()) as b,
    ):
        dead = "/ip4/127.0.0.1/tcp/1"
        a.add_contact(b.peer_id, "b", [dead, *b.listen_addrs])
        b.add_contact(a.peer_id, "a")
        await a.send("b", "through the live address", wait=True, timeout=10)
        live = f"/ip4/127.0.0.1/tcp/{port_of(b)}"
        assert a.addresses_of(b.peer_id)[0] == live  # it worked, so it is tried first next time
        assert "connection" in next(p for p in a.peers() if p.peer_id == b.peer_id).sources


async def test_registrations_are_refreshed_before_their_ttl_and_at_every_point(
    tmp_path: Path,
) -> None:
    limits = RegistryLimits(min_ttl=1)
    first = open_rendezvous_point(NodeKey.generate(), limits=limits)
    second = open_rendezvous_point(NodeKey.generate(), limits=limits)
    async with first as (one, one_addresses), second as (two, two_addresses):
        config = fast_config(rendezvous=one_addresses + two_addresses, rendezvous_ttl=2)
        async with open_node(tmp_path / "a", config) as a:
            await trio.sleep(3.5)  # past the 2 s TTL: only refreshes keep it registered
            for point in (one, two):
                assert point.statistics().registry.registrations == 1
            sessions = a.statistics().discovery.rendezvous
            assert [s.state for s in sessions] == ["registered", "registered"]
            assert all(s.registrations >= 3 for s in sessions)
            assert all(s.ttl == 2 for s in sessions)
