"""EventFeed through its ports (doubles of the node's store), on a MockClock: an idle stream
builds no history pages, and the own messages it watches for status changes are bounded."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from meshtalk.http.events import EventFeed, FeedPorts
from meshtalk.http.labels import Labels

pytestmark = pytest.mark.timeout(10)


class FakeStore:
    """Own messages, each 'sent' until told otherwise; counts what the feed asks."""

    def __init__(self, count: int) -> None:
        self.views = [
            {"cursor": n, "id": f"{n:032x}", "direction": "out", "status": "sent",
             "author": "me", "room": None}
            for n in range(1, count + 1)
        ]  # fmt: skip
        self.status = {v["id"]: "sent" for v in self.views}
        self.pages = 0
        self.asked: list[list[str]] = []
        self.changed = trio.Event()

    async def messages_after(self, cursor: int, limit: int) -> list[dict[str, Any]]:
        self.pages += 1
        return [v for v in self.views if v["cursor"] > cursor][:limit]

    def statuses(self, ids: list[str]) -> dict[str, tuple[str, str | None]]:
        self.asked.append(ids)
        return {i: (self.status[i], None) for i in ids}

    async def peers(self) -> list[dict[str, Any]]:
        return []

    def ports(self) -> FeedPorts:
        return FeedPorts(self.messages_after, self.statuses, self.peers, lambda: self.changed,
                         lambda: len(self.views))  # fmt: skip


async def test_an_idle_stream_builds_no_pages_and_watches_a_bounded_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore(1500)
    feed = EventFeed(store.ports(), Labels("me", list, lambda c: False, lambda c: ()))
    events: list[str] = []
    async with trio.open_nursery() as nursery:

        async def read() -> None:
            async for event in feed.stream(0):
                events.append(event)

        nursery.start_soon(read)
        await trio.sleep(5)
        assert sum(e.startswith("id: ") and "event: message" in e for e in events) == 1500
        pages = store.pages
        await trio.sleep(30)  # idle: the store's newest cursor says there is nothing new
        assert store.pages == pages
        assert max(len(ids) for ids in store.asked) == 1000  # the newest 1,000 are watched
        assert f"{1500:032x}" in store.asked[-1]
        assert f"{1:032x}" not in store.asked[-1]
        store.status[f"{1500:032x}"] = "delivered"
        await trio.sleep(1.25)  # the next poll or two, whatever their phase
        assert any('"status": "delivered"' in e for e in events)
        assert len(store.asked[-1]) == 999  # a final status is watched no more
        nursery.cancel_scope.cancel()
