"""Frames over a py-libp2p stream: read whatever arrived, decode every complete frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import trio

from ..protocol.errors import FrameTimeout, MalformedFrame
from ..protocol.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    NEED_DATA,
    ErrorFrame,
    Frame,
    FrameDecoder,
    HelloFrame,
    encode_frame,
)

__all__ = ["FramedStream", "READ_SIZE"]

READ_SIZE: Final = 256 * 1024


class FramedStream:
    """A stream that reads and writes meshtalk frames (one reader task, one writer at a time)."""

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
        self._frame_timeout = frame_timeout
        self._on_buffered = on_buffered
        self._partial: tuple[int, float] | None = None  # (frames decoded, when the next began)

    async def read_frames(self) -> list[Frame]:
        """Every frame available after at least one read; raises EOFError at a clean end."""
        while True:
            frames = self._drain()
            if frames:
                return frames
            try:
                data = await self._read()
            except EOFError:
                self._decoder.end_of_stream()
                raise
            if not data:
                self._decoder.end_of_stream()
                raise EOFError("stream closed")
            self._decoder.receive_data(data)
            if self._on_buffered is not None:
                self._on_buffered(self._decoder.buffered)

    async def _read(self) -> bytes:
        decoder = self._decoder
        if self._frame_timeout is None or not decoder.buffered:
            self._partial = None
            return await self.stream.read(READ_SIZE)  # type: ignore[no-any-return]
        if self._partial is None or self._partial[0] != decoder.frames_decoded:
            self._partial = (decoder.frames_decoded, trio.current_time())
        deadline = self._partial[1] + self._frame_timeout
        with trio.move_on_at(deadline):
            return await self.stream.read(READ_SIZE)  # type: ignore[no-any-return]
        raise FrameTimeout(
            f"a frame did not arrive whole within {self._frame_timeout:.0f} s "
            f"({decoder.buffered} bytes of it came); the stream is closed"
        )

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
