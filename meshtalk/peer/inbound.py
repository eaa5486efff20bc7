"""The receiving side of `/meshtalk/msg/1.0.0`: drain a peer's stream into the store.

The listener answers the dialer's HELLO, then reads MESSAGE frames as fast as they arrive,
opens and checks each, stores every batch in one transaction and answers with one ACK frame per
batch (plus an ERROR frame per refused message). It never waits for the application, so a
consumer that reads nothing for minutes cannot stall the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeGuard

from ..net.framed import MessagePump
from ..net.host import remote_peer
from ..protocol.connection import (
    ConnectionEvent,
    EndOfStream,
    MessageConnection,
    MessageReceived,
)
from ..protocol.errors import MeshtalkError, MessageRejected, NotAuthorized, StreamRefused
from ..protocol.forwarding import OpenedMessage, open_any
from ..protocol.frames import MAX_ACK_IDS, AckFrame, ErrorFrame, Frame
from .store import IncomingResult

if TYPE_CHECKING:
    from libp2p.abc import INetStream

    from ..protocol.keys import NodeKey, PeerId
    from .config import NodeConfig
    from .inbound_limits import InboundLimits
    from .ports import Clock, Inbox, LinkEvents, RoomInbox, StreamLike, TrustPolicy
    from .store.messages import Incoming

__all__ = ["InboundHandler"]

logger = logging.getLogger("meshtalk.inbound")


class InboundHandler:
    """Serves the message streams peers open to this node."""

    def __init__(
        self,
        key: NodeKey,
        trust: TrustPolicy,
        inbox: Inbox,
        rooms: RoomInbox,
        events: LinkEvents,
        limits: InboundLimits,
        config: NodeConfig,
        clock: Clock,
        hello: tuple[tuple[int, ...], str],
    ) -> None:
        """`hello`: the protocol versions and agent string this node sends in its HELLO."""
        self._key = key
        self._own = key.peer_id
        self._trust = trust
        self._inbox = inbox
        self._rooms = rooms
        self._events = events
        self._limits = limits
        self._config = config
        self._clock = clock
        self._versions, self._agent = hello

    async def serve_libp2p(self, stream: INetStream) -> None:
        """The py-libp2p stream handler: the peer is the one Noise authenticated."""
        await self.serve(remote_peer(stream), stream)

    async def serve(self, peer: PeerId, stream: StreamLike) -> None:
        """Run one inbound stream from `peer` until it ends (errors are the caller's concern)."""
        config = self._config
        if not (self._trust.is_trusted(peer) or self._rooms.admits(peer)):
            refusal = NotAuthorized(f"{self._own} does not accept messages from {peer}")
            self._inbox.count_refusal(peer, refusal)
            await _refuse(stream, refusal)
            return
        try:
            share = self._limits.admit(peer)
        except StreamRefused as exc:
            logger.info("refused a message stream from %s: %s", peer, exc)
            await _refuse(stream, exc)
            return
        try:
            connection = MessageConnection(
                "listener", self._versions, self._agent, config.max_frame_size
            )
            pump = MessagePump(
                stream,
                connection,
                frame_timeout=config.frame_timeout,
                on_buffered=share.buffered_now,
            )
            await self._serve(peer, pump)
        finally:
            share.release()

    async def _serve(self, peer: PeerId, pump: MessagePump) -> None:
        """The handshake, then batch after batch until the dialer ends the stream. A batch
        that ends in a violation is not stored: the stream is out of sync, and the reply
        (ERROR with the violation's code) is written before the caller resets it."""
        await pump.hello(self._config.handshake_timeout)
        self._events.connected(peer, pump.connection.version or 1)
        while True:
            events = await pump.events()
            if not _only_messages(events):
                if isinstance(events[-1], EndOfStream):
                    return
                await pump.fail(events[-1])
            replies = self.receive_batch(events)
            self._events.active(peer)
            if replies:
                await pump.send_all(replies)

    def receive_batch(self, messages: Sequence[MessageReceived]) -> list[Frame]:
        """Open, check and store a batch of messages; the ACK and ERROR frames that answer it."""
        replies: list[Frame] = []
        accepted: list[Incoming] = []
        acked: list[bytes] = []
        for message in messages:
            try:
                opened = self._open(message.sealed)
                consumed = self._handle_room(opened)
            except MeshtalkError as exc:
                self._inbox.count_refusal(None, exc)
                replies.append(ErrorFrame.from_exception(exc, exc.message_id))
                continue
            if consumed:
                acked.append(opened.envelope.id)
            else:
                accepted.append((opened.envelope, message.sealed, opened.signed.data))
        if accepted:
            results = self._store(accepted)
            for (envelope, *_), result in zip(accepted, results, strict=True):
                if isinstance(result, IncomingResult):
                    acked.append(envelope.id)
                else:
                    self._inbox.count_refusal(envelope.author, result)
                    replies.append(ErrorFrame.from_exception(result, envelope.id))
        for start in range(0, len(acked), MAX_ACK_IDS):
            replies.append(AckFrame(tuple(acked[start : start + MAX_ACK_IDS])))
        return replies

    def _open(self, sealed: bytes) -> OpenedMessage:
        """Open a copy and check who may send it: in a room held here, the room's members
        (the store checks the author's membership; a blocked author or forwarder is refused);
        anywhere else a trusted contact, and only in its own copy (never forwarded)."""
        opened = open_any(
            sealed,
            self._key,
            self._clock(),
            max_future_skew_ms=self._config.max_future_skew_ms,
            max_age_ms=self._config.max_age_ms,
        )
        envelope, forwarder = opened.envelope, opened.forwarded_by
        if self._rooms.holds(envelope.conversation):
            refused = [p for p in (envelope.author, forwarder) if p and self._rooms.is_blocked(p)]
        elif forwarder is not None:
            raise NotAuthorized(
                f"{forwarder} forwarded a message of a conversation that is no room held by "
                f"{self._own}"
            ).about(envelope.id)
        else:
            refused = [] if self._trust.is_trusted(envelope.author) else [envelope.author]
        if refused:
            raise NotAuthorized(f"{self._own} does not accept messages from {refused[0]}").about(
                envelope.id
            )
        return opened

    def _handle_room(self, opened: OpenedMessage) -> bool:
        """Rooms act on joins and control messages before anything is stored; a bug there
        refuses the one message, like a failed store."""
        try:
            return self._rooms.handle(opened)
        except MeshtalkError as exc:
            if exc.message_id is None:
                exc.about(opened.envelope.id)
            raise
        except Exception as exc:
            logger.exception("a %s message could not be handled", opened.envelope.kind)
            raise MessageRejected(
                f"{self._own} could not handle this {opened.envelope.kind} message "
                f"({type(exc).__name__}); it is refused for good"
            ).about(opened.envelope.id) from exc

    def _store(self, accepted: list[Incoming]) -> list[IncomingResult | MeshtalkError]:
        """Store a batch; if that fails with a bug (not a StoreError, which ends the stream and
        is retried), store each message alone and refuse only the one that fails, so one message
        can never block a sender's link."""
        try:
            return self._inbox.store_incoming(accepted)
        except MeshtalkError:
            raise
        except Exception:
            logger.exception("storing a batch of %d incoming message(s) failed", len(accepted))
        results: list[IncomingResult | MeshtalkError] = []
        for item in accepted:
            try:
                results.extend(self._inbox.store_incoming([item]))
            except MeshtalkError:
                raise
            except Exception as exc:
                results.append(
                    MessageRejected(
                        f"{self._own} could not store this message ({type(exc).__name__}); it "
                        "is refused for good"
                    ).about(item[0].id)
                )
        return results


async def _refuse(stream: StreamLike, refusal: MeshtalkError) -> None:
    """Refuse a stream at the door: ERROR in place of the listener's HELLO, then close."""
    await stream.write(MessageConnection("listener").abort(refusal))
    await stream.close()


def _only_messages(events: list[ConnectionEvent]) -> TypeGuard[list[MessageReceived]]:
    """Whether a batch is all MESSAGE frames: after the handshake a listener hears nothing else
    but the end of the stream or a violation, and either is the last event of its batch."""
    return type(events[-1]) is MessageReceived
