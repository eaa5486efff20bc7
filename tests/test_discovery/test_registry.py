"""The rendezvous point's registry: TTLs, cookies, limits and bounded memory, with a fake clock."""

from __future__ import annotations

import pytest

from meshtalk.discovery.registry import Registry, RegistryLimits
from meshtalk.protocol import RendezvousError
from meshtalk.protocol.rendezvous import Status


def peer(n: int) -> bytes:
    return n.to_bytes(4, "big")


def refused(status: Status) -> pytest.RaisesExc[RendezvousError]:
    return pytest.raises(RendezvousError, check=lambda e: e.status == status)


def test_ttl_defaults_and_bounds() -> None:
    registry = Registry(RegistryLimits(min_ttl=120, default_ttl=7200, max_ttl=3600 * 72))
    assert registry.check("ns", None) == 7200
    assert registry.check("ns", 120) == 120
    with refused(Status.E_INVALID_TTL):
        registry.check("ns", 0)
    with refused(Status.E_INVALID_TTL):
        registry.check("ns", 3600 * 72 + 1)
    with refused(Status.E_INVALID_TTL):
        registry.check("ns", 2**64 - 1)


def test_namespace_bounds() -> None:
    registry = Registry(RegistryLimits(max_namespace_length=10))
    with refused(Status.E_INVALID_NAMESPACE):
        registry.check("", None)
    with refused(Status.E_INVALID_NAMESPACE):
        registry.check("x" * 11, None)
    with refused(Status.E_INVALID_NAMESPACE):
        registry.discover("x" * 11, None, b"", 0)
    assert registry.discover("", None, b"", 0)[0] == []  # empty: every namespace


def test_discover_pages_with_cookies_and_sees_only_what_is_new() -> None:
    registry = Registry()
    for n in range(25):
        registry.register(peer(n), "ns", b"record %d" % n, 600, now=0)
    registry.register(peer(99), "other", b"elsewhere", 600, now=0)
    seen, cookie = [], b""
    while True:
        page, cookie = registry.discover("ns", 10, cookie, now=1)
        seen += [r.signed_peer_record for r in page]
        if len(page) < 10:
            break
    assert seen == [b"record %d" % n for n in range(25)]
    assert registry.discover("ns", 10, cookie, now=1)[0] == []
    registry.register(peer(3), "ns", b"record 3 again", 600, now=2)  # a refresh is news
    page, cookie = registry.discover("ns", 10, cookie, now=2)
    assert [(r.signed_peer_record, r.ttl) for r in page] == [(b"record 3 again", 600)]
    everything, _ = registry.discover("", 1000, b"", now=2)
    assert len(everything) == 26


def test_foreign_cookies_are_refused() -> None:
    registry = Registry()
    registry.register(peer(1), "ns", b"r", 600, now=0)
    _, cookie = registry.discover("ns", None, b"", 0)
    with refused(Status.E_INVALID_COOKIE):
        registry.discover("other", None, cookie, 0)  # another namespace
    with refused(Status.E_INVALID_COOKIE):
        Registry().discover("ns", None, cookie, 0)  # a restarted point
    with refused(Status.E_INVALID_COOKIE):
        registry.discover("ns", None, b"garbage", 0)
    future = cookie[:8] + (10**6).to_bytes(8, "big") + cookie[16:]
    with refused(Status.E_INVALID_COOKIE):
        registry.discover("ns", None, future, 0)


def test_registrations_expire_and_report_their_remaining_ttl() -> None:
    registry = Registry()
    registry.register(peer(1), "ns", b"short", 120, now=0)
    registry.register(peer(2), "ns", b"long", 600, now=0)
    page, _ = registry.discover("ns", None, b"", now=100)
    assert [(r.signed_peer_record, r.ttl) for r in page] == [(b"short", 20), (b"long", 500)]
    page, _ = registry.discover("ns", None, b"", now=121)
    assert [r.signed_peer_record for r in page] == [b"long"]
    assert len(registry) == 1


def test_unregister_removes_only_that_peer_in_that_namespace() -> None:
    registry = Registry()
    registry.register(peer(1), "a", b"1a", 600, 0)
    registry.register(peer(1), "b", b"1b", 600, 0)
    registry.register(peer(2), "a", b"2a", 600, 0)
    assert registry.unregister(peer(1), "a")
    assert not registry.unregister(peer(1), "a")
    assert [r.signed_peer_record for r in registry.discover("", None, b"", 0)[0]] == [b"1b", b"2a"]


def test_limits_per_peer_per_namespace_and_in_total() -> None:
    limits = RegistryLimits(
        max_registrations_per_peer=2, max_registrations_per_namespace=3, max_registrations=5
    )
    registry = Registry(limits)
    registry.register(peer(1), "a", b"r", 600, 0)
    registry.register(peer(1), "b", b"r", 600, 0)
    registry.register(peer(1), "a", b"refresh", 600, 0)  # a refresh is not a new registration
    with refused(Status.E_NOT_AUTHORIZED):
        registry.register(peer(1), "c", b"r", 600, 0)
    registry.register(peer(2), "a", b"r", 600, 0)
    registry.register(peer(3), "a", b"r", 600, 0)
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(4), "a", b"r", 600, 0)  # namespace full
    registry.register(peer(4), "d", b"r", 600, 0)
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(5), "e", b"r", 600, 0)  # point full
    with refused(Status.E_INVALID_SIGNED_PEER_RECORD):
        Registry(RegistryLimits(max_record_size=10)).register(peer(1), "a", b"x" * 11, 600, 0)


def test_discover_limit_is_capped_not_refused() -> None:
    registry = Registry(RegistryLimits(default_discover_limit=3, max_discover_limit=5))
    for n in range(10):
        registry.register(peer(n), "ns", b"r", 600, 0)
    assert len(registry.discover("ns", None, b"", 0)[0]) == 3
    assert len(registry.discover("ns", 0, b"", 0)[0]) == 3
    assert len(registry.discover("ns", 2**64 - 1, b"", 0)[0]) == 5


def test_memory_follows_live_registrations_under_a_refresh_flood() -> None:
    registry = Registry()
    for round_ in range(2000):
        for n in range(50):
            registry.register(peer(n), "ns", b"r", 7200, now=round_)
    stats = registry.statistics()
    assert stats["registrations"] == 50
    assert stats["index_entries"] <= 4 * 50 + 4  # two lists (namespace and "all"), half stale
    assert stats["expiry_entries"] <= 2 * 50 + 1024 + 1
    page, _ = registry.discover("ns", 100, b"", now=2000)
    assert len(page) == 50


def test_expired_registrations_leave_no_trace() -> None:
    registry = Registry()
    for n in range(1000):
        registry.register(peer(n), f"ns{n % 7}", b"r", 120, now=0)
    assert registry.expire(now=121) == 1000
    assert registry.statistics() == {
        "registrations": 0,
        "namespaces": 0,
        "peers": 0,
        "index_entries": 0,
        "expiry_entries": 0,
    }
