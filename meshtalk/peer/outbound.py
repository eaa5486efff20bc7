"""The sending side: one `PeerLink` per peer delivers that peer's outbox over one long-lived stream.

The link dials (known addresses first), opens `/meshtalk/msg/1.0.0`, exchanges HELLO, then
pipelines every pending sealed copy in batches while a second task reads ACK and ERROR frames.
Nothing leaves the outbox without an ack; when the stream breaks, the link backs off
(exponentially, with jitter) and resends whatever is still unacked. An inbound connection from
the peer cuts the back-off short. A broken stream is reopened on the connection the node still
holds; only when that connection does not answer within the handshake timeout is it dropped
and the peer dialed afresh. A stream that fails otherwise (reset, EOF) means the connection is
going away by itself; and closing a working but busy one would also cut the peer's deliveries to
us, which under a burst made every timeout cost two links and the mesh thrash (bench/mesh.py).
When the node replaces a duplicate connection (net/connections.py), the link moves to the one
kept once everything it wrote was acked: nothing is resent, and that is no interruption.

Unacked data is capped in bytes as well as in messages. py-libp2p 0.8.1's yamux read loop
takes the connection's write lock to answer new streams and pings; if our writer fills the TCP
buffers in both directions at once, both read loops wait on locks held by blocked writers and
the connection deadlocks (seen with three nodes sending to each other). Keeping the unacked
bytes near the socket buffers' size (256 KiB; Linux starts a loopback connection with 144 KiB
and grows it) means a write rarely blocks, and never for long. If acks still stop coming, the
link gives up on the stream after `ack_timeout` and redelivers, on a new stream that gets only
the dial timeout before the connection is replaced. A larger window is faster
(512 KiB: ~5,000 msgs/s against ~4,600 in bench/messaging.py) but leans harder on autotuning.

A copy's message is marked "sent" only if its ack has not come `SENT_MARK_DELAY` after the
write (or the stream broke first): most acks arrive within milliseconds, so those messages go
from queued to delivered without a status write per batch, which cost the sender ~10 % of its
time at full speed.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from ..net.framed import MessagePump
from ..net.host import MSG_PROTOCOL, NETWORK_ERRORS, reset_quietly
from ..protocol.connection import AckReceived, MessageConnection, MessageRefused
from ..protocol.errors import MeshtalkError, NotAuthorized, PeerUnreachable
from ..protocol.frames import MessageFrame

if TYPE_CHECKING:
    from ..protocol.keys import PeerId
    from .config import NodeConfig
    from .ports import Counter, Dialer, LinkEvents, LinkState, Outbox
    from .store import OutboxItem

__all__ = ["LinkStatistics", "PeerLink"]

logger = logging.getLogger("meshtalk.outbound")
_BATCH: Final = 256
_COALESCE_BYTES: Final = 16 * 1024
SENT_MARK_DELAY: Final = 0.5


@dataclass(frozen=True)
class LinkStatistics:
    """One link's state, last error and messages written but not yet acked."""

    state: LinkState
    last_error: str | None
    in_flight: int


class _Moved(Exception):
    """The link's stream is on a connection the node no longer uses; nothing is in flight."""


class PeerLink:
    """Delivers the outbox of one peer; runs for the node's lifetime once started."""

    def __init__(
        self,
        peer: PeerId,
        outbox: Outbox,
        dialer: Dialer,
        events: LinkEvents,
        config: NodeConfig,
        count: Counter,
        hello: tuple[tuple[int, ...], str],
    ) -> None:
        """`hello`: the protocol versions and agent string this node sends in its HELLO."""
        self.peer = peer
        self._outbox = outbox
        self._dialer = dialer
        self._events = events
        self._config = config
        self._count = count
        self._versions, self._agent = hello
        self.state: LinkState = "idle"
        self.last_error: str | None = None
        self._changed = trio.Event()  # new messages queued, or acks arrived
        self._retry_now = trio.Event()
        self._unsent_bytes = 0
        self._in_flight: dict[bytes, int] = {}  # message id -> sealed size
        self._in_flight_bytes = 0
        # (when to mark "sent" if still unacked, [(message id, cursor)]) per write, oldest first
        self._written: deque[tuple[float, list[tuple[bytes, int]]]] = deque()
        self._wrote = trio.Event()
        self._failure: Exception | None = None
        self._fresh = False  # the held connection did not answer a new stream: dial anew
        self._superseded: frozenset[object] = frozenset()  # connections to move off
        self._acked_on_stream = False  # the current stream delivered something
        # Acks stopped coming on the last stream: the connection may be half-open (the peer
        # vanished without a reset), so the next stream on it gets the dial timeout, not the
        # long handshake one, before the link dials afresh.
        self._suspect = False
        self._rewound = False
        self._refused_since: float | None = None  # refused at the door since then, in a row

    def kick(self, size: int = 0) -> None:
        """`size` more bytes of messages are waiting for this peer."""
        self._unsent_bytes += size
        self._changed.set()

    def rewind(self) -> None:
        """Copies of older messages were queued for this peer (room catch-up forwards them):
        read the outbox from its start again, skipping what is in flight."""
        self._rewound = True
        self.kick(self._config.max_in_flight_bytes)

    def retry_now(self) -> None:
        """The peer is reachable again (it connected to us): skip the back-off."""
        self._retry_now.set()
        self._changed.set()

    def move_off(self, connections: frozenset[object]) -> None:
        """The node no longer uses these connections: move once nothing is in flight."""
        self._superseded = connections
        self._changed.set()

    async def _wait_change(self, changed: trio.Event) -> None:
        await changed.wait()
        if self._changed is changed:
            self._changed = trio.Event()

    def statistics(self) -> LinkStatistics:
        """State, last error and messages written but not yet acked."""
        return LinkStatistics(self.state, self.last_error, len(self._in_flight))

    async def run(self) -> None:
        """Deliver forever: connect when there is something to send, back off on failure."""
        config = self._config
        backoff = config.retry_initial
        while True:
            changed = self._changed
            try:
                if not self._outbox.pending(self.peer, 0, 1):
                    self.state = "idle"
                    await self._wait_change(changed)
                    continue
                await self._deliver()
            except _Moved:
                continue  # straight onto the connection kept, no back-off
            except NotAuthorized as exc:
                self._interrupted(exc)
                if exc.remote and self.state == "connecting" and self._fail_pending(exc):
                    continue  # nothing is left to deliver (or it came since: try it now)
            except (*NETWORK_ERRORS, MeshtalkError, trio.TooSlowError) as exc:
                if self._closed_while_idle():
                    continue  # an idle stream closed (an idle connection let go): no loss
                self._interrupted(exc)
                logger.info("delivery to %s interrupted: %s", self.peer, self.last_error)
            except Exception as exc:
                # A bug in our own code or a library's: this link backs off and retries (the
                # outbox still holds everything), the node and the other links go on.
                self._interrupted(exc)
                logger.exception("delivery to %s failed unexpectedly", self.peer)
            finally:
                self._in_flight.clear()
                self._in_flight_bytes = 0
            if self._acked_on_stream:  # the peer was fine until now: retry soon, once
                backoff = config.retry_initial
                self._acked_on_stream = False
            self.state = "backoff"
            retry = self._retry_now = trio.Event()
            retried = False
            with trio.move_on_after(backoff * random.uniform(0.5, 1.0)):
                await retry.wait()
                retried = True
            backoff = config.retry_initial if retried else min(backoff * 2, config.retry_max)

    def _fail_pending(self, refusal: MeshtalkError) -> bool:
        """The peer refused us at the door (it does not trust this node): every direct copy
        waiting for it fails with that reason, at once, not after retries; a room's copies
        stay (the peer's log may not show this node as a member yet) and the link backs off.
        A message sent later tries again and is refused again if nothing changed. Refused for
        `room_door_grace` s in a row, room copies fail too (the peer blocked this node, or
        left). False if copies are left, or that could not be recorded (the link backs off)."""
        logger.info("%s refused our messages: %s", self.peer, refusal)  # failures: warnings
        now = trio.current_time()
        if self._refused_since is None:
            self._refused_since = now
        rooms_too = now - self._refused_since >= self._config.room_door_grace
        try:
            return self._outbox.refused_at_door(self.peer, refusal, rooms_too=rooms_too)
        except Exception:
            logger.exception("failing the messages %s refused did not work", self.peer)
            return False

    def _closed_while_idle(self) -> bool:
        """Whether the stream ended with nothing written unacked and nothing waiting."""
        if self.state != "connected" or self._in_flight:
            return False
        try:
            return not self._outbox.pending(self.peer, 0, 1)
        except Exception:
            return False

    def _interrupted(self, exc: BaseException) -> None:
        self._count("delivery_interruptions", 1)
        self.last_error = f"{type(exc).__name__}: {exc}"

    async def _open(self) -> MessagePump:
        config = self._config
        self.state = "connecting"
        self._superseded = frozenset()
        reused = not self._fresh and self._dialer.is_connected(self.peer)
        if not reused:
            await self._dialer.dial(self.peer, fresh=self._fresh)
        self._fresh = False
        suspect, self._suspect = self._suspect and reused, False
        try:
            timeout = config.dial_timeout if suspect else None
            stream = await self._dialer.open_stream(self.peer, MSG_PROTOCOL, timeout)
        except trio.TooSlowError:
            self._fresh = reused  # the held connection does not answer: next time, a new one
            raise
        connection = MessageConnection("dialer", self._versions, self._agent, config.max_frame_size)
        pump = MessagePump(stream, connection)
        try:
            await pump.hello(config.handshake_timeout)
        except BaseException as exc:
            self._fresh = reused and isinstance(exc, trio.TooSlowError)
            await reset_quietly(stream)
            raise
        return pump

    async def _deliver(self) -> None:
        pump = await self._open()
        self._refused_since = None
        self.state = "connected"
        self.last_error = None
        self._events.connected(self.peer, pump.connection.version or 1)
        self._failure = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guard, self._read_replies, pump, nursery.cancel_scope)
                nursery.start_soon(self._guard, self._write_pending, pump, nursery.cancel_scope)
                nursery.start_soon(self._guard, self._mark_sent_later, pump, nursery.cancel_scope)
        finally:
            await reset_quietly(pump.stream)
            try:
                self._mark_sent(float("inf"))  # written, then the stream broke: they were sent
            except MeshtalkError as exc:
                logger.warning("%s", exc)
        if self._failure is not None:
            raise self._failure

    async def _guard(
        self,
        task: Callable[[MessagePump], Awaitable[None]],
        pump: MessagePump,
        scope: trio.CancelScope,
    ) -> None:
        # Either task ending ends both; the first error is re-raised by _deliver (no groups).
        try:
            await task(pump)
        except Exception as exc:  # the link's run() tells expected failures from bugs
            if self._failure is None:
                self._failure = exc
        scope.cancel()

    async def _write_pending(self, pump: MessagePump) -> None:
        config = self._config
        cursor = 0
        self._unsent_bytes = config.max_in_flight_bytes  # unknown backlog: assume a full one
        while True:
            changed = self._changed
            if self._rewound:
                self._rewound, cursor = False, 0
            if self._superseded and getattr(pump.stream, "muxed_conn", None) in self._superseded:
                if not self._in_flight:
                    self._superseded = frozenset()
                    raise _Moved  # everything written was acked: reopen on the kept connection
                await self._wait_change(changed)
                continue
            if self._in_flight and (
                len(self._in_flight) >= config.max_in_flight
                # py-libp2p pays per write, not per byte: with data on the wire, write again
                # only when half the window is free (no tiny top-ups after each partial ack)
                # and enough new messages have gathered to be worth a write.
                or self._in_flight_bytes > config.max_in_flight_bytes // 2
                or self._unsent_bytes < _COALESCE_BYTES
            ):
                await self._wait_change(changed)
                continue
            room = config.max_in_flight - len(self._in_flight)
            items = self._pending(cursor, min(_BATCH, room))
            if not items:
                self._unsent_bytes = 0
                await self._wait_change(changed)
                continue
            # Keep at most max_in_flight_bytes unacked (one message may exceed it alone): see
            # the module docstring for why a writer must never fill the TCP buffers.
            budget = config.max_in_flight_bytes - self._in_flight_bytes
            batch: list[OutboxItem] = []
            for item in items:
                if batch and len(item.sealed) > budget:
                    break
                batch.append(item)
                budget -= len(item.sealed)
            # In flight before the write: acks of its first frames can come while the rest is
            # still being written, and an ack for a copy not yet in flight would be lost (the
            # copy then stayed "in flight" for good and the link waited ack_timeout).
            written = 0
            for item in batch:
                self._in_flight[item.message_id] = len(item.sealed)
                written += len(item.sealed)
            self._in_flight_bytes += written
            await pump.send_all([MessageFrame(item.sealed) for item in batch])
            self._unsent_bytes = max(0, self._unsent_bytes - written)
            if len(batch) == len(items) < min(_BATCH, room):
                self._unsent_bytes = 0  # the outbox is empty past this batch
            cursor = batch[-1].cursor
            self._written.append(
                (trio.current_time() + SENT_MARK_DELAY, [(i.message_id, i.cursor) for i in batch])
            )
            self._wrote.set()
            self._count("frames_sent", len(batch))
            self._count("writes", 1)

    def _pending(self, cursor: int, limit: int) -> list[OutboxItem]:
        """Outbox copies past `cursor` not on the wire yet (after a rewind, some may be)."""
        while True:
            items = self._outbox.pending(self.peer, cursor, limit)
            if not items or not self._in_flight:
                return items
            fresh = [item for item in items if item.message_id not in self._in_flight]
            if fresh:
                return fresh
            cursor = items[-1].cursor

    async def _mark_sent_later(self, _pump: MessagePump) -> None:
        while True:
            if not self._written:
                await self._wrote.wait()
                self._wrote = trio.Event()
                continue
            await trio.sleep_until(self._written[0][0])
            self._mark_sent(trio.current_time())

    def _mark_sent(self, due: float) -> None:
        """Mark "sent" the copies written before `due` that are still waiting for their ack."""
        cursors: list[int] = []
        while self._written and self._written[0][0] <= due:
            _, written = self._written.popleft()
            cursors.extend(c for message_id, c in written if message_id in self._in_flight)
        if cursors:
            self._outbox.mark_sent(self.peer, cursors)

    async def _read_replies(self, pump: MessagePump) -> None:
        """ACKs and per-message refusals, until an event that ends the stream (the peer's
        refusal, a violation, the end): `pump.fail` raises it, and the link redelivers."""
        timeout = self._config.ack_timeout
        while True:
            with trio.move_on_after(timeout) as waited:
                events = await pump.events()
            if waited.cancelled_caught:
                if self._in_flight:
                    self._suspect = True
                    raise PeerUnreachable(
                        f"{self.peer} acknowledged nothing for {timeout:.0f} s; reconnecting"
                    )
                continue
            acked: list[bytes] = []
            for event in events:
                if type(event) is AckReceived:
                    acked.extend(event.ids)
                elif type(event) is MessageRefused:
                    self._in_flight_bytes -= self._in_flight.pop(event.ref, 0)
                    self._outbox.failed(self.peer, event.ref, event.error)
                else:
                    await pump.fail(event)
            if acked:
                for message_id in acked:
                    self._in_flight_bytes -= self._in_flight.pop(message_id, 0)
                self._acked_on_stream = True
                self._outbox.acked(self.peer, acked)
                self._events.active(self.peer)
            self._changed.set()
