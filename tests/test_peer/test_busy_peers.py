"""Timeouts that tell a peer that is gone from one that is busy (net/quirks.py, peer/connecting.py).

A TCP connect is bounded by the dial timeout; a peer that answered gets the longer handshake
timeout; and a peer whose handshake timed out dials in a lane of its own next time, so it holds
other dials back once at most.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from libp2p.exceptions import BaseLibp2pError

from meshtalk.net.host import HostTimeouts, build_host, close_host, peer_info
from meshtalk.protocol.errors import PeerUnreachable
from meshtalk.protocol.keys import NodeKey

from .helpers import fast_config, running

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose TCP connects hang: its accept queue is full and never drained, so
    Linux drops further SYNs (as a filtered address on a real network does)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.mark.parametrize("connect_timeout", [0.5, 30.0])
async def test_a_tcp_connect_that_hangs_fails_within_the_connect_timeout(
    connect_timeout: float,
) -> None:
    """With a 30 s connect timeout the dial is still waiting after 2 s (the port does hang);
    with 0.5 s it has failed by then, though its handshake timeout is 30 s."""
    timeouts = HostTimeouts(connect=connect_timeout, handshake=30.0)
    host = build_host(NodeKey.generate(), timeouts=timeouts)
    target = NodeKey.generate().peer_id
    failed = False
    try:
        with unanswered_port() as port, trio.move_on_after(2):
            try:
                await host.connect(peer_info(target, [f"/ip4/127.0.0.1/tcp/{port}"]))
            except BaseLibp2pError:
                failed = True
    finally:
        await close_host(host)
    assert failed == (connect_timeout < 2)


async def serve_silently(stream: trio.SocketStream) -> None:
    """Accept a connection and never answer its handshake."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while await stream.receive_some(4096):
            pass


async def test_a_peer_that_accepts_and_stalls_holds_other_dials_back_once_at_most(
    tmp_path: Path,
) -> None:
    """With one dial in flight at most: a first dial to a peer that accepts and never answers
    its handshake ends after the handshake timeout; the next one dials in the lane of slow
    peers, so a dial to another peer meanwhile is connected long before it ends."""
    config = fast_config(max_dials_in_flight=1, dial_timeout=0.5, handshake_timeout=3.0)
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, serve_silently, 0, host="127.0.0.1")
        [listener] = await nursery.start(serve)
        stalled_port = listener.socket.getsockname()[1]
        async with running(tmp_path, "a", "b", config=config) as (a, b):
            stalled = NodeKey.generate().peer_id
            a.add_contact(stalled, "stalled", [f"/ip4/127.0.0.1/tcp/{stalled_port}"])
            start = trio.current_time()
            with trio.fail_after(10), pytest.raises(PeerUnreachable, match="TooSlowError"):
                await a.dial(stalled)
            assert trio.current_time() - start >= 3.0  # it answered: the long timeout applies
            stuck = trio.Event()

            async def dial_stalled() -> None:
                with contextlib.suppress(PeerUnreachable):
                    await a.dial(stalled)
                stuck.set()

            nursery.start_soon(dial_stalled)
            with trio.fail_after(5):
                while a.statistics().dials.in_flight == 0:
                    await trio.sleep(0.01)
            with trio.fail_after(10):
                await a.dial(b.peer_id)
            assert not stuck.is_set()  # the stalled handshake is still going on
            assert a.statistics().dials.dials == 3
            with trio.fail_after(10):
                await stuck.wait()
        nursery.cancel_scope.cancel()
