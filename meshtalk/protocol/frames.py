"""Frames on a meshtalk stream: an unsigned-varint length prefix, then a msgpack array.

`FrameDecoder` is incremental and sans-I/O: feed it bytes with `receive_data`, take frames with
`next_frame` until it returns `NEED_DATA`. A declared length above the cap is refused as soon as
the prefix is read, before any of the frame is waited for; after any error the decoder stays
broken, because the byte stream can no longer be trusted to be in sync.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from .codec import packb, unpackb_strict
from .errors import (
    FrameTooLarge,
    MalformedFrame,
    MeshtalkError,
    UnsupportedVersion,
    error_from_code,
)
from .sealing import MAX_SEALED_SIZE

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "MAX_ACK_IDS",
    "FrameType",
    "HelloFrame",
    "MessageFrame",
    "AckFrame",
    "ErrorFrame",
    "Frame",
    "NEED_DATA",
    "NeedData",
    "FrameDecoder",
    "encode_frame",
    "decode_frame_body",
    "encode_uvarint",
    "negotiate_version",
]

DEFAULT_MAX_FRAME_SIZE: Final = MAX_SEALED_SIZE + 64
MAX_ACK_IDS: Final = 4096
_MAX_VERSIONS: Final = 16
_MAX_AGENT: Final = 256
_MAX_ERROR_TEXT: Final = 1024
_MAX_VARINT_BYTES: Final = 9  # the multiformats unsigned-varint limit (63 bits)
T = TypeVar("T")
_ONE_BYTE: Final = [bytes((n,)) for n in range(0x80)]  # the usual varint: lengths, tags


class FrameType(enum.IntEnum):
    """The first element of every frame array."""

    HELLO = 0
    MESSAGE = 1
    ACK = 2
    ERROR = 3


def _is_u16(value: object) -> bool:
    return type(value) is int and 0 <= value <= 0xFFFF


@dataclass(frozen=True, slots=True)
class HelloFrame:
    """First frame each side sends: the protocol versions it speaks, and who it is (free text)."""

    versions: tuple[int, ...]
    agent: str = ""

    def __post_init__(self) -> None:
        if (
            not isinstance(self.versions, tuple)
            or not 1 <= len(self.versions) <= _MAX_VERSIONS
            or not all(_is_u16(v) and v > 0 for v in self.versions)
        ):
            raise MalformedFrame(f"hello must list 1 to {_MAX_VERSIONS} versions from 1 to 65535")
        if not isinstance(self.agent, str) or len(self.agent) > _MAX_AGENT:
            raise MalformedFrame(f"hello agent must be text of at most {_MAX_AGENT} characters")


@dataclass(frozen=True, slots=True)
class MessageFrame:
    """One sealed message (see `seal`)."""

    sealed: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.sealed, bytes) or not 0 < len(self.sealed) <= MAX_SEALED_SIZE:
            raise MalformedFrame(f"message frame must carry 1 to {MAX_SEALED_SIZE} sealed bytes")


@dataclass(frozen=True, slots=True)
class AckFrame:
    """The receiver stored these message ids (or already had them): the sender may forget them."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if (
            not isinstance(self.ids, tuple)
            or not 1 <= len(self.ids) <= MAX_ACK_IDS
            or not all(isinstance(i, bytes) and len(i) == 16 for i in self.ids)
        ):
            raise MalformedFrame(f"ack must list 1 to {MAX_ACK_IDS} message ids of 16 bytes")


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """A refusal: the `MeshtalkError` code, a human-readable text, and the message id if known."""

    code: int
    text: str
    ref: bytes | None = None

    def __post_init__(self) -> None:
        if not _is_u16(self.code):
            raise MalformedFrame("error code must be an integer from 0 to 65535")
        if not isinstance(self.text, str) or len(self.text) > _MAX_ERROR_TEXT:
            raise MalformedFrame(f"error text must be at most {_MAX_ERROR_TEXT} characters")
        if self.ref is not None and (not isinstance(self.ref, bytes) or len(self.ref) != 16):
            raise MalformedFrame("error ref must be a 16-byte message id or nil")

    @classmethod
    def from_exception(cls, exc: MeshtalkError, ref: bytes | None = None) -> ErrorFrame:
        """The frame that reports `exc` to the other side."""
        return cls(exc.code, str(exc)[:_MAX_ERROR_TEXT], ref)

    def to_exception(self) -> MeshtalkError:
        """The exception this frame stands for: the type the other side raised, marked as the
        peer's refusal (`remote`, "peer refused: ..."), about message `ref` if it has one."""
        error = error_from_code(self.code, self.text, remote=True)
        return error.about(self.ref) if self.ref is not None else error


Frame = HelloFrame | MessageFrame | AckFrame | ErrorFrame


class NeedData(enum.Enum):
    """The type of `NEED_DATA`."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by `FrameDecoder.next_frame` when the buffer holds no complete frame yet."""


def encode_uvarint(value: int) -> bytes:
    """The multiformats unsigned-varint encoding of `value`."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0 or value >= 1 << 63:
        raise ValueError("unsigned varint out of range")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _frame_array(frame: Frame) -> list[object]:
    if isinstance(frame, MessageFrame):
        return [FrameType.MESSAGE, frame.sealed]
    if isinstance(frame, AckFrame):
        return [FrameType.ACK, list(frame.ids)]
    if isinstance(frame, HelloFrame):
        return [FrameType.HELLO, list(frame.versions), frame.agent]
    if isinstance(frame, ErrorFrame):
        return [FrameType.ERROR, frame.code, frame.text, frame.ref]
    raise TypeError(f"not a frame: {frame!r}")


def encode_frame(frame: Frame) -> bytes:
    """Length prefix plus msgpack body, ready to write to a stream."""
    body = packb(_frame_array(frame))
    return encode_uvarint(len(body)) + body


def decode_frame_body(body: bytes) -> Frame:
    """Decode one frame body (without its length prefix), checking every field."""
    array = unpackb_strict(body, MalformedFrame, "frame")
    if not isinstance(array, list) or not array or type(array[0]) is not int:
        raise MalformedFrame("frame must be a msgpack array starting with its type")
    kind, fields = array[0], array[1:]
    if kind == FrameType.MESSAGE and len(fields) == 1:
        return MessageFrame(fields[0])
    if kind == FrameType.ACK and len(fields) == 1 and isinstance(fields[0], list):
        return AckFrame(tuple(fields[0]))
    if kind == FrameType.HELLO and len(fields) == 2 and isinstance(fields[0], list):
        return HelloFrame(tuple(fields[0]), fields[1])
    if kind == FrameType.ERROR and len(fields) == 3:
        return ErrorFrame(fields[0], fields[1], fields[2])
    if kind in set(FrameType):
        raise MalformedFrame(f"{FrameType(kind).name} frame has the wrong fields")
    raise MalformedFrame(f"unknown frame type {kind}")


class FrameDecoder(Generic[T]):
    """Incremental frame decoder: `receive_data(bytes)`, then `next_frame()` until NEED_DATA.

    Bodies are meshtalk frames by default; `decode` reads another length-prefixed protocol
    (the rendezvous messages use the same framing with protobuf bodies).
    """

    def __init__(
        self,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        decode: Callable[[bytes], T] = decode_frame_body,  # type: ignore[assignment]
    ) -> None:
        self.max_frame_size = max_frame_size
        self._decode = decode
        self._buffer = bytearray()
        self._start = 0
        self._error: MeshtalkError | None = None
        self._frames_decoded = 0

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the stream."""
        self._raise_if_broken()
        self._buffer += data

    def next_frame(self) -> T | NeedData:
        """The next complete frame, or NEED_DATA; raises ProtocolError on invalid input."""
        self._raise_if_broken()
        try:
            return self._next_frame()
        except MeshtalkError as exc:
            self._error = exc
            self._buffer = bytearray()
            self._start = 0
            raise

    def end_of_stream(self) -> None:
        """Call when the stream closed: raises MalformedFrame if it ended inside a frame."""
        self._raise_if_broken()
        if len(self._buffer) > self._start:
            left = len(self._buffer) - self._start
            self._error = MalformedFrame(f"stream ended inside a frame ({left} bytes left over)")
            raise self._error

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded (the start of an unfinished frame)."""
        return len(self._buffer) - self._start

    @property
    def frames_decoded(self) -> int:
        """How many frames were decoded so far."""
        return self._frames_decoded

    def statistics(self) -> dict[str, int]:
        """Buffered bytes and frames decoded so far."""
        buffered = len(self._buffer) - self._start
        return {"buffered": buffered, "frames_decoded": self._frames_decoded}

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            raise type(self._error)(f"stream already failed: {self._error}")

    def _next_frame(self) -> T | NeedData:
        buffer, start = self._buffer, self._start
        available = len(buffer) - start
        length = 0
        for index in range(min(available, _MAX_VARINT_BYTES)):
            byte = buffer[start + index]
            length |= (byte & 0x7F) << (7 * index)
            if length > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame declares {length}+ bytes; the limit is {self.max_frame_size}"
                )
            if not byte & 0x80:
                if byte == 0 and index > 0:
                    raise MalformedFrame("frame length prefix is not minimally encoded")
                header = index + 1
                break
        else:
            if available >= _MAX_VARINT_BYTES:
                raise MalformedFrame("frame length prefix is longer than 9 bytes")
            self._compact()
            return NEED_DATA
        if length == 0:
            raise MalformedFrame("empty frame")
        end = start + header + length
        if len(buffer) < end:
            self._compact()
            return NEED_DATA
        body = bytes(buffer[start + header : end])
        self._start = end
        frame = self._decode(body)
        self._frames_decoded += 1
        return frame

    def _compact(self) -> None:
        # Drop consumed bytes only when waiting for more: one memmove per read, not per frame.
        if self._start:
            del self._buffer[: self._start]
            self._start = 0


def negotiate_version(ours: tuple[int, ...], theirs: HelloFrame) -> int:
    """The highest protocol version both sides speak, or UnsupportedVersion."""
    common = set(ours) & set(theirs.versions)
    if not common:
        raise UnsupportedVersion(
            f"peer speaks protocol versions {list(theirs.versions)}, this node {list(ours)}; "
            "upgrade the older node"
        )
    return max(common)
