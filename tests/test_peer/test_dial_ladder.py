"""The connector's ladder through its ports (peer/connecting.py): direct addresses first, then
circuits once the direct ones failed or RELAY_HEAD_START passed. A fake host and book stand in
for py-libp2p and the store; tests/reach/ runs the ladder for real behind NAT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from meshtalk.peer.connecting import RELAY_HEAD_START, Connector
from meshtalk.protocol.errors import PeerUnreachable
from meshtalk.protocol.keys import NodeKey

from ..conftest import fixed_key

pytestmark = pytest.mark.timeout(30)

PEER = fixed_key("ladder-peer").peer_id
RELAY = fixed_key("ladder-relay").peer_id
DIRECT = "/ip4/192.168.2.2/tcp/4001"
OTHER = "/ip4/10.9.0.12/tcp/4001"
CIRCUIT = f"/ip4/10.9.0.1/tcp/4001/p2p/{RELAY}/p2p-circuit"


@dataclass
class Known:
    address: str


@dataclass
class Book:
    known: list[str]
    learned: list[str] = field(default_factory=list)

    def addresses(self, peer: Any) -> list[Known]:
        return [Known(a) for a in self.known]

    def learn(self, peer: Any, addresses: list[str], source: Any, now: int) -> None:
        self.learned.extend(addresses)


class Network:
    def __init__(self) -> None:
        self.connections: dict[Any, list[Any]] = {}

    def unblock_peer(self, peer: Any) -> None:
        return None


class PeerStore:
    def clear_addrs(self, peer: Any) -> None:
        return None


class Host:
    """Direct dials hang (a NAT dropping the SYN) or fail at once, as told."""

    def __init__(self, direct: str) -> None:
        self.direct = direct
        self.network = Network()
        self.tried: list[tuple[float, str]] = []

    def get_id(self) -> Any:
        return NodeKey.generate().peer_id

    def get_network(self) -> Network:
        return self.network

    def get_peerstore(self) -> PeerStore:
        return PeerStore()

    async def connect(self, info: Any) -> None:
        self.tried.append((trio.current_time(), str(info.addrs[0])))
        if self.direct == "hang":
            await trio.sleep_forever()
        raise OSError("network unreachable")


class Contacts:
    def find(self, peer: Any) -> None:
        return None


def connector(host: Host, book: Book, relayed: list[tuple[float, str]], ok: bool) -> Connector:
    async def relayed_dial(peer: Any, address: str) -> None:
        relayed.append((trio.current_time(), address))
        if not ok:
            raise ConnectionError("the relay refused the circuit")

    return Connector(
        lambda: host,  # type: ignore[arg-type, return-value]
        lambda: book,  # type: ignore[arg-type, return-value]
        Contacts(),  # type: ignore[arg-type]
        lambda: 0,
        dial_timeout=10.0,
        lookup=lambda peer: None,
        handshake_timeout=60.0,
        relayed_dial=relayed_dial,
    )


async def test_a_direct_address_that_hangs_gives_the_circuit_its_turn_after_the_head_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    host, book, relayed = Host("hang"), Book([DIRECT, CIRCUIT]), []
    start = trio.current_time()
    await connector(host, book, relayed, ok=True).dial(PEER)
    assert [a for _, a in relayed] == [CIRCUIT]
    assert relayed[0][0] - start == pytest.approx(RELAY_HEAD_START)
    assert book.learned == [CIRCUIT]  # the address that worked is remembered


async def test_direct_addresses_that_fail_at_once_do_not_make_the_circuit_wait() -> None:
    host, book, relayed = Host("fail"), Book([DIRECT, OTHER, CIRCUIT]), []
    start = trio.current_time()
    await connector(host, book, relayed, ok=True).dial(PEER)
    assert [a for _, a in host.tried] == [DIRECT, OTHER]  # direct first, in order
    assert relayed[0][0] - start < 0.01


async def test_when_every_rung_fails_the_error_names_each_address() -> None:
    host, book, relayed = Host("fail"), Book([DIRECT, CIRCUIT]), []
    with pytest.raises(PeerUnreachable) as caught:
        await connector(host, book, relayed, ok=False).dial(PEER)
    assert DIRECT in str(caught.value)
    assert "the relay refused the circuit" in str(caught.value)
