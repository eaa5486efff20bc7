"""The node's reach methods (a mixin of `Node`): its addresses, relayed dials, hole punching."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..net.host import from_libp2p_id
from .state import not_running

if TYPE_CHECKING:
    from ..net.relay import RelayClient
    from .reach import Reach
    from .state import NodeState

__all__ = ["NodeReach"]


class NodeReach:
    """Where a node can be reached, and its relay client (docs/reach.md)."""

    listen_addrs: list[str]
    reach: Reach
    state: NodeState
    _relay_client: RelayClient | None

    def own_addresses(self) -> list[str]:
        """Where this node can be reached: where it listens, then through relays."""
        return [*self.listen_addrs, *self.reach.circuit_addresses()]

    @property
    def relay_client(self) -> RelayClient:
        """Dials through relays, reservations and hole punching (only while the node runs)."""
        if self._relay_client is None:
            raise not_running(self.state)
        return self._relay_client

    def _relayed_connection(self, peer: Any, inbound: bool) -> None:
        """The keeper saw a relayed connection to `peer` (a py-libp2p ID) open."""
        if self._relay_client is not None:
            self._relay_client.relayed_connection(from_libp2p_id(peer), inbound)
