"""The node's peer links: one `PeerLink` per peer it has delivered to, started on first use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import trio

from .state import NodeState, not_running

if TYPE_CHECKING:
    from ..protocol.keys import PeerId
    from .outbound import LinkStatistics, PeerLink

__all__ = ["LinkSet"]


class LinkSet:
    """One `PeerLink` per peer with something to deliver, started on first use."""

    def __init__(self, make: Callable[[PeerId], PeerLink]) -> None:
        self._make = make
        self._links: dict[PeerId, PeerLink] = {}
        self._nursery: trio.Nursery | None = None
        self._stopped = False

    def start(self, nursery: trio.Nursery) -> None:
        """Links run in `nursery` from now on."""
        self._nursery = nursery

    def stop(self) -> None:
        """The nursery is gone: no new links."""
        self._nursery = None
        self._stopped = True

    def get(self, peer: PeerId) -> PeerLink:
        """The link of `peer`, started if it was not."""
        link = self._links.get(peer)
        if link is None:
            if self._nursery is None:
                raise not_running(NodeState.STOPPED if self._stopped else NodeState.CREATED)
            link = self._links[peer] = self._make(peer)
            self._nursery.start_soon(link.run, name=f"meshtalk link {peer}")
        return link

    def kick(self, peer: PeerId, size: int) -> None:
        """`size` more bytes wait for `peer`."""
        self.get(peer).kick(size)

    def move_off(self, peer: PeerId, connections: frozenset[object]) -> None:
        """The node no longer uses these connections to `peer`: its link moves once idle."""
        link = self._links.get(peer)
        if link is not None:
            link.move_off(connections)

    def retry(self, peer: PeerId) -> None:
        """`peer` may be reachable now: a link backing off retries at once."""
        link = self._links.get(peer)
        if link is not None and link.state != "connected":
            link.retry_now()

    def __iter__(self) -> Iterator[PeerLink]:
        return iter(list(self._links.values()))

    def statistics(self) -> dict[str, LinkStatistics]:
        """Each link's statistics, by peer ID."""
        return {str(peer): link.statistics() for peer, link in self._links.items()}
