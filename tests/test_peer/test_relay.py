"""Relayed connections on 127.0.0.1: a node relays, two nodes reserve and talk through it.

Loopback has no NAT, so these check the relay mechanics (reservation, dial through a circuit,
the relay's limits, a cut circuit); tests/reach/ checks reachability behind real NAT rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from meshtalk.net.host import to_libp2p_id
from meshtalk.net.relay import is_relayed
from meshtalk.peer.node import Node, open_node

from .helpers import collect, fast_config

pytestmark = pytest.mark.timeout(60)


def relay_address(relay: Node) -> str:
    return f"{relay.listen_addrs[0].rsplit('/p2p/', 1)[0]}/p2p/{relay.peer_id}"


async def reserved(node: Node) -> str:
    """Wait until `node` holds a reservation; its circuit address."""
    with trio.fail_after(20):
        while not node.reach.circuit_addresses():
            await trio.sleep(0.05)
    return node.reach.circuit_addresses()[0]


def connection_kind(node: Node, other: Node) -> str:
    conns = node.host.get_network().connections.get(to_libp2p_id(other.peer_id), [])
    kinds = {"relayed" if is_relayed(c) else "direct" for c in conns if not c.is_closed}
    return "+".join(sorted(kinds)) or "none"


async def test_two_nodes_that_know_only_each_others_circuit_talk_through_the_relay(
    tmp_path: Path,
) -> None:
    async with open_node(tmp_path / "relay", fast_config(serve_relay=True)) as relay:
        config = fast_config(relays=[relay_address(relay)])
        async with open_node(tmp_path / "a", config) as a, open_node(tmp_path / "b", config) as b:
            circuit = await reserved(b)
            assert circuit.endswith(f"/p2p/{relay.peer_id}/p2p-circuit")
            assert circuit in b.own_addresses()
            a.add_contact(b.peer_id, "b", [circuit])
            b.add_contact(a.peer_id, "a", [await reserved(a)])
            await a.send("b", "through the relay", wait=True, timeout=20)
            assert [m.body for m in await collect(b, 1)] == ["through the relay"]
            await b.send("a", "and back", wait=True, timeout=20)
            assert [m.body for m in await collect(a, 1)] == ["and back"]
            assert relay.relay_server is not None
            assert relay.relay_server.statistics().reservations == 2
            # no NAT here: b punches through at once, and the link moves to the direct one
            with trio.fail_after(20):
                while (connection_kind(a, b), connection_kind(b, a)) != ("direct", "direct"):
                    print(connection_kind(a, b), connection_kind(b, a))
                    await trio.sleep(0.5)
            await a.send("b", "directly now", wait=True, timeout=20)
            assert [m.body for m in await collect(b, 1, after=1)][-1] == "directly now"
