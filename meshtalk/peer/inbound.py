"""The receiving side of `/meshtalk/msg/1.0.0`: drain a peer's stream into the store.

The listener answers the dialer's HELLO, then reads MESSAGE frames as fast as they arrive,
opens and checks each, stores every batch in one transaction and answers with one ACK frame per
batch (plus an ERROR frame per refused message). It never waits for the application, so a
consumer that reads nothing for minutes cannot stall the stream.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn

from ..net.framed import FramedStream
from ..net.host import remote_peer
from ..protocol.errors import (
    MeshtalkError,
    MessageRejected,
    NotAuthorized,
    ProtocolError,
    StreamRefused,
)
from ..protocol.frames import (
    MAX_ACK_IDS,
    AckFrame,
    ErrorFrame,
    Frame,
    MessageFrame,
    negotiate_version,
)
from ..protocol.sealing import open_sealed
from .store import IncomingResult

if TYPE_CHECKING:
    from ..protocol.envelope import Envelope
    from ..protocol.keys import NodeKey, PeerId
    from .config import NodeConfig
    from .inbound_limits import InboundLimits
    from .ports import Clock, Inbox, LinkEvents, StreamLike, TrustPolicy

__all__ = ["InboundHandler"]

logger = logging.getLogger("meshtalk.inbound")


class InboundHandler:
    """Serves the message streams peers open to this node."""

    def __init__(
        self,
        key: NodeKey,
        trust: TrustPolicy,
        inbox: Inbox,
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
        self._events = events
        self._limits = limits
        self._config = config
        self._clock = clock
        self._versions, self._agent = hello

    async def serve_libp2p(self, stream: Any) -> None:
        """The py-libp2p stream handler: the peer is the one Noise authenticated."""
        await self.serve(remote_peer(stream), stream)

    async def serve(self, peer: PeerId, stream: StreamLike) -> None:
        """Run one inbound stream from `peer` until it ends (errors are the caller's concern)."""
        config = self._config
        if not self._trust.is_trusted(peer):
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
            framed = FramedStream(
                stream,
                config.max_frame_size,
                frame_timeout=config.frame_timeout,
                on_buffered=share.buffered_now,
            )
            await self._serve(peer, framed)
        finally:
            share.release()

    async def _serve(self, peer: PeerId, framed: FramedStream) -> None:
        try:
            theirs = await framed.hello(self._versions, self._agent, self._config.handshake_timeout)
            negotiate_version(self._versions, theirs)
        except ProtocolError as exc:
            await framed.write_frames([ErrorFrame.from_exception(exc)])
            raise
        self._events.connected(peer)
        while True:
            try:
                frames = await framed.read_frames()
            except EOFError:
                return
            except ProtocolError as exc:
                # The byte stream is out of sync: report, then the wrapper resets the stream.
                await framed.write_frames([ErrorFrame.from_exception(exc)])
                raise
            try:
                replies = self.receive_batch(frames)
            except ProtocolError as exc:  # a frame the dialer may not send: say so, then reset
                await framed.write_frames([ErrorFrame.from_exception(exc)])
                raise
            if replies:
                await framed.write_frames(replies)

    def receive_batch(self, frames: list[Frame]) -> list[Frame]:
        """Open, check and store a batch of frames; the ACK and ERROR frames that answer it."""
        replies: list[Frame] = []
        accepted: list[tuple[Envelope, bytes]] = []
        for frame in frames:
            if not isinstance(frame, MessageFrame):
                _raise_unexpected(frame)
            try:
                envelope = self._open(frame)
            except MeshtalkError as exc:
                self._inbox.count_refusal(None, exc)
                replies.append(ErrorFrame.from_exception(exc, exc.message_id))
                continue
            accepted.append((envelope, frame.sealed))
        if accepted:
            results = self._store(accepted)
            acked: list[bytes] = []
            for (envelope, _), result in zip(accepted, results, strict=True):
                if isinstance(result, IncomingResult):
                    acked.append(envelope.id)
                else:
                    self._inbox.count_refusal(envelope.author, result)
                    replies.append(ErrorFrame.from_exception(result, envelope.id))
            for start in range(0, len(acked), MAX_ACK_IDS):
                replies.append(AckFrame(tuple(acked[start : start + MAX_ACK_IDS])))
        return replies

    def _open(self, frame: MessageFrame) -> Envelope:
        envelope = open_sealed(
            frame.sealed,
            self._key,
            self._clock(),
            max_future_skew_ms=self._config.max_future_skew_ms,
            max_age_ms=self._config.max_age_ms,
        )
        if not self._trust.is_trusted(envelope.author):
            raise NotAuthorized(
                f"{self._own} does not accept messages from {envelope.author}"
            ).about(envelope.id)
        return envelope

    def _store(
        self, accepted: list[tuple[Envelope, bytes]]
    ) -> list[IncomingResult | MeshtalkError]:
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
    await FramedStream(stream).write_frames([ErrorFrame.from_exception(refusal)])
    await stream.close()


def _raise_unexpected(frame: Frame) -> NoReturn:
    """Only MESSAGE frames may follow the handshake on a dialer's stream."""
    raise ProtocolError(f"unexpected {type(frame).__name__} on an inbound message stream")
