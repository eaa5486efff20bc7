"""Relayed connections on 127.0.0.1: a node relays, two nodes reserve and talk through it.

Loopback has no NAT, so these check the relay mechanics (reservation, dial through a circuit,
the relay's limits, a cut circuit); tests/reach/ checks reachability behind real NAT rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from libp2p.host.exceptions import StreamFailure

from meshtalk.net.host import peer_info, to_libp2p_id
from meshtalk.net.relay import HOP_PROTOCOL, RelayLimits, is_relayed
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


async def test_identify_announces_the_circuit_with_this_nodes_peer_id(tmp_path: Path) -> None:
    async with (
        open_node(tmp_path / "relay", fast_config(serve_relay=True)) as relay,
        open_node(tmp_path / "b", fast_config(relays=[relay_address(relay)])) as b,
    ):
        circuit = await reserved(b)
        announced = [str(a) for a in b.host.get_addrs()]
        assert f"{circuit}/p2p/{b.peer_id}" in announced
        assert all(a.endswith(f"/p2p/{b.peer_id}") for a in announced)


async def test_hostile_hop_streams_are_reset_and_the_relay_goes_on(tmp_path: Path) -> None:
    """Garbage, a response type and a stream that says nothing, then more streams than one
    source may hold: each is refused on its own, and a reservation still works after."""
    limits = RelayLimits(circuits_per_source=2)
    async with (
        open_node(tmp_path / "relay", fast_config(serve_relay=True, relay_limits=limits)) as relay,
        open_node(tmp_path / "x", fast_config()) as hostile,
    ):
        await hostile.host.connect(peer_info(relay.peer_id, relay.listen_addrs[:1]))
        relay_id = to_libp2p_id(relay.peer_id)
        for junk in (b"\xff" * 64, b"\x05\x08\x02\x10\x00", b"\x80\x80\x80\x80\x80\x01"):
            stream = await hostile.host.new_stream(relay_id, [HOP_PROTOCOL])
            await stream.write(junk)
            with trio.move_on_after(5):
                await stream.read(1024)  # a status or the reset
            await stream.reset()
        assert relay.relay_server is not None
        with trio.fail_after(40):  # py-libp2p's hop handler may read a reset stream a while
            while relay.relay_server.statistics().circuits:
                await trio.sleep(0.1)
        held = [await hostile.host.new_stream(relay_id, [HOP_PROTOCOL]) for _ in range(2)]
        with pytest.raises(StreamFailure):  # the third is reset as soon as it is negotiated
            await hostile.host.new_stream(relay_id, [HOP_PROTOCOL])
        with trio.fail_after(10):
            while relay.relay_server.statistics().refused.get("per source", 0) < 1:
                await trio.sleep(0.05)
        for stream in held:
            await stream.reset()
        async with open_node(tmp_path / "b", fast_config(relays=[relay_address(relay)])) as b:
            await reserved(b)
        assert relay.state.value == "running"


async def test_a_point_that_is_no_relay_is_not_shown_as_one(tmp_path: Path) -> None:
    async with (
        open_node(tmp_path / "point", fast_config(rendezvous_point=True)) as point,
        open_node(tmp_path / "b", fast_config(rendezvous=[relay_address(point)])) as b,
    ):
        with trio.fail_after(20):
            while b.reach.reservations[point.peer_id].state != "not a relay":
                await trio.sleep(0.05)
        status = b.reach.status()
        assert status.reservations == ()
        assert b.reach.circuit_addresses() == []
        assert "no relay" in status.summary
