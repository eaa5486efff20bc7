"""The node's lifecycle state, and the one error for using a node that is not running."""

from __future__ import annotations

import enum

from ..protocol.errors import NodeClosed

__all__ = ["NodeState", "not_running"]


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
