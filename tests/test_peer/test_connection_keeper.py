"""The ConnectionKeeper through its ports: which duplicate stays, and the sweep that closes the
others (real hosts: test_one_connection.py, test_mesh_burst.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.rcmgr.metrics import Direction

from meshtalk.net.connections import ConnectionKeeper
from meshtalk.protocol import NodeKey

LOW, HIGH = sorted((ID(NodeKey.generate().peer_id.to_bytes()) for _ in range(2)), key=ID.to_bytes)


@dataclass(eq=False)
class FakeConn:
    peer: ID
    direction: Direction
    on_close: list[Any] = field(default_factory=list)
    is_closed: bool = False

    @property
    def muxed_conn(self) -> Any:
        return self

    @property
    def peer_id(self) -> ID:
        return self.peer

    def get_streams(self) -> tuple[object, ...]:
        return ()

    async def close(self) -> None:
        self.is_closed = True
        await trio.lowlevel.checkpoint()
        for hook in self.on_close:
            hook()


class FakeHost:
    def __init__(self) -> None:
        self.connections: dict[ID, list[FakeConn]] = {}

    def get_network(self) -> FakeHost:
        return self

    def register_notifee(self, notifee: object) -> None:
        pass


def keeper_of(own: ID) -> tuple[ConnectionKeeper, FakeHost, list[tuple[ID, frozenset[object]]]]:
    moved: list[tuple[ID, frozenset[object]]] = []
    keeper = ConnectionKeeper(own, 100, lambda peer, old: moved.append((peer, old)))
    host = FakeHost()
    keeper.attach(host)  # type: ignore[arg-type]
    return keeper, host, moved


@pytest.mark.parametrize(("own", "peer", "kept"), [(LOW, HIGH, "outbound"), (HIGH, LOW, "inbound")])
async def test_the_connection_the_lower_peer_id_dialed_stays_on_both_ends(
    own: ID, peer: ID, kept: str
) -> None:
    keeper, host, moved = keeper_of(own)
    inbound, outbound = FakeConn(peer, Direction.INBOUND), FakeConn(peer, Direction.OUTBOUND)
    host.connections[peer] = [inbound, outbound]
    keeper.connection_added(outbound)
    stays = outbound if kept == "outbound" else inbound
    assert host.connections[peer] == [stays]
    assert moved == [(peer, frozenset({inbound if stays is outbound else outbound}))]
    assert keeper.statistics().draining == 1


async def test_a_connection_forgotten_while_another_closes_does_not_stop_the_sweep() -> None:
    """Closing one superseded connection can report another one gone (py-libp2p's disconnected
    notification) before the sweep reaches it: that one is skipped, not looked up again."""
    keeper, host, _ = keeper_of(LOW)
    first, second = FakeConn(HIGH, Direction.INBOUND), FakeConn(HIGH, Direction.INBOUND)
    kept = FakeConn(HIGH, Direction.OUTBOUND)

    def second_gone() -> None:  # what py-libp2p reports of a connection that went down
        second.is_closed = True
        keeper.forget(second)  # type: ignore[arg-type]

    first.on_close.append(second_gone)
    host.connections[HIGH] = [first, second, kept]
    keeper.connection_added(kept)  # type: ignore[arg-type]
    assert keeper.statistics().draining == 2
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keeper.run)
            while keeper.statistics().draining:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert first.is_closed
    assert host.connections[HIGH] == [kept]
