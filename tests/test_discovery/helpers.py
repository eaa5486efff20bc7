"""Helpers for tests that run real rendezvous points and hosts on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio

from meshtalk.discovery import RendezvousClient
from meshtalk.net.host import build_host, close_host, peer_info, split_peer_address, to_libp2p_id
from meshtalk.protocol import NodeKey
from meshtalk.protocol.rendezvous import PROTOCOL_ID

LOCAL = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


@asynccontextmanager
async def client_of(point_address: str, key: NodeKey | None = None) -> AsyncIterator[Any]:
    """A bare host with a RendezvousClient for the point at `point_address`."""
    key = key or NodeKey.generate()
    host = build_host(key)
    point, address = split_peer_address(point_address)
    try:
        async with host.run([LOCAL]):
            client = RendezvousClient(host, key, point, [address], timeout=10)
            with trio.fail_after(60):
                yield client
            await client.close()
    finally:
        await close_host(host)


def own_address(client: Any) -> list[str]:
    """The listening address of a client's host, without /p2p/."""
    return [str(a) for a in client.host.get_transport_addrs()]


async def raw_stream(client: Any) -> Any:
    """A fresh /rendezvous/1.0.0 stream from a client's host to its point."""
    if not client.connected():
        await client.host.connect(peer_info(client.point, client.addresses))
    return await client.host.new_stream(to_libp2p_id(client.point), [PROTOCOL_ID])
