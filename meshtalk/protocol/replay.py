"""A bounded memory of seen message ids, for replay and duplicate detection.

Ids are remembered with their envelope timestamp until they fall out of the accepted age window
(after which `open_sealed` refuses them as too old anyway). When the tracker is full it forgets
the oldest id and raises its *horizon* to that timestamp: from then on anything dated at or before
the horizon is refused, because the tracker could no longer tell whether it is a replay. So a
full tracker never lets a replay through; it only refuses some old messages early.
"""

from __future__ import annotations

import heapq
from typing import Final

from .errors import ReplayedMessage
from .sealing import DEFAULT_MAX_AGE_MS

__all__ = ["ReplayGuard"]

DEFAULT_CAPACITY: Final = 100_000


class ReplayGuard:
    """Remembers up to `capacity` message ids for `max_age_ms` after their timestamp."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_age_ms: int = DEFAULT_MAX_AGE_MS):
        if capacity < 1 or max_age_ms < 0:
            raise ValueError("capacity must be >= 1 and max_age_ms >= 0")
        self.capacity = capacity
        self.max_age_ms = max_age_ms
        self._seen: dict[bytes, int] = {}
        self._by_time: list[tuple[int, bytes]] = []
        self._horizon = -1
        self._refused = 0

    def check(self, message_id: bytes, timestamp_ms: int, now_ms: int) -> None:
        """Record `message_id`, or raise ReplayedMessage if it was seen or cannot be checked."""
        self._expire(now_ms)
        if message_id in self._seen:
            self._refused += 1
            raise ReplayedMessage(f"message {message_id.hex()} was already received")
        if timestamp_ms <= self._horizon or timestamp_ms < now_ms - self.max_age_ms:
            self._refused += 1
            raise ReplayedMessage(
                f"message {message_id.hex()} is older than this node's replay memory "
                f"({self._horizon} ms); it may be a replay"
            )
        self._seen[message_id] = timestamp_ms
        heapq.heappush(self._by_time, (timestamp_ms, message_id))
        while len(self._seen) > self.capacity:
            oldest, dropped = heapq.heappop(self._by_time)
            del self._seen[dropped]
            self._horizon = max(self._horizon, oldest)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def statistics(self) -> dict[str, int]:
        """Ids remembered, the horizon below which everything is refused, and refusals so far."""
        return {
            "remembered": len(self._seen),
            "horizon_ms": self._horizon,
            "refused": self._refused,
        }

    def _expire(self, now_ms: int) -> None:
        cutoff = now_ms - self.max_age_ms
        heap = self._by_time
        while heap and heap[0][0] < cutoff:
            _, message_id = heapq.heappop(heap)
            del self._seen[message_id]
