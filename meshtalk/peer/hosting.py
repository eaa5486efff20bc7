"""The node's py-libp2p host, with its connection budget and keeper in place.

The budget comes from the file-descriptor limit (raised to the hard limit at start, with a
warning when it stays small, net/budget.py) or `max_connections`, whichever is lower; the
keeper holds the node's connections within it (net/connections.py), and the host's accept
guard refuses inbound connections beyond it before their handshake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..net.budget import plan_connections
from ..net.host import MSG_PROTOCOL, HostTimeouts, build_host, inbound_handshakes, safe_handler

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from libp2p.abc import IHost, INetStream

    from ..net.connections import ConnectionKeeper
    from ..protocol.keys import NodeKey
    from .config import NodeConfig

__all__ = ["node_host"]


def node_host(
    key: NodeKey,
    keeper: ConnectionKeeper,
    config: NodeConfig,
    serve_messages: Callable[[INetStream], Awaitable[None]],
) -> IHost:
    """A host for one node: the budget planned, the keeper attached, the message handler set,
    with the config's `max_connections`, `dial_timeout` and `handshake_timeout`."""
    budget = plan_connections(cap=config.max_connections)
    keeper.budget = budget.connections
    host = build_host(
        key,
        admit=lambda: keeper.admit_inbound(inbound_handshakes(host)),
        refusal=lambda: (
            f"at the connection budget ({keeper.count()} open and "
            f"{inbound_handshakes(host)} in their handshake, of {keeper.budget})"
        ),
        timeouts=HostTimeouts(connect=config.dial_timeout, handshake=config.handshake_timeout),
    )
    keeper.attach(host)
    host.set_stream_handler(MSG_PROTOCOL, safe_handler("inbound", serve_messages))
    return host
