"""One connection per pair of nodes, whoever dialed (net/connections.py, peer/connecting.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from meshtalk.net.host import to_libp2p_id
from meshtalk.peer.node import Node

from .helpers import collect, fast_config, introduce, running


def open_connections(node: Node, other: Node) -> int:
    conns = node.host.get_network().connections.get(to_libp2p_id(other.peer_id), [])
    return sum(1 for conn in conns if not conn.is_closed)


async def wait_single(a: Node, b: Node) -> None:
    """Until each side holds one open connection to the other and nothing is draining."""
    with trio.fail_after(40):
        while not (
            open_connections(a, b) == open_connections(b, a) == 1
            and a.statistics().connections.draining == b.statistics().connections.draining == 0
        ):
            await trio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_two_nodes_dialing_each_other_at_once_end_with_one_connection(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, "a", "b", config=fast_config()) as (a, b):
        introduce([a, b])
        async with trio.open_nursery() as nursery:  # both dial at the same instant
            nursery.start_soon(a.dial, b.peer_id)
            nursery.start_soon(b.dial, a.peer_id)
        await wait_single(a, b)
        # the connection kept is the same TCP connection on both sides: traffic both ways works
        await a.send("n1", "to b", wait=True, timeout=15)
        await b.send("n0", "to a", wait=True, timeout=15)
        await wait_single(a, b)
        assert [m.body for m in await collect(b, 1)] == ["to b"]
        assert [m.body for m in await collect(a, 1)] == ["to a"]
        for node in (a, b):
            assert node.statistics().counters.get("delivery_interruptions", 0) == 0


@pytest.mark.timeout(60)
async def test_a_duplicate_made_while_both_send_is_closed_without_an_interruption(
    tmp_path: Path,
) -> None:
    """Both send at once, so both links dial; whatever duplicate forms is closed after the links
    moved off it, and every message arrives once."""
    async with running(tmp_path, "a", "b", config=fast_config()) as (a, b):
        introduce([a, b])
        for round_ in range(5):
            async with trio.open_nursery() as nursery:
                for sender, to in ((a, "n1"), (b, "n0")):
                    send = sender.send
                    nursery.start_soon(lambda f=send, t=to, r=round_: f(t, f"{r}", wait=True))
        await wait_single(a, b)
        assert sorted(m.body for m in await collect(b, 5)) == [str(i) for i in range(5)]
        assert sorted(m.body for m in await collect(a, 5)) == [str(i) for i in range(5)]
        for node in (a, b):
            assert node.statistics().counters.get("delivery_interruptions", 0) == 0
