"""The node's lifecycle state, its statistics snapshot, and the error for a stopped node."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from ..discovery.stats import DiscoveryStatistics
from ..protocol.errors import NodeClosed
from .inbound_limits import InboundStatistics
from .outbound import LinkStatistics

__all__ = ["NodeState", "NodeStatistics", "not_running"]


class NodeState(enum.StrEnum):
    """Where a node is in its life: created, starting, running, stopping, stopped."""

    CREATED = "created"  # constructed; nothing is open
    STARTING = "starting"  # the profile is locked and the store open; the host is coming up
    RUNNING = "running"  # listening, delivering, receiving
    STOPPING = "stopping"  # cancelled; closing the host and the store
    STOPPED = "stopped"  # everything released (a node is not restarted: make a new one)


def not_running(state: NodeState) -> NodeClosed:
    """The error for a call that needs a running node."""
    if state is NodeState.CREATED:
        return NodeClosed("the node is not running; start it with open_node() or serve()")
    return NodeClosed(f"the node is {state.value}; start a new one with open_node() or serve()")


@dataclass(frozen=True)
class NodeStatistics:
    """A snapshot of a running node: counters, outbox size, links, discovery, inbound streams."""

    counters: Mapping[str, int]
    outbox: int
    links: Mapping[str, LinkStatistics]
    discovery: DiscoveryStatistics
    inbound: InboundStatistics
