"""Frames over a byte stream: `MessagePump` drives a message stream's state machine, and
`FramedStream` reads and writes raw frames (a test's or a benchmark's rogue peer).

`MessagePump` moves bytes between a `StreamLike` and a `MessageConnection`
(protocol/connection.py), which alone decides what the bytes mean and what may be sent. The pump
adds what needs a clock or a budget: the handshake timeout, the frame timeout (a frame that has
begun must arrive whole in time; an idle stream between frames never times out) and the
`on_buffered` report of the bytes an unfinished frame holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn, Protocol

import trio

from ..protocol.connection import (
    ConnectionEvent,
    EndOfStream,
    HelloReceived,
    LocalProtocolError,
    MessageConnection,
    PeerRefused,
    ProtocolViolation,
)
from ..protocol.errors import FrameTimeout, MalformedFrame, ProtocolError
from ..protocol.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    NEED_DATA,
    ErrorFrame,
    Frame,
    FrameDecoder,
    HelloFrame,
    encode_frame,
)

__all__ = ["FramedStream", "MessagePump", "READ_SIZE", "StreamLike"]

READ_SIZE: Final = 256 * 1024


class StreamLike(Protocol):
    """The byte stream a framed pump needs: a py-libp2p stream or a test's adapter."""

    async def read(self, n: int | None = None) -> bytes:
        """Up to `n` bytes; b"" at the end of the stream."""
        ...

    async def write(self, data: bytes) -> None:
        """Write all of `data`."""
        ...

    async def close(self) -> None:
        """Close for writing (the peer reads the end)."""
        ...

    async def reset(self) -> None:
        """Abort both directions."""
        ...


class _Reader:
    """Reads of READ_SIZE; while a frame has begun, each within `frame_timeout` of its start."""

    def __init__(self, stream: Any, frame_timeout: float | None) -> None:
        self.stream = stream
        self.frame_timeout = frame_timeout
        self._partial: tuple[int, float] | None = None  # (frames decoded, when the next began)

    async def read(self, buffered: int, frames_decoded: int) -> bytes:
        """The next read, given the bytes of an unfinished frame held and the frames so far
        (FrameTimeout if the frame that began did not arrive whole in time)."""
        if self.frame_timeout is None or not buffered:
            self._partial = None
            return await self.stream.read(READ_SIZE)  # type: ignore[no-any-return]
        if self._partial is None or self._partial[0] != frames_decoded:
            self._partial = (frames_decoded, trio.current_time())
        with trio.move_on_at(self._partial[1] + self.frame_timeout):
            return await self.stream.read(READ_SIZE)  # type: ignore[no-any-return]
        raise FrameTimeout(
            f"a frame did not arrive whole within {self.frame_timeout:.0f} s "
            f"({buffered} bytes of it came); the stream is closed"
        )


class MessagePump:
    """One message stream: bytes read go to `connection`, which turns them into events; frames
    to send go through it too (one reader task, writes under one lock)."""

    def __init__(
        self,
        stream: StreamLike,
        connection: MessageConnection,
        *,
        frame_timeout: float | None = None,
        on_buffered: Callable[[int], None] | None = None,
    ) -> None:
        """`frame_timeout`: seconds a frame that has begun may take to arrive whole (else a
        FrameTimeout violation). `on_buffered(n)` hears how many bytes of an unfinished frame the
        stream holds after each read, and may raise a ProtocolError to refuse more."""
        self.stream = stream
        self.connection = connection
        self._reader = _Reader(stream, frame_timeout)
        self._on_buffered = on_buffered
        self._write_lock = trio.Lock()
        self._pending: list[ConnectionEvent] = []  # what came with the peer's HELLO

    async def hello(self, timeout: float) -> HelloReceived:
        """Write our HELLO, then wait up to `timeout` s for the peer's (trio.TooSlowError).

        Anything else ends the stream as `fail` says: the peer's refusal is raised, a
        violation is answered (its reply written) and raised, an early end is EOFError."""
        await self._write(self.connection.send_hello())
        with trio.fail_after(timeout):
            events = await self.events()
        first = events[0]
        if not isinstance(first, HelloReceived):
            await self.fail(first)
        self._pending = events[1:]
        return first

    async def events(self) -> list[ConnectionEvent]:
        """The events of the next read (more reads while they make none): at least one.

        The end of the stream is an EndOfStream event (or a violation, inside a frame). What
        the pump itself refuses, a frame over its timeout or bytes over `on_buffered`'s budget,
        comes as a ProtocolViolation with `connection.abort`'s reply, the last event."""
        if self._pending:
            events, self._pending = self._pending, []
            return events
        connection, on_buffered = self.connection, self._on_buffered
        while True:
            try:
                data = await self._reader.read(connection.buffered, connection.frames_received)
            except EOFError:
                data = b""
            except FrameTimeout as exc:
                return [ProtocolViolation(exc, connection.abort(exc))]
            events = connection.receive_data(data)
            if on_buffered is not None and data and not connection.closed:
                try:
                    on_buffered(connection.buffered)
                except ProtocolError as exc:
                    events.append(ProtocolViolation(exc, connection.abort(exc)))
            if events:
                return events

    async def send_all(self, frames: Sequence[Frame]) -> None:
        """Write frames in one stream write (LocalProtocolError if one may not be sent now)."""
        await self._write(self.connection.send_all(frames))

    async def fail(self, event: ConnectionEvent) -> NoReturn:
        """End the stream on `event`: a violation's reply is written, then its error raised;
        the peer's refusal (PeerRefused) is raised; EndOfStream raises EOFError."""
        if isinstance(event, ProtocolViolation):
            if event.reply:
                await self._write(event.reply)
            raise event.error
        if isinstance(event, PeerRefused):
            raise event.error
        if isinstance(event, EndOfStream):
            raise EOFError("stream closed")
        raise LocalProtocolError(f"{event!r} does not end the stream")

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self.stream.write(data)


class FramedStream:
    """Raw frames on a stream, whatever the protocol allows (one reader task, one writer at a
    time): the tool of a test or benchmark that plays a peer, well-behaved or not."""

    def __init__(
        self,
        stream: Any,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        *,
        frame_timeout: float | None = None,
        on_buffered: Callable[[int], None] | None = None,
    ) -> None:
        """`frame_timeout`: seconds a frame that has begun may take to arrive whole (else
        FrameTimeout). `on_buffered(n)` hears how many bytes of an unfinished frame this stream
        holds after each read, and may raise to refuse more."""
        self.stream = stream
        self._decoder: FrameDecoder[Frame] = FrameDecoder(max_frame_size)
        self._pending: list[Frame] = []
        self._write_lock = trio.Lock()
        self._reader = _Reader(stream, frame_timeout)
        self._on_buffered = on_buffered

    async def read_frames(self) -> list[Frame]:
        """Every frame available after at least one read; raises EOFError at a clean end."""
        decoder = self._decoder
        while True:
            frames = self._drain()
            if frames:
                return frames
            try:
                data = await self._reader.read(decoder.buffered, decoder.frames_decoded)
            except EOFError:
                decoder.end_of_stream()
                raise
            if not data:
                decoder.end_of_stream()
                raise EOFError("stream closed")
            decoder.receive_data(data)
            if self._on_buffered is not None:
                self._on_buffered(decoder.buffered)

    def _drain(self) -> list[Frame]:
        frames = self._pending
        self._pending = []
        while (frame := self._decoder.next_frame()) is not NEED_DATA:
            frames.append(frame)
        return frames

    async def read_frame(self) -> Frame:
        """Exactly one frame (the rest stay buffered for the next read)."""
        frames = await self.read_frames()
        first, self._pending = frames[0], frames[1:]
        return first

    async def write_frames(self, frames: Sequence[Frame]) -> None:
        """Write frames in one stream write (batched)."""
        data = b"".join(encode_frame(frame) for frame in frames)
        async with self._write_lock:
            await self.stream.write(data)

    async def hello(self, versions: tuple[int, ...], agent: str, timeout: float) -> HelloFrame:
        """Send our HELLO and return the other side's (an ERROR frame is raised as itself)."""
        await self.write_frames([HelloFrame(versions, agent)])
        with trio.fail_after(timeout):
            frame = await self.read_frame()
        if isinstance(frame, ErrorFrame):
            raise frame.to_exception()
        if not isinstance(frame, HelloFrame):
            raise MalformedFrame("the first frame on a meshtalk stream must be HELLO")
        return frame
