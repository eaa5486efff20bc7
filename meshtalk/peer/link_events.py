"""What the node does when its links and inbound streams connect, carry traffic or must move.

`LinkEvents` is the port the peer links and the inbound handler report to: a handshake
completed (update last-seen, flush the peer's outbox now, identify a peer whose addresses are
stale), traffic moved (the connection is in use, not idle), and the connection keeper replaced
a duplicate connection (the peer's link moves off it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ..net.host import from_libp2p_id, to_libp2p_id

if TYPE_CHECKING:
    from libp2p.peer.id import ID

    from ..net.connections import ConnectionKeeper
    from ..protocol.keys import PeerId
    from .connecting import Connector
    from .contacts import Contacts
    from .discovering import NodeDiscovery
    from .links import LinkSet
    from .ports import Clock
    from .store import AddressBook

__all__ = ["NodeLinkEvents"]

IDENTIFY_AFTER_MS: Final = 600_000
"""A connected peer none of whose addresses was seen this recently is asked for its record."""


class NodeLinkEvents:
    """The node's `LinkEvents`: last-seen, outbox flushes, identify, idleness, moves."""

    def __init__(
        self,
        contacts: Contacts,
        discovery: NodeDiscovery,
        links: LinkSet,
        book: Callable[[], AddressBook],
        clock: Clock,
        keeper: Callable[[], ConnectionKeeper],
        connector: Connector,
        rooms_connected: Callable[[PeerId], None],
    ) -> None:
        """`rooms_connected(peer)`: rooms compare what they hold with a member that connected."""
        self._contacts = contacts
        self._rooms_connected = rooms_connected
        self._discovery = discovery
        self._links = links
        self._book = book
        self._clock = clock
        self._keeper = keeper
        self._connector = connector
        self._versions: dict[PeerId, int] = {}  # trusted peers and room members only

    def protocol(self, peer: PeerId) -> int | None:
        """The protocol version `peer` and this node spoke at their last handshake (None:
        none since this node started)."""
        return self._versions.get(peer)

    def connected(self, peer: PeerId, version: int) -> None:
        """A trusted peer completed a handshake: update last-seen, remember the version the
        two speak, and flush its outbox now.

        Connections open without libp2p identify (net/host.py): a peer that connected to us and
        none of whose addresses was seen for 10 minutes is asked for its signed record.
        """
        self._contacts.seen(peer)
        self._versions[peer] = version
        recent = self._clock() - IDENTIFY_AFTER_MS
        if not any(known.last_seen_ms >= recent for known in self._book().addresses(peer)):
            self._discovery.identify_later(peer)
        self._links.retry(peer)
        self._rooms_connected(peer)

    def active(self, peer: PeerId) -> None:
        """Messages or acks moved with `peer` just now: its connection is in use."""
        self._keeper().touch(to_libp2p_id(peer))

    def superseded(self, peer: ID, old: frozenset[object]) -> None:
        """The keeper replaced a duplicate connection: the peer's link moves off `old`."""
        self._links.move_off(from_libp2p_id(peer), old)

    def inbound(self, peer: ID) -> None:
        """`peer` connected to us: a dial of ours waiting for that need not be made."""
        self._connector.peer_connected(from_libp2p_id(peer))
