"""Per-peer back-off for searches that ask many peers again and again (pairing's join).

A peer (or rendezvous point) that failed n times in a row is asked again only `first * 2**(n-1)`
seconds later, at most `most` seconds. The clock is a port (`now`, trio's by default), so a
test on trio's MockClock checks the delays exactly. `StateLog` keeps routine failures out of
the log's INFO level: one INFO line when a peer's state changes, DEBUG for the rest.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Hashable
from typing import Final

import trio

__all__ = ["Backoff", "StateLog"]

_KEPT: Final = 1024  # peers a StateLog remembers (the oldest are forgotten)


class Backoff:
    """When each key may be tried again, after its failures in a row."""

    def __init__(
        self,
        first: float = 1.0,
        most: float = 30.0,
        now: Callable[[], float] = trio.current_time,
    ) -> None:
        """`first`: the wait after one failure; `most`: the longest wait; `now`: seconds."""
        self._first = first
        self._most = most
        self._now = now
        self._failures: dict[Hashable, tuple[int, float]] = {}  # key: (in a row, next try)

    def ready(self, key: Hashable) -> bool:
        """Whether `key` may be tried now (never failed, or its wait is over)."""
        entry = self._failures.get(key)
        return entry is None or self._now() >= entry[1]

    def failed(self, key: Hashable) -> float:
        """`key` failed again: returns how long it now waits."""
        count = self._failures.get(key, (0, 0.0))[0] + 1
        wait = min(self._most, self._first * 2.0 ** (count - 1))
        self._failures[key] = (count, self._now() + wait)
        return wait

    def succeeded(self, key: Hashable) -> None:
        """`key` answered: it may be tried at once next time."""
        self._failures.pop(key, None)


class StateLog:
    """Logs a peer's failures at INFO once per change of state, at DEBUG otherwise."""

    def __init__(self, logger: logging.Logger) -> None:
        """`logger`: where the lines go."""
        self._logger = logger
        self._failing: collections.OrderedDict[Hashable, bool] = collections.OrderedDict()

    def failed(self, key: Hashable, message: str, *args: object) -> None:
        """`key` failed: INFO if it was fine (or unknown) before, else DEBUG."""
        changed = not self._failing.get(key, False)
        self._set(key, True)
        self._logger.log(logging.INFO if changed else logging.DEBUG, message, *args)

    def succeeded(self, key: Hashable, message: str, *args: object) -> None:
        """`key` works: INFO if it was failing before, else nothing."""
        if self._failing.get(key, False):
            self._logger.info(message, *args)
        self._set(key, False)

    def _set(self, key: Hashable, failing: bool) -> None:
        self._failing[key] = failing
        self._failing.move_to_end(key)
        while len(self._failing) > _KEPT:
            self._failing.popitem(last=False)
