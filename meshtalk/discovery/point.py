"""A rendezvous point: serves `/rendezvous/1.0.0` on a libp2p host. It never sees messages.

Any node can serve one (`NodeConfig(rendezvous_point=True)`), or `open_rendezvous_point` runs
one on a host of its own. For each request on a stream (several may follow each other, as go
clients send them) the point answers with the spec's status:

- REGISTER: namespace and TTL are checked first (E_INVALID_NAMESPACE, E_INVALID_TTL; an absent
  TTL or a TTL of 0 gets the default), then the signed record (E_INVALID_SIGNED_PEER_RECORD),
  then that the record is the connection's own peer (E_NOT_AUTHORIZED), then the limits
  (E_NOT_AUTHORIZED per peer; E_UNAVAILABLE per connection, per source address, per
  namespace, in total, and for the byte budgets of records).
- DISCOVER: E_INVALID_NAMESPACE, E_INVALID_COOKIE; the limit is capped, not refused.
- UNREGISTER removes the connection's peer's registration and gets no answer (as in the spec).

A stream that sends something undecodable, a response type, or nothing for `idle_timeout`
seconds is reset; the point goes on serving everyone else. Requests are capped at 64 KiB.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

import trio
from libp2p.custom_types import TProtocol

from ..net.host import (
    NETWORK_ERRORS,
    announce_addrs,
    build_host,
    close_host,
    parse_multiaddrs,
    quiet_libp2p_logging,
    remote_peer,
    safe_handler,
)
from ..net.relay import RelayLimits, RelayServer
from ..protocol.errors import InvalidSignedRecord, MeshtalkError, RendezvousError
from ..protocol.keys import NodeKey
from ..protocol.rendezvous import (
    PROTOCOL_ID,
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    RendezvousMessage,
    Status,
    Unregister,
)
from .records import open_peer_record
from .registry import Registry, RegistryLimits, source_of
from .rendezvous import RendezvousStream
from .stats import PointStatistics

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream

__all__ = ["RendezvousPoint", "open_rendezvous_point", "MAX_REQUEST_SIZE"]

logger = logging.getLogger("meshtalk.rendezvous.point")
MAX_REQUEST_SIZE: Final = 64 * 1024
_Request = Literal["register", "discover", "unregister", "malformed"]


class RendezvousPoint:
    """The request handling of a rendezvous point; attach it to a host with `attach`."""

    def __init__(
        self,
        limits: RegistryLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        idle_timeout: float = 60.0,
    ) -> None:
        self.registry = Registry(limits)
        self.relay: RelayServer | None = None  # set when the point is also a relay
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.counters: collections.Counter[_Request] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()  # by status name
        # A number per connection, so the registry holds no reference to a closed one.
        self._connections: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._numbers = itertools.count(1)

    def attach(self, host: IHost) -> None:
        """Serve `/rendezvous/1.0.0` on `host`."""
        host.set_stream_handler(
            TProtocol(PROTOCOL_ID), safe_handler("rendezvous", self.serve_stream)
        )

    def statistics(self) -> PointStatistics:
        """Registry sizes and request counters."""
        counters = self.counters
        return PointStatistics(
            registry=self.registry.statistics(),
            register=counters["register"],
            discover=counters["discover"],
            unregister=counters["unregister"],
            malformed=counters["malformed"],
            refused=dict(self.refused),
        )

    def _count(self, name: _Request) -> None:
        self.counters[name] += 1

    def _refuse(self, exc: RendezvousError) -> None:
        self.refused[Status(exc.status).name] += 1

    def _connection_of(self, stream: INetStream) -> Hashable:
        """The connection a stream belongs to, as a number the registry can keep."""
        connection = stream.muxed_conn
        try:
            number = self._connections.get(connection)
            if number is None:
                number = self._connections[connection] = next(self._numbers)
        except TypeError:  # not weakly referenceable: fall back to its identity
            return ("id", id(connection))
        return number

    @staticmethod
    def _source_of(stream: INetStream) -> str:
        """The source address of a stream's connection (see `registry.source_of`)."""
        try:
            remote = stream.get_remote_address()
        except Exception:  # a transport without addresses, or a closed connection
            remote = None
        return source_of(remote[0] if remote else None)

    async def serve_stream(self, stream: INetStream) -> None:
        """Answer requests on one stream until it ends, misbehaves or idles."""
        peer = remote_peer(stream).to_bytes()
        connection = self._connection_of(stream)
        source = self._source_of(stream)
        wire = RendezvousStream(stream, MAX_REQUEST_SIZE)
        while True:
            try:
                with trio.fail_after(self.idle_timeout):
                    request = await wire.read()
            except MeshtalkError as exc:
                self._count("malformed")
                logger.info("reset a rendezvous stream that sent garbage: %s", exc)
                return
            except trio.TooSlowError:
                return
            if request is None:
                return
            response = self.handle(peer, request, connection=connection, source=source)
            if isinstance(response, bool):
                self._count("malformed")
                logger.info("reset a rendezvous stream that sent a %s", type(request).__name__)
                return
            if response is not None:
                await wire.write(response)

    def handle(
        self,
        peer: bytes,
        request: RendezvousMessage,
        *,
        connection: Hashable | None = None,
        source: str | None = None,
    ) -> RegisterResponse | DiscoverResponse | bool | None:
        """The answer to one request from `peer` (None: no answer; False: a protocol error).

        A registration is charged to `connection` and `source` (see `Registry.register`).
        """
        if isinstance(request, Register):
            self._count("register")
            return self._register(peer, request, connection, source)
        if isinstance(request, Discover):
            self._count("discover")
            try:
                found, cookie = self.registry.discover(
                    request.ns, request.limit, request.cookie, self.clock()
                )
            except RendezvousError as exc:
                self._refuse(exc)
                return DiscoverResponse(exc.status, status_text=str(exc))
            return DiscoverResponse(Status.OK, tuple(found), cookie)
        if isinstance(request, Unregister):
            self._count("unregister")
            self.registry.unregister(peer, request.ns)
            return None
        return False

    def _register(
        self,
        peer: bytes,
        request: Register,
        connection: Hashable | None,
        source: str | None,
    ) -> RegisterResponse:
        try:
            ttl = self.registry.check(request.ns, request.ttl)
            try:
                record = open_peer_record(request.signed_peer_record)
            except InvalidSignedRecord as exc:
                raise RendezvousError(str(exc), Status.E_INVALID_SIGNED_PEER_RECORD) from None
            if record.peer_id.to_bytes() != peer:
                raise RendezvousError(
                    f"the record is for {record.peer_id}, not for the peer that sent it",
                    Status.E_NOT_AUTHORIZED,
                )
            self.registry.register(
                peer,
                request.ns,
                request.signed_peer_record,
                ttl,
                self.clock(),
                connection=connection,
                source=source,
            )
        except RendezvousError as exc:
            self._refuse(exc)
            return RegisterResponse(exc.status, str(exc))
        return RegisterResponse(Status.OK, ttl=ttl)


@asynccontextmanager
async def open_rendezvous_point(
    key: NodeKey,
    listen: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",),
    limits: RegistryLimits | None = None,
    relay: RelayLimits | None = None,
) -> AsyncIterator[tuple[RendezvousPoint, list[str]]]:
    """Run a standalone rendezvous point on its own host; yields it and its addresses.

    With `relay`, the point is also a circuit relay with those limits (`point.relay`)."""
    quiet_libp2p_logging()
    point = RendezvousPoint(limits)
    host = build_host(key)
    point.attach(host)
    try:
        async with host.run(parse_multiaddrs(list(listen))), trio.open_nursery() as nursery:
            if relay is not None:
                point.relay = RelayServer(host, relay)
                await nursery.start(point.relay.run)
            try:
                yield point, announce_addrs(host)
            finally:
                nursery.cancel_scope.cancel()
    except NETWORK_ERRORS as exc:
        raise RendezvousError(
            f"the rendezvous point could not listen on {list(listen)}: {exc}"
        ) from exc
    finally:
        await close_host(host)
