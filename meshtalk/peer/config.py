"""How a node listens, stores, retries, discovers and trusts: `NodeConfig`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..discovery.registry import RegistryLimits
from ..net.relay import RelayLimits
from ..protocol.frames import DEFAULT_MAX_FRAME_SIZE
from ..protocol.sealing import DEFAULT_MAX_AGE_MS, DEFAULT_MAX_FUTURE_SKEW_MS
from .contacts import Accept
from .guards import GuardLimits

__all__ = ["Accept", "Durability", "NodeConfig"]

Durability = Literal["normal", "full"]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class NodeConfig:
    """How a node listens, stores and retries. The defaults suit a node on one machine."""

    listen: list[str] = field(default_factory=lambda: ["/ip4/127.0.0.1/tcp/0"])
    durability: Durability = "normal"
    retry_initial: float = 0.2
    retry_max: float = 30.0
    # A TCP connect to one address, from when it starts: a peer that does not answer fails this
    # fast. One that answered but is busy gets `handshake_timeout` for Noise and yamux, for each
    # stream's negotiation and for HELLO (net/quirks.py says why it is long).
    dial_timeout: float = 10.0
    max_dials_in_flight: int = 2  # more wait their turn (a handshake costs ~17 ms of CPU)
    max_connections: int | None = None  # None: what the file-descriptor limit allows
    handshake_timeout: float = 60.0
    max_in_flight: int = 4096
    max_in_flight_bytes: int = 256 * 1024
    ack_timeout: float = 30.0
    # a room member's door refusing this node may only lag behind the room's log: its room
    # copies are retried this long (s) before they fail like direct ones
    room_door_grace: float = 30.0
    frame_timeout: float = 30.0  # a frame that has begun must arrive whole within this
    max_inbound_streams_per_peer: int = 4
    max_inbound_streams: int = 1024
    max_inbound_buffered_bytes: int = 64 * 1024 * 1024  # unfinished frames, every peer together
    checkpoint_interval: float = 1.0
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS
    max_age_ms: int = DEFAULT_MAX_AGE_MS
    clock: Callable[[], int] = _wall_clock_ms
    # discovery
    mesh: str = "default"
    rendezvous: list[str] = field(default_factory=list)  # points, as /ip4/../tcp/../p2p/<id>
    rendezvous_ttl: int | None = None  # None: the point's default (2 h)
    discover_interval: tuple[float, float] = (0.25, 30.0)  # fastest, slowest
    rendezvous_point: bool = False  # serve /rendezvous/1.0.0 for others too
    rendezvous_limits: RegistryLimits | None = None
    bootstrap: list[str] = field(default_factory=list)  # peers to dial at start, with /p2p/
    # reach (docs/reach.md): relays to reserve at (rendezvous points are tried as relays too),
    # and whether this node relays for others
    relays: list[str] = field(default_factory=list)  # /ip4/../tcp/../p2p/<id>
    serve_relay: bool = False
    relay_limits: RelayLimits | None = None
    mdns: bool = True
    mdns_interfaces: list[str] | None = None  # IPv4 addresses to use; None: every interface
    # trust: "contacts" accepts messages from trusted contacts only, "anyone" from every peer
    # that is not blocked
    accept: Accept = "contacts"
    name: str | None = None  # how this node introduces itself when pairing
    # agent messages (metadata "via": "agent") are checked against these on every send path;
    # None: no guards (a program that sends as fast as it likes)
    guards: GuardLimits | None = field(default_factory=GuardLimits.defaults)
    log_bodies: bool = False  # message text in the log (off: ids and sizes only)
    # retention: forget delivered and read messages older than retain_days or beyond
    # retain_mib (0: no limit); a message still queued or unread is never forgotten
    retain_days: int = 0
    retain_mib: int = 0
