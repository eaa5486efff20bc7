"""Slow, half-sent frames and too many streams (issue 12, item 4): bounded, timed out, released."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from meshtalk.net.framed import FramedStream
from meshtalk.net.host import MSG_PROTOCOL, build_host, close_host, peer_info, to_libp2p_id
from meshtalk.peer.inbound_limits import InboundLimits, InboundStatistics
from meshtalk.protocol import (
    ErrorFrame,
    FrameTimeout,
    HelloFrame,
    NodeKey,
    StreamRefused,
    encode_frame,
    encode_uvarint,
)
from tests.test_peer.helpers import fast_config, running
from tests.test_peer.test_hostile import LOCAL, still_serving

KIB = 1024


class MemoryLibp2pStream:
    """A trio memory stream with py-libp2p's read/write names."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def read(self, size: int) -> bytes:
        return await self.stream.receive_some(size)

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)


def test_streams_per_peer_and_in_all_are_capped() -> None:
    limits = InboundLimits(max_streams_per_peer=2, max_streams=3)
    a, b, c = (NodeKey.generate().peer_id for _ in range(3))
    shares = [limits.admit(a), limits.admit(a)]
    with pytest.raises(StreamRefused, match="per peer"):
        limits.admit(a)
    shares.append(limits.admit(b))
    with pytest.raises(StreamRefused, match="inbound message streams open"):
        limits.admit(c)
    shares.pop(0).release()
    shares.append(limits.admit(c))
    assert limits.statistics() == InboundStatistics(streams=3, peers=3, buffered_bytes=0, refused=2)
    for share in shares:
        share.release()
    assert limits.statistics().streams == 0


def test_unfinished_frames_share_one_byte_budget() -> None:
    limits = InboundLimits(max_buffered_bytes=100)
    first, second = (limits.admit(NodeKey.generate().peer_id) for _ in range(2))
    first.buffered_now(60)
    second.buffered_now(40)
    with pytest.raises(StreamRefused, match="more than the 100"):
        second.buffered_now(41)
    second.buffered_now(10)  # shrinking is always allowed
    first.buffered_now(90)
    assert limits.buffered_bytes == 100
    first.release()
    assert limits.buffered_bytes == 10
    second.release()
    assert limits.buffered_bytes == 0


async def test_a_frame_that_does_not_finish_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    framed = FramedStream(MemoryLibp2pStream(ours), frame_timeout=30)
    await theirs.send_all(encode_frame(HelloFrame((1,), "x")) + encode_uvarint(1000) + b"\x92")
    [hello] = await framed.read_frames()
    assert isinstance(hello, HelloFrame)
    start = trio.current_time()

    async def drip() -> None:  # a byte now and then does not extend the deadline
        while True:
            await trio.sleep(5)
            await theirs.send_all(b"\x00")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drip)
        with pytest.raises(FrameTimeout, match="within 30 s"):
            await framed.read_frames()
        nursery.cancel_scope.cancel()
    assert 30 <= trio.current_time() - start <= 31


async def test_an_idle_stream_between_frames_does_not_time_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    framed = FramedStream(MemoryLibp2pStream(ours), frame_timeout=30)
    for _ in range(3):
        await trio.sleep(100)
        await theirs.send_all(encode_frame(HelloFrame((1,), "x")))
        [frame] = await framed.read_frames()
        assert isinstance(frame, HelloFrame)


async def test_a_peer_with_many_half_sent_frames_holds_little_and_briefly(tmp_path: Path) -> None:
    rogue = NodeKey.generate()
    config = fast_config(frame_timeout=2.0)
    async with running(tmp_path, "alice", "bob", config=config) as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        limit = bob.config.max_inbound_streams_per_peer
        answers: list[ErrorFrame] = []

        host = build_host(rogue)
        async with host.run([LOCAL]):
            try:
                await host.connect(peer_info(bob.peer_id, bob.listen_addrs))

                async def half_frame() -> None:
                    with trio.fail_after(20):
                        stream = await host.new_stream(to_libp2p_id(bob.peer_id), [MSG_PROTOCOL])
                        framed = FramedStream(stream)
                        first = await framed.read_frame()  # bob speaks first either way
                        if isinstance(first, HelloFrame):
                            await framed.write_frames([HelloFrame((1,), "rogue")])
                            body = encode_uvarint(900 * KIB) + b"\x92\x01" + bytes(800 * KIB)
                            await stream.write(body)
                            first = await framed.read_frame()
                    assert isinstance(first, ErrorFrame)
                    answers.append(first)

                async with trio.open_nursery() as nursery:
                    for _ in range(limit + 6):
                        nursery.start_soon(half_frame)
                    with trio.fail_after(10):
                        while bob.inbound_limits.buffered_bytes < limit * 700 * KIB:
                            await trio.sleep(0.05)
                    assert bob.inbound_limits.statistics().streams == limit
            finally:
                await close_host(host)
        codes = sorted(answer.code for answer in answers)
        assert codes == [106] * limit + [107] * 6  # timed out / refused at the door
        with trio.fail_after(5):
            while bob.inbound_limits.statistics().streams:
                await trio.sleep(0.05)
        assert bob.inbound_limits.buffered_bytes == 0
        await still_serving(alice, bob, "after the slow frames")
