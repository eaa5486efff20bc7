"""Room catch-up: members compare what they hold of a room and send each other what is missing.

When two members of a room connect (and when a node starts, with every member of every room it
is in), each queues a `room-sync` summary to the other: the hashes of the log entries it holds
and, per author, the highest Lamport counter and the number of messages it holds. The member
that receives a summary answers in one go:

- the log entries the other lacks, in `room-log` pushes;
- the messages the other lacks (store/room_messages.py `forwards`), each the author's signed
  bytes re-sealed to the other member (a forwarded, version-2 copy: protocol/forwarding.py),
  queued in the outbox like any copy, so they survive kill -9 and are acked one by one;
- a summary of its own, when the other holds entries or messages it lacks.

So a member that was away gets everything it missed from whichever member it reaches first, in
one round trip (up to `MAX_FORWARDS` messages per summary), even when the author is offline.
Summaries are sent at most once per `SYNC_EVERY` seconds per room and member.

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

__all__ = ["RoomSync", "SYNC_EVERY", "MAX_QUEUED_JOBS"]

logger = logging.getLogger("meshtalk.rooms")

SYNC_EVERY: Final = 10.0
"""Seconds between two summaries to the same member about the same room."""
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
        self._last_sync: dict[tuple[bytes, PeerId], float] = {}

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send queued room messages, one at a time, for the node's lifetime."""
        task_status.started()
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

    def summary(self, room: bytes) -> SyncSummary:
        """What this node holds of `room`: its log's hashes and a mark per author."""
        store = self._store()
        hashes = tuple(sorted(store.rooms.log(room).hashes()))
        return SyncSummary(hashes, store.room_messages.marks(room))

    def request(self, room: bytes, peer: PeerId, *, now: float | None = None) -> None:
        """Schedule a summary of `room` to `peer`, unless one went within `SYNC_EVERY` s."""
        now = trio.current_time() if now is None else now
        last = self._last_sync.get((room, peer))
        if peer == self._own or (last is not None and now - last < SYNC_EVERY):
            return
        self._last_sync[(room, peer)] = now

        async def send_summary() -> None:
            await self.send(room, (peer,), KIND_SYNC, self.summary(room).to_body())

        self.schedule(send_summary)

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

    def answer(self, room: bytes, peer: PeerId, theirs: SyncSummary) -> int:
        """Answer `peer`'s summary of `room`: push the entries and queue the messages it lacks;
        ask for what it holds and this node lacks. Returns how many messages were forwarded."""
        store = self._store()
        log = store.rooms.log(room)
        self.push_log(room, (peer,), log.missing(theirs.hashes))
        forwards = store.room_messages.forwards(room, peer, theirs.authors)
        queued = 0
        if forwards:
            copies = [
                (f.cursor, peer, f.id, seal_signed(verify_signed(f.signed, None), self._key, peer))
                for f in forwards
            ]
            queued = store.outbox.queue_copies(copies)
            if queued:
                self._rewind(peer)
        mine = store.room_messages.marks(room)
        if not set(theirs.hashes) <= log.hashes() or _ahead(theirs.authors, mine):
            self.request(room, peer)
        return queued


def _ahead(theirs: tuple[AuthorMark, ...], mine: tuple[AuthorMark, ...]) -> bool:
    """Whether a summary shows messages of some author that this node does not hold."""
    held = {mark.author: mark for mark in mine}
    for mark in theirs:
        own = held.get(mark.author)
        if own is None or mark.lamport > own.lamport or mark.count > own.count:
            return True
    return False
