"""The rendezvous point's registry: TTLs, cookies, limits and bounded memory, with a fake clock."""

from __future__ import annotations

import pytest

from meshtalk.discovery.registry import Registry, RegistryLimits, source_of
from meshtalk.discovery.stats import RegistryStatistics
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
    assert registry.check("ns", 0) == 7200  # libp2p clients send 0 (or nothing) for "default"
    with refused(Status.E_INVALID_TTL):
        registry.check("ns", 1)
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
    assert stats.registrations == 50
    assert stats.index_entries <= 4 * 50 + 4  # two lists (namespace and "all"), half stale
    assert stats.expiry_entries <= 2 * 50 + 1024 + 1
    page, _ = registry.discover("ns", 100, b"", now=2000)
    assert len(page) == 50


def test_expired_registrations_leave_no_trace() -> None:
    registry = Registry()
    for n in range(1000):
        registry.register(peer(n), f"ns{n % 7}", b"r", 120, now=0)
    assert registry.expire(now=121) == 1000
    assert registry.statistics() == RegistryStatistics(
        registrations=0,
        record_bytes=0,
        namespaces=0,
        peers=0,
        connections=0,
        sources=0,
        index_entries=0,
        expiry_entries=0,
    )


def test_source_of_groups_ipv6_by_its_64_and_unknown_hosts_together() -> None:
    assert source_of("192.0.2.7") == "192.0.2.7"
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::9")
    assert source_of("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of(None) == source_of("") == source_of("not an address") == "unknown"


def test_caps_per_connection_count_and_bytes() -> None:
    limits = RegistryLimits(max_registrations_per_connection=3, max_record_bytes_per_connection=25)
    registry = Registry(limits)
    for n in range(3):
        registry.register(peer(n), "ns", b"x" * 5, 600, 0, connection=1, source="192.0.2.1")
    registry.register(peer(0), "ns", b"y" * 5, 600, 0, connection=1)  # a refresh fits
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(3), "ns", b"x", 600, 0, connection=1)  # four registrations
    registry.register(peer(3), "ns", b"x", 600, 0, connection=2)  # another connection may
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(4), "a", b"x" * 25, 600, 0, connection=2)  # 1 + 25 > 25 bytes
    registry.register(peer(4), "a", b"x" * 24, 600, 0, connection=2)
    with refused(Status.E_UNAVAILABLE):  # a refresh that grows past the budget is refused...
        registry.register(peer(0), "ns", b"z" * 16, 600, 0, connection=1)
    page, _ = registry.discover("ns", None, b"", 0)  # ...and keeps what it would replace
    assert b"y" * 5 in [r.signed_peer_record for r in page]
    registry.register(peer(0), "ns", b"z" * 15, 600, 0, connection=1)  # exactly 25 is fine
    assert registry.statistics().record_bytes == 15 + 10 + 1 + 24
    assert registry.unregister(peer(1), "ns")
    registry.register(peer(5), "ns", b"x" * 5, 600, 0, connection=1)  # room again


def test_caps_per_source_address_count_and_bytes() -> None:
    limits = RegistryLimits(max_registrations_per_source=4, max_record_bytes_per_source=100)
    registry = Registry(limits)
    for n in range(4):  # four peers, four connections, one address: the per-peer cap is no help
        registry.register(peer(n), "ns", b"r" * 10, 600, 0, connection=n, source="192.0.2.1")
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(4), "ns", b"r", 600, 0, connection=4, source="192.0.2.1")
    registry.register(peer(4), "ns", b"r", 600, 0, connection=5, source="192.0.2.2")
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(5), "ns", b"r" * 100, 600, 0, source="192.0.2.2")  # 101 bytes
    registry.register(peer(5), "ns", b"r" * 99, 600, 0, source="192.0.2.2")
    # moving a registration to a full source is refused too
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(4), "ns", b"r", 600, 0, source="192.0.2.1")
    registry.expire(now=601)
    registry.register(peer(6), "ns", b"r", 601, 601, source="192.0.2.1")  # freed by expiry
    assert registry.statistics().sources == 1


def test_total_record_byte_budget() -> None:
    registry = Registry(RegistryLimits(max_record_bytes=1000))
    for n in range(9):
        registry.register(peer(n), "ns", b"r" * 100, 600, 0, source=f"192.0.2.{n}")
    registry.register(peer(9), "ns", b"r" * 100, 600, 0, source="192.0.2.9")
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(10), "ns", b"r", 600, 0, source="192.0.2.10")
    with refused(Status.E_UNAVAILABLE):
        registry.register(peer(0), "ns", b"r" * 101, 600, 0, source="192.0.2.0")
    registry.register(peer(0), "ns", b"r" * 50, 600, 0, source="192.0.2.0")  # shrinking is fine
    registry.register(peer(10), "ns", b"r" * 50, 600, 0, source="192.0.2.10")
    assert registry.statistics().record_bytes == 1000


def test_the_default_caps_bound_what_free_key_pairs_buy() -> None:
    limits = RegistryLimits()
    # one address: at most max_registrations_per_source records, whatever the key pairs
    assert limits.max_registrations_per_source * limits.max_record_size <= 4 * 1024 * 1024
    assert limits.max_record_bytes_per_source <= 1024 * 1024
    assert limits.max_record_bytes_per_connection <= 64 * 1024
    # the whole point: records within a budget far below 100,000 x 4 KiB
    assert limits.max_record_bytes <= 32 * 1024 * 1024
    registry = Registry(limits)
    statuses: list[int] = []
    for n in range(2000):  # 2,000 free key pairs behind one address, 4 KiB each
        try:
            registry.register(peer(n), "ns", b"r" * 4096, 600, 0, connection=n, source="192.0.2.1")
        except RendezvousError as exc:
            statuses.append(exc.status)
    assert registry.statistics().record_bytes <= limits.max_record_bytes_per_source
    assert statuses == [Status.E_UNAVAILABLE] * (2000 - limits.max_record_bytes_per_source // 4096)
