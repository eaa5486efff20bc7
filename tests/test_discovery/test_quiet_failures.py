"""A rendezvous point that is away is routine: one INFO line when it goes, DEBUG while it stays
away, one INFO line when it answers again (issue 14, item 6: no line per retry at INFO)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
import trio

from meshtalk.discovery import RendezvousClient, RendezvousSession, open_rendezvous_point
from meshtalk.net.host import build_host, close_host, split_peer_address
from meshtalk.protocol import NodeKey
from tests.test_discovery.helpers import LOCAL


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (a point that is away)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_point_that_stays_away_is_logged_once_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="meshtalk.rendezvous")
    key, point = NodeKey.generate(), NodeKey.generate()
    host = build_host(key)
    try:
        async with host.run([LOCAL]):
            away = f"/ip4/127.0.0.1/tcp/{free_port()}"
            client = RendezvousClient(host, key, point.peer_id, [away], timeout=2)
            session = RendezvousSession(
                client, "meshtalk/test", lambda: [], lambda _: None, retry_max=0.05
            )
            states = set()  # the session retries at once, so it is "registering" at times
            async with trio.open_nursery() as nursery:
                nursery.start_soon(session.run)
                with trio.fail_after(20):
                    while len([r for r in caplog.records if "rendezvous point" in r.message]) < 4:
                        states.add(session.state)
                        await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
            await client.close()
    finally:
        await close_host(host)
    lines = [r for r in caplog.records if "rendezvous point" in r.getMessage()]
    assert lines[0].levelno == logging.INFO
    assert {r.levelno for r in lines[1:]} == {logging.DEBUG}
    assert "unreachable" in states


async def test_a_point_that_answers_again_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="meshtalk.rendezvous")
    key = NodeKey.generate()
    host = build_host(key)
    try:
        async with (
            host.run([LOCAL]),
            open_rendezvous_point(NodeKey.generate()) as (_, addresses),
        ):
            point, address = split_peer_address(addresses[0])
            away = f"/ip4/127.0.0.1/tcp/{free_port()}"
            client = RendezvousClient(host, key, point, [away], timeout=2)
            session = RendezvousSession(
                client, "meshtalk/test", lambda: [], lambda _: None, retry_max=0.05
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(session.run)
                with trio.fail_after(20):
                    while session.state != "unreachable":
                        await trio.sleep(0.05)
                    client.addresses = [address]  # the point is back
                    while session.state != "registered":
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            await client.close()
    finally:
        await close_host(host)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert [m for m in infos if "answers again" in m] == [f"rendezvous point {point} answers again"]
