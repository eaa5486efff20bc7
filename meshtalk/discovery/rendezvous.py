"""The rendezvous client: register, discover and unregister at a `/rendezvous/1.0.0` point.

`RendezvousClient` speaks the protocol to one point over one stream, reopened when it breaks.
`RendezvousSession` is what a node runs per configured point: it registers the node's signed
peer record under `meshtalk/<mesh>`, refreshes it before the TTL runs out, registers again
whenever the connection to the point was lost (a restarted point has forgotten everyone) or
the point refuses its cookie, and discovers the namespace, quickly at first and less often
while nothing changes. Every record it discovers is verified before its addresses are used.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, Final

import trio

from ..net.host import (
    NETWORK_ERRORS,
    PrefixedStream,
    forget_stale_connection,
    peer_info,
    reset_quietly,
    to_libp2p_id,
)
from ..protocol.errors import (
    InvalidSignedRecord,
    MeshtalkError,
    ProtocolError,
    RendezvousError,
)
from ..protocol.keys import NodeKey, PeerId
from ..protocol.rendezvous import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    RendezvousMessage,
    Status,
    Unregister,
    decode_message,
    encode_message,
)
from .records import PeerRecord, open_peer_record, sign_peer_record
from .stats import SessionState, SessionStatistics

__all__ = [
    "RendezvousStream",
    "RendezvousClient",
    "RendezvousSession",
    "namespace_for",
]

logger = logging.getLogger("meshtalk.rendezvous")
_PAGE: Final = 100
# What a point's answer may make a client believe: the spec's default when the point grants
# nothing, and never more than the longest TTL any point here grants (refreshing early is safe).
DEFAULT_TTL: Final = 2 * 3600
MAX_GRANTED_TTL: Final = 72 * 3600


def namespace_for(mesh: str) -> str:
    """The rendezvous namespace of a mesh."""
    return f"meshtalk/{mesh}"


def _raise_for_status(status: int, text: str, what: str) -> None:
    """RendezvousError naming the spec's status, unless it is OK."""
    if status == Status.OK:
        return
    try:
        name = Status(status).name
    except ValueError:
        name = f"status {status}"
    raise RendezvousError(f"the rendezvous point refused {what}: {name} {text}".rstrip(), status)


class RendezvousStream(PrefixedStream[RendezvousMessage]):
    """Length-prefixed rendezvous messages over one libp2p stream."""

    def __init__(self, stream: Any, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        super().__init__(stream, max_message_size, encode_message, decode_message)


class RendezvousClient:
    """Requests to one rendezvous point (serialised: one request at a time)."""

    def __init__(
        self,
        host: Any,
        key: NodeKey,
        point: PeerId,
        addresses: list[str],
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.key = key
        self.point = point
        self.addresses = addresses
        self.timeout = timeout
        self.invalid_records = 0
        self._stream: RendezvousStream | None = None
        self._lock = trio.Lock()

    def connected(self) -> bool:
        """Whether the host holds a connection to the point right now."""
        return bool(self.host.get_network().connections.get(to_libp2p_id(self.point)))

    async def _open(self) -> RendezvousStream:
        if self._stream is None:
            if not self.connected():
                # py-libp2p would refuse to redial for 60 s after a failure (and a point that
                # is back would wait that long): the session backs off on its own.
                await forget_stale_connection(self.host, self.point)
                await self.host.connect(peer_info(self.point, self.addresses))
            stream = await self.host.new_stream(to_libp2p_id(self.point), [PROTOCOL_ID])
            self._stream = RendezvousStream(stream)
        return self._stream

    async def _exchange(self, request: RendezvousMessage, reply: bool = True) -> Any:
        async with self._lock:
            try:
                with trio.fail_after(self.timeout):
                    stream = await self._open()
                    await stream.write(request)
                    if not reply:
                        return None
                    response = await stream.read()
                    if response is None:
                        raise ProtocolError("the rendezvous point closed the stream")
                    return response
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Drop the stream (the next request opens a new one)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await reset_quietly(stream.stream)

    async def register(
        self, ns: str, addresses: list[str], ttl: int | None = None, seq: int | None = None
    ) -> int:
        """Register this node's signed record under `ns`; returns the TTL the point granted.

        A TTL the point does not state is the one asked for (or the spec's default, 2 h); a
        granted TTL above 72 h counts as 72 h.
        """
        record = sign_peer_record(self.key, addresses, seq)
        response = await self._exchange(Register(ns, record, ttl))
        if not isinstance(response, RegisterResponse):
            raise ProtocolError(f"expected REGISTER_RESPONSE, got {type(response).__name__}")
        _raise_for_status(response.status, response.status_text, f"registering under {ns!r}")
        granted = response.ttl or ttl or DEFAULT_TTL
        return min(granted, MAX_GRANTED_TTL)

    async def unregister(self, ns: str) -> None:
        """Remove this node's registration under `ns` (the spec sends no answer)."""
        await self._exchange(Unregister(ns), reply=False)

    async def discover(
        self, ns: str, limit: int | None = None, cookie: bytes = b""
    ) -> tuple[list[PeerRecord], bytes, int]:
        """Verified records under `ns` after `cookie`, the next cookie, and the page size.

        Records that do not verify, or that sit under another namespace, are skipped and
        counted in `invalid_records`.
        """
        response = await self._exchange(Discover(ns, limit, cookie))
        if not isinstance(response, DiscoverResponse):
            raise ProtocolError(f"expected DISCOVER_RESPONSE, got {type(response).__name__}")
        _raise_for_status(response.status, response.status_text, f"discovering {ns!r}")
        records = []
        for registration in response.registrations:
            try:
                if ns and registration.ns != ns:
                    raise InvalidSignedRecord(f"registration for {registration.ns!r}, not {ns!r}")
                records.append(open_peer_record(registration.signed_peer_record))
            except InvalidSignedRecord as exc:
                self.invalid_records += 1
                logger.info("skipped a record from rendezvous point %s: %s", self.point, exc)
        return records, response.cookie, len(response.registrations)


class RendezvousSession:
    """Keeps a node registered at one point and reports the peers it discovers there."""

    def __init__(
        self,
        client: RendezvousClient,
        namespace: str,
        own_addresses: Callable[[], list[str]],
        on_found: Callable[[PeerRecord], None],
        ttl: int | None = None,
        discover_interval: tuple[float, float] = (0.25, 30.0),
        retry_max: float = 30.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.own_addresses = own_addresses
        self.on_found = on_found
        self.ttl = ttl
        self.discover_interval = discover_interval
        self.retry_max = retry_max
        self.state: SessionState = "starting"
        self.last_error: str | None = None
        self.registered_ttl: int | None = None
        self.registrations = 0
        self.discovered = 0
        self._cookie = b""
        self._must_register = True
        self._refresh_at = 0.0
        self._wake = trio.Event()

    def addresses_changed(self) -> None:
        """The node's addresses changed: register them now, not at the next refresh."""
        self._must_register = True
        self._wake.set()

    def discover_now(self) -> None:
        """Ask the point again without waiting for the next round (a peer is being looked up)."""
        self._wake.set()

    def statistics(self) -> SessionStatistics:
        """State, last error, granted TTL and counters."""
        return SessionStatistics(
            point=str(self.client.point),
            state=self.state,
            last_error=self.last_error,
            ttl=self.registered_ttl,
            registrations=self.registrations,
            discovered=self.discovered,
            invalid_records=self.client.invalid_records,
        )

    async def run(self) -> None:
        """Register, refresh and discover until cancelled; unregister on a clean stop."""
        fastest, slowest = self.discover_interval
        interval, backoff = fastest, fastest
        away = False  # the last round failed (the state says "registering" while it retries)
        try:
            while True:
                try:
                    found = await self._round()
                    if away:
                        logger.info("rendezvous point %s answers again", self.client.point)
                    away = False
                    self.state, self.last_error, backoff = "registered", None, fastest
                    interval = fastest if found else min(interval * 2, slowest)
                    delay = min(interval, max(0.0, self._refresh_at - trio.current_time()))
                except (*NETWORK_ERRORS, MeshtalkError, trio.TooSlowError) as exc:
                    # Routine while a point is away: one INFO line when it goes, then DEBUG.
                    level, away = logging.DEBUG if away else logging.INFO, True
                    self.state, self.last_error = "unreachable", f"{type(exc).__name__}: {exc}"
                    logger.log(level, "rendezvous point %s: %s", self.client.point, self.last_error)
                    self._must_register = True
                    if isinstance(exc, RendezvousError) and exc.status == Status.E_INVALID_COOKIE:
                        self._cookie, delay = b"", 0.0  # the point restarted: start over now
                    else:
                        delay = backoff * random.uniform(0.5, 1.0)
                        backoff = min(backoff * 2, self.retry_max)
                    interval = fastest
                except Exception as exc:  # a bug, maybe triggered by the point: back off, go on
                    self.state, self.last_error = "failed", f"{type(exc).__name__}: {exc}"
                    logger.exception("rendezvous session with %s failed", self.client.point)
                    self._must_register, self._cookie = True, b""
                    delay = backoff * random.uniform(0.5, 1.0)
                    backoff = min(backoff * 2, self.retry_max)
                    interval = fastest
                wake = self._wake = trio.Event()
                with trio.move_on_after(delay):
                    await wake.wait()
        finally:
            await self._goodbye()

    async def _round(self) -> bool:
        """Register if needed, then read every new registration; True if peers were found."""
        client = self.client
        if not client.connected():
            # A new connection may mean a new point process: it knows nobody, and the cookie
            # from the old one means nothing to it.
            self._must_register, self._cookie = True, b""
        if self._must_register or trio.current_time() >= self._refresh_at:
            self.state = "registering"
            ttl = await client.register(self.namespace, self.own_addresses(), self.ttl)
            self.registrations += 1
            self.registered_ttl = ttl
            # Refresh at half the TTL: one lost refresh still leaves time for another.
            self._refresh_at = trio.current_time() + max(1.0, ttl / 2)
            self._must_register = False
        found = False
        while True:
            records, self._cookie, page = await client.discover(self.namespace, _PAGE, self._cookie)
            for record in records:
                if record.peer_id != client.key.peer_id:
                    self.discovered += 1
                    found = True
                    self.on_found(record)
            if page < _PAGE:
                return found

    async def _goodbye(self) -> None:
        # Best effort, shielded and short: a stopping node should not linger at the point.
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                if self.client.connected() and not self._must_register:
                    await self.client.unregister(self.namespace)
            except (*NETWORK_ERRORS, MeshtalkError):
                pass
            await self.client.close()
