"""Sending: the conversation guards, the group commit, and waiting for acks.

`send` builds and seals a message, hands it to the committer and returns once it is durable
(store and outbox, one transaction shared by every sender that queued meanwhile). Links then
deliver it; their acks and refusals come back through `acked` and `failed`, which wake whoever
waits in `wait_delivered`. The agent guards run here, so every path that sends (control
socket, embedded Mesh, the trio API) is held to them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ..protocol.envelope import Envelope, direct_conversation_id, new_message_id
from ..protocol.errors import (
    ConfigError,
    DeliveryFailed,
    DeliveryTimeout,
    InternalError,
    MeshtalkError,
    NodeClosed,
    UnknownPeer,
)
from ..protocol.keys import NodeKey, PeerId
from ..protocol.sealing import seal_signed, sign_envelope
from .guards import AgentGuard, via_of
from .models import MessageStatus
from .state import NodeState, not_running

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # py-libp2p's trio-typing stubs stand in for trio's

    from .ports import Clock, Counter
    from .store import OutboxItem, Store

__all__ = ["Conversation", "Sender", "internal_error"]

logger = logging.getLogger("meshtalk.node")


def internal_error(doing: str, exc: BaseException) -> InternalError:
    """A bug met while `doing` something, as the error the caller gets."""
    return InternalError(
        f"{doing} failed unexpectedly ({type(exc).__name__}: {exc}); nothing of it was kept, "
        "the node goes on (please report this with the node's log)"
    )


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a message goes: the conversation's id, its kind and members (to create it)."""

    id: bytes
    kind: str
    members: tuple[PeerId, ...]


@dataclass
class _QueuedSend:
    """A send waiting for the committer."""

    conversation: bytes
    kind: str
    members: tuple[PeerId, ...]
    build: Callable[[int], tuple[Envelope, dict[PeerId, bytes], bytes]]
    done: trio.Event = field(default_factory=trio.Event)
    error: Exception | None = None


class Sender:
    """The sending side of one node; also the `Outbox` port its links report to."""

    def __init__(
        self,
        key: NodeKey,
        store: Callable[[], Store],
        clock: Clock,
        recipient: Callable[[str | PeerId], PeerId],
        kick: Callable[[PeerId, int], None],
        guard: AgentGuard | None,
        count: Counter,
    ) -> None:
        """`recipient(ref)`: the contact a message may go to (raises UnknownPeer);
        `kick(peer, size)`: wake the link of `peer`, `size` more bytes wait for it."""
        self._key = key
        self._own = key.peer_id
        self._store = store
        self._clock = clock
        self._recipient = recipient
        self._kick = kick
        self._guard = guard
        self._count = count
        self._queue: list[_QueuedSend] = []
        self._wakeup = trio.Event()
        self._waiters: dict[bytes, trio.Event] = {}
        self._failures: dict[bytes, MeshtalkError] = {}
        self._outbox_changed = trio.Event()
        self._running = False
        self._stopped = False

    async def send(
        self,
        to: str | PeerId | Sequence[str | PeerId],
        body: Any,
        *,
        conversation: bytes | None = None,
        kind: str = "text",
        reply_to: bytes | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = False,
        timeout: float | None = None,
        message_id: bytes | None = None,
    ) -> bytes:
        """Queue a message durably and return its id; with wait=True, return once delivered.

        A send that returned is never lost; a send that raised queued nothing. A message whose
        metadata says `"via": "agent"` (or any writer but "human") must pass the conversation
        guards first, or GuardTripped is raised and nothing is queued. A caller-chosen
        `message_id` (UUIDv7) this node already holds queues nothing new: a retry is idempotent.
        """
        targets = [to] if isinstance(to, str | PeerId) else list(to)
        recipients = tuple(dict.fromkeys(self._recipient(t) for t in targets))
        if not recipients:
            raise UnknownPeer("send needs at least one recipient")
        conversation, kind_of_conversation, members = self._conversation(conversation, recipients)
        return await self.send_to(
            recipients, body, Conversation(conversation, kind_of_conversation, members),
            kind=kind, reply_to=reply_to, metadata=metadata, wait=wait, timeout=timeout,
            message_id=message_id,
        )  # fmt: skip

    async def send_to(
        self,
        recipients: tuple[PeerId, ...],
        body: Any,
        conversation: Conversation,
        *,
        kind: str = "text",
        reply_to: bytes | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = False,
        timeout: float | None = None,
        message_id: bytes | None = None,
    ) -> bytes:
        """`send` to peers resolved already (room members need not be contacts), in
        `conversation` (created with its kind and members if new)."""
        if message_id is not None and self._holds(message_id):
            if wait:
                await self.wait_delivered(message_id, timeout)
            return message_id
        now = self._clock()
        # Whoever says who wrote it and is not a person ("agent" from the control socket) is
        # held to the guards; a message that does not say is the program's own.
        by_agent = self._guard is not None and via_of(metadata) not in (None, "human")
        if by_agent:
            self._check_guard(conversation.id, body, now)
        message_id = message_id or new_message_id(now)
        sizes: dict[PeerId, int] = {}

        def build(lamport: int) -> tuple[Envelope, dict[PeerId, bytes], bytes]:
            envelope = Envelope(
                id=message_id, conversation=conversation.id, author=self._own,
                recipients=recipients, timestamp_ms=now, lamport=lamport, body=body,
                kind=kind, reply_to=reply_to, metadata=metadata,
            )  # fmt: skip
            signed, copies = self._seal_copies(envelope)
            sizes.update((r, len(sealed)) for r, sealed in copies.items())
            return envelope, copies, signed

        queued = _QueuedSend(conversation.id, conversation.kind, conversation.members, build)
        await self._commit(queued)
        if by_agent and self._guard is not None:
            self._guard.sent(conversation.id, now)
        # No await since the commit: an ack cannot have arrived before the waiter exists.
        event = trio.Event()
        if wait:
            self._waiters[message_id] = event
        for recipient in recipients:
            self._kick(recipient, sizes[recipient])
        if wait:
            await self._wait(message_id, event, timeout)
        return message_id

    def _seal_copies(self, envelope: Envelope) -> tuple[bytes, dict[PeerId, bytes]]:
        """The signed bytes, and a sealed copy for each recipient, signed once for all."""
        signed = sign_envelope(envelope, self._key)
        return signed.data, {r: seal_signed(signed, self._key, r) for r in envelope.recipients}

    def _holds(self, message_id: bytes) -> bool:
        """Whether a message of this node's own with this client-chosen id is stored."""
        check_own_message_id(message_id)
        return self._store().messages.message(self._own, message_id) is not None

    def _conversation(
        self, conversation: bytes | None, recipients: tuple[PeerId, ...]
    ) -> tuple[bytes, str, tuple[PeerId, ...]]:
        """The conversation id, its kind and its members for a message to `recipients`."""
        if conversation is None:
            if len(recipients) > 1:
                raise ConfigError("a message to several peers needs a conversation id")
            return (
                direct_conversation_id(self._own, recipients[0]),
                "direct",
                (self._own, recipients[0]),
            )
        return conversation, "group", (self._own, *recipients)

    def _check_guard(self, conversation: bytes, body: Any, now: int) -> None:
        assert self._guard is not None
        history = functools.partial(self._store().messages.recent_authorship, conversation)
        self._guard.check(conversation, body, history, now)

    async def _commit(self, queued: _QueuedSend) -> None:
        """Hand a message to the committer and wait until it is durable (or refused)."""
        if not self._running:
            raise not_running(NodeState.CREATED if not self._stopped else NodeState.STOPPED)
        self._queue.append(queued)
        self._wakeup.set()
        # Shielded: once handed over, the commit decides. A cancelled caller still gets its id
        # back when the message was stored (the cancellation arrives at its next checkpoint),
        # so "send raised" always means "nothing was queued".
        with trio.CancelScope(shield=True):
            await queued.done.wait()
        if queued.error is not None:
            raise queued.error

    async def run_committer(self, *, task_status: TaskStatus[None]) -> None:
        """Commit queued sends in groups: concurrent senders share one transaction."""
        self._running = True
        task_status.started()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                batch, self._queue = self._queue, []
                self._commit_batch(batch)
        finally:
            # Cancelled (the node stops): what was handed over is committed now, synchronously,
            # or a sender in the same nursery (room sync) would wait shielded for ever.
            self._running = False
            batch, self._queue = self._queue, []
            if batch:
                self._commit_batch(batch)

    def _commit_batch(self, batch: list[_QueuedSend]) -> None:
        results: list[Any]
        try:
            results = self._store().messages.queue_outgoing_many(
                [(q.conversation, q.kind, q.members, q.build) for q in batch], self._clock()
            )
        except MeshtalkError as exc:
            results = [exc] * len(batch)
        except Exception as exc:
            # A bug, not the caller's fault: fail these sends, never the node (the
            # transaction rolled back, so nothing of them was stored).
            logger.exception("storing %d outgoing message(s) failed", len(batch))
            results = [internal_error("storing the message", exc)] * len(batch)
        for queued, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                queued.error = result
            queued.done.set()
        self._count("commits", 1)

    async def _wait(self, message_id: bytes, event: trio.Event, timeout: float | None) -> None:
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                await event.wait()
        finally:
            self._waiters.pop(message_id, None)
        if message_id in self._failures:
            raise DeliveryFailed(str(self._failures.pop(message_id))).about(message_id)
        if not event.is_set():
            raise DeliveryTimeout(
                f"message {message_id.hex()} was not acknowledged within {timeout} s; it stays "
                "queued and will still be delivered"
            ).about(message_id)
        if self._stopped:
            raise NodeClosed(
                "the node stopped before the message was acknowledged; it stays queued"
            )

    async def wait_delivered(self, message_id: bytes, timeout: float | None = None) -> None:
        """Wait until a message this node sent is acknowledged by all its recipients.

        Raises DeliveryFailed if a recipient refused it, DeliveryTimeout after `timeout` s.
        """
        message = self._store().messages.message(self._own, message_id)
        if message is None:
            raise UnknownPeer(f"this node sent no message {message_id.hex()}")
        if message.status is MessageStatus.DELIVERED:
            return
        if message.status is MessageStatus.FAILED:
            raise DeliveryFailed(message.error or "the message was refused").about(message_id)
        event = self._waiters.setdefault(message_id, trio.Event())
        await self._wait(message_id, event, timeout)

    async def wait_flushed(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is empty (everything acked or failed); False on timeout."""
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            while True:
                changed = self._outbox_changed
                if not self._store().outbox.has_pending():
                    return True
                await changed.wait()
        return False

    def _outbox_change(self) -> None:
        self._outbox_changed.set()
        self._outbox_changed = trio.Event()

    # -- the Outbox port: what links read and report -------------------------------------------

    def pending(self, peer: PeerId, after_cursor: int, limit: int) -> list[OutboxItem]:
        """Sealed copies for `peer` waiting for their ack, oldest first."""
        return self._store().outbox.pending(peer, after_cursor, limit)

    def mark_sent(self, peer: PeerId, cursors: Sequence[int]) -> None:
        """These copies were written and are not acked yet."""
        self._store().outbox.mark_sent(peer, cursors)

    def acked(self, peer: PeerId, message_ids: list[bytes]) -> None:
        """`peer` acked these ids."""
        self._outbox_change()
        for message_id in self._store().outbox.acknowledge(peer, message_ids):
            event = self._waiters.get(message_id)
            if event is not None:
                event.set()

    def failed(self, peer: PeerId, message_id: bytes, error: MeshtalkError) -> None:
        """`peer` refused a message for good."""
        logger.warning("%s refused message %s: %s", peer, message_id.hex(), error)
        self._outbox_change()
        if self._store().outbox.fail(peer, message_id, f"{type(error).__name__}: {error}"):
            event = self._waiters.get(message_id)
            if event is not None:
                self._failures[message_id] = error
                event.set()

    def refused_at_door(self, peer: PeerId, error: MeshtalkError, *, rooms_too: bool) -> bool:
        """`peer` refused this node at the door: fail the copies that refusal is final for
        (not of a room: the peer does not trust this node; a room's too with `rooms_too`,
        else they wait: the peer's copy of the room's log may not show this node yet). True
        if nothing is left to deliver to it."""
        outbox = self._store().outbox
        for message_id in outbox.pending_ids(peer, rooms=rooms_too):
            self.failed(peer, message_id, error)
        return not outbox.pending(peer, 0, 1)

    def drop_room_copies(self, room: bytes, peers: Sequence[PeerId], error: MeshtalkError) -> None:
        """`peers` are no longer members of `room` (or this node is not): their copies of the
        room's messages will never be taken, so they fail with `error`."""
        outbox = self._store().outbox
        for peer in peers:
            for message_id in outbox.room_pending(room, peer):
                self.failed(peer, message_id, error)

    def stopped(self) -> None:
        """The node stopped: wake every waiter, fail what the committer never took."""
        self._stopped = True
        self._running = False
        self._outbox_changed.set()
        for event in self._waiters.values():
            event.set()
        for queued in self._queue:
            queued.error = NodeClosed("the node stopped before the message was stored")
            queued.done.set()
        self._queue = []


def check_own_message_id(message_id: bytes) -> None:
    """Refuse a client-chosen id that is not a UUIDv7 (16 bytes, version 7, RFC 9562 variant)."""
    if len(message_id) != 16 or message_id[6] >> 4 != 7 or message_id[8] >> 6 != 2:
        raise ConfigError("a message id must be a UUIDv7 (32 hex digits, from new_message_id)")
