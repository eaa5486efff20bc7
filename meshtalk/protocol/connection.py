"""The rules of one `/meshtalk/msg/1.0.0` stream as a sans-I/O state machine (h11-style).

The I/O code moves bytes; `MessageConnection` decides what they mean and what may be sent:

    conn = MessageConnection("listener", agent="meshtalk/0.1.0")
    await stream.write(conn.send_hello())
    for event in conn.receive_data(await stream.read()):  # b"" at the end of the stream
        ...                                                # HelloReceived, MessageReceived, ...

Each side's first frame is HELLO; the version is the highest both list (`negotiate_version`).
Then the dialer sends MESSAGE frames and the listener answers with ACK and ERROR (docs/protocol.md,
section 5a). The listener may also send ERROR in place of its HELLO, to refuse the stream.

Whatever the peer may not send ends in a `ProtocolViolation` event, the last of its batch: its
`error` is the (local) exception, its `reply` the bytes to write before resetting the stream
(an ERROR frame from a listener; nothing from a dialer, which sends ERROR only for a version
mismatch). What *we* may not send raises `LocalProtocolError`, a bug in the caller, not a
`MeshtalkError`. Refusals the peer sent (ERROR frames) come as `MessageRefused` and `PeerRefused`,
whose errors have `remote = True`.

Nothing here reads a clock: the I/O side runs the handshake and frame timeouts, using
`frame_begun` and `frames_received`, and budgets memory with `buffered`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from .errors import MalformedFrame, MeshtalkError, ProtocolError, UnsupportedVersion
from .frames import (
    DEFAULT_MAX_FRAME_SIZE,
    NEED_DATA,
    AckFrame,
    ErrorFrame,
    Frame,
    FrameDecoder,
    HelloFrame,
    MessageFrame,
    encode_frame,
    negotiate_version,
)

__all__ = [
    "MSG_PROTOCOL",
    "PROTOCOL_VERSIONS",
    "ROOMS_VERSION",
    "ConnectionRole",
    "ConnectionState",
    "LocalProtocolError",
    "HelloReceived",
    "MessageReceived",
    "AckReceived",
    "MessageRefused",
    "PeerRefused",
    "EndOfStream",
    "ProtocolViolation",
    "ConnectionEvent",
    "MessageConnection",
]

MSG_PROTOCOL: Final = "/meshtalk/msg/1.0.0"
"""The libp2p protocol id of the message stream."""
PROTOCOL_VERSIONS: Final = (1, 2)
"""The HELLO versions this implementation speaks (docs/protocol.md): 2 is 1 plus rooms."""
ROOMS_VERSION: Final = 2
"""The first version whose nodes read rooms: room kinds and forwarded (sealed v2) copies. A
version-1 (pre-room) node still exchanges direct messages, which are alike in both."""

ConnectionRole = Literal["dialer", "listener"]
"""The dialer opened the stream and sends messages; the listener stores and acknowledges them."""


class ConnectionState(enum.Enum):
    """Where one side of the stream is: before its HELLO, after it, or done."""

    HELLO = "HELLO"
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class LocalProtocolError(RuntimeError):
    """This side tried to send what the protocol does not allow now: a bug in the caller."""


@dataclass(frozen=True, slots=True)
class HelloReceived:
    """The peer's HELLO: the versions it speaks, its agent, and the version both now use."""

    versions: tuple[int, ...]
    agent: str
    version: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A MESSAGE frame (for the listener): one sealed message, not yet opened or checked."""

    sealed: bytes


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK frame (for the dialer): these message ids are stored; forget them."""

    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class MessageRefused:
    """An ERROR frame with `ref` (for the dialer): the peer refused that message for good.

    `error.remote` is True and `error.message_id == ref`; the stream goes on."""

    ref: bytes
    error: MeshtalkError


@dataclass(frozen=True, slots=True)
class PeerRefused:
    """An ERROR without `ref`, or in place of HELLO (for the dialer): the peer ended the stream.

    `error.remote` is True. Nothing more is sent or received: close the stream."""

    error: MeshtalkError


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The peer closed its side between frames. A listener may still send ACK and ERROR."""


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer broke the protocol: write `reply` (maybe empty), then reset the stream.

    `error` is this node's exception (`remote` False), to log or raise."""

    error: ProtocolError
    reply: bytes


ConnectionEvent = (
    HelloReceived
    | MessageReceived
    | AckReceived
    | MessageRefused
    | PeerRefused
    | EndOfStream
    | ProtocolViolation
)

_HELLO, _OPEN, _CLOSED = ConnectionState.HELLO, ConnectionState.OPEN, ConnectionState.CLOSED
_SENDS: Final[dict[str, tuple[type[Frame], ...]]] = {
    "dialer": (HelloFrame, MessageFrame),
    "listener": (HelloFrame, AckFrame, ErrorFrame),
}
_NAMES: Final[dict[type[Frame], str]] = {
    HelloFrame: "HELLO",
    MessageFrame: "MESSAGE",
    AckFrame: "ACK",
    ErrorFrame: "ERROR",
}


class MessageConnection:
    """One side of one message stream: `send` frames to get bytes, `receive_data` bytes to get
    events. `max_frame_size` caps a frame's declared length (refused from its prefix)."""

    def __init__(
        self,
        role: ConnectionRole,
        versions: tuple[int, ...] = PROTOCOL_VERSIONS,
        agent: str = "",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        if role not in _SENDS:
            raise ValueError(f"role must be 'dialer' or 'listener', not {role!r}")
        self.role: ConnectionRole = role
        try:
            self.our_hello = HelloFrame(tuple(versions), agent)
        except MalformedFrame as exc:  # a bad setting, not a bad peer
            raise ValueError(str(exc)) from None
        self.versions = self.our_hello.versions
        self.our_state = _HELLO
        self.their_state = _HELLO
        self.version: int | None = None
        """The negotiated version, once the peer's HELLO came and shares one with ours."""
        self.peer_hello: HelloFrame | None = None
        self._decoder: FrameDecoder[Frame] = FrameDecoder(max_frame_size)

    def __repr__(self) -> str:
        return (
            f"<MessageConnection {self.role} ours={self.our_state.name} "
            f"theirs={self.their_state.name} version={self.version}>"
        )

    @property
    def peer_role(self) -> ConnectionRole:
        """The role of the other side."""
        return "listener" if self.role == "dialer" else "dialer"

    @property
    def is_open(self) -> bool:
        """Both HELLOs are through and neither side has finished: messages may flow."""
        return self.our_state is _OPEN and self.their_state is _OPEN

    @property
    def closed(self) -> bool:
        """This side may send nothing more: write what is pending, then close or reset."""
        return self.our_state is _CLOSED

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame held (count them against a memory budget)."""
        return self._decoder.buffered

    @property
    def frame_begun(self) -> bool:
        """Part of a frame has arrived: the I/O side's frame timeout should be running."""
        return self._decoder.buffered > 0

    @property
    def frames_received(self) -> int:
        """Frames decoded so far; when it changes while `frame_begun`, a new frame began."""
        return self._decoder.frames_decoded

    # -- sending -------------------------------------------------------------------------------

    def send_hello(self) -> bytes:
        """Our HELLO (the constructor's versions and agent): the first thing to write."""
        return self.send(self.our_hello)

    def send(self, frame: Frame) -> bytes:
        """The bytes of `frame`, if this side may send it now; else LocalProtocolError."""
        return self.send_all((frame,))

    def send_all(self, frames: Iterable[Frame]) -> bytes:
        """The bytes of several frames, for one write; all are checked before any counts."""
        frames = tuple(frames)
        state = self.our_state
        for frame in frames:
            state = self._after_sending(frame, state)
        self.our_state = state
        if state is _CLOSED:
            self.their_state = _CLOSED
        return b"".join(encode_frame(frame) for frame in frames)

    def abort(self, error: MeshtalkError) -> bytes:
        """End the stream for a reason the I/O side found (FrameTimeout, StreamRefused, ...):
        the ERROR bytes to write first (none from a dialer, or if already closed)."""
        reply = self._reply_for(error)
        self.our_state = self.their_state = _CLOSED
        return reply

    def _after_sending(self, frame: Frame, state: ConnectionState) -> ConnectionState:
        """The state after sending `frame` in `state`, or LocalProtocolError."""
        name = _NAMES.get(type(frame))
        if name is None:
            raise TypeError(f"not a frame: {frame!r}")
        if state is _CLOSED:
            raise LocalProtocolError(f"cannot send {name}: this side of the stream is closed")
        if not isinstance(frame, _SENDS[self.role]):
            raise LocalProtocolError(f"a {self.role} never sends {name} frames")
        if isinstance(frame, HelloFrame):
            if state is not _HELLO:
                raise LocalProtocolError("HELLO was already sent")
            if frame.versions != self.versions:
                raise LocalProtocolError("HELLO must list this connection's versions")
            return _OPEN
        if isinstance(frame, ErrorFrame) and state is _HELLO:
            if frame.ref is not None:
                raise LocalProtocolError("an ERROR in place of HELLO cannot refer to a message")
            return _CLOSED  # the listener refuses the stream at the door
        if state is _HELLO:
            raise LocalProtocolError(f"cannot send {name} before HELLO")
        if isinstance(frame, MessageFrame) and self.their_state is _HELLO:
            raise LocalProtocolError("cannot send MESSAGE before the peer's HELLO")
        if isinstance(frame, MessageFrame) and self.their_state is _CLOSED:
            raise LocalProtocolError("cannot send MESSAGE: the peer closed its side")
        answers_a_message = isinstance(frame, AckFrame) or (
            isinstance(frame, ErrorFrame) and frame.ref is not None
        )
        if answers_a_message and self.version is None:
            raise LocalProtocolError(f"cannot send {name} about messages before the peer's HELLO")
        return state

    # -- receiving -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[ConnectionEvent]:
        """Feed bytes read from the stream (b"" when it ended); returns what they mean.

        A `ProtocolViolation` or `PeerRefused` is the last event: the rest of `data` is
        dropped, and feeding more raises LocalProtocolError."""
        if self.their_state is _CLOSED:
            raise LocalProtocolError("the peer's side of the stream is already closed")
        decoder = self._decoder
        events: list[ConnectionEvent] = []
        try:
            if not data:
                decoder.end_of_stream()
                self.their_state = _CLOSED
                return [EndOfStream()]
            decoder.receive_data(data)
            while (frame := decoder.next_frame()) is not NEED_DATA:
                event = self._receive(frame)
                events.append(event)
                if isinstance(event, PeerRefused):
                    self.our_state = self.their_state = _CLOSED
                    break
        except ProtocolError as exc:  # from the decoder, or a frame the peer may not send
            events.append(ProtocolViolation(exc, self._reply_for(exc)))
            self.our_state = self.their_state = _CLOSED
        return events

    def _receive(self, frame: Frame) -> ConnectionEvent:
        """The event for one frame from the peer; ProtocolError for what it may not send."""
        name = _NAMES[type(frame)]
        if not isinstance(frame, _SENDS[self.peer_role]):
            raise ProtocolError(f"a {self.peer_role} may not send {name} frames")
        if isinstance(frame, ErrorFrame):  # only ever from a listener
            error = frame.to_exception()
            if frame.ref is not None and self.their_state is _OPEN:
                return MessageRefused(frame.ref, error)
            return PeerRefused(error)
        if isinstance(frame, HelloFrame):
            if self.their_state is not _HELLO:
                raise ProtocolError("the peer sent HELLO twice")
            version = negotiate_version(self.versions, frame)  # else UnsupportedVersion
            self.their_state, self.version, self.peer_hello = _OPEN, version, frame
            return HelloReceived(frame.versions, frame.agent, version)
        if self.their_state is _HELLO:
            raise MalformedFrame("the first frame on a meshtalk stream must be HELLO")
        if isinstance(frame, MessageFrame):
            return MessageReceived(frame.sealed)
        assert isinstance(frame, AckFrame)
        return AckReceived(frame.ids)

    def _reply_for(self, error: MeshtalkError) -> bytes:
        """What to write about `error` before the reset: an ERROR frame, if ours to send."""
        if self.our_state is _CLOSED:
            return b""
        if self.role == "listener" or (
            isinstance(error, UnsupportedVersion) and self.our_state is _OPEN
        ):
            return encode_frame(ErrorFrame.from_exception(error))
        return b""
