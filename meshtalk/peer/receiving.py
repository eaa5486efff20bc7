"""Receiving: what inbound streams store, and the readers that wait for it.

`Receiver` is the `Inbox` port of the inbound handler: it stores opened envelopes, counts what
was refused, and wakes every `MessageStream` waiting for the next message.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

from ..protocol.errors import MeshtalkError
from .state import NodeState, not_running
from .store import IncomingResult

if TYPE_CHECKING:
    from ..protocol.keys import PeerId
    from .models import Message
    from .ports import Clock, Counter
    from .store import Store
    from .store.messages import Incoming

__all__ = ["MessageStream", "Receiver"]

logger = logging.getLogger("meshtalk.node")


class Receiver:
    """Incoming messages of one node (the `Inbox` port)."""

    def __init__(
        self, own: PeerId, store: Callable[[], Store], clock: Clock, count: Counter
    ) -> None:
        self._own = own
        self._store = store
        self._clock = clock
        self._count = count
        self._incoming = trio.Event()
        self._stopped = False

    @property
    def changed(self) -> trio.Event:
        """An event set when the next message is stored (take it before reading the store)."""
        return self._incoming

    def store_incoming(self, items: Sequence[Incoming]) -> list[IncomingResult | MeshtalkError]:
        """Store opened envelopes and wake readers."""
        results = self._store().messages.store_incoming(items, self._own, self._clock())
        stored = sum(
            1 for r in results if isinstance(r, IncomingResult) and not (r.duplicate or r.held)
        )
        duplicates = sum(1 for r in results if isinstance(r, IncomingResult) and r.duplicate)
        self._count("received", stored)
        self._count("duplicates", duplicates)
        if stored:
            self._wake()
        return results

    def count_refusal(self, peer: PeerId | None, error: MeshtalkError) -> None:
        """Record a refused delivery attempt."""
        self._count("refused", 1)
        logger.info("refused a delivery from %s: %s", peer or "an unknown sender", error)
        if peer is not None:
            self._store().contacts.record_refusal(
                peer, f"{type(error).__name__}: {error}", self._clock()
            )

    def _wake(self) -> None:
        self._incoming.set()
        self._incoming = trio.Event()

    def stopped(self) -> None:
        """The node stopped: every reader's wait ends with NodeClosed."""
        self._stopped = True
        self._incoming.set()

    def stream(self, after: int, consumer: str | None) -> MessageStream:
        """Messages after cursor `after` (see `Node.messages`)."""
        return MessageStream(self, after, consumer)

    async def next_batch(self, after: int) -> list[Message]:
        """Messages after `after`, waiting until there is at least one."""
        while True:
            event = self._incoming
            if self._stopped:
                raise not_running(NodeState.STOPPED)
            batch = self._store().messages.incoming(after, 100)
            if batch:
                return batch
            await event.wait()

    def handled(self, consumer: str, cursor: int) -> None:
        """Remember that `consumer` handled everything up to `cursor`."""
        self._store().messages.set_consumer_cursor(consumer, cursor)


class MessageStream:
    """Async iterator over a node's incoming messages (see `Node.messages`)."""

    def __init__(self, receiver: Receiver, after: int, consumer: str | None) -> None:
        self._receiver = receiver
        self.cursor = after
        self._consumer = consumer
        self._buffer: collections.deque[Message] = collections.deque()
        self._handled: int | None = None

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Message:
        if self._consumer is not None and self._handled is not None:
            self._receiver.handled(self._consumer, self._handled)
            self._handled = None
        if not self._buffer:
            self._buffer.extend(await self._receiver.next_batch(self.cursor))
        message = self._buffer.popleft()
        self.cursor = self._handled = message.cursor
        return message
