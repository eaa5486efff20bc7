"""`GET /v1/events`: Server-Sent Events of messages, delivery status changes and peers.

Each message, incoming or sent here, is one `message` event whose `id` is its store cursor, so
a client that reconnects with `Last-Event-ID` (browsers' EventSource does so by itself) gets
every message after the last one it saw, none twice. `status` events (a message this node sent
was delivered or failed) and `peer` events (a peer came online or went; a new stream starts
with one for each peer online then) carry no id: they are what happens while connected; after
a reconnect, the messages themselves (history) say where each stands. A comment line every
15 s keeps proxies and idle timers from closing the stream; it and the stream's first lines
carry the cursor as an id too, so a reconnect before any message still resumes where it was.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import trio

from .labels import Labels
from .routes import whole_number

__all__ = ["EventFeed", "FeedPorts", "sse_event"]

_BATCH: Final = 200
_POLL: Final = 0.5  # own messages and status changes; incoming messages wake the feed at once
_PEERS_EVERY: Final = 1.0
_KEEPALIVE: Final = 15.0
_FINAL: Final = frozenset({"delivered", "failed", "received"})
_MAX_PENDING: Final = 1000  # own messages whose status a stream watches (the newest)


def sse_event(event: str, data: Any, event_id: int | None = None) -> str:
    """One event in the text/event-stream format (data is one JSON line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@dataclass(frozen=True)
class FeedPorts:
    """What the feed reads from the node."""

    messages_after: Callable[[int, int], Awaitable[list[dict[str, Any]]]]  # views after a cursor
    statuses: Callable[[list[str]], dict[str, tuple[str, str | None]]]  # own ids -> status
    peers: Callable[[], Awaitable[list[dict[str, Any]]]]  # peer views
    changed: Callable[[], trio.Event]  # set when the next incoming message is stored
    last_cursor: Callable[[], int]


class EventFeed:
    """The event streams of one node."""

    def __init__(self, ports: FeedPorts, labels: Labels) -> None:
        self._ports = ports
        self._labels = labels

    def start_cursor(self, last_event_id: str | None, after: int | None) -> int:
        """Where a stream starts: after `Last-Event-ID`, else `after`, else now."""
        resumed = whole_number(last_event_id) if last_event_id is not None else None
        if resumed is not None:
            return resumed
        if after is not None:
            return max(0, after)
        return self._ports.last_cursor()

    async def stream(self, cursor: int) -> AsyncIterator[str]:
        """The events after `cursor`, until the client goes away."""
        ports = self._ports
        yield f"id: {cursor}\nretry: 1000\n\n"  # a reconnect resumes here, even before a message
        online: dict[str, dict[str, Any]] = {}  # the first round shows who is online now
        pending: dict[str, str] = {}  # own messages not delivered yet: id -> status
        peers_due = keepalive_due = trio.current_time()
        while True:
            changed = ports.changed()
            views = []  # nothing stored after the cursor: no history page to build
            if ports.last_cursor() > cursor:
                views = await ports.messages_after(cursor, _BATCH)
            trusted = self._labels.trusted() if views else set()
            for view in views:
                cursor = view["cursor"]
                if view["direction"] == "out" and view["status"] not in _FINAL:
                    pending[view["id"]] = view["status"]
                    if len(pending) > _MAX_PENDING:  # a room post waiting on an absent member
                        del pending[next(iter(pending))]
                if self._labels.visible(view, trusted):
                    yield sse_event("message", self._labels.label(view), cursor)
            for message_id, (status, error) in ports.statuses(list(pending)).items():
                if status != pending[message_id]:
                    yield sse_event("status", {"id": message_id, "status": status, "error": error})
                    pending[message_id] = status
                if status in _FINAL:
                    del pending[message_id]
            now = trio.current_time()
            if now >= peers_due:
                peers_due = now + _PEERS_EVERY
                for event in _peer_changes(online, await ports.peers()):
                    yield sse_event("peer", event)
            if now >= keepalive_due:
                keepalive_due = now + _KEEPALIVE
                yield f": keepalive\nid: {cursor}\n\n"  # past messages hidden from this client too
            if views and ports.last_cursor() > cursor:  # a page cut by count or by size
                await trio.lowlevel.checkpoint()
                continue
            with trio.move_on_after(_POLL):
                await changed.wait()


def _peer_changes(online: dict[str, dict[str, Any]], peers: list[dict[str, Any]]) -> list[Any]:
    """Peers that came online, went, or changed connection since `online` (updated here)."""
    now = {p["peer_id"]: p for p in peers if p["online"]}
    events = []
    for peer_id, peer in now.items():
        before = online.get(peer_id)
        if before is None or before.get("connection") != peer.get("connection"):
            events.append(_peer_event(peer, True))
    events.extend(
        _peer_event(peer, False) for peer_id, peer in online.items() if peer_id not in now
    )
    online.clear()
    online.update(now)
    return events


def _peer_event(peer: dict[str, Any], online: bool) -> dict[str, Any]:
    return {
        "peer_id": peer["peer_id"],
        "name": peer.get("name"),
        "contact": peer.get("contact"),
        "online": online,
        "connection": peer.get("connection") if online else None,
    }
