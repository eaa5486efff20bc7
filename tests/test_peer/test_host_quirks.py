"""py-libp2p workarounds of net/quirks.py, on real hosts over 127.0.0.1."""

from __future__ import annotations

from typing import Any

import multiaddr
import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import PeerInfo

from meshtalk.net.host import build_host, close_host, from_libp2p_id, identify_peer
from meshtalk.protocol.keys import NodeKey

pytestmark = pytest.mark.timeout(30)

LOCAL = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
ECHO = TProtocol("/meshtalk-test/echo/1")


def identified_protocols(host: Any, peer: Any) -> list[str]:
    """What identify told `host` about `peer` (nothing before it ran)."""
    try:
        return list(host.get_peerstore().get_protocols(peer))
    except Exception:  # py-libp2p raises PeerStoreError for a peer without protocols
        return []


async def echo(stream: Any) -> None:
    await stream.write(await stream.read(4))
    await stream.close()


async def test_identify_runs_only_when_the_node_asks() -> None:
    """A new connection alone identifies nobody (py-libp2p would, from both ends, at once);
    `identify_peer` asks for it."""
    server, client = build_host(NodeKey.generate()), build_host(NodeKey.generate())
    server.set_stream_handler(ECHO, echo)
    async with server.run(LOCAL), client.run(LOCAL):
        try:
            with trio.fail_after(10):
                await client.connect(PeerInfo(server.get_id(), server.get_addrs()))
                for _ in range(3):  # round trips on the connection: identify had its chance
                    stream = await client.new_stream(server.get_id(), [ECHO])
                    await stream.write(b"ping")
                    assert await stream.read(4) == b"ping"
                    await stream.close()
            assert identified_protocols(client, server.get_id()) == []
            assert identified_protocols(server, client.get_id()) == []
            await identify_peer(client, from_libp2p_id(server.get_id()), timeout=10)
            assert str(ECHO) in identified_protocols(client, server.get_id())
        finally:
            await close_host(client)
            await close_host(server)
