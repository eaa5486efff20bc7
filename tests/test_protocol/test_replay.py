"""The bounded replay guard."""

from __future__ import annotations

import pytest

from meshtalk.protocol import ReplayedMessage, ReplayGuard


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def test_second_sight_is_a_replay() -> None:
    guard = ReplayGuard()
    guard.check(mid(1), 1000, 1000)
    assert mid(1) in guard
    with pytest.raises(ReplayedMessage, match="already received"):
        guard.check(mid(1), 1000, 1001)
    guard.check(mid(2), 1000, 1001)
    assert guard.statistics()["refused"] == 1


def test_expired_ids_are_forgotten_and_old_messages_refused() -> None:
    guard = ReplayGuard(max_age_ms=100)
    guard.check(mid(1), 1000, 1000)
    guard.check(mid(2), 1050, 1050)
    guard.check(mid(3), 1150, 1150)  # expires id 1 (older than 1150 - 100)
    assert mid(1) not in guard
    assert len(guard) == 2
    with pytest.raises(ReplayedMessage, match="older"):
        guard.check(mid(1), 1000, 1150)  # too old to check, so refused rather than accepted


def test_capacity_is_bounded_and_never_lets_a_replay_through() -> None:
    guard = ReplayGuard(capacity=10, max_age_ms=10**9)
    for n in range(100):
        guard.check(mid(n), 1000 + n, 2000)
    assert len(guard) == 10
    assert guard.statistics()["horizon_ms"] == 1089
    # Every id seen before is refused: either remembered or below the horizon.
    for n in range(100):
        with pytest.raises(ReplayedMessage):
            guard.check(mid(n), 1000 + n, 2000)
    guard.check(mid(1000), 1090, 2000)  # newer than the horizon: accepted


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayGuard(capacity=0)
