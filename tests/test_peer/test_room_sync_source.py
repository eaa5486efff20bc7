"""RoomSync's choice of catch-up source (one part, on a real store, its sends recorded): the
member asked stays the source while it keeps forwarding, for at most CATCH_UP_MAX seconds;
then the next member ahead is asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from meshtalk.peer.room_sync import CATCH_UP_MAX, CATCH_UP_WAIT, RoomSync
from meshtalk.peer.store import Store
from meshtalk.protocol.room_wire import KIND_SYNC, AuthorMark, SyncSummary
from meshtalk.protocol.rooms import create_entry
from tests.conftest import NOW_MS, fixed_key

ME, ALICE, BOB, CAROL = (fixed_key(n) for n in ("me", "alice", "bob", "carol"))


class RecordingSender:
    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def send_to(
        self, peers: tuple[Any, ...], body: Any, conversation: Any, *, kind: str
    ) -> None:
        if kind == KIND_SYNC and SyncSummary.parse(body).want:
            self.asked.extend(peers)


async def _asked(sync: RoomSync, sender: RecordingSender) -> list[Any]:
    """Run the sends RoomSync scheduled; the members asked for messages, in order."""
    while True:
        try:
            job = sync._jobs_out.receive_nowait()
        except trio.WouldBlock:
            return sender.asked
        await job()


def _alice_then_bob_ahead(tmp_path: Path) -> tuple[Store, bytes, RecordingSender, RoomSync]:
    """A room this node holds; alice, then bob, show they hold messages it lacks (alice is
    asked, bob is remembered)."""
    store = Store(tmp_path / "store.db")
    room = store.rooms.create(create_entry(ME, "team", NOW_MS), NOW_MS)
    sender = RecordingSender()
    sync = RoomSync(ME, lambda: store, sender, lambda peer: None)  # type: ignore[arg-type]
    ahead = SyncSummary((), (AuthorMark(CAROL.peer_id, 9, 9),))
    sync.answer(room, ALICE.peer_id, ahead, now=0.0)
    sync.answer(room, BOB.peer_id, ahead, now=1.0)
    return store, room, sender, sync


async def test_a_source_that_keeps_forwarding_stays_asked_until_the_cap(tmp_path: Path) -> None:
    store, room, sender, sync = _alice_then_bob_ahead(tmp_path)
    assert await _asked(sync, sender) == [ALICE.peer_id]

    for now in range(4, 50, 4):  # alice keeps forwarding: no one else is asked
        sync.forwarded(room, ALICE.peer_id, now=float(now))
        sync.forwarded(room, BOB.peer_id, now=float(now))  # not the source: no effect
        sync.ask_next(now + 1.0)
    assert await _asked(sync, sender) == [ALICE.peer_id]

    sync.forwarded(room, ALICE.peer_id, now=CATCH_UP_MAX + 1)  # past the cap: no longer counts
    sync.ask_next(48.0 + CATCH_UP_WAIT + 0.1)
    assert await _asked(sync, sender) == [ALICE.peer_id, BOB.peer_id]
    store.close()


async def test_a_silent_source_is_left_after_the_wait(tmp_path: Path) -> None:
    store, _, sender, sync = _alice_then_bob_ahead(tmp_path)
    sync.ask_next(CATCH_UP_WAIT - 0.1)
    assert await _asked(sync, sender) == [ALICE.peer_id]
    sync.ask_next(CATCH_UP_WAIT + 0.1)
    assert await _asked(sync, sender) == [ALICE.peer_id, BOB.peer_id]
    store.close()
