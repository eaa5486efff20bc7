"""The message stream's state machine: both roles against each other in memory, any chunking,
the frame cap, the end of the stream, version negotiation (every frame in every state: _rules)."""

from __future__ import annotations

import ast
import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

import meshtalk
import meshtalk.protocol
from meshtalk.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    MSG_PROTOCOL,
    NEED_DATA,
    PROTOCOL_VERSIONS,
    AckFrame,
    AckReceived,
    ClockSkew,
    ConnectionEvent,
    ConnectionState,
    EndOfStream,
    ErrorFrame,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    HelloFrame,
    HelloReceived,
    LocalProtocolError,
    MalformedFrame,
    MessageConnection,
    MessageFrame,
    MessageReceived,
    MessageRefused,
    PeerRefused,
    ProtocolViolation,
    UnsupportedVersion,
    decode_frame_body,
    encode_frame,
    encode_uvarint,
    open_sealed,
    seal,
)
from meshtalk.protocol import connection as connection_module
from tests.conftest import NOW_MS, fixed_key, make_envelope
from tests.test_protocol.test_boundary import FORBIDDEN, loaded_modules

ALICE, BOB = fixed_key("alice"), fixed_key("bob")
ID1, ID2, ID3 = b"1" * 16, b"2" * 16, b"3" * 16


def frames_in(data: bytes) -> list[Frame]:
    """Decode the bytes a machine produced (they must be whole frames)."""
    decoder: FrameDecoder[Frame] = FrameDecoder()
    decoder.receive_data(data)
    frames = []
    while (frame := decoder.next_frame()) is not NEED_DATA:
        frames.append(frame)
    assert decoder.buffered == 0
    return frames


def error_in(data: bytes) -> ErrorFrame:
    [frame] = frames_in(data)
    assert isinstance(frame, ErrorFrame)
    return frame


def open_pair(
    dialer_versions: tuple[int, ...] = (1,), listener_versions: tuple[int, ...] = (1,)
) -> tuple[MessageConnection, MessageConnection]:
    """A dialer and a listener that exchanged HELLOs through each other's bytes."""
    dialer = MessageConnection("dialer", dialer_versions, agent="dialer/1")
    listener = MessageConnection("listener", listener_versions, agent="listener/1")
    common = max(set(dialer_versions) & set(listener_versions))
    heard = listener.receive_data(dialer.send_hello())
    assert heard == [HelloReceived(dialer_versions, "dialer/1", common)]
    [answer] = dialer.receive_data(listener.send_hello())
    assert answer == HelloReceived(listener_versions, "listener/1", common)
    assert dialer.is_open
    assert listener.is_open
    return dialer, listener


def feed(conn: MessageConnection, data: bytes, cuts: list[int]) -> list[ConnectionEvent]:
    """Feed `data` cut at `cuts` (sorted offsets), returning every event."""
    events: list[ConnectionEvent] = []
    start = 0
    for cut in [*cuts, len(data)]:
        if conn.their_state is ConnectionState.CLOSED:
            break  # a violation or a refusal ended it: the I/O side stops reading
        if cut > start:
            events.extend(conn.receive_data(data[start:cut]))
            start = cut
    return events


def comparable(events: list[ConnectionEvent]) -> list[object]:
    """Events with their errors as plain values (exceptions do not compare equal)."""
    out: list[object] = []
    for event in events:
        error = getattr(event, "error", None)
        if error is None:
            out.append(event)
        else:
            seen = (type(error), str(error), error.message_id, error.remote)
            out.append(
                (type(event), getattr(event, "ref", None), getattr(event, "reply", b""), seen)
            )
    return out


def test_the_protocol_id_and_versions() -> None:
    assert MSG_PROTOCOL == "/meshtalk/msg/1.0.0"
    assert PROTOCOL_VERSIONS == (1, 2)
    assert type(MSG_PROTOCOL) is str
    conn = MessageConnection("dialer")
    assert conn.versions == PROTOCOL_VERSIONS
    assert frames_in(conn.send_hello()) == [HelloFrame((1, 2), "")]


def test_a_whole_conversation_with_real_sealed_messages() -> None:
    dialer, listener = open_pair()
    envelopes = [make_envelope(ALICE, BOB, id=bytes([n]) * 16, body=f"m{n}") for n in range(3)]
    sealed = [seal(e, ALICE, BOB.peer_id) for e in envelopes]
    batch = dialer.send_all(MessageFrame(s) for s in sealed)
    received = listener.receive_data(batch)
    assert received == [MessageReceived(s) for s in sealed]
    opened = [open_sealed(e.sealed, BOB, NOW_MS) for e in received]  # type: ignore[union-attr]
    assert [o.body for o in opened] == ["m0", "m1", "m2"]

    refusal = ClockSkew("too old").about(envelopes[2].id)
    answer = listener.send_all(
        [
            AckFrame((envelopes[0].id, envelopes[1].id)),
            ErrorFrame.from_exception(refusal, refusal.message_id),
        ]
    )
    acked, refused = dialer.receive_data(answer)
    assert acked == AckReceived((envelopes[0].id, envelopes[1].id))
    assert isinstance(refused, MessageRefused)
    assert refused.ref == envelopes[2].id
    assert isinstance(refused.error, ClockSkew)
    assert refused.error.remote
    assert refused.error.message_id == envelopes[2].id
    assert str(refused.error) == "peer refused: too old"
    assert not refusal.remote  # the listener's own error stays local
    assert dialer.is_open  # one refused message does not end the stream
    assert listener.is_open


def conversation() -> tuple[bytes, bytes, list[ConnectionEvent], list[ConnectionEvent]]:
    """The bytes each side writes in a conversation, and the events the other side hears."""
    dialer = MessageConnection("dialer", (1, 2), agent="d")
    listener = MessageConnection("listener", (2, 3), agent="l")
    big = b"\xa5" * 70_000  # a three-byte length prefix
    to_listener = dialer.send_hello()
    to_dialer = listener.send_hello()
    heard_by_listener = listener.receive_data(to_listener)
    heard_by_dialer = dialer.receive_data(to_dialer)
    messages = dialer.send_all([MessageFrame(b"a"), MessageFrame(big), MessageFrame(b"c" * 200)])
    to_listener += messages
    heard_by_listener += listener.receive_data(messages)
    answers = listener.send_all(
        [AckFrame((ID1,)), ErrorFrame(206, "skew", ID2), AckFrame((ID2, ID3))]
    )
    to_dialer += answers
    heard_by_dialer += dialer.receive_data(answers)
    heard_by_listener += listener.receive_data(b"")
    return to_listener, to_dialer, heard_by_listener, heard_by_dialer


def test_both_roles_hear_what_the_other_sent() -> None:
    _, _, by_listener, by_dialer = conversation()
    assert by_listener[0] == HelloReceived((1, 2), "d", 2)
    assert [type(e) for e in by_listener[1:]] == [MessageReceived] * 3 + [EndOfStream]
    assert by_dialer[0] == HelloReceived((2, 3), "l", 2)
    assert by_dialer[1] == AckReceived((ID1,))
    assert isinstance(by_dialer[2], MessageRefused)
    assert by_dialer[2].ref == ID2
    assert by_dialer[3] == AckReceived((ID2, ID3))


def replay(role: str, data: bytes, cuts: list[int], eof: bool) -> list[ConnectionEvent]:
    versions = (1, 2) if role == "dialer" else (2, 3)
    conn = MessageConnection(role, versions)  # type: ignore[arg-type]
    conn.send_hello()
    events = feed(conn, data, cuts)
    return events + (conn.receive_data(b"") if eof and not conn.closed else [])


def test_byte_by_byte_is_the_same_as_all_at_once() -> None:
    to_listener, to_dialer, by_listener, by_dialer = conversation()
    every_byte = list(range(1, len(to_listener)))
    assert comparable(replay("listener", to_listener, every_byte, eof=True)) == comparable(
        by_listener
    )
    every_byte = list(range(1, len(to_dialer)))
    assert comparable(replay("dialer", to_dialer, every_byte, eof=False)) == comparable(by_dialer)


@given(st.data())
def test_any_chunking_gives_the_same_events(data: st.DataObject) -> None:
    to_listener, to_dialer, by_listener, by_dialer = conversation()
    for role, stream, expected, eof in (
        ("listener", to_listener, by_listener, True),
        ("dialer", to_dialer, by_dialer, False),
    ):
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12).map(sorted))
        assert comparable(replay(role, stream, cuts, eof)) == comparable(expected)


TAILS: dict[str, tuple[str, bytes]] = {
    "ACK from the dialer": ("listener", encode_frame(AckFrame((ID1,)))),
    "HELLO twice": ("listener", encode_frame(HelloFrame((1,)))),
    "oversized": ("listener", encode_uvarint(DEFAULT_MAX_FRAME_SIZE + 1) + b"x" * 50),
    "ends inside a frame": ("listener", encode_frame(MessageFrame(b"cut"))[:-1]),
    "ERROR without ref": ("dialer", encode_frame(ErrorFrame(1, "bye")) + b"\x00"),
    "MESSAGE from the listener": ("dialer", encode_frame(MessageFrame(b"no"))),
}


@pytest.mark.parametrize("tail", list(TAILS))
@given(st.data())
def test_any_chunking_ends_the_same_way(tail: str, data: st.DataObject) -> None:
    role, bad = TAILS[tail]
    good = (
        [MessageFrame(b"a"), MessageFrame(b"b" * 300)]
        if role == "listener"
        else [AckFrame((ID1,)), ErrorFrame(206, "skew", ID2)]
    )
    stream = b"".join(encode_frame(f) for f in [HelloFrame((1,)), *good]) + bad
    whole = replay(role, stream, [], eof=tail == "ends inside a frame")
    assert isinstance(whole[-1], ProtocolViolation | PeerRefused)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10).map(sorted))
    events = replay(role, stream, cuts, eof=tail == "ends inside a frame")
    assert comparable(events) == comparable(whole)


def test_buffered_bytes_and_begun_frames_are_visible() -> None:
    _, listener = open_pair()
    frame = encode_frame(MessageFrame(b"x" * 1000))
    assert not listener.frame_begun
    assert listener.buffered == 0
    before = listener.frames_received
    assert listener.receive_data(frame[:10]) == []
    assert listener.frame_begun
    assert listener.buffered == 10
    assert listener.receive_data(frame[10:] + frame[:3]) == [MessageReceived(b"x" * 1000)]
    assert listener.frames_received == before + 1
    assert listener.frame_begun  # the next frame began in the same read
    assert listener.buffered == 3
    assert listener.receive_data(frame[3:]) == [MessageReceived(b"x" * 1000)]
    assert not listener.frame_begun


def machine(role: str, after_hello: bool) -> MessageConnection:
    conn = MessageConnection(role)  # type: ignore[arg-type]
    conn.send_hello()
    if after_hello:
        assert isinstance(conn.receive_data(encode_frame(HelloFrame((1,)))), list)
        assert conn.is_open
    return conn


# -- the frame cap ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["listener", "dialer"])
def test_an_oversized_length_prefix_is_refused_before_its_body(role: str) -> None:
    conn = MessageConnection(role, max_frame_size=1000)  # type: ignore[arg-type]
    conn.send_hello()
    conn.receive_data(encode_frame(HelloFrame((1,))))
    assert conn.receive_data(encode_uvarint(1000)) == []  # at the cap: waits for the body
    assert conn.frame_begun
    fresh = MessageConnection(role, max_frame_size=1000)  # type: ignore[arg-type]
    fresh.send_hello()
    [violation] = fresh.receive_data(encode_uvarint(1001))  # no body sent: refused at once
    assert isinstance(violation, ProtocolViolation)
    assert isinstance(violation.error, FrameTooLarge)
    assert fresh.buffered == 0
    if role == "listener":
        assert error_in(violation.reply).code == 101
    else:
        assert violation.reply == b""


def test_a_huge_prefix_byte_by_byte_never_buffers_more_than_the_prefix() -> None:
    for declared in (DEFAULT_MAX_FRAME_SIZE + 1, 50 * 1024 * 1024, 2**63 - 1):
        conn = MessageConnection("listener")
        conn.send_hello()
        prefix = encode_uvarint(declared)
        events: list[ConnectionEvent] = []
        for index in range(len(prefix)):
            assert conn.buffered <= index
            events = conn.receive_data(prefix[index : index + 1])
            if events:
                break
        [violation] = events
        assert isinstance(violation, ProtocolViolation)
        assert isinstance(violation.error, FrameTooLarge)
        assert error_in(violation.reply).code == 101


@pytest.mark.parametrize(
    "raw",
    [b"\x00", b"\x05garbage", b"\x03\x92\x07\x01", b"\x80\x00", b"\x81" + b"\x80" * 8 + b"\x00"],
)
def test_framing_errors_are_violations(raw: bytes) -> None:
    _, listener = open_pair()
    [violation] = listener.receive_data(raw)
    assert isinstance(violation, ProtocolViolation)
    assert isinstance(violation.error, MalformedFrame)
    assert error_in(violation.reply).code == 102


# -- the end of the stream --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["listener", "dialer"])
def test_the_end_of_the_stream(role: str) -> None:
    for after_hello in (False, True):
        conn = machine(role, after_hello)
        assert conn.receive_data(b"") == [EndOfStream()]
        assert conn.their_state is ConnectionState.CLOSED
        with pytest.raises(LocalProtocolError):
            conn.receive_data(b"")
    conn = machine(role, after_hello=True)
    assert conn.receive_data(encode_frame(MessageFrame(b"xy"))[:3]) == []
    [violation] = conn.receive_data(b"")
    assert isinstance(violation, ProtocolViolation)
    assert isinstance(violation.error, MalformedFrame)
    assert "ended inside a frame" in str(violation.error)


def test_the_listener_still_answers_after_the_dialer_closed() -> None:
    dialer, listener = open_pair()
    listener.receive_data(dialer.send(MessageFrame(b"last")))
    assert listener.receive_data(b"") == [EndOfStream()]
    assert frames_in(listener.send(AckFrame((ID1,)))) == [AckFrame((ID1,))]
    assert dialer.receive_data(b"") == [EndOfStream()]
    with pytest.raises(LocalProtocolError, match="closed"):
        dialer.send(MessageFrame(b"x"))  # nobody would read it


# -- versions ---------------------------------------------------------------------------------


def test_the_highest_common_version_wins() -> None:
    dialer, listener = open_pair((1, 2, 3), (2, 3, 4))
    assert dialer.version == listener.version == 3
    assert dialer.peer_hello == HelloFrame((2, 3, 4), "listener/1")


def test_no_common_version_is_error_105_from_both_sides() -> None:
    dialer = MessageConnection("dialer", (2,))
    listener = MessageConnection("listener", (1,))
    to_listener, to_dialer = dialer.send_hello(), listener.send_hello()
    [at_listener] = listener.receive_data(to_listener)
    [at_dialer] = dialer.receive_data(to_dialer)
    for violation in (at_listener, at_dialer):
        assert isinstance(violation, ProtocolViolation)
        assert isinstance(violation.error, UnsupportedVersion)
        assert not violation.error.remote
        assert "upgrade" in str(violation.error)
        assert error_in(violation.reply).code == 105
    assert dialer.version is None
    assert dialer.closed
    assert listener.closed


def test_a_listener_that_has_not_said_hello_refuses_with_105_in_its_place() -> None:
    dialer = MessageConnection("dialer", (2,))
    listener = MessageConnection("listener", (1,))
    [violation] = listener.receive_data(dialer.send_hello())
    assert isinstance(violation, ProtocolViolation)
    [event] = dialer.receive_data(violation.reply)
    assert isinstance(event, PeerRefused)
    assert isinstance(event.error, UnsupportedVersion)
    assert event.error.remote


def test_a_dialer_that_has_not_said_hello_sends_nothing_on_a_mismatch() -> None:
    dialer = MessageConnection("dialer", (2,))
    [violation] = dialer.receive_data(encode_frame(HelloFrame((1,))))
    assert isinstance(violation, ProtocolViolation)
    assert violation.reply == b""  # its first frame could only be HELLO


# -- the module stays sans-I/O and public -----------------------------------------------------


def test_the_machine_imports_no_io_and_reads_no_clock() -> None:
    modules = loaded_modules("import meshtalk.protocol.connection")
    leaked = {m for m in modules if m.split(".")[0] in FORBIDDEN}
    assert not leaked, sorted(leaked)
    tree = ast.parse(inspect.getsource(connection_module))
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "enum",
        "collections.abc",
        "dataclasses",
        "typing",
        "errors",
        "frames",
    }


def test_the_machine_is_public() -> None:
    for name in connection_module.__all__:
        assert name in meshtalk.protocol.__all__, name
        assert name in meshtalk.__all__, name
        assert getattr(meshtalk, name) is getattr(connection_module, name)


def test_frames_decode_the_bytes_the_machine_writes() -> None:
    dialer, _ = open_pair()
    body = dialer.send(MessageFrame(b"m"))[1:]
    assert decode_frame_body(body) == MessageFrame(b"m")
