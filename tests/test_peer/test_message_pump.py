"""MessagePump (net/framed.py) alone, over a memory stream: the handshake, the end of the stream
and the pump's own refusals (frame timeout, on_buffered's budget) as events (issue 13)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from meshtalk.net.framed import MessagePump
from meshtalk.protocol import (
    EndOfStream,
    ErrorFrame,
    FrameTimeout,
    HelloFrame,
    HelloReceived,
    LocalProtocolError,
    MalformedFrame,
    MessageConnection,
    MessageFrame,
    MessageReceived,
    NotAuthorized,
    ProtocolViolation,
    StreamRefused,
    UnsupportedVersion,
    encode_frame,
    encode_uvarint,
)
from tests.test_peer.port_doubles import FAR_HELLO, FarSide, stream_pair


def listener(
    frame_timeout: float | None = None, on_buffered: Callable[[int], None] | None = None
) -> tuple[MessagePump, FarSide]:
    ours, far = stream_pair()
    connection = MessageConnection("listener", agent="pump")
    pump = MessagePump(ours, connection, frame_timeout=frame_timeout, on_buffered=on_buffered)
    return pump, far


async def test_hello_keeps_what_came_with_the_peers_hello(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pump, far = listener()
    await far.send(FAR_HELLO, MessageFrame(b"early"))
    assert await pump.hello(5) == HelloReceived((1,), "far side", 1)
    assert await far.read() == [HelloFrame((1, 2), "pump")]
    assert await pump.events() == [MessageReceived(b"early")]


async def test_the_end_of_the_stream_is_an_event(autojump_clock: trio.testing.MockClock) -> None:
    pump, far = listener()
    await far.send(FAR_HELLO)
    await pump.hello(5)
    await far.raw.send_all(encode_frame(MessageFrame(b"whole")))
    await far.end()
    assert await pump.events() == [MessageReceived(b"whole")]
    [end] = await pump.events()
    assert end == EndOfStream()
    with pytest.raises(EOFError):
        await pump.fail(end)

    pump, far = listener()
    await far.send(FAR_HELLO)
    await pump.hello(5)
    assert await far.read() == [HelloFrame((1, 2), "pump")]
    await far.raw.send_all(encode_frame(MessageFrame(b"cut"))[:-1])
    await far.end()
    [violation] = await pump.events()
    assert isinstance(violation, ProtocolViolation)
    assert isinstance(violation.error, MalformedFrame)
    with pytest.raises(MalformedFrame):
        await pump.fail(violation)  # the listener says why before the reset
    [error] = await far.read()
    assert isinstance(error, ErrorFrame)
    assert error.code == MalformedFrame.code


async def test_a_begun_frame_times_out_and_the_reply_says_106(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pump, far = listener(frame_timeout=30)
    await far.send(FAR_HELLO)
    await pump.hello(5)
    await far.read()
    await trio.sleep(100)  # idle between frames: no timeout
    await far.raw.send_all(encode_uvarint(1000) + b"\x92")
    start = trio.current_time()

    async def drip() -> None:  # a byte now and then does not extend the deadline
        while True:
            await trio.sleep(5)
            await far.raw.send_all(b"\x00")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drip)
        [violation] = await pump.events()
        nursery.cancel_scope.cancel()
    assert 30 <= trio.current_time() - start <= 31
    assert isinstance(violation, ProtocolViolation)
    assert isinstance(violation.error, FrameTimeout)
    assert "within 30 s" in str(violation.error)
    assert pump.connection.closed
    with pytest.raises(FrameTimeout):
        await pump.fail(violation)
    [error] = await far.read()
    assert isinstance(error, ErrorFrame)
    assert error.code == FrameTimeout.code


async def test_on_buffered_hears_the_unfinished_frame_and_may_refuse_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    heard: list[int] = []

    def budget(size: int) -> None:
        heard.append(size)
        if size > 100:
            raise StreamRefused("too many bytes")

    pump, far = listener(on_buffered=budget)
    await far.send(FAR_HELLO)
    await pump.hello(5)
    whole = encode_frame(MessageFrame(b"x" * 500))
    await far.raw.send_all(whole + whole[:50])
    assert await pump.events() == [MessageReceived(b"x" * 500)]
    assert heard[-1] == 50  # the whole frame is no longer held
    await far.raw.send_all(whole[50:] + whole[:200])
    *messages, violation = await pump.events()
    assert messages == [MessageReceived(b"x" * 500)]  # the caller drops them, as it did
    assert heard[-1] == 200
    assert isinstance(violation, ProtocolViolation)
    assert isinstance(violation.error, StreamRefused)
    assert ErrorFrame.from_exception(violation.error) == ErrorFrame(107, "too many bytes")


async def test_a_dialer_is_refused_or_finds_no_common_version(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ours, far = stream_pair()
    pump = MessagePump(ours, MessageConnection("dialer"))
    with pytest.raises(LocalProtocolError):
        await pump.send_all([MessageFrame(b"too soon")])
    await far.send(ErrorFrame(NotAuthorized.code, "who are you"))
    with pytest.raises(NotAuthorized, match="peer refused: who are you") as refused:
        await pump.hello(5)
    assert refused.value.remote

    ours, far = stream_pair()
    pump = MessagePump(ours, MessageConnection("dialer"))
    await far.send(HelloFrame((3,), "from the future"))
    with pytest.raises(UnsupportedVersion):
        await pump.hello(5)
    hello, error = await far.read()
    assert isinstance(hello, HelloFrame)
    assert isinstance(error, ErrorFrame)
    assert error.code == UnsupportedVersion.code  # a dialer that said HELLO says why, too


async def test_hello_waits_no_longer_than_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pump, _far = listener()
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        await pump.hello(5)
    assert trio.current_time() - start == pytest.approx(5)
