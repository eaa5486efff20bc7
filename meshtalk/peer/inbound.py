"""The receiving side of `/meshtalk/msg/1.0.0`: drain a peer's stream into the store.

The listener answers the dialer's HELLO, then reads MESSAGE frames as fast as they arrive,
opens and checks each, stores every batch in one transaction and answers with one ACK frame per
batch (plus an ERROR frame per refused message). It never waits for the application, so a
consumer that reads nothing for minutes cannot stall the stream.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

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
    from libp2p.abc import INetStream

    from ..protocol.envelope import Envelope
    from ..protocol.keys import PeerId
    from .node import Node

__all__ = ["serve_inbound_stream"]

logger = logging.getLogger("meshtalk.inbound")


async def serve_inbound_stream(node: Node, stream: INetStream) -> None:
    """Run one inbound stream until it ends (exceptions are the caller's wrapper's concern)."""
    peer = remote_peer(stream)
    config = node.config
    if not node.is_trusted(peer):
        refusal = NotAuthorized(f"{node.peer_id} does not accept messages from {peer}")
        node.count_refusal(peer, refusal)
        await _refuse(stream, refusal)
        return
    try:
        share = node.inbound_limits.admit(peer)
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
        await _serve(node, peer, framed)
    finally:
        share.release()


async def _refuse(stream: INetStream, refusal: MeshtalkError) -> None:
    await FramedStream(stream).write_frames([ErrorFrame.from_exception(refusal)])
    await stream.close()


async def _serve(node: Node, peer: PeerId, framed: FramedStream) -> None:
    try:
        theirs = await framed.hello(node.versions, node.agent, node.config.handshake_timeout)
        negotiate_version(node.versions, theirs)
    except ProtocolError as exc:
        await framed.write_frames([ErrorFrame.from_exception(exc)])
        raise
    node.note_connected(peer)
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
            replies = _receive_batch(node, frames)
        except ProtocolError as exc:  # a frame the dialer may not send: say so, then reset
            await framed.write_frames([ErrorFrame.from_exception(exc)])
            raise
        if replies:
            await framed.write_frames(replies)


def _receive_batch(node: Node, frames: list[Frame]) -> list[Frame]:
    now = node.clock()
    replies: list[Frame] = []
    accepted: list[tuple[Envelope, bytes]] = []
    for frame in frames:
        if not isinstance(frame, MessageFrame):
            _raise_unexpected(frame)
        try:
            envelope = open_sealed(
                frame.sealed,
                node.key,
                now,
                max_future_skew_ms=node.config.max_future_skew_ms,
                max_age_ms=node.config.max_age_ms,
            )
            if not node.is_trusted(envelope.author):
                raise NotAuthorized(
                    f"{node.peer_id} does not accept messages from {envelope.author}"
                ).about(envelope.id)
        except MeshtalkError as exc:
            node.count_refusal(None, exc)
            replies.append(ErrorFrame.from_exception(exc, exc.message_id))
            continue
        accepted.append((envelope, frame.sealed))
    if accepted:
        results = _store(node, accepted)
        acked: list[bytes] = []
        for (envelope, _), result in zip(accepted, results, strict=True):
            if isinstance(result, IncomingResult):
                acked.append(envelope.id)
            else:
                node.count_refusal(envelope.author, result)
                replies.append(ErrorFrame.from_exception(result, envelope.id))
        for start in range(0, len(acked), MAX_ACK_IDS):
            replies.append(AckFrame(tuple(acked[start : start + MAX_ACK_IDS])))
    return replies


def _store(
    node: Node, accepted: list[tuple[Envelope, bytes]]
) -> list[IncomingResult | MeshtalkError]:
    """Store a batch; if that fails with a bug (not a StoreError, which ends the stream and is
    retried), store each message alone and refuse only the one that fails, so one message can
    never block a sender's link."""
    try:
        return node.store_incoming(accepted)
    except MeshtalkError:
        raise
    except Exception:
        logger.exception("storing a batch of %d incoming message(s) failed", len(accepted))
    results: list[IncomingResult | MeshtalkError] = []
    for item in accepted:
        try:
            results.extend(node.store_incoming([item]))
        except MeshtalkError:
            raise
        except Exception as exc:
            results.append(
                MessageRejected(
                    f"{node.peer_id} could not store this message ({type(exc).__name__}); it "
                    "is refused for good"
                ).about(item[0].id)
            )
    return results


def _raise_unexpected(frame: Frame) -> NoReturn:
    """Only MESSAGE frames may follow the handshake on a dialer's stream."""
    raise ProtocolError(f"unexpected {type(frame).__name__} on an inbound message stream")
