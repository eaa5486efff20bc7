"""The WAL checkpointer on a virtual clock: it checkpoints after writes and never while idle."""

from __future__ import annotations

import trio
import trio.testing

from meshtalk.peer.store import keep_wal_short


class FakeStore:
    """Counts how often the checkpointer looks at it and checkpoints it."""

    def __init__(self) -> None:
        self.changes = 0
        self.looks = 0
        self.checkpoints = 0
        self.looked_after_checkpoint = trio.Event()

    @property
    def total_changes(self) -> int:  # read in trio's thread, at the start of every turn
        self.looks += 1
        if self.checkpoints:
            self.looked_after_checkpoint.set()
        return self.changes

    def checkpoint(self) -> None:  # runs in a worker thread
        self.checkpoints += 1


async def test_checkpoints_follow_writes_and_idle_turns_do_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_wal_short, store, 1.0)
        await trio.sleep(100.5)  # a hundred idle turns, in virtual time
        assert store.looks == 101  # one at the start, one a turn: it did look
        assert store.checkpoints == 0
        store.changes += 1
        started = trio.current_time()
        # The turn after the checkpoint: its worker thread is done. No deadline here, nor
        # while the thread runs: the clock would jump to it.
        await store.looked_after_checkpoint.wait()
        assert trio.current_time() - started <= 2.0  # checkpointed at the next turn
        assert store.checkpoints == 1
        looks = store.looks
        await trio.sleep(50.5)  # idle again (off the turns' beat): one write, one checkpoint
        assert store.looks == looks + 50
        assert store.checkpoints == 1
        nursery.cancel_scope.cancel()
