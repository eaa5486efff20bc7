"""Reach: keeping this node reachable through relays, and saying how it is reached.

A node reserves at every configured relay, and at every rendezvous point that turns out to
be a relay too (a point that is not one is asked again every `NOT_A_RELAY_RETRY` s). It keeps
each reservation: refreshes it before it ends, reserves again when the connection to the relay
goes (the relay restarted, or the network changed), with back-off while the relay is away.
While a reservation holds, the node announces `/p2p/<relay>/p2p-circuit` addresses (rendezvous
records, mDNS, pairing, identify) next to its own.

Reserving whenever a relay is configured is deliberate: py-libp2p 0.8.1's AutoNAT is no usable
signal (it reports PUBLIC behind a NAT), and a reservation costs one stream every half hour.
Whether this node is behind a NAT is decided locally instead: the address a relay observes is
not one of this machine's interface addresses.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from ..net.host import (
    NETWORK_ERRORS,
    identify_peer,
    local_ipv4_addresses,
    peer_info,
)
from ..net.relay import Reservation, circuit_address
from ..protocol.errors import MeshtalkError

if TYPE_CHECKING:
    from libp2p.abc import IHost

    from ..net.relay import RelayClient
    from ..protocol.keys import PeerId

__all__ = ["Reach", "ReachStatus", "NOT_A_RELAY_RETRY"]

logger = logging.getLogger("meshtalk.reach")

NOT_A_RELAY_RETRY: Final = 600.0
_REFRESH_FRACTION: Final = 0.5  # refresh a reservation half way through its life
_POLL: Final = 1.0  # how often a held reservation checks its relay is still connected


@dataclass(frozen=True)
class ReachStatus:
    """How this node can be reached: directly, through which relays, and what relays see."""

    behind_nat: bool | None  # None: no relay observed this node yet
    observed: tuple[str, ...]
    reservations: tuple[Reservation, ...]
    punches: dict[str, int]  # hole punches that ended "direct" and that stayed "relayed"
    circuits: tuple[str, ...] = ()  # where this node can be reached through relays now

    @property
    def summary(self) -> str:
        """One line for `meshtalk status`."""
        relays = [r for r in self.reservations if r.state == "reserved"]
        via = ", ".join(str(r.relay) for r in relays)
        if self.behind_nat is False:
            return "directly" + (f" (and through relay {via})" if via else "")
        if relays:
            return f"through relay {via}" + (" (behind a NAT)" if self.behind_nat else "")
        if self.behind_nat:
            return "behind a NAT, no relay reservation: only peers it dials can reach it"
        return "directly (no relay configured or reserved)"


class Reach:
    """The reservations of one running node."""

    def __init__(
        self,
        own: PeerId,
        host: Callable[[], IHost],
        connected: Callable[[PeerId], bool],
        client: Callable[[], RelayClient],
        relays: list[tuple[PeerId, str]],
        points: list[tuple[PeerId, str]],
        on_change: Callable[[], None],
        dial_timeout: float,
        retry_max: float,
    ) -> None:
        """`connected(peer)`: whether the host holds a connection to it; `relays`: (peer,
        address) of configured relays; `points`: rendezvous points, tried as relays too;
        `on_change()`: the circuit addresses changed (announce them again)."""
        self._host = host
        self._connected = connected
        self._client = client
        self._on_change = on_change
        self._dial_timeout = dial_timeout
        self._retry_max = retry_max
        # a node that is itself one of the relays or points does not reserve at itself
        candidates = dict.fromkeys(c for c in [*relays, *points] if c[0] != own)
        self._configured = {peer for peer, _ in relays}
        self.reservations = {peer: Reservation(peer, address) for peer, address in candidates}

    def run(self, nursery: trio.Nursery) -> None:
        """Keep a reservation at every relay, until cancelled."""
        for reservation in self.reservations.values():
            nursery.start_soon(self._keep, reservation, name=f"meshtalk relay {reservation.relay}")

    def circuit_addresses(self) -> list[str]:
        """Where this node can be reached through a relay now."""
        return [
            circuit_address(r.address, r.relay)
            for r in self.reservations.values()
            if r.state == "reserved"
        ]

    def status(self) -> ReachStatus:
        """Reservations, observed addresses, and whether this node seems to be behind a NAT."""
        observed = observed_addresses(self._host())
        local = set(local_ipv4_addresses())
        ips = {address.split("/")[2] for address in observed if address.startswith("/ip4/")}
        behind = (not ips <= local) if ips else None
        shown = [r for r in self.reservations.values() if r.state != "not a relay"]
        punches = dict(self._client().punches)
        circuits = tuple(self.circuit_addresses())
        return ReachStatus(behind, tuple(observed), tuple(shown), punches, circuits)

    async def _keep(self, reservation: Reservation) -> None:
        backoff = 0.5
        while True:
            try:
                await self._reserve(reservation)
                backoff = 0.5
                await self._hold(reservation)
            except (*NETWORK_ERRORS, MeshtalkError, ConnectionError, trio.TooSlowError) as exc:
                self._set(reservation, "unreachable", error=f"{type(exc).__name__}: {exc}")
                if _not_a_relay(exc) and reservation.relay not in self._configured:
                    self._set(reservation, "not a relay", error=None)
                    await trio.sleep(NOT_A_RELAY_RETRY)
                    continue
                logger.debug("relay %s: %s", reservation.relay, reservation.error)
            except Exception:  # a bug here must not end the node: try again later
                logger.exception("keeping the reservation at %s failed", reservation.relay)
                self._set(reservation, "unreachable", error="internal error (see the log)")
            await trio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._retry_max)

    async def _reserve(self, reservation: Reservation) -> None:
        host = self._host()
        with trio.fail_after(self._dial_timeout * 2):
            await host.connect(peer_info(reservation.relay, [reservation.address]))
        # What the relay observes of us decides "behind a NAT" and feeds DCUtR's addresses
        # (the node runs identify only on request).
        await identify_peer(host, reservation.relay, self._dial_timeout)
        expires = await self._client().reserve(reservation.relay)
        changed = reservation.state != "reserved"
        reservation.expires = expires
        self._set(reservation, "reserved", error=None, announce=changed)
        if changed:
            logger.info("reserved at relay %s", reservation.relay)

    async def _hold(self, reservation: Reservation) -> None:
        """Until the reservation should be refreshed, or the relay connection is gone."""
        life = max(10.0, reservation.expires - time.time())
        refresh_at = trio.current_time() + life * _REFRESH_FRACTION
        while trio.current_time() < refresh_at:
            if not self._connected(reservation.relay):
                self._set(reservation, "reserving", error="the connection to the relay closed")
                return
            await trio.sleep(_POLL)

    def _set(
        self, reservation: Reservation, state: str, error: str | None, announce: bool = True
    ) -> None:
        was = reservation.state
        reservation.state, reservation.error = state, error
        if announce and (was == "reserved") != (state == "reserved"):
            self._on_change()


def _not_a_relay(exc: BaseException | None) -> bool:
    """Whether the peer answered that it does not speak the relay protocol (multistream "na";
    py-libp2p wraps that in a StreamFailure)."""
    for _ in range(8):  # the chain of causes, bounded
        if exc is None:
            return False
        if (
            "protocol not supported" in str(exc).lower()
            or "protocols not supported" in str(exc).lower()
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def observed_addresses(host: IHost) -> list[str]:
    """The addresses peers observed this node at (over direct connections), most seen first."""
    manager = getattr(host, "_observed_addr_manager", None)
    if manager is None:
        return []
    try:
        return [str(a) for a in manager.addrs(min_observers=1) if "/p2p-circuit" not in str(a)]
    except Exception:
        return []
