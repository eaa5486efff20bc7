"""A snapshot of a running node's statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..discovery.stats import DiscoveryStatistics
from ..net.budget import AcceptStatistics
from ..net.connections import ConnectionStatistics
from .connecting import DialStatistics
from .inbound_limits import InboundStatistics
from .outbound import LinkStatistics

__all__ = ["NodeStatistics"]


@dataclass(frozen=True)
class NodeStatistics:
    """A snapshot of a running node: counters, outbox size, links, discovery, inbound streams,
    connections (held, against the budget), dials (in flight, queued) and refused accepts."""

    counters: Mapping[str, int]
    outbox: int
    links: Mapping[str, LinkStatistics]
    discovery: DiscoveryStatistics
    inbound: InboundStatistics
    connections: ConnectionStatistics
    dials: DialStatistics
    accepts: AcceptStatistics | None
