"""How a node finds peers: rendezvous sessions, an optional point, bootstrap peers, mDNS.

Everything learned goes into the node's address book (with its source), and a peer whose
messages wait in the outbox is retried at once when new addresses for it turn up. Links ask
for a `lookup` when no known address works; that wakes every rendezvous session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from ..discovery.mdns import MdnsService, choose_interfaces
from ..discovery.point import RendezvousPoint
from ..discovery.records import PeerRecord, open_peer_record
from ..discovery.rendezvous import RendezvousClient, RendezvousSession, namespace_for
from ..discovery.stats import DiscoveryStatistics
from ..net.host import (
    NETWORK_ERRORS,
    identify_peer,
    peer_info,
    split_peer_address,
    to_libp2p_id,
    without_peer_id,
)
from ..protocol.errors import InvalidSignedRecord
from ..protocol.keys import PeerId
from .store import AddressSource

if TYPE_CHECKING:
    from libp2p.abc import IHost

    from ..protocol.keys import NodeKey
    from .config import NodeConfig
    from .ports import Clock, Counter
    from .store import AddressBook

__all__ = ["NodeDiscovery", "usable_address"]

logger = logging.getLogger("meshtalk.discovery")
_UNSPECIFIED = ("/ip4/0.0.0.0/", "/ip6/::/")


def usable_address(address: str) -> bool:
    """Whether an address is worth dialing (not 0.0.0.0 or ::)."""
    return not address.startswith(_UNSPECIFIED)


class NodeDiscovery:
    """The discovery side of one running node."""

    def __init__(
        self,
        key: NodeKey,
        config: NodeConfig,
        clock: Clock,
        book: Callable[[], AddressBook],
        listen_addrs: Callable[[], list[str]],
        on_learned: Callable[[PeerId], None],
        count: Counter,
    ) -> None:
        """`book()`: the running node's address book; `listen_addrs()`: where it listens now;
        `on_learned(peer)`: new addresses of `peer` were learned."""
        self._key = key
        self._own = key.peer_id
        self._config = config
        self._clock = clock
        self._book = book
        self._listen_addrs = listen_addrs
        self._on_learned = on_learned
        self._count = count
        self._host: IHost | None = None
        self._nursery: trio.Nursery | None = None
        self._identifying: set[PeerId] = set()
        self.point: RendezvousPoint | None = None
        if config.rendezvous_point:
            self.point = RendezvousPoint(config.rendezvous_limits)
        self.sessions: list[RendezvousSession] = []
        self.mdns: MdnsService | None = None
        self._points = [split_peer_address(a) for a in config.rendezvous]
        self._bootstrap = [split_peer_address(a) for a in config.bootstrap]

    def attach(self, host: IHost) -> None:
        """Install stream handlers (before the host listens)."""
        self._host = host
        if self.point is not None:
            self.point.attach(host)

    def run(self, nursery: trio.Nursery) -> None:
        """Start the sessions, the mDNS service and the bootstrap dials."""
        config = self._config
        self._nursery = nursery
        namespace = namespace_for(config.mesh)
        for point, address in self._points:
            if point == self._own:
                continue  # this node is the point
            self._book().learn(point, [address], AddressSource.BOOTSTRAP, self._clock())
            client = RendezvousClient(self._host, self._key, point, [address], config.dial_timeout)
            session = RendezvousSession(
                client,
                namespace,
                self.own_addresses,
                self.found_record,
                ttl=config.rendezvous_ttl,
                discover_interval=config.discover_interval,
                retry_max=config.retry_max,
            )
            self.sessions.append(session)
            nursery.start_soon(session.run, name=f"meshtalk rendezvous {point}")
        for peer, address in self._bootstrap:
            if peer != self._own:
                nursery.start_soon(self._dial_bootstrap, peer, address)
        if config.mdns:
            # On the interfaces mdns_interfaces names, else those `listen` names (ConfigError
            # for a value that is no IP address: the node does not start).
            interfaces = choose_interfaces(config.mdns_interfaces, config.listen)
            self.mdns = MdnsService(self._own, self.own_addresses, self.found_on_lan, interfaces)
            # Not awaited: zeroconf's registration takes ~0.5 s and the node is usable before.
            nursery.start_soon(self.mdns.run, name="meshtalk mdns")

    def addresses_changed(self) -> None:
        """This node's addresses changed (a relay reservation came or went): register again."""
        for session in self.sessions:
            session.addresses_changed()

    def own_addresses(self) -> list[str]:
        """The addresses this node tells others about (listen_addrs has no 0.0.0.0 or ::)."""
        return [without_peer_id(a) for a in self._listen_addrs()]

    def learn(
        self, peer: PeerId, addresses: list[str] | tuple[str, ...], source: AddressSource
    ) -> None:
        """Record addresses of `peer` and retry its deliveries if they are news."""
        addresses = [a for a in addresses if usable_address(a)]
        if peer == self._own or not addresses:
            return
        self._count(f"addresses_from_{source.value}", 1)
        if self._book().learn(peer, addresses, source, self._clock()):
            self._on_learned(peer)

    def found_record(self, record: PeerRecord) -> None:
        """A rendezvous point returned a verified record."""
        self.learn(record.peer_id, record.addresses, AddressSource.RENDEZVOUS)

    def found_on_lan(self, peer: PeerId, addresses: list[str]) -> None:
        """mDNS saw a peer announce itself on the LAN."""
        self.learn(peer, addresses, AddressSource.MDNS)

    def identify_later(self, peer: PeerId) -> None:
        """Ask a connected peer for its identify record in the background, then keep it
        (connections open without identify: see net/host.py)."""
        if self._nursery is None or peer in self._identifying:
            return
        self._identifying.add(peer)
        self._nursery.start_soon(self._identify, peer, name=f"meshtalk identify {peer}")

    async def _identify(self, peer: PeerId) -> None:
        try:
            if self._host is not None:
                await identify_peer(self._host, peer, self._config.handshake_timeout)
                self.harvest_identify(peer)
        finally:
            self._identifying.discard(peer)

    def harvest_identify(self, peer: PeerId) -> None:
        """Keep the signed record that libp2p identify brought in for a connected peer."""
        host = self._host
        if host is None:
            return
        envelope = host.get_peerstore().get_peer_record(to_libp2p_id(peer))
        if envelope is None:
            return
        try:
            record = open_peer_record(envelope.marshal_envelope())
        except InvalidSignedRecord as exc:
            logger.info("identify record of %s does not verify: %s", peer, exc)
            return
        if record.peer_id == peer:
            self.learn(peer, record.addresses, AddressSource.IDENTIFY)

    def lookup(self, peer: PeerId) -> None:
        """No known address of `peer` works: ask every rendezvous point again now."""
        for session in self.sessions:
            session.discover_now()

    async def _dial_bootstrap(self, peer: PeerId, address: str) -> None:
        self.learn(peer, [address], AddressSource.BOOTSTRAP)
        host = self._host
        if host is None:
            return
        try:
            with trio.fail_after(self._config.dial_timeout):
                await host.connect(peer_info(peer, [address]))
        except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
            logger.info("bootstrap peer %s at %s: %s", peer, address, exc)
            return
        await identify_peer(host, peer, self._config.handshake_timeout)
        self.harvest_identify(peer)

    def statistics(self) -> DiscoveryStatistics:
        """The state of each rendezvous session, the point and mDNS."""
        return DiscoveryStatistics(
            rendezvous=tuple(s.statistics() for s in self.sessions),
            point=self.point.statistics() if self.point is not None else None,
            mdns=self.mdns.statistics() if self.mdns is not None else None,
        )
