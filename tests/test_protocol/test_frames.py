"""Frame encoding and the incremental decoder."""

from __future__ import annotations

import pytest

from meshtalk.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    NEED_DATA,
    AckFrame,
    ClockSkew,
    ErrorFrame,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    HelloFrame,
    MalformedFrame,
    MeshtalkError,
    MessageFrame,
    UnsupportedVersion,
    encode_frame,
    encode_uvarint,
    negotiate_version,
    packb,
)
from meshtalk.protocol.errors import _all_subclasses

FRAMES: list[Frame] = [
    HelloFrame((1,), "meshtalk/0.1.0"),
    HelloFrame((1, 2, 3)),
    MessageFrame(b"sealed bytes"),
    AckFrame((b"a" * 16, b"b" * 16)),
    ErrorFrame(206, "clock skew", b"c" * 16),
    ErrorFrame(1, "no ref"),
]


def decode_all(data: bytes, chunk: int) -> list[Frame]:
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for start in range(0, len(data), chunk):
        decoder.receive_data(data[start : start + chunk])
        while (frame := decoder.next_frame()) is not NEED_DATA:
            assert not isinstance(frame, type(NEED_DATA))
            frames.append(frame)
    decoder.end_of_stream()
    return frames


@pytest.mark.parametrize("chunk", [1, 2, 7, 1000])
def test_round_trip_in_any_chunking(chunk: int) -> None:
    data = b"".join(encode_frame(f) for f in FRAMES)
    assert decode_all(data, chunk) == FRAMES


def test_many_frames_in_one_read() -> None:
    frames = [MessageFrame(bytes([i]) * 300) for i in range(256)]
    decoder = FrameDecoder()
    decoder.receive_data(b"".join(encode_frame(f) for f in frames))
    got = []
    while (frame := decoder.next_frame()) is not NEED_DATA:
        got.append(frame)
    assert got == frames
    assert decoder.statistics() == {"buffered": 0, "frames_decoded": 256}


def test_varint_encoding() -> None:
    assert encode_uvarint(0) == b"\x00"
    assert encode_uvarint(127) == b"\x7f"
    assert encode_uvarint(128) == b"\x80\x01"
    assert encode_uvarint(300) == b"\xac\x02"
    with pytest.raises(ValueError, match="range"):
        encode_uvarint(-1)


def test_declared_length_over_cap_refused_from_the_prefix_alone() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    decoder.receive_data(encode_uvarint(1001))
    with pytest.raises(FrameTooLarge, match="limit is 1000"):
        decoder.next_frame()
    huge = FrameDecoder()
    huge.receive_data(b"\xff\xff\xff\xff\x7f")  # 2**35 - 1, without any body
    with pytest.raises(FrameTooLarge):
        huge.next_frame()
    assert DEFAULT_MAX_FRAME_SIZE > 1024 * 1024


def test_partial_prefix_over_cap_refused_early() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    decoder.receive_data(b"\xff\xff")  # continuation bit set: already 16383+
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00", "empty"),
        (b"\x81\x00" + b"\x00", "minimally"),
        (b"\x01\xc1", "msgpack"),
        (b"\x01\x01", "array"),
        (b"\x01\x90", "array"),
        (b"\x02\x91\xa1", "msgpack"),
        (b"\x02\x91\x09", "unknown frame type 9"),
        (b"\x03\x92\x01\x01", "1 to"),
        (b"\x02\x91\x01", "MESSAGE frame has the wrong fields"),
        (b"\x03\x92\x02\xa0", "ACK frame has the wrong fields"),
    ],
)
def test_malformed_frames(data: bytes, message: str) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    with pytest.raises(MalformedFrame, match=message):
        decoder.next_frame()


@pytest.mark.parametrize(
    "fields",
    [
        [0, [], ""],
        [0, [0], ""],
        [0, [1], "a" * 257],
        [0, list(range(1, 18)), ""],
        [1, b""],
        [1, "text"],
        [2, []],
        [2, [b"short"]],
        [2, [b"x" * 16] * 4097],
        [3, 70000, "text", None],
        [3, 1, b"bytes", None],
        [3, 1, "t" * 1025, None],
        [3, 1, "text", b"short"],
        [2, [b"x" * 16], "extra"],
    ],
)
def test_frame_fields_are_checked(fields: list[object]) -> None:
    body = packb(fields)
    decoder = FrameDecoder()
    decoder.receive_data(encode_uvarint(len(body)) + body)
    with pytest.raises(MalformedFrame):
        decoder.next_frame()


def test_ten_byte_prefix_refused() -> None:
    decoder = FrameDecoder(max_frame_size=2**70)
    decoder.receive_data(b"\x80" * 9 + b"\x01")
    with pytest.raises(MalformedFrame, match="longer than 9"):
        decoder.next_frame()


def test_decoder_stays_broken_after_an_error() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"\x00")
    with pytest.raises(MalformedFrame):
        decoder.next_frame()
    with pytest.raises(MalformedFrame, match="already failed"):
        decoder.receive_data(encode_frame(FRAMES[0]))
    with pytest.raises(MalformedFrame, match="already failed"):
        decoder.next_frame()


def test_stream_ending_inside_a_frame() -> None:
    data = encode_frame(MessageFrame(b"x" * 50))
    for cut in range(1, len(data)):
        decoder = FrameDecoder()
        decoder.receive_data(data[:cut])
        assert decoder.next_frame() is NEED_DATA
        with pytest.raises(MalformedFrame, match="ended inside a frame"):
            decoder.end_of_stream()


def test_error_frames_carry_the_exception_type() -> None:
    for cls in _all_subclasses(MeshtalkError):
        frame = ErrorFrame.from_exception(cls("details"), ref=b"r" * 16)
        decoder = FrameDecoder()
        decoder.receive_data(encode_frame(frame))
        received = decoder.next_frame()
        assert isinstance(received, ErrorFrame)
        rebuilt = received.to_exception()
        assert type(rebuilt) is cls
        assert rebuilt.remote is True  # the peer refused, not this node
        assert str(rebuilt) == "peer refused: details"
        assert rebuilt.detail == "details"
        assert rebuilt.message_id == b"r" * 16
        assert cls("details").remote is False
    assert isinstance(ErrorFrame(999, "new code").to_exception(), MeshtalkError)
    long = ErrorFrame.from_exception(ClockSkew("x" * 5000))
    assert len(long.text) == 1024


def test_error_codes_are_unique_and_documented() -> None:
    classes = _all_subclasses(MeshtalkError)
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert all(cls.__doc__ and len(cls.__doc__) > 20 for cls in classes)


def test_version_negotiation() -> None:
    assert negotiate_version((1, 2), HelloFrame((2, 3))) == 2
    assert negotiate_version((1,), HelloFrame((1,))) == 1
    with pytest.raises(UnsupportedVersion, match="upgrade"):
        negotiate_version((1,), HelloFrame((2,)))


def test_encode_refuses_non_frames() -> None:
    with pytest.raises(TypeError):
        encode_frame("not a frame")  # type: ignore[arg-type]
