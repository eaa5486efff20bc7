"""Room catch-up: members compare what they hold of a room and send each other what is missing.

When two members of a room connect (and when a node starts, with every member of every room it
is in), each queues a `room-sync` summary to the other: the hashes of the log entries it holds
and, per author, the highest Lamport counter and the number of messages it holds. The member
that receives a summary answers in one go:

- the log entries the other lacks, in `room-log` pushes (always: they are small, and
  membership must converge);
- when the summary says `want`, the messages the other lacks (store/room_messages.py
  `forwards`), each the author's signed bytes re-sealed to the other member (a forwarded,
  version-2 copy: protocol/forwarding.py), queued in the outbox like any copy, so they survive
  kill -9 and are acked one by one;
- a summary of its own when the other lacks something it holds (so the other can ask), or when
  it lacks something the other holds: then a `want` summary, to one member per room at a time.

Asking one member at a time is what keeps a member that was away from being sent every
message by every other member (measured before: 9,440 duplicate copies for 1,000 messages in
a room of 20). The member asked is the source for `CATCH_UP_WAIT` seconds (each forwarded
copy from it restarts the wait, up to `CATCH_UP_MAX` s in all: a slow source that is still
sending is not abandoned, and one that only stalls is, in time); the others that
showed they hold more are remembered, and when the wait ends, the first of them still ahead
of what this node holds then is asked next. So a member that was away gets everything it
missed from the first member that answers, in one round trip (up to `MAX_FORWARDS` messages
per summary), even when the author is offline, and from another if that one goes away.
The same summary goes at most once per `SYNC_EVERY` seconds to the same member (one that
changed goes at once).

Sending is async (through the Sender's committer) while the inbound path that receives a
summary is not: answers are queued as jobs for `run`, which sends them in order. A job that
fails is logged and dropped; the next connection syncs again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import trio

from ..protocol.errors import MeshtalkError
from ..protocol.room_wire import KIND_LOG, KIND_SYNC, SyncSummary, log_body, split_log
from ..protocol.sealing import seal_signed, verify_signed
from .sending import Conversation

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from ..protocol.keys import NodeKey, PeerId
    from ..protocol.room_wire import AuthorMark
    from .sending import Sender
    from .store import Store

__all__ = ["RoomSync", "SYNC_EVERY", "CATCH_UP_WAIT", "CATCH_UP_MAX", "MAX_QUEUED_JOBS"]

logger = logging.getLogger("meshtalk.rooms")

SYNC_EVERY: Final = 10.0
"""Seconds between two summaries of one kind to the same member about the same room."""
CATCH_UP_WAIT: Final = 5.0
"""Seconds a member asked for missing messages has (since it last forwarded one) before the
next one is asked."""
CATCH_UP_MAX: Final = 60.0
"""Seconds one member may stay the source of a room's catch-up, however it keeps forwarding."""
MAX_QUEUED_JOBS: Final = 4_096
"""Room sends waiting for the sync task; past this, new ones are dropped (a sync repeats)."""

Job = Callable[[], Awaitable[object]]


class RoomSync:
    """Summaries, answers and log pushes of the rooms of one node."""

    def __init__(
        self,
        key: NodeKey,
        store: Callable[[], Store],
        sender: Sender,
        rewind: Callable[[PeerId], None],
    ) -> None:
        """`rewind(peer)`: copies with old cursors were queued for `peer` (its link rereads)."""
        self._key = key
        self._own = key.peer_id
        self._store = store
        self._sender = sender
        self._rewind = rewind
        self._jobs_in, self._jobs_out = trio.open_memory_channel[Job](MAX_QUEUED_JOBS)
        self._last_sync: dict[tuple[bytes, PeerId, bool], tuple[float, int]] = {}
        self._source: dict[bytes, tuple[PeerId, float]] = {}  # room -> (asked, when)
        self._source_since: dict[bytes, float] = {}  # room -> when that member was first asked
        self._ahead: dict[bytes, dict[PeerId, tuple[AuthorMark, ...]]] = {}  # to ask next

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send queued room messages, one at a time, and ask the next source of a room whose
        catch-up wait ended, for the node's lifetime."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ask_next_forever)
            task_status.started()
            await self._run_jobs()

    async def _ask_next_forever(self) -> None:
        while True:
            await trio.sleep(CATCH_UP_WAIT / 5)
            try:
                self.ask_next(trio.current_time())
            except MeshtalkError as exc:  # the store went away: the node is stopping
                logger.info("room catch-up: %s", exc)

    async def _run_jobs(self) -> None:
        async for job in self._jobs_out:
            try:
                await job()
            except MeshtalkError as exc:
                logger.info("a room message could not be queued: %s", exc)
            except Exception:
                logger.exception("a room message could not be queued")

    def schedule(self, job: Job) -> None:
        """Queue `job` for `run`; dropped (and logged) if too many wait."""
        try:
            self._jobs_in.send_nowait(job)
        except trio.WouldBlock:
            logger.warning(
                "%d room messages wait to be queued; one more is dropped", MAX_QUEUED_JOBS
            )

    # -- sending ----------------------------------------------------------------------------

    def conversation(self, room: bytes) -> Conversation:
        """The room as the Sender's conversation (members as the log says now)."""
        members = tuple(self._store().rooms.state(room).members)
        return Conversation(room, "group", members)

    async def send(self, room: bytes, peers: tuple[PeerId, ...], kind: str, body: Any) -> None:
        """Queue a room control message (a summary or a log push) for `peers`."""
        if peers:
            await self._sender.send_to(peers, body, self.conversation(room), kind=kind)

    def push_log(self, room: bytes, peers: tuple[PeerId, ...], entries: tuple[bytes, ...]) -> None:
        """Schedule pushes of log `entries` to `peers` (split to fit an envelope)."""
        peers = tuple(p for p in peers if p != self._own)
        if not peers or not entries:
            return
        for part in split_log(entries):
            body = log_body(part)
            self.schedule(functools.partial(self.send, room, peers, KIND_LOG, body))

    def summary(self, room: bytes, *, want: bool = False) -> SyncSummary:
        """What this node holds of `room`: its log's hashes and a mark per author."""
        store = self._store()
        hashes = tuple(sorted(store.rooms.log(room).hashes()))
        return SyncSummary(hashes, store.room_messages.marks(room), want)

    def request(
        self, room: bytes, peer: PeerId, *, want: bool = False, now: float | None = None
    ) -> None:
        """Schedule a summary of `room` to `peer` (`want`: asking it for missing messages),
        unless the same summary went to it within `SYNC_EVERY` s (a changed one goes)."""
        now = trio.current_time() if now is None else now
        if peer == self._own:
            return
        summary = self.summary(room, want=want)
        key, said = (room, peer, want), hash((summary.hashes, summary.authors))
        last = self._last_sync.get(key)
        if last is not None and now - last[0] < SYNC_EVERY and last[1] == said:
            return
        self._last_sync[key] = (now, said)
        body = summary.to_body()
        self.schedule(functools.partial(self.send, room, (peer,), KIND_SYNC, body))

    def _ask(self, room: bytes, peer: PeerId, theirs: tuple[AuthorMark, ...], now: float) -> None:
        """`peer` holds messages of `room` this node lacks: ask it, unless another member
        asked less than `CATCH_UP_WAIT` s ago may still be sending them (then later)."""
        source = self._source.get(room)
        if source is not None and source[0] != peer and now - source[1] < CATCH_UP_WAIT:
            self._ahead.setdefault(room, {})[peer] = theirs
            return
        self._source[room] = (peer, now)
        self._source_since[room] = now
        self._ahead.get(room, {}).pop(peer, None)
        self.request(room, peer, want=True, now=now)

    def forwarded(self, room: bytes, forwarder: PeerId, now: float | None = None) -> None:
        """A forwarded copy of `room` came from `forwarder`: if it is the member asked, it is
        still sending, so its wait starts again (within `CATCH_UP_MAX` of the first ask)."""
        source = self._source.get(room)
        if source is None or source[0] != forwarder:
            return
        now = trio.current_time() if now is None else now
        if now - self._source_since.get(room, now) < CATCH_UP_MAX:
            self._source[room] = (forwarder, now)

    def ask_next(self, now: float) -> None:
        """For each room whose source's wait ended: ask the first member remembered as ahead
        that still is (by what this node holds now)."""
        for room, (_, asked) in list(self._source.items()):
            if now - asked < CATCH_UP_WAIT:
                continue
            del self._source[room]
            self._source_since.pop(room, None)
            waiting = self._ahead.pop(room, {})
            mine = self._store().room_messages.marks(room) if waiting else ()
            for peer, theirs in waiting.items():
                if _ahead(theirs, mine):
                    self._ahead[room] = waiting
                    self._ask(room, peer, theirs, now)
                    break

    def start(self) -> None:
        """The node started: a summary to every member of every room it is in."""
        store = self._store()
        for summary in store.rooms.rooms():
            if not summary.left:
                for member in store.rooms.state(summary.id).members:
                    self.request(summary.id, member)

    def connected(self, peer: PeerId) -> None:
        """`peer` connected: a summary of each room both are in (at most every SYNC_EVERY s)."""
        store = self._store()
        for summary in store.rooms.rooms():
            if not summary.left and store.rooms.state(summary.id).is_member(peer):
                self.request(summary.id, peer)

    # -- answering --------------------------------------------------------------------------

    def answer(
        self, room: bytes, peer: PeerId, theirs: SyncSummary, *, now: float | None = None
    ) -> int:
        """Answer `peer`'s summary of `room`: push the entries it lacks, and the messages it
        lacks if it asks (`want`); tell it when it lacks some, ask when it holds more. Returns
        how many messages were forwarded."""
        now = trio.current_time() if now is None else now
        store = self._store()
        log = store.rooms.log(room)
        self.push_log(room, (peer,), log.missing(theirs.hashes))
        mine = store.room_messages.marks(room)
        queued = 0
        if theirs.want:
            queued = self._forward(room, peer, theirs)
        elif _ahead(mine, theirs.authors):
            self.request(room, peer, now=now)  # it lacks some: our summary lets it ask
        if not set(theirs.hashes) <= log.hashes():
            self.request(room, peer, now=now)  # entries it holds and we lack: it pushes them
        if _ahead(theirs.authors, mine):
            self._ask(room, peer, theirs.authors, now)
        return queued

    def _forward(self, room: bytes, peer: PeerId, theirs: SyncSummary) -> int:
        store = self._store()
        forwards = store.room_messages.forwards(room, peer, theirs.authors)
        if not forwards:
            return 0
        copies = [
            (f.cursor, peer, f.id, seal_signed(verify_signed(f.signed, None), self._key, peer))
            for f in forwards
        ]
        queued = store.outbox.queue_copies(copies)
        if queued:
            self._rewind(peer)
        return queued


def _ahead(theirs: tuple[AuthorMark, ...], mine: tuple[AuthorMark, ...]) -> bool:
    """Whether a summary shows messages of some author that this node does not hold."""
    held = {mark.author: mark for mark in mine}
    for mark in theirs:
        own = held.get(mark.author)
        if own is None or mark.lamport > own.lamport or mark.count > own.count:
            return True
    return False
