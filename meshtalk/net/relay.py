"""Circuit relay v2 and DCUtR on py-libp2p 0.8.1: the one place that knows their API.

- `RelayServer` makes a host a relay: it accepts reservations and joins circuits, within
  `RelayLimits` (per destination, per source and in total). A relay carries Noise-encrypted
  bytes between two peers; the messages inside are sealed end to end anyway.
- `RelayClient` is a node's side: it answers relayed connections (the STOP protocol), dials
  through a relay (py-libp2p 0.8.1 does not register `CircuitV2Transport` with the swarm, so
  `dial` calls it directly), makes reservations, and drives DCUtR hole punching on relayed
  connections that reach it (the spec's initiator is the peer that accepted the circuit).

py-libp2p 0.8.1 quirks handled here: its relay handlers raise (an exception escaping a
handler ends `trio.run`), so they are wrapped like the node's own; its DCUtR auto-drive loop
punches from both ends every 2 s, so it is replaced by one punch from the accepting end; its
dial through a relay makes a reservation first when the client role is on, so the role used
for dialing is STOP only and reservations are explicit.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import multiaddr
import trio
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.dcutr import PROTOCOL_ID as DCUTR_PROTOCOL
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL
from libp2p.relay.circuit_v2.protocol import STOP_PROTOCOL_ID as STOP_PROTOCOL
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits as Libp2pRelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service.context import background_trio_service

from ..protocol.keys import PeerId
from .host import remote_peer, safe_handler, to_libp2p_id

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream

__all__ = [
    "HOP_PROTOCOL",
    "RelayClient",
    "RelayLimits",
    "RelayServer",
    "RelayStatistics",
    "announce_circuits",
    "circuit_address",
    "is_circuit",
    "is_relayed",
    "relay_of",
]

logger = logging.getLogger("meshtalk.relay")

CIRCUIT: Final = "/p2p-circuit"
PUNCH_RETRY_AFTER: Final = 300.0
"""A peer whose hole punch failed is not punched again, on a new circuit, for this long (s)."""


def is_circuit(address: str) -> bool:
    """Whether an address goes through a relay (`.../p2p/<relay>/p2p-circuit`)."""
    return CIRCUIT in address


def circuit_address(relay_address: str, relay: PeerId) -> str:
    """The address at which a node with a reservation at `relay` can be reached."""
    return f"{relay_address}/p2p/{relay}{CIRCUIT}"


def relay_of(address: str) -> PeerId | None:
    """The relay a circuit address goes through (None: not a valid circuit address)."""
    head, _, _ = address.partition(CIRCUIT)
    _, separator, relay = head.rpartition("/p2p/")
    try:
        return PeerId.from_string(relay) if separator else None
    except Exception:
        return None


def is_relayed(conn: Any) -> bool:
    """Whether a swarm connection goes through a relay (errors count as direct)."""
    try:
        if any(is_circuit(str(a)) for a in conn.get_transport_addresses()):
            return True
        # An inbound circuit is tagged only after its upgrade; its raw connection knows.
        raw = conn.muxed_conn.secured_conn.conn
        return str(getattr(raw, "connection_type", "")).endswith("RELAYED")
    except Exception:
        return False


def announce_circuits(host: IHost, circuits: Callable[[], list[str]]) -> None:
    """Make `host.get_addrs()` (what identify tells peers) include `circuits()`.

    py-libp2p 0.8.1 strips the first /p2p/ of every announced address and appends the host's
    own, which turns a circuit address into the relay's address with the wrong peer ID; so the
    circuits are appended after that step, each ending with this host's /p2p/."""
    own = f"/p2p/{host.get_id()}"
    plain = host.get_addrs

    def with_circuits() -> list[multiaddr.Multiaddr]:
        extra = []
        for address in circuits():
            with contextlib.suppress(Exception):  # a bad address is skipped, not announced
                extra.append(multiaddr.Multiaddr(address + own))
        return [*plain(), *extra]

    host.get_addrs = with_circuits  # type: ignore[method-assign]


@dataclass(frozen=True)
class RelayLimits:
    """What a relay allows. The defaults suit long agent conversations: a third of pairs may
    stay relayed for hours, and agent messages are small."""

    circuit_seconds: int = 12 * 3600  # a circuit is cut after this; the link redials
    circuit_bytes: int = 256 * 1024 * 1024  # both directions together, per circuit
    reservation_seconds: int = 3600  # nodes refresh theirs before it ends
    reservations: int = 256  # peers with a reservation, in total
    circuits_per_destination: int = 16
    circuits_per_source: int = 16
    circuits: int = 512  # open circuits, in total

    def libp2p(self) -> Libp2pRelayLimits:
        """py-libp2p's form of the limits it enforces itself."""
        return Libp2pRelayLimits(
            duration=self.circuit_seconds,
            data=self.circuit_bytes,
            max_circuit_conns=self.circuits_per_destination,
            max_reservations=self.reservations,
            reservation_ttl=self.reservation_seconds,
        )


@dataclass(frozen=True)
class RelayStatistics:
    """A relay's reservations and circuits now, and what it refused so far."""

    reservations: int
    circuits: int
    circuits_total: int
    refused: dict[str, int]


class _NoSharedCleanup(dict[Any, Any]):
    """py-libp2p 0.8.1 files open circuits by peer ID, and a circuit that ends closes the
    streams filed under its peer: those of a newer circuit of the same peer (a node that
    restarted and dialed again while its old circuit was still draining). Claiming to hold no
    peer makes that cleanup skip; `_Protocol._relay_data` closes each circuit's own streams.
    Nothing is kept (the host's close ends every circuit's streams)."""

    def __contains__(self, key: object) -> bool:
        return False

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


class _Protocol(CircuitV2Protocol):
    """py-libp2p's relay protocol, with each circuit cleaning up only its own streams."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._active_relays = _NoSharedCleanup()

    async def _relay_data(
        self, src_stream: INetStream, dst_stream: INetStream, *args: Any, **kwargs: Any
    ) -> None:
        try:
            await super()._relay_data(src_stream, dst_stream, *args, **kwargs)
        finally:
            for stream in (src_stream, dst_stream):
                await self._close_stream(stream)


class RelayServer:
    """Serves circuit relay v2 (hop) on one host, within `limits`."""

    def __init__(self, host: IHost, limits: RelayLimits | None = None) -> None:
        self.limits = limits or RelayLimits()
        self._host = host
        self._protocol = _Protocol(host, limits=self.limits.libp2p(), allow_hop=True)
        self._open: collections.Counter[bytes] = collections.Counter()  # hop streams by source
        self.circuits_total = 0
        self.refused: collections.Counter[str] = collections.Counter()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled."""
        async with background_trio_service(self._protocol):
            await self._protocol.event_started.wait()
            self._host.set_stream_handler(HOP_PROTOCOL, safe_handler("relay", self._serve_hop))
            self._host.set_stream_handler(
                STOP_PROTOCOL, safe_handler("relay stop", self._protocol._handle_stop_stream)
            )
            task_status.started()
            await trio.sleep_forever()

    async def _serve_hop(self, stream: INetStream) -> None:
        # A hop stream lasts as long as the circuit it opens (a reservation's is short), so
        # counting open hop streams counts circuits, per source and in total.
        source = remote_peer(stream).to_bytes()
        if self._open[source] >= self.limits.circuits_per_source:
            self.refused["per source"] += 1
            return
        if sum(self._open.values()) >= self.limits.circuits:
            self.refused["total"] += 1
            return
        self._open[source] += 1
        self.circuits_total += 1
        try:
            await self._protocol._handle_hop_stream(stream)
        finally:
            self._open[source] -= 1
            if self._open[source] <= 0:
                del self._open[source]

    def statistics(self) -> RelayStatistics:
        """Reservations held and circuits open now, and refusals so far."""
        manager = self._protocol.resource_manager
        manager._clean_expired()
        return RelayStatistics(
            reservations=len(manager._reservations),
            circuits=sum(self._open.values()),
            circuits_total=self.circuits_total,
            refused=dict(self.refused),
        )


@dataclass
class Reservation:
    """This node's reservation at one relay."""

    relay: PeerId
    address: str  # the relay's own address
    state: str = "reserving"  # reserving | reserved | unreachable
    expires: float = 0.0  # wall-clock seconds
    error: str | None = None


class RelayClient:
    """A node's side of relaying: reservations, dials through a relay, hole punching."""

    def __init__(self, host: IHost, dial_timeout: float) -> None:
        self._host = host
        self._dial_timeout = dial_timeout
        self._stop = CircuitV2Protocol(host, allow_hop=False)
        config = RelayConfig(roles=RelayRole.STOP)
        self._transport = CircuitV2Transport(host, self._stop, config)
        self._dcutr = DCUtRProtocol(host, dial_timeout=max(1, int(dial_timeout)))
        self._dcutr._auto_drive_loop = _no_auto_drive  # type: ignore[method-assign]
        self._nursery: trio.Nursery | None = None
        self._punching: set[PeerId] = set()
        self._failed: dict[PeerId, float] = {}  # peer -> when punching it last failed
        self.punches: collections.Counter[str] = collections.Counter()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Answer relayed connections and DCUtR until cancelled."""
        async with background_trio_service(self._stop), background_trio_service(self._dcutr):
            await self._stop.event_started.wait()
            await self._dcutr.event_started.wait()
            self._host.set_stream_handler(
                STOP_PROTOCOL, safe_handler("relayed", self._stop._handle_stop_stream)
            )
            self._host.set_stream_handler(
                DCUTR_PROTOCOL, safe_handler("dcutr", self._dcutr._handle_dcutr_stream)
            )
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()

    async def reserve(self, relay: PeerId) -> float:
        """Reserve at a connected relay; returns when it expires (wall clock, s).

        Raises ConnectionError when the relay refuses or does not answer in time."""
        relay_id = to_libp2p_id(relay)
        with trio.fail_after(self._dial_timeout):
            stream = await self._host.new_stream(relay_id, [HOP_PROTOCOL])
        try:
            with trio.fail_after(self._dial_timeout):
                ok = await self._transport._make_reservation(stream, relay_id)
        finally:
            with trio.move_on_after(1):
                await stream.close()
        if not ok:
            raise ConnectionError(f"relay {relay} refused the reservation")
        expires = float(self._transport._reservations.get(relay_id, 0))
        return expires if expires > 0 else time.time() + 3600

    async def dial(self, peer: PeerId, address: str) -> None:
        """Connect to `peer` through the relay a circuit `address` names (raises on failure)."""
        await self._transport.dial(multiaddr.Multiaddr(f"{address}/p2p/{peer}"))
        logger.debug("connected to %s through %s", peer, relay_of(address))

    def relayed_connection(self, peer: PeerId, inbound: bool) -> None:
        """A relayed connection to `peer` opened: the accepting end tries to punch through."""
        failed = self._failed.get(peer)
        if failed is not None and trio.current_time() - failed < PUNCH_RETRY_AFTER:
            return  # its routers did not let a punch through a moment ago: stay relayed
        if inbound and self._nursery is not None and peer not in self._punching:
            self._punching.add(peer)
            self._nursery.start_soon(self._punch, peer)

    async def _punch(self, peer: PeerId) -> None:
        try:
            await trio.sleep(0.2)  # let the dialer's side finish registering the circuit
            with trio.move_on_after(60):
                for _ in range(3):
                    if await self._dcutr.initiate_hole_punch(to_libp2p_id(peer)):
                        self._failed.pop(peer, None)
                        self.punches["direct"] += 1
                        logger.info("%s: a direct connection replaced the relayed one", peer)
                        return
                    await trio.sleep(1)
            self.punches["relayed"] += 1
            self._failed[peer] = trio.current_time()
            if len(self._failed) > 4096:  # bounded: forget the oldest
                del self._failed[next(iter(self._failed))]
            logger.info("%s: hole punching failed; the connection stays relayed", peer)
        except Exception:  # a DCUtR bug must not end the node: the link stays relayed
            logger.exception("hole punching with %s failed", peer)
        finally:
            self._punching.discard(peer)


async def _no_auto_drive() -> None:
    return None
