"""Reaching peers: their known addresses, dialing them, and the list of every known peer.

The `Connector` is the `Dialer` port of the peer links and of pairing. It dials each known
address in turn (most recently seen first, then the contact's own), and asks discovery to look
again when none works.

Dials are bounded: at most `max_dials` per node are in flight, the others wait their turn in
order (trio's semaphore is FIFO), and each attempt's timeout counts from when it starts, not
from when it was queued. On 2 cores a Noise handshake costs ~17 ms of CPU on both ends
together, so a burst of hundreds of dials at once would push every one of them past its timeout
and the retries would add more work. A peer that answered gets the long handshake timeout
(net/quirks.py); one whose handshake did not finish in it dials in a lane of its own next time,
so a peer that accepts and then stalls holds the other dials back once at most. (Giving the
turn away while a handshake goes on instead let the load grow: in bench/mesh.py at N=100, 4,192
interruptions in 240 s, against 17 with the lane.) A dial that waits its turn first looks
whether the peer connected to us meanwhile, which also saves most of the duplicate connections
of two nodes dialing each other. A connection that works is reused,
never closed to redial: only a `fresh` dial (the link could not open a stream on it within the
handshake timeout) drops it first.

The ladder (docs/reach.md): direct addresses first, one after the other; relayed (circuit)
addresses once the direct ones failed or `RELAY_HEAD_START` seconds passed, whichever is first
(a NATed peer's private address usually times out rather than refuses), and the first
connection that works ends the others. A relayed connection is later replaced by a direct one
when hole punching works (net/relay.py, net/connections.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio
from libp2p.custom_types import TProtocol

from ..net.host import (
    NETWORK_ERRORS,
    disconnect_peer,
    forget_dial_state,
    peer_info,
    to_libp2p_id,
    without_peer_id,
)
from ..net.relay import is_circuit, is_relayed
from ..protocol.errors import PeerUnreachable
from .models import KnownPeer
from .store import AddressSource, KnownAddress

if TYPE_CHECKING:
    from libp2p.abc import IHost

    from ..protocol.keys import PeerId
    from .contacts import Contacts
    from .ports import Clock, StreamLike
    from .store import AddressBook

__all__ = ["Connector", "DialStatistics", "RELAY_HEAD_START", "YIELD_SECONDS"]

YIELD_SECONDS: Final = 3.0
RELAY_HEAD_START: Final = 2.0


@dataclass(frozen=True)
class DialStatistics:
    """Dials in flight (the lane of slow peers adds one) and waiting for their turn, against
    the limit; dials so far."""

    in_flight: int
    queued: int
    limit: int
    dials: int
    failed: int
    yielded: int  # dials not made: the peer, given time to, connected to us


class Connector:
    """Connections and addresses of one node's peers."""

    def __init__(
        self,
        host: Callable[[], IHost],
        book: Callable[[], AddressBook],
        contacts: Contacts,
        clock: Clock,
        dial_timeout: float,
        lookup: Callable[[PeerId], None],
        max_dials: int = 2,
        handshake_timeout: float = 60.0,
        relayed_dial: Callable[[PeerId, str], Awaitable[None]] | None = None,
    ) -> None:
        """`host()`: the running py-libp2p host (raises NodeClosed otherwise); `lookup(peer)`:
        ask discovery for fresh addresses of `peer`; `max_dials`: dials in flight at most;
        `dial_timeout`: a TCP connect (the host bounds it); `handshake_timeout`: a peer that
        answered, for the handshake and for each new stream; `relayed_dial(peer, address)`:
        connect through the relay a circuit address names (None: circuits are skipped)."""
        self._host = host
        self._relayed_dial = relayed_dial
        self._book = book
        self._contacts = contacts
        self._clock = clock
        self._dial_timeout = dial_timeout
        self._handshake_timeout = handshake_timeout
        self._lookup = lookup
        self._learned = trio.Event()
        self._max_dials = max_dials
        self._slots = trio.Semaphore(max_dials)
        # Peers whose last dial answered but did not finish its handshake in time dial one at
        # a time in a lane of their own: a peer that accepts and then stalls holds no other
        # dial back more than once.
        self._slow: set[PeerId] = set()
        self._slow_lane = trio.Semaphore(1)
        self._dials = 0
        self._failed = 0
        self._yielded = 0  # the peer connected to us while we gave it time to
        self._inbound = trio.Event()  # set (and replaced) when a peer connects to us

    def is_connected(self, peer: PeerId) -> bool:
        """Whether the host holds an open connection to `peer` now."""
        conns = self._host().get_network().connections.get(to_libp2p_id(peer), ())
        return any(not conn.is_closed for conn in conns)

    def connection_kind(self, peer: PeerId) -> str | None:
        """ "direct" or "relayed" (the connection new streams use), None when not connected."""
        conns = self._host().get_network().connections.get(to_libp2p_id(peer), ())
        kinds = [
            "relayed" if is_relayed(conn) else "direct" for conn in conns if not conn.is_closed
        ]
        return kinds[0] if kinds else None

    async def dial(self, peer: PeerId, fresh: bool = False) -> None:
        """Connect to `peer` unless connected: each known address in turn (most recent first),
        then ask discovery. `fresh`: the connection held now does not work; drop it first.

        Raises PeerUnreachable when no address works.
        """
        if fresh:
            await disconnect_peer(self._host(), peer)
        elif self.is_connected(peer) or (self._slots.value == 0 and await self._yield_to(peer)):
            return
        slow = peer in self._slow
        async with self._slow_lane if slow else self._slots:
            if self.is_connected(peer):  # it connected to us while we waited
                return
            self._dials += 1
            try:
                await self._dial_addresses(peer)
            except PeerUnreachable:
                self._failed += 1
                raise

    def peer_connected(self, peer: PeerId) -> None:
        """`peer` connected to us: a dial of ours waiting for it to do so goes no further.

        (A dial already in its handshake is not cancelled: the other end may have registered
        that connection already, and closing it would cut what it sends there.)"""
        self._slow.discard(peer)  # its handshakes finish again
        self._inbound.set()
        self._inbound = trio.Event()

    async def _yield_to(self, peer: PeerId) -> bool:
        """In a burst of dials, a node gives a peer with a lower ID (whose dial would win, see
        net/connections.py) `YIELD_SECONDS` to connect first; whether it did."""
        if self._host().get_id().to_bytes() < peer.to_bytes():
            return False
        with trio.move_on_after(YIELD_SECONDS):
            while not self.is_connected(peer):
                await self._inbound.wait()
            self._yielded += 1
            return True
        return False

    async def _dial_addresses(self, peer: PeerId) -> None:
        addresses = self.addresses_of(peer)
        direct = [a for a in addresses if not is_circuit(a)]
        relayed = [a for a in addresses if is_circuit(a)] if self._relayed_dial else []
        errors: list[str] = []
        connected: list[str] = []
        async with trio.open_nursery() as nursery:
            give_way = trio.Event()  # the direct addresses failed: relays need not wait

            async def direct_ladder() -> None:
                for address in direct:
                    if await self._attempt(peer, address, errors):
                        connected.append(address)
                        nursery.cancel_scope.cancel()
                        return
                give_way.set()

            async def relayed_ladder() -> None:
                with trio.move_on_after(RELAY_HEAD_START if direct else 0):
                    await give_way.wait()
                for address in relayed:
                    if await self._attempt(peer, address, errors):
                        connected.append(address)
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(direct_ladder)
            if relayed:
                nursery.start_soon(relayed_ladder)
        if connected:
            self._slow.discard(peer)
            self._book().learn(peer, connected[:1], AddressSource.CONNECTION, self._clock())
            return
        self._lookup(peer)
        if not addresses:
            raise PeerUnreachable(f"no known address for {peer} yet; asking discovery")
        raise PeerUnreachable(f"{peer} is unreachable: " + "; ".join(errors))

    async def _attempt(self, peer: PeerId, address: str, errors: list[str]) -> bool:
        """One address; whether it connected (a failure is added to `errors`)."""
        host = self._host()
        try:
            # The host bounds the TCP connect by the dial timeout (net/quirks.py).
            with trio.fail_after(self._dial_timeout + self._handshake_timeout):
                if is_circuit(address):
                    assert self._relayed_dial is not None
                    await self._relayed_dial(peer, address)
                else:
                    # py-libp2p dials only the first address it holds for a peer and refuses
                    # to redial for 60 s after a failure: start each attempt from a clean slate.
                    forget_dial_state(host, peer)
                    await host.connect(peer_info(peer, [address]))
        except (*NETWORK_ERRORS, ConnectionError, trio.TooSlowError) as exc:
            if isinstance(exc, trio.TooSlowError):  # it answered, then did not finish
                self._slow.add(peer)
            errors.append(f"{address}: {type(exc).__name__} {exc}".rstrip())
            return False
        return True

    def statistics(self) -> DialStatistics:
        """Dials in flight and queued now, the limit, and dials (and failures) so far."""
        return DialStatistics(
            in_flight=self._max_dials - self._slots.value + 1 - self._slow_lane.value,
            queued=self._slots.statistics().tasks_waiting,
            limit=self._max_dials,
            dials=self._dials,
            failed=self._failed,
            yielded=self._yielded,
        )

    async def open_stream(
        self, peer: PeerId, protocol: str, timeout: float | None = None
    ) -> StreamLike:
        """A new stream of `protocol` to `peer` on the open connection, within `timeout` or the
        handshake timeout (the peer is busy, not gone, when it takes long)."""
        with trio.fail_after(self._handshake_timeout if timeout is None else timeout):
            stream: StreamLike = await self._host().new_stream(
                to_libp2p_id(peer), [TProtocol(protocol)]
            )
        return stream

    def addresses_of(self, peer: PeerId) -> list[str]:
        """Known addresses of a peer: most recently seen first, then the contact's own."""
        learned = [known.address for known in self._book().addresses(peer)]
        contact = self._contacts.find(peer)
        given = [without_peer_id(a) for a in contact.addresses] if contact is not None else []
        return list(dict.fromkeys([*learned, *given]))

    def learned(self) -> None:
        """New addresses were learned: wake `wait_known`."""
        self._learned.set()
        self._learned = trio.Event()

    async def wait_known(self, peer: PeerId, timeout: float | None = None) -> list[str]:
        """Wait until an address of `peer` is known (learned or given); returns them all.

        Raises PeerUnreachable if discovery finds none within `timeout` seconds.
        """
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            while True:
                learned = self._learned
                addresses = self.addresses_of(peer)
                if addresses:
                    return addresses
                await learned.wait()
        raise PeerUnreachable(f"no address of {peer} was found within {timeout} s")

    def peers(self, connection: Callable[[PeerId], str | None]) -> list[KnownPeer]:
        """Every peer this node knows: contacts and discovered peers, most recently seen first;
        `connection(peer)`: "direct", "relayed" or None (offline)."""
        contacts = {c.peer_id: c for c in self._contacts.all()}
        found: dict[PeerId, list[KnownAddress]] = {}
        for address in self._book().everything():
            found.setdefault(address.peer_id, []).append(address)
        peers = []
        for peer in dict.fromkeys([*contacts, *found]):
            contact, known = contacts.get(peer), found.get(peer, [])
            seen = [k.last_seen_ms for k in known]
            if contact is not None and contact.last_seen_ms is not None:
                seen.append(contact.last_seen_ms)
            peers.append(
                KnownPeer(
                    peer_id=peer,
                    name=contact.name if contact is not None else None,
                    trust=contact.trust if contact is not None else None,
                    addresses=tuple(dict.fromkeys(k.address for k in known)),
                    sources=tuple(sorted({k.source.value for k in known})),
                    last_seen_ms=max(seen) if seen else None,
                    online=(kind := connection(peer)) is not None,
                    connection=kind,
                )
            )
        peers.sort(key=lambda p: -(p.last_seen_ms or 0))
        return peers
