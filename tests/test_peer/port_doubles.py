"""Recording doubles for the ports of meshtalk/peer/ports.py, and a scripted far side.

A part under test (a PeerLink, the InboundHandler) gets these instead of the node: each double
records what it was called with and when (`trio.current_time()`, so a test on a MockClock can
check delays exactly), and lets a test wait for a call. The far side of a stream is a trio
memory stream, spoken to with FramedStream and frames by the test itself.
"""

from __future__ import annotations

import collections
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
import trio.testing

from meshtalk.net.framed import FramedStream
from meshtalk.peer.store import IncomingResult, OutboxItem
from meshtalk.protocol import Frame, HelloFrame, MeshtalkError, MessageFrame, PeerUnreachable

if TYPE_CHECKING:
    from meshtalk.peer.outbound import PeerLink
    from meshtalk.peer.store.messages import Incoming
    from meshtalk.protocol import Envelope, PeerId
    from meshtalk.protocol.forwarding import OpenedMessage

HELLO = ((1,), "meshtalk/test")
"""The versions and agent of the part under test."""
FAR_HELLO = HelloFrame((1,), "far side")
WAIT = 60.0
"""Seconds (of the test's clock) any wait for the part may take before the test fails."""


@dataclass(frozen=True)
class Call:
    """One call to a double: its name, its arguments, and the trio time it came."""

    name: str
    args: tuple[Any, ...]
    at: float


class Recorder:
    """Records calls; `wait_for` waits until enough of one kind came."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._changed = trio.Event()

    def record(self, name: str, *args: Any) -> None:
        self.calls.append(Call(name, args, trio.current_time()))
        self._changed.set()
        self._changed = trio.Event()

    def named(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.name == name]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [call.args for call in self.named(name)]

    async def wait_for(self, name: str, count: int = 1) -> list[Call]:
        """The calls named `name` once there are at least `count` of them."""
        with trio.fail_after(WAIT):
            while len(self.named(name)) < count:
                await self._changed.wait()
        return self.named(name)


class MemoryStreamLike:
    """A StreamLike over one end of `trio.testing.memory_stream_pair()`."""

    def __init__(self, stream: trio.abc.HalfCloseableStream) -> None:
        self.raw = stream
        self.ended: str | None = None  # "close" or "reset", whichever the part called first
        self.gate: trio.Event | None = None  # writes after the first (HELLO) wait for it
        self.writes = 0

    async def read(self, n: int | None = None) -> bytes:
        return await self.raw.receive_some(n)

    async def write(self, data: bytes) -> None:
        await self.raw.send_all(data)
        self.writes += 1
        if self.gate is not None and self.writes > 1:
            await self.gate.wait()  # the bytes are on their way; the writer is held back

    async def close(self) -> None:
        self.ended = self.ended or "close"
        await self.raw.aclose()

    async def reset(self) -> None:
        self.ended = self.ended or "reset"
        await self.raw.aclose()


def stream_pair() -> tuple[MemoryStreamLike, FarSide]:
    """The part's end of a new stream, and the test's."""
    ours, theirs = trio.testing.memory_stream_pair()
    return MemoryStreamLike(ours), FarSide(theirs)


class FarSide:
    """The other end of a message stream, scripted by the test with frames."""

    def __init__(self, raw: trio.abc.HalfCloseableStream) -> None:
        self.raw = raw
        self.framed = FramedStream(MemoryStreamLike(raw))

    async def send(self, *frames: Frame) -> None:
        await self.framed.write_frames(frames)

    async def read(self) -> list[Frame]:
        """The frames that are there after one read (EOFError at the end)."""
        with trio.fail_after(WAIT):
            return await self.framed.read_frames()

    async def hello(self) -> HelloFrame:
        """Send FAR_HELLO; the part's HELLO."""
        return await self.framed.hello(FAR_HELLO.versions, FAR_HELLO.agent, WAIT)

    async def read_messages(self, count: int) -> list[bytes]:
        """The sealed bytes of the next `count` MESSAGE frames (any other frame fails)."""
        sealed: list[bytes] = []
        with trio.fail_after(WAIT):
            while len(sealed) < count:
                frame = await self.framed.read_frame()
                assert isinstance(frame, MessageFrame), frame
                sealed.append(frame.sealed)
        return sealed

    async def read_to_end(self) -> list[Frame]:
        """Every frame until the part ends the stream."""
        frames: list[Frame] = []
        with trio.fail_after(WAIT):
            while True:
                try:
                    frames.extend(await self.framed.read_frames())
                except EOFError:
                    return frames

    async def end(self) -> None:
        """Close our writing side: the part reads the end of the stream."""
        await self.raw.send_eof()


class RecordingOutbox(Recorder):
    """An outbox in memory: `items` still wait for an ack; `status` as the store would keep it
    ("queued", "sent" once marked, "delivered" when acked, "failed")."""

    def __init__(self, *items: OutboxItem) -> None:
        super().__init__()
        self.items: list[OutboxItem] = []
        self.status: dict[bytes, str] = {}
        self.room_copies: set[bytes] = set()  # ids of copies in a room: kept at the door
        self.add(*items)

    def add(self, *items: OutboxItem) -> None:
        self.items.extend(items)
        self.status.update((item.message_id, "queued") for item in items)

    def pending(self, peer: PeerId, after_cursor: int, limit: int) -> list[OutboxItem]:
        self.record("pending", peer, after_cursor, limit)
        return [item for item in self.items if item.cursor > after_cursor][:limit]

    def mark_sent(self, peer: PeerId, cursors: Sequence[int]) -> None:
        self.record("mark_sent", peer, list(cursors))
        for item in self.items:
            if item.cursor in cursors:
                self.status[item.message_id] = "sent"

    def acked(self, peer: PeerId, message_ids: list[bytes]) -> None:
        self.record("acked", peer, list(message_ids))
        self._finish(message_ids, "delivered")

    def failed(self, peer: PeerId, message_id: bytes, error: MeshtalkError) -> None:
        self.record("failed", peer, message_id, error)
        self._finish([message_id], "failed")

    def refused_at_door(self, peer: PeerId, error: MeshtalkError, *, rooms_too: bool) -> bool:
        self.record("refused_at_door", peer, error, rooms_too)
        for item in list(self.items):
            if rooms_too or item.message_id not in self.room_copies:
                self.failed(peer, item.message_id, error)
        return not self.items

    def _finish(self, message_ids: list[bytes], status: str) -> None:
        self.items = [item for item in self.items if item.message_id not in message_ids]
        self.status.update((message_id, status) for message_id in message_ids)


class RecordingDialer(Recorder):
    """Dials that fail the first `fail_dials` times; each stream opened is a memory stream
    whose far end the test takes with `accept()`. The next `fail_streams` streams fail with
    `stream_failure`: by default the held connection does not answer (a timeout)."""

    def __init__(self, fail_dials: int = 0) -> None:
        super().__init__()
        self.fail_dials = fail_dials
        self.fail_streams = 0
        self.stream_failure: Exception = trio.TooSlowError()
        self.stream_timeouts: list[float | None] = []  # each open_stream's (None: its own)
        self.connected: set[PeerId] = set()
        self.write_gate: trio.Event | None = None  # holds every write of new streams
        self._send, self._receive = trio.open_memory_channel[FarSide](math.inf)

    def is_connected(self, peer: PeerId) -> bool:
        return peer in self.connected

    async def dial(self, peer: PeerId, fresh: bool = False) -> None:
        self.record("dial", peer, fresh)
        if fresh:
            self.connected.discard(peer)
        await trio.lowlevel.checkpoint()
        if self.fail_dials:
            self.fail_dials -= 1
            raise PeerUnreachable(f"{peer} did not answer (test dialer)")
        self.connected.add(peer)

    async def open_stream(
        self, peer: PeerId, protocol: str, timeout: float | None = None
    ) -> MemoryStreamLike:
        self.record("open_stream", peer, protocol)
        self.stream_timeouts.append(timeout)
        await trio.lowlevel.checkpoint()
        if self.fail_streams:
            self.fail_streams -= 1
            raise self.stream_failure
        ours, far = stream_pair()
        ours.gate = self.write_gate
        self._send.send_nowait(far)
        return ours

    async def accept(self) -> FarSide:
        """The far end of the next stream the part opens."""
        with trio.fail_after(WAIT):
            return await self._receive.receive()


class RecordingEvents(Recorder):
    def connected(self, peer: PeerId, version: int) -> None:
        self.record("connected", peer)

    def active(self, peer: PeerId) -> None:
        """Traffic is not recorded: the tests look at connection events."""


class Counts(collections.Counter[str]):
    """The node's statistics counters: a Counter the part adds to by calling it."""

    def __call__(self, name: str, n: int) -> None:
        self[name] += n


class TrustSet(set["PeerId"]):
    """A TrustPolicy: the peers in the set are trusted."""

    def is_trusted(self, peer: PeerId) -> bool:
        return peer in self


class NoRooms:
    """The rooms port of a node that holds no room: nobody is let in as a room member."""

    def holds(self, conversation: bytes) -> bool:
        return False

    def is_blocked(self, peer: PeerId) -> bool:
        return False

    def admits(self, peer: PeerId) -> bool:
        return False

    def handle(self, opened: OpenedMessage) -> bool:
        return False


class RecordingInbox(Recorder):
    """Stores whatever it is given, except the message ids in `refuse` (answered with that
    error) and batches holding an id in `explode` (raises, as a bug in the store would)."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: list[tuple[Envelope, bytes]] = []
        self.refuse: dict[bytes, MeshtalkError] = {}
        self.explode: set[bytes] = set()

    def store_incoming(self, items: Sequence[Incoming]) -> list[IncomingResult | MeshtalkError]:
        self.record("store_incoming", [envelope.id for envelope, *_ in items])
        if any(envelope.id in self.explode for envelope, *_ in items):
            raise RuntimeError("the test inbox fails on this message")
        results: list[IncomingResult | MeshtalkError] = []
        for envelope, sealed, *_ in items:
            error = self.refuse.get(envelope.id)
            if error is not None:
                results.append(error)
                continue
            self.stored.append((envelope, sealed))
            results.append(IncomingResult(envelope.id, len(self.stored), duplicate=False))
        return results

    def count_refusal(self, peer: PeerId | None, error: MeshtalkError) -> None:
        self.record("count_refusal", peer, error)


@asynccontextmanager
async def running(link: PeerLink) -> AsyncIterator[PeerLink]:
    """Run `link` for the block, then cancel it."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        yield link
        nursery.cancel_scope.cancel()
