"""The state of a rendezvous point: registrations, TTLs, cookies and limits. No I/O.

The point checks a REGISTER's namespace and TTL with `check`, verifies the signed record, then
calls `register` with the connection's peer. Time comes in as an argument (seconds, any
monotonic clock), so tests need no sleeping.

Every registration gets a number from one counter that only grows. Per namespace (and for
"every namespace") the registry keeps the numbers in order, so DISCOVER with a cookie is a
binary search plus `limit` steps. A cookie is this registry's random instance id, the last
number the client has seen and a digest of the namespace: a cookie from another namespace or
from before a restart is refused with E_INVALID_COOKIE, which tells the client to start over
(and to register again). Replaced, removed and expired entries are skipped lazily and the
lists are compacted when half of them are stale, so memory follows the live registrations,
whatever a flood of re-registrations does.

Peer IDs are free (a key pair is all it takes), so a cap per peer alone bounds nothing. Each
registration is also charged to the connection it came over and to its source: the remote IP
address (an IPv6 address counts as its /64, the block one host usually gets). Per connection,
per source and in total, both the number of registrations and the bytes of their records are
capped; a REGISTER over a cap is refused with E_UNAVAILABLE and stores nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import ipaddress
import os
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final

from ..protocol.errors import RendezvousError
from ..protocol.rendezvous import MAX_NAMESPACE_LENGTH, Register, Status
from .stats import RegistryStatistics

__all__ = ["RegistryLimits", "Registry"]

_COOKIE_SIZE: Final = 24


@dataclass(frozen=True)
class RegistryLimits:
    """Bounds a rendezvous point enforces; each is configurable."""

    max_namespace_length: int = MAX_NAMESPACE_LENGTH
    min_ttl: int = 120
    default_ttl: int = 2 * 3600
    max_ttl: int = 72 * 3600
    max_record_size: int = 4096
    max_registrations_per_peer: int = 64
    max_registrations_per_connection: int = 64
    max_record_bytes_per_connection: int = 64 * 1024
    max_registrations_per_source: int = 1024
    max_record_bytes_per_source: int = 1024 * 1024
    max_registrations_per_namespace: int = 50_000
    max_registrations: int = 100_000
    max_record_bytes: int = 32 * 1024 * 1024
    default_discover_limit: int = 100
    max_discover_limit: int = 1000


def source_of(host: str | None) -> str:
    """The source a registration is charged to: the IP address, an IPv6 one as its /64.

    Anything that is not an IP address (no address known, a relayed connection) shares the
    source "unknown".
    """
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Usage:
    """Registrations and record bytes charged to one connection or one source."""

    __slots__ = ("count", "size")

    def __init__(self) -> None:
        self.count = 0
        self.size = 0


@dataclass(slots=True)
class _Registration:
    ns: str
    peer: bytes
    record: bytes
    expires: float
    number: int
    connection: Hashable | None
    source: str | None


class _Ordered:
    """Registration numbers of one namespace (or of all), in order, with lazy deletion."""

    __slots__ = ("keys", "numbers", "stale")

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.keys: list[tuple[str, bytes]] = []
        self.stale = 0


class Registry:
    """Registrations of one rendezvous point."""

    def __init__(self, limits: RegistryLimits | None = None, instance: bytes | None = None):
        self.limits = limits or RegistryLimits()
        self.instance = instance if instance is not None else os.urandom(8)
        self._live: dict[tuple[str, bytes], _Registration] = {}
        self._per_namespace: dict[str, int] = {}
        self._per_peer: dict[bytes, int] = {}
        self._per_connection: dict[Hashable, _Usage] = {}
        self._per_source: dict[str, _Usage] = {}
        self._record_bytes = 0
        self._orders: dict[str, _Ordered] = {}  # "" holds every namespace
        self._expiry: list[tuple[float, int, str, bytes]] = []
        self._counter = 0

    def __len__(self) -> int:
        return len(self._live)

    def check(self, ns: str, ttl: int | None) -> int:
        """The TTL a REGISTER under `ns` would get; RendezvousError with the spec's status."""
        self._check_namespace(ns, allow_empty=False)
        limits = self.limits
        if not ttl:  # absent or 0: libp2p implementations read both as "the default"
            return limits.default_ttl
        if not limits.min_ttl <= ttl <= limits.max_ttl:
            raise RendezvousError(
                f"TTL {ttl} s is outside {limits.min_ttl}..{limits.max_ttl} s",
                Status.E_INVALID_TTL,
            )
        return ttl

    def _check_namespace(self, ns: str, *, allow_empty: bool) -> None:
        if not ns and not allow_empty:
            raise RendezvousError("the namespace is empty", Status.E_INVALID_NAMESPACE)
        if len(ns) > self.limits.max_namespace_length:
            raise RendezvousError(
                f"the namespace is {len(ns)} characters long; the limit is "
                f"{self.limits.max_namespace_length}",
                Status.E_INVALID_NAMESPACE,
            )

    def register(
        self,
        peer: bytes,
        ns: str,
        record: bytes,
        ttl: int,
        now: float,
        *,
        connection: Hashable | None = None,
        source: str | None = None,
    ) -> None:
        """Store (or refresh) `peer`'s verified record under `ns` until now + ttl.

        The registration is charged to `connection` and `source` (see `source_of`); None
        charges it to no connection or source. RendezvousError when a limit refuses it, and
        then nothing changes (a refused refresh keeps the registration it would replace).
        """
        self.expire(now)
        limits = self.limits
        size = len(record)
        if size > limits.max_record_size:
            raise RendezvousError(
                f"the signed peer record is {size} bytes; the limit is {limits.max_record_size}",
                Status.E_INVALID_SIGNED_PEER_RECORD,
            )
        key = (ns, peer)
        old = self._live.get(key)
        self._admit(old, peer, ns, size, connection, source)
        if old is not None:
            del self._live[key]
            self._forget(old)
        self._counter += 1
        entry = _Registration(ns, peer, record, now + ttl, self._counter, connection, source)
        self._live[key] = entry
        self._per_namespace[ns] = self._per_namespace.get(ns, 0) + 1
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        self._charge(entry, 1)
        for order_key in (ns, ""):
            order = self._orders.setdefault(order_key, _Ordered())
            order.numbers.append(entry.number)
            order.keys.append(key)
        heapq.heappush(self._expiry, (entry.expires, entry.number, ns, peer))
        if len(self._expiry) > 2 * len(self._live) + 1024:
            self._expiry = [(e.expires, e.number, e.ns, e.peer) for e in self._live.values()]
            heapq.heapify(self._expiry)

    def _admit(
        self,
        old: _Registration | None,
        peer: bytes,
        ns: str,
        size: int,
        connection: Hashable | None,
        source: str | None,
    ) -> None:
        """Raise RendezvousError if storing this record (in place of `old`) breaks a limit."""
        limits = self.limits
        if old is None:
            if self._per_peer.get(peer, 0) >= limits.max_registrations_per_peer:
                raise RendezvousError(
                    f"this peer already holds {limits.max_registrations_per_peer} registrations",
                    Status.E_NOT_AUTHORIZED,
                )
            if self._per_namespace.get(ns, 0) >= limits.max_registrations_per_namespace:
                raise RendezvousError(f"namespace {ns!r} is full", Status.E_UNAVAILABLE)
            if len(self._live) >= limits.max_registrations:
                raise RendezvousError("this rendezvous point is full", Status.E_UNAVAILABLE)
        if connection is not None:
            self._admit_usage(
                self._per_connection.get(connection),
                old if old is not None and old.connection == connection else None,
                size,
                limits.max_registrations_per_connection,
                limits.max_record_bytes_per_connection,
                "this connection",
            )
        if source is not None:
            self._admit_usage(
                self._per_source.get(source),
                old if old is not None and old.source == source else None,
                size,
                limits.max_registrations_per_source,
                limits.max_record_bytes_per_source,
                f"source {source}",
            )
        held = self._record_bytes - (len(old.record) if old is not None else 0)
        if held + size > limits.max_record_bytes:
            raise RendezvousError(
                f"this rendezvous point holds {held} bytes of records; the budget is "
                f"{limits.max_record_bytes}",
                Status.E_UNAVAILABLE,
            )

    @staticmethod
    def _admit_usage(
        usage: _Usage | None,
        replaced: _Registration | None,
        size: int,
        max_count: int,
        max_size: int,
        what: str,
    ) -> None:
        count = usage.count if usage is not None else 0
        held = usage.size if usage is not None else 0
        if replaced is not None:
            count, held = count - 1, held - len(replaced.record)
        if count >= max_count:
            raise RendezvousError(
                f"{what} already holds {max_count} registrations", Status.E_UNAVAILABLE
            )
        if held + size > max_size:
            raise RendezvousError(
                f"{what} holds {held} bytes of records; the budget is {max_size}",
                Status.E_UNAVAILABLE,
            )

    def _charge(self, entry: _Registration, sign: int) -> None:
        """Add (sign 1) or remove (sign -1) `entry` from the byte and usage counters."""
        size = len(entry.record)
        self._record_bytes += sign * size
        if entry.connection is not None:
            self._use(self._per_connection, entry.connection, sign, size)
        if entry.source is not None:
            self._use(self._per_source, entry.source, sign, size)

    @staticmethod
    def _use(table: dict[Any, _Usage], bucket: Hashable, sign: int, size: int) -> None:
        usage = table.get(bucket)
        if usage is None:
            usage = table[bucket] = _Usage()
        usage.count += sign
        usage.size += sign * size
        if not usage.count:
            del table[bucket]

    def unregister(self, peer: bytes, ns: str) -> bool:
        """Remove `peer`'s registration under `ns`; False if there was none."""
        entry = self._live.pop((ns, peer), None)
        if entry is None:
            return False
        self._forget(entry)
        return True

    def _forget(self, entry: _Registration) -> None:
        # The caller removed `entry` from _live; its list positions become stale.
        self._per_namespace[entry.ns] -= 1
        if not self._per_namespace[entry.ns]:
            del self._per_namespace[entry.ns]
        self._per_peer[entry.peer] -= 1
        if not self._per_peer[entry.peer]:
            del self._per_peer[entry.peer]
        self._charge(entry, -1)
        for order_key in (entry.ns, ""):
            order = self._orders[order_key]
            order.stale += 1
            if order.stale * 2 > len(order.numbers):
                self._compact(order_key, order)

    def _compact(self, order_key: str, order: _Ordered) -> None:
        kept = [
            (number, key)
            for number, key in zip(order.numbers, order.keys, strict=True)
            if (entry := self._live.get(key)) is not None and entry.number == number
        ]
        if not kept:
            del self._orders[order_key]
            return
        order.numbers = [number for number, _ in kept]
        order.keys = [key for _, key in kept]
        order.stale = 0

    def expire(self, now: float) -> int:
        """Drop registrations whose TTL ran out; returns how many."""
        dropped = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, number, ns, peer = heapq.heappop(self._expiry)
            entry = self._live.get((ns, peer))
            if entry is not None and entry.number == number:
                del self._live[(ns, peer)]
                self._forget(entry)
                dropped += 1
        return dropped

    def discover(
        self, ns: str, limit: int | None, cookie: bytes, now: float
    ) -> tuple[list[Register], bytes]:
        """Up to `limit` live registrations under `ns` ("" for all) after `cookie`, new cookie."""
        self.expire(now)
        self._check_namespace(ns, allow_empty=True)
        limits = self.limits
        if limit is None or limit == 0:
            limit = limits.default_discover_limit
        limit = min(limit, limits.max_discover_limit)
        after = self._read_cookie(ns, cookie)
        found: list[Register] = []
        order = self._orders.get(ns)
        last = after
        if order is not None:
            index = bisect.bisect_right(order.numbers, after)
            numbers, keys = order.numbers, order.keys
            while index < len(numbers) and len(found) < limit:
                number, key = numbers[index], keys[index]
                entry = self._live.get(key)
                if entry is not None and entry.number == number:
                    remaining = max(1, int(entry.expires - now))
                    found.append(Register(entry.ns, entry.record, remaining))
                last = number
                index += 1
        return found, self._cookie(ns, last)

    def _digest(self, ns: str) -> bytes:
        return hashlib.blake2b(ns.encode(), digest_size=8).digest()

    def _cookie(self, ns: str, number: int) -> bytes:
        return self.instance + number.to_bytes(8, "big") + self._digest(ns)

    def _read_cookie(self, ns: str, cookie: bytes) -> int:
        if not cookie:
            return 0
        if (
            len(cookie) != _COOKIE_SIZE
            or cookie[:8] != self.instance
            or cookie[16:] != self._digest(ns)
            or int.from_bytes(cookie[8:16], "big") > self._counter
        ):
            raise RendezvousError(
                "the cookie was not issued by this point for this namespace (the point may "
                "have restarted); discover again without a cookie",
                Status.E_INVALID_COOKIE,
            )
        return int.from_bytes(cookie[8:16], "big")

    def statistics(self) -> RegistryStatistics:
        """Live registrations, their record bytes, namespaces, peers, connections, sources
        and the sizes of the internal lists."""
        return RegistryStatistics(
            registrations=len(self._live),
            record_bytes=self._record_bytes,
            namespaces=len(self._per_namespace),
            peers=len(self._per_peer),
            connections=len(self._per_connection),
            sources=len(self._per_source),
            index_entries=sum(len(o.numbers) for o in self._orders.values()),
            expiry_entries=len(self._expiry),
        )
