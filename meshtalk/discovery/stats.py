"""What the discovery side's `statistics()` return: frozen, typed snapshots (issue 13).

`Registry`, `RendezvousPoint`, `RendezvousSession` and `MdnsService` each return one of these,
and the node's discovery returns a `DiscoveryStatistics` holding the rest. A snapshot never
changes; ask again for newer numbers. `to_json()` gives each as the plain dict the control
protocol's `status` op sends (the keys are those of the dicts `statistics()` returned before);
`dataclasses.asdict` also works, nesting the registry in `PointStatistics` and keeping the
error of `MdnsStatistics` apart from its state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DiscoveryStatistics",
    "MdnsState",
    "MdnsStatistics",
    "PointStatistics",
    "RegistryStatistics",
    "SessionState",
    "SessionStatistics",
]

SessionState = Literal["starting", "registering", "registered", "unreachable", "failed"]
"""Where a rendezvous session is: before its first round, registering, registered (the last
round worked), unreachable (a network or protocol error; it retries) or failed (a bug; it backs
off and retries)."""

MdnsState = Literal["starting", "running", "failed", "stopped"]
"""Where the mDNS service is: starting, running, failed (it could not start; the node runs
without it) or stopped."""


@dataclass(frozen=True)
class RegistryStatistics:
    """A rendezvous point's registry: live registrations and the sizes behind them."""

    registrations: int
    record_bytes: int
    namespaces: int
    peers: int
    connections: int
    sources: int
    index_entries: int  # registration numbers in the per-namespace lists, stale ones included
    expiry_entries: int  # entries in the expiry heap, stale ones included

    def to_json(self) -> dict[str, int]:
        """The registry's sizes by field name."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PointStatistics:
    """A rendezvous point: its registry and the requests it has answered since it started."""

    registry: RegistryStatistics
    register: int  # REGISTER requests, refused ones included
    discover: int  # DISCOVER requests, refused ones included
    unregister: int
    malformed: int  # streams reset for sending garbage or a response type
    refused: Mapping[str, int]  # REGISTER and DISCOVER refusals by status name ("E_UNAVAILABLE")

    def to_json(self) -> dict[str, int]:
        """One flat dict: the registry's sizes, then each request counter that is not 0, with
        the refusals as `refused_<status name>`."""
        counters = {
            "register": self.register,
            "discover": self.discover,
            "unregister": self.unregister,
            "malformed": self.malformed,
            **{f"refused_{status}": count for status, count in self.refused.items()},
        }
        return {**self.registry.to_json(), **{k: v for k, v in counters.items() if v}}


@dataclass(frozen=True)
class SessionStatistics:
    """A node's rendezvous session with one point."""

    point: str  # the point's peer ID
    state: SessionState
    last_error: str | None  # why the last round failed; None once a round works
    ttl: int | None  # the TTL the point granted last; None before the first registration
    registrations: int
    discovered: int  # records of other peers the point returned
    invalid_records: int  # records that did not verify, skipped

    def to_json(self) -> dict[str, Any]:
        """The session's fields by name."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MdnsStatistics:
    """The node's mDNS service."""

    state: MdnsState
    found: int  # announcements of other peers heard
    error: str | None  # why it could not start (state "failed"), else None

    def to_json(self) -> dict[str, Any]:
        """`state` (a failed one as "failed: <error>") and `found`."""
        state = f"failed: {self.error}" if self.state == "failed" else self.state
        return {"state": state, "found": self.found}


@dataclass(frozen=True)
class DiscoveryStatistics:
    """A node's discovery: its rendezvous sessions, the point it serves and mDNS (None when
    off)."""

    rendezvous: tuple[SessionStatistics, ...]
    point: PointStatistics | None
    mdns: MdnsStatistics | None

    def to_json(self) -> dict[str, Any]:
        """`rendezvous` (a list), `point` and `mdns` (None when off), each as its `to_json()`."""
        return {
            "rendezvous": [session.to_json() for session in self.rendezvous],
            "point": self.point.to_json() if self.point is not None else None,
            "mdns": self.mdns.to_json() if self.mdns is not None else None,
        }
