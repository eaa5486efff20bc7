"""The message stream's state machine, every frame in every state: what each side may receive
(an event, or a violation with the ERROR to send back) and may send (else LocalProtocolError)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meshtalk.protocol import (
    AckFrame,
    AckReceived,
    ConnectionState,
    ErrorFrame,
    Frame,
    FrameTimeout,
    HelloFrame,
    HelloReceived,
    LocalProtocolError,
    MessageConnection,
    MessageFrame,
    MessageReceived,
    MessageRefused,
    MessageRejected,
    NotAuthorized,
    PeerRefused,
    ProtocolError,
    ProtocolViolation,
    StreamRefused,
    encode_frame,
)
from tests.test_protocol.test_connection import ID1, ID2, error_in, frames_in, machine, open_pair

# -- every frame from the peer, in every state ----------------------------------------------

PEER_FRAMES: dict[str, Frame] = {
    "HELLO": HelloFrame((1,), "again"),
    "MESSAGE": MessageFrame(b"sealed"),
    "ACK": AckFrame((ID1,)),
    "ERROR": ErrorFrame(207, "go away"),
    "ERROR+ref": ErrorFrame(206, "skew", ID1),
}
# (our role, the peer's HELLO came, frame) -> the event, or the code of the violation
EXPECTED: dict[tuple[str, bool, str], type | int] = {
    ("listener", False, "HELLO"): HelloReceived,
    ("listener", False, "MESSAGE"): 102,  # the first frame must be HELLO
    ("listener", False, "ACK"): 100,  # never the dialer's to send
    ("listener", False, "ERROR"): 100,
    ("listener", False, "ERROR+ref"): 100,
    ("listener", True, "HELLO"): 100,  # HELLO twice
    ("listener", True, "MESSAGE"): MessageReceived,
    ("listener", True, "ACK"): 100,
    ("listener", True, "ERROR"): 100,
    ("listener", True, "ERROR+ref"): 100,
    ("dialer", False, "HELLO"): HelloReceived,
    ("dialer", False, "MESSAGE"): 100,  # never the listener's to send
    ("dialer", False, "ACK"): 102,  # the first frame must be HELLO
    ("dialer", False, "ERROR"): PeerRefused,  # refused at the door
    ("dialer", False, "ERROR+ref"): PeerRefused,
    ("dialer", True, "HELLO"): 100,
    ("dialer", True, "MESSAGE"): 100,
    ("dialer", True, "ACK"): AckReceived,
    ("dialer", True, "ERROR"): PeerRefused,  # ERROR without ref ends the stream
    ("dialer", True, "ERROR+ref"): MessageRefused,
}


@pytest.mark.parametrize(("role", "after_hello", "name"), list(EXPECTED))
def test_every_frame_from_the_peer_in_every_state(role: str, after_hello: bool, name: str) -> None:
    conn = machine(role, after_hello)
    follow = encode_frame(MessageFrame(b"next") if role == "listener" else AckFrame((ID2,)))
    events = conn.receive_data(encode_frame(PEER_FRAMES[name]) + follow)
    expected = EXPECTED[(role, after_hello, name)]
    if isinstance(expected, type):
        assert isinstance(events[0], expected)
        if expected in (PeerRefused, MessageRefused):
            assert events[0].error.remote  # type: ignore[union-attr]
            assert events[0].error.code == PEER_FRAMES[name].code  # type: ignore[union-attr]
        if expected is PeerRefused:
            assert events == [events[0]]  # what follows the refusal is dropped
            assert conn.closed
        else:
            assert len(events) == 2  # the stream goes on
            assert not conn.closed
        return
    [violation] = events  # the frame after the violation is dropped
    assert isinstance(violation, ProtocolViolation)
    assert violation.error.code == expected
    assert isinstance(violation.error, ProtocolError)
    assert not violation.error.remote
    if role == "listener":  # the listener says why before the reset
        reply = error_in(violation.reply)
        assert (reply.code, reply.ref) == (expected, None)
    else:  # the dialer sends only HELLO and MESSAGE
        assert violation.reply == b""
    assert conn.closed
    assert conn.their_state is ConnectionState.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")
    with pytest.raises(LocalProtocolError):
        conn.send(MessageFrame(b"x") if role == "dialer" else AckFrame((ID1,)))
    assert conn.abort(FrameTimeout("late")) == b""


def test_valid_frames_before_a_violation_still_count() -> None:
    _, listener = open_pair()
    data = b"".join(encode_frame(f) for f in [MessageFrame(b"1"), AckFrame((ID1,))])
    first, violation = listener.receive_data(data + encode_frame(MessageFrame(b"3")))
    assert first == MessageReceived(b"1")
    assert isinstance(violation, ProtocolViolation)
    assert error_in(violation.reply).code == 100


# -- every frame we might send, in every state ------------------------------------------------

OUR_FRAMES: dict[str, Frame] = {
    "HELLO": HelloFrame((1, 2)),  # this connection's versions, PROTOCOL_VERSIONS
    "MESSAGE": MessageFrame(b"sealed"),
    "ACK": AckFrame((ID1,)),
    "ERROR": ErrorFrame(107, "busy"),
    "ERROR+ref": ErrorFrame(203, "no", ID1),
}
STAGES: dict[str, Callable[[MessageConnection], object]] = {
    "new": lambda conn: None,
    "hello sent": lambda conn: conn.send_hello(),
    "hello heard": lambda conn: conn.receive_data(encode_frame(HelloFrame((1,)))),
    "open": lambda conn: (conn.send_hello(), conn.receive_data(encode_frame(HelloFrame((1,))))),
    "peer ended": lambda conn: (STAGES["open"](conn), conn.receive_data(b"")),
    "violated": lambda conn: (STAGES["open"](conn), conn.receive_data(b"\x00")),
    "aborted": lambda conn: (STAGES["open"](conn), conn.abort(StreamRefused("full"))),
}
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("dialer", "new"): {"HELLO"},
    ("dialer", "hello sent"): set(),  # MESSAGE waits for the peer's HELLO
    ("dialer", "hello heard"): {"HELLO"},
    ("dialer", "open"): {"MESSAGE"},
    ("dialer", "peer ended"): set(),
    ("dialer", "violated"): set(),
    ("dialer", "aborted"): set(),
    ("listener", "new"): {"HELLO", "ERROR"},  # ERROR in place of HELLO refuses the stream
    ("listener", "hello sent"): {"ERROR"},
    ("listener", "hello heard"): {"HELLO", "ERROR"},
    ("listener", "open"): {"ACK", "ERROR", "ERROR+ref"},
    ("listener", "peer ended"): {"ACK", "ERROR", "ERROR+ref"},  # answers to the last frames
    ("listener", "violated"): set(),
    ("listener", "aborted"): set(),
}


@pytest.mark.parametrize(("role", "stage"), list(ALLOWED))
@pytest.mark.parametrize("name", list(OUR_FRAMES))
def test_every_frame_we_send_in_every_state(role: str, stage: str, name: str) -> None:
    conn = MessageConnection(role)  # type: ignore[arg-type]
    STAGES[stage](conn)
    states = (conn.our_state, conn.their_state, conn.version)
    if name in ALLOWED[(role, stage)]:
        assert frames_in(conn.send(OUR_FRAMES[name])) == [OUR_FRAMES[name]]
        return
    with pytest.raises(LocalProtocolError):
        conn.send(OUR_FRAMES[name])
    assert (conn.our_state, conn.their_state, conn.version) == states  # nothing changed


def test_a_batch_is_checked_whole_before_anything_counts() -> None:
    conn = MessageConnection("dialer")
    with pytest.raises(LocalProtocolError):
        conn.send_all([HelloFrame((1, 2)), AckFrame((ID1,))])
    assert conn.our_state is ConnectionState.HELLO  # the HELLO did not count: send it again
    assert frames_in(conn.send_hello()) == [HelloFrame((1, 2))]
    with pytest.raises(LocalProtocolError, match="versions"):
        MessageConnection("dialer").send(HelloFrame((2,)))
    with pytest.raises(TypeError):
        conn.send("not a frame")  # type: ignore[arg-type]


def test_bad_settings_are_value_errors() -> None:
    with pytest.raises(ValueError, match="role"):
        MessageConnection("relay")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="versions"):
        MessageConnection("dialer", ())
    with pytest.raises(ValueError, match="agent"):
        MessageConnection("dialer", agent="x" * 300)


# -- refusals: at the door, mid-stream, by the I/O side ----------------------------------------


def test_the_listener_refuses_a_stream_in_place_of_hello() -> None:
    dialer = MessageConnection("dialer")
    listener = MessageConnection("listener")
    dialer.send_hello()
    refusal = listener.send(ErrorFrame.from_exception(NotAuthorized("not a contact")))
    assert listener.closed
    [event] = dialer.receive_data(refusal)
    assert isinstance(event, PeerRefused)
    assert isinstance(event.error, NotAuthorized)
    assert event.error.remote
    assert str(event.error) == "peer refused: not a contact"
    with pytest.raises(MessageRejected):  # `except MessageRejected` still catches it
        raise event.error
    assert dialer.closed
    with pytest.raises(LocalProtocolError):
        dialer.send(MessageFrame(b"x"))


def test_an_error_without_ref_ends_the_dialers_stream() -> None:
    dialer, listener = open_pair()
    answers = listener.send_all([AckFrame((ID1,)), ErrorFrame(503, "disk full"), AckFrame((ID2,))])
    assert listener.is_open  # the listener decides itself when to close
    acked, ended = dialer.receive_data(answers)
    assert acked == AckReceived((ID1,))
    assert isinstance(ended, PeerRefused)
    assert ended.error.code == 503
    assert ended.error.remote
    assert dialer.closed


@pytest.mark.parametrize(
    ("role", "error", "code"), [("listener", FrameTimeout("late"), 106), ("dialer", None, None)]
)
def test_abort_says_why_when_it_is_ours_to_say(
    role: str, error: ProtocolError | None, code: int | None
) -> None:
    dialer, listener = open_pair()
    conn = listener if role == "listener" else dialer
    reply = conn.abort(error or StreamRefused("too many bytes"))
    assert conn.closed
    if code is None:
        assert reply == b""
    else:
        assert error_in(reply).code == code
    assert conn.abort(StreamRefused("again")) == b""
