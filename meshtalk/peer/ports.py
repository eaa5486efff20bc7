"""The ports the node's parts receive, instead of the node itself.

Each part (a peer link, the inbound handler, discovery, pairing, the sender) is handed the
few things it uses through one of these small Protocols, so it can be read, and tested with a
recording double, on its own. Nothing here imports node.py; the node wires real parts together.
`StreamLike`, the byte stream a message pump runs on, lives in net/framed.py and is re-exported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from ..net.framed import StreamLike

if TYPE_CHECKING:
    from ..protocol.errors import MeshtalkError
    from ..protocol.forwarding import OpenedMessage
    from ..protocol.keys import PeerId
    from .store import IncomingResult, OutboxItem
    from .store.messages import Incoming

__all__ = [
    "Clock",
    "Counter",
    "Dialer",
    "Inbox",
    "LinkEvents",
    "LinkState",
    "Outbox",
    "RoomInbox",
    "StreamLike",
    "TrustPolicy",
]

Clock = Callable[[], int]
"""Milliseconds since the epoch (the node's clock, replaceable in tests)."""

Counter = Callable[[str, int], None]
"""Adds to one of the node's named statistics counters."""

LinkState = Literal["idle", "connecting", "connected", "backoff"]


class TrustPolicy(Protocol):
    """Who may deliver messages to this node."""

    def is_trusted(self, peer: PeerId) -> bool:
        """Whether `peer` may deliver messages now."""
        ...


class Inbox(Protocol):
    """Where the inbound handler puts what it opened, and reports what it refused."""

    def store_incoming(self, items: Sequence[Incoming]) -> list[IncomingResult | MeshtalkError]:
        """Store opened envelopes in one transaction: a result or a refusal per item."""
        ...

    def count_refusal(self, peer: PeerId | None, error: MeshtalkError) -> None:
        """Record a refused delivery (peer None: the sender could not be told)."""
        ...


class RoomInbox(Protocol):
    """What the inbound handler asks of rooms (peer/rooms.py) before it stores a message."""

    def holds(self, conversation: bytes) -> bool:
        """Whether `conversation` is a room held here (its own rules decide who may write)."""
        ...

    def is_blocked(self, peer: PeerId) -> bool:
        """Whether `peer` is a blocked contact (blocked stays blocked, even in a room)."""
        ...

    def admits(self, peer: PeerId) -> bool:
        """Whether `peer`, not a trusted contact, may open streams as a fellow room member."""
        ...

    def handle(self, opened: OpenedMessage) -> bool:
        """Act on a room control message or a join before it is stored; True when it is
        consumed (acknowledged, not stored). Raises a MeshtalkError to refuse it."""
        ...


class Outbox(Protocol):
    """What a peer link reads from, and reports back to, the outbox."""

    def pending(self, peer: PeerId, after_cursor: int, limit: int) -> list[OutboxItem]:
        """Sealed copies for `peer` waiting for their ack, oldest first."""
        ...

    def mark_sent(self, peer: PeerId, cursors: Sequence[int]) -> None:
        """These copies were written to the peer and are not acked yet."""
        ...

    def acked(self, peer: PeerId, message_ids: list[bytes]) -> None:
        """`peer` acknowledged these messages."""
        ...

    def failed(self, peer: PeerId, message_id: bytes, error: MeshtalkError) -> None:
        """`peer` refused this message for good."""
        ...

    def refused_at_door(self, peer: PeerId, error: MeshtalkError, *, rooms_too: bool) -> bool:
        """`peer` refused this node at the door: fail what that refusal is final for (room
        copies only with `rooms_too`); True if nothing is left to deliver to it."""
        ...


class Dialer(Protocol):
    """Connections to peers."""

    def is_connected(self, peer: PeerId) -> bool:
        """Whether a connection to `peer` is open now."""
        ...

    async def dial(self, peer: PeerId, fresh: bool = False) -> None:
        """Connect to `peer` unless connected, or raise PeerUnreachable. `fresh`: the connection
        held now does not work; replace it."""
        ...

    async def open_stream(
        self, peer: PeerId, protocol: str, timeout: float | None = None
    ) -> StreamLike:
        """A new stream of `protocol` on the connection to `peer` (within `timeout`, or the
        dialer's own handshake timeout)."""
        ...


class LinkEvents(Protocol):
    """What the node hears from its links and inbound streams."""

    def connected(self, peer: PeerId, version: int) -> None:
        """A trusted `peer` completed a handshake with this node (either direction), and the
        two now speak protocol `version`."""
        ...

    def active(self, peer: PeerId) -> None:
        """Messages or acks moved to or from `peer` just now (its connection is in use)."""
        ...
