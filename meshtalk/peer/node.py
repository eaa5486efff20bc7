"""The meshtalk node: identity, libp2p host, store, outbox and the API agents use.

    async with open_node(profile_dir("alice")) as node:
        await node.send("bob", "hello", wait=True)
        async for message in node.messages(consumer="agent"):
            ...

`send` returns once the message is committed to the store and outbox (durable across kill -9);
delivery then runs in the background until the recipient acks.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from .._version import __version__
from ..discovery.registry import RegistryLimits
from ..net.host import (
    MSG_PROTOCOL,
    NETWORK_ERRORS,
    announce_addrs,
    build_host,
    close_host,
    forget_stale_connection,
    parse_multiaddrs,
    peer_info,
    quiet_libp2p_logging,
    safe_handler,
    to_libp2p_id,
    without_peer_id,
)
from ..profile.identity import load_or_create_identity
from ..profile.lock import ProfileLock
from ..protocol.envelope import Envelope, direct_conversation_id, new_message_id
from ..protocol.errors import (
    ConfigError,
    DeliveryFailed,
    DeliveryTimeout,
    InternalError,
    InvalidPeerId,
    MeshtalkError,
    NodeClosed,
    PeerUnreachable,
    UnknownPeer,
    unwrap_group,
)
from ..protocol.frames import DEFAULT_MAX_FRAME_SIZE
from ..protocol.keys import PeerId
from ..protocol.sealing import DEFAULT_MAX_AGE_MS, DEFAULT_MAX_FUTURE_SKEW_MS, seal
from .discovering import NodeDiscovery
from .inbound import serve_inbound_stream
from .inbound_limits import InboundLimits
from .listen import ensure_listening, preferred_listen_addrs
from .models import (
    Contact,
    Conversation,
    KnownPeer,
    Message,
    MessageStatus,
    Trust,
    check_contact_name,
)
from .outbound import PeerLink
from .pairing import Pairing
from .store import STORE_FILE_NAME, AddressSource, IncomingResult, KnownAddress, Store

__all__ = ["Node", "NodeConfig", "MessageStream", "open_node", "PROTOCOL_VERSIONS"]

PROTOCOL_VERSIONS: Final = (1,)
logger = logging.getLogger("meshtalk.node")


def _internal_error(doing: str, exc: BaseException) -> InternalError:
    return InternalError(
        f"{doing} failed unexpectedly ({type(exc).__name__}: {exc}); nothing of it was kept, "
        "the node goes on (please report this with the node's log)"
    )


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class NodeConfig:
    """How a node listens, stores and retries. The defaults suit a node on one machine."""

    listen: list[str] = field(default_factory=lambda: ["/ip4/127.0.0.1/tcp/0"])
    durability: str = "normal"
    retry_initial: float = 0.2
    retry_max: float = 30.0
    dial_timeout: float = 10.0
    handshake_timeout: float = 10.0
    max_in_flight: int = 4096
    max_in_flight_bytes: int = 256 * 1024
    ack_timeout: float = 30.0
    frame_timeout: float = 30.0  # a frame that has begun must arrive whole within this
    max_inbound_streams_per_peer: int = 4
    max_inbound_streams: int = 1024
    max_inbound_buffered_bytes: int = 64 * 1024 * 1024  # unfinished frames, every peer together
    checkpoint_interval: float = 1.0
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS
    max_age_ms: int = DEFAULT_MAX_AGE_MS
    clock: Callable[[], int] = _wall_clock_ms
    # discovery
    mesh: str = "default"
    rendezvous: list[str] = field(default_factory=list)  # points, as /ip4/../tcp/../p2p/<id>
    rendezvous_ttl: int | None = None  # None: the point's default (2 h)
    discover_interval: tuple[float, float] = (0.25, 30.0)  # fastest, slowest
    rendezvous_point: bool = False  # serve /rendezvous/1.0.0 for others too
    rendezvous_limits: RegistryLimits | None = None
    bootstrap: list[str] = field(default_factory=list)  # peers to dial at start, with /p2p/
    mdns: bool = True
    mdns_interfaces: list[str] | None = None  # IPv4 addresses to use; None: every interface
    # trust: "contacts" accepts messages from trusted contacts only, "anyone" from every peer
    # that is not blocked
    accept: str = "contacts"
    name: str | None = None  # how this node introduces itself when pairing


@dataclass
class _QueuedSend:
    """A send waiting for the committer."""

    conversation: bytes
    kind: str
    members: tuple[PeerId, ...]
    build: Callable[[int], tuple[Envelope, dict[PeerId, bytes]]]
    done: trio.Event = field(default_factory=trio.Event)
    error: Exception | None = None


class Node:
    """One meshtalk node on one profile folder. Start it with `open_node` or `serve`."""

    def __init__(self, profile: str | Path, config: NodeConfig | None = None) -> None:
        self.profile = Path(profile)
        self.config = config or NodeConfig()
        self.clock = self.config.clock
        self.versions = PROTOCOL_VERSIONS
        self.agent = f"meshtalk/{__version__}"
        self.key, _ = load_or_create_identity(self.profile)
        self.peer_id = self.key.peer_id
        self.listen_addrs: list[str] = []
        self.statistics_counter: collections.Counter[str] = collections.Counter()
        self._store: Store | None = None
        self._host: Any = None
        self._links: dict[PeerId, PeerLink] = {}
        self._nursery: trio.Nursery | None = None
        self._waiters: dict[bytes, trio.Event] = {}
        self._failures: dict[bytes, MeshtalkError] = {}
        self._incoming = trio.Event()
        self._closed = trio.Event()
        self._cancel: trio.CancelScope | None = None
        self._contacts: dict[PeerId, Contact] | None = None  # cache, dropped on every change
        self._commit_queue: list[_QueuedSend] = []
        self._outbox_changed = trio.Event()
        self._commit_wakeup = trio.Event()
        self._lock: ProfileLock | None = None
        self.inbound_limits = InboundLimits(
            self.config.max_inbound_streams_per_peer,
            self.config.max_inbound_streams,
            self.config.max_inbound_buffered_bytes,
        )
        self.discovery = NodeDiscovery(self)
        self.pairing = Pairing(self)
        self._addresses_learned = trio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The node's store (only while the node runs)."""
        if self._store is None:
            raise NodeClosed("the node is not running; start it with open_node() or serve()")
        return self._store

    @property
    def host(self) -> Any:
        """The py-libp2p host (only while the node runs)."""
        if self._host is None:
            raise NodeClosed("the node is not running; start it with open_node() or serve()")
        return self._host

    def _prepare(self) -> None:
        """Take the profile lock and open the store: errors here are plain, not groups."""
        if self._lock is not None:
            return
        quiet_libp2p_logging()
        parse_multiaddrs(self.config.listen)
        if self.config.accept not in ("contacts", "anyone"):
            raise ConfigError(f"accept must be 'contacts' or 'anyone', not {self.config.accept!r}")
        lock = ProfileLock(self.profile)
        try:
            self._store = Store(self.profile / STORE_FILE_NAME, self.config.durability)  # type: ignore[arg-type]
        except BaseException:
            lock.release()
            raise
        self._lock = lock

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the node until cancelled or `aclose()`; reports `started()` once it listens."""
        self._prepare()
        assert self._store is not None
        assert self._lock is not None
        try:
            self._host = build_host(self.key)
            handler = safe_handler("inbound", functools.partial(serve_inbound_stream, self))
            self._host.set_stream_handler(MSG_PROTOCOL, handler)
            self.discovery.attach(self._host)
            self.pairing.attach(self._host)
            with trio.CancelScope() as self._cancel:
                preferred = preferred_listen_addrs(self.config.listen, self._store)
                async with self._host.run(parse_multiaddrs(preferred)):
                    try:
                        await ensure_listening(
                            self._host, self.config.listen, preferred, self._store
                        )
                        async with trio.open_nursery() as nursery:
                            self._nursery = nursery
                            self.listen_addrs = announce_addrs(self._host)
                            nursery.start_soon(self._committer)
                            nursery.start_soon(self._checkpointer)
                            for peer in self._store.outbox.recipients_with_pending():
                                self._link(peer).kick()
                            self.discovery.run(nursery)
                            task_status.started(self)
                            await trio.sleep_forever()
                    finally:
                        await close_host(self._host)
        finally:
            self._nursery = None
            self._host = None
            self._store.close()
            self._store = None
            self._lock.release()
            self._lock = None
            self._closed.set()
            self._incoming.set()
            self._outbox_changed.set()
            for event in self._waiters.values():
                event.set()
            for queued in self._commit_queue:
                queued.error = NodeClosed("the node stopped before the message was stored")
                queued.done.set()

    async def aclose(self) -> None:
        """Stop the node and wait until it has released its profile."""
        if self._cancel is not None:
            self._cancel.cancel()
            await self._closed.wait()

    # -- peers and trust ---------------------------------------------------------------------

    def _contact_cache(self) -> dict[PeerId, Contact]:
        if self._contacts is None:
            self._contacts = {c.peer_id: c for c in self.store.contacts.all()}
        return self._contacts

    def resolve(self, ref: str | PeerId) -> PeerId:
        """A contact name or peer ID (text or PeerId) as a PeerId."""
        if isinstance(ref, PeerId):
            return ref
        for contact in self._contact_cache().values():
            if contact.name == ref:
                return contact.peer_id
        try:
            return PeerId.from_string(ref)
        except InvalidPeerId:
            raise UnknownPeer(f"no contact is named {ref!r}, and it is not a peer ID") from None

    def add_contact(
        self,
        peer: str | PeerId,
        name: str | None = None,
        addresses: Sequence[str] = (),
        trust: Trust = Trust.TRUSTED,
    ) -> Contact:
        """Add or update a contact (addresses are merged); trusted contacts may deliver."""
        peer_id = peer if isinstance(peer, PeerId) else PeerId.from_string(peer)
        if peer_id == self.peer_id:
            raise ConfigError("a node cannot be its own contact")
        if name is not None:
            check_contact_name(name)
        parse_multiaddrs(addresses)
        contact = self.store.contacts.upsert(peer_id, name, addresses, trust, self.clock())
        self._contacts = None
        if peer_id in self._links:
            self._links[peer_id].retry_now()
        return contact

    def remove_contact(self, ref: str | PeerId) -> None:
        """Forget a contact; its messages stay in the store."""
        peer = self.resolve(ref)
        if not self.store.contacts.remove(peer):
            raise UnknownPeer(f"{ref} is not a contact")
        self._contacts = None

    def set_trust(self, ref: str | PeerId, trust: Trust) -> Contact:
        """Trust or block a contact."""
        contact = self.contact(ref)
        return self.add_contact(contact.peer_id, None, (), trust)

    def contact(self, ref: str | PeerId) -> Contact:
        """One contact by name or peer ID."""
        contact = self._contact_cache().get(self.resolve(ref))
        if contact is None:
            raise UnknownPeer(f"{ref} is not a contact; add it first")
        return contact

    def contacts(self) -> list[Contact]:
        """Every contact (from the cache that add/remove/trust keep current)."""
        return list(self._contact_cache().values())

    def is_trusted(self, peer: PeerId) -> bool:
        """Whether `peer` may deliver messages to this node."""
        contact = self._contact_cache().get(peer)
        if contact is None:
            return self.config.accept == "anyone"
        return contact.trust is Trust.TRUSTED

    def is_connected(self, peer: PeerId) -> bool:
        """Whether the host holds a connection to `peer` now."""
        return bool(self.host.get_network().connections.get(to_libp2p_id(peer)))

    async def dial(self, peer: PeerId) -> None:
        """Connect to `peer`: each known address in turn (most recent first), then ask discovery.

        Raises PeerUnreachable when no address works.
        """
        addresses = self.addresses_of(peer)
        errors = []
        for address in addresses:
            # py-libp2p dials only the first address it holds for a peer and refuses to redial
            # for 60 s after a failure: start each attempt from a clean slate.
            await forget_stale_connection(self.host, peer)
            try:
                with trio.fail_after(self.config.dial_timeout):
                    await self.host.connect(peer_info(peer, [address]))
            except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
                errors.append(f"{address}: {type(exc).__name__} {exc}".rstrip())
                continue
            self.store.book.learn(peer, [address], AddressSource.CONNECTION, self.clock())
            return
        self.discovery.lookup(peer)
        if not addresses:
            raise PeerUnreachable(f"no known address for {peer} yet; asking discovery")
        raise PeerUnreachable(f"{peer} is unreachable: " + "; ".join(errors))

    def addresses_of(self, peer: PeerId) -> list[str]:
        """Known addresses of a peer: most recently seen first, then the contact's own."""
        learned = [known.address for known in self.store.book.addresses(peer)]
        contact = self._contact_cache().get(peer)
        given = [without_peer_id(a) for a in contact.addresses] if contact is not None else []
        return list(dict.fromkeys([*learned, *given]))

    async def wait_known(self, peer: str | PeerId, timeout: float | None = None) -> list[str]:
        """Wait until an address of `peer` is known (learned or given); returns them all.

        Raises PeerUnreachable if discovery finds none within `timeout` seconds.
        """
        peer_id = self.resolve(peer)
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            while True:
                learned = self._addresses_learned
                addresses = self.addresses_of(peer_id)
                if addresses:
                    return addresses
                await learned.wait()
        raise PeerUnreachable(f"no address of {peer_id} was found within {timeout} s")

    def addresses_changed(self, peer: PeerId) -> None:
        """New addresses for `peer` were learned: a waiting delivery tries them now."""
        self._addresses_learned.set()
        self._addresses_learned = trio.Event()
        link = self._links.get(peer)
        if link is not None and link.state != "connected":
            link.retry_now()

    def peers(self) -> list[KnownPeer]:
        """Every peer this node knows: contacts and discovered peers, most recently seen first."""
        contacts = self._contact_cache()
        network = self._host.get_network() if self._host is not None else None
        found: dict[PeerId, list[KnownAddress]] = {}
        for address in self.store.book.everything():
            found.setdefault(address.peer_id, []).append(address)
        peers = []
        for peer in dict.fromkeys([*contacts, *found]):
            contact, known = contacts.get(peer), found.get(peer, [])
            seen = [k.last_seen_ms for k in known]
            if contact is not None and contact.last_seen_ms is not None:
                seen.append(contact.last_seen_ms)
            peers.append(
                KnownPeer(
                    peer_id=peer,
                    name=contact.name if contact is not None else None,
                    trust=contact.trust if contact is not None else None,
                    addresses=tuple(dict.fromkeys(k.address for k in known)),
                    sources=tuple(sorted({k.source.value for k in known})),
                    last_seen_ms=max(seen) if seen else None,
                    online=bool(network and network.connections.get(to_libp2p_id(peer))),
                )
            )
        peers.sort(key=lambda p: -(p.last_seen_ms or 0))
        return peers

    def count_refusal(self, peer: PeerId | None, error: MeshtalkError) -> None:
        """Record a refused delivery attempt."""
        self.statistics_counter["refused"] += 1
        logger.info("refused a delivery from %s: %s", peer or "an unknown sender", error)
        if peer is not None:
            self.store.contacts.record_refusal(
                peer, f"{type(error).__name__}: {error}", self.clock()
            )

    def note_connected(self, peer: PeerId) -> None:
        """A trusted peer is connected: update last-seen and flush its outbox now."""
        self.store.contacts.note_seen(peer, self.clock())
        self._contacts = None
        self.discovery.harvest_identify(peer)
        link = self._links.get(peer)
        if link is not None and link.state != "connected":
            link.retry_now()

    # -- sending -----------------------------------------------------------------------------

    async def send(
        self,
        to: str | PeerId | Sequence[str | PeerId],
        body: Any,
        *,
        conversation: bytes | None = None,
        kind: str = "text",
        reply_to: bytes | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> bytes:
        """Queue a message durably and return its id; with wait=True, return once delivered.

        A send that returned is never lost; a send that raised queued nothing.
        """
        targets = [to] if isinstance(to, str | PeerId) else list(to)
        recipients = tuple(dict.fromkeys(self.contact(t).peer_id for t in targets))
        if not recipients:
            raise UnknownPeer("send needs at least one recipient")
        now = self.clock()
        if conversation is None:
            if len(recipients) > 1:
                raise ConfigError("a message to several peers needs a conversation id")
            conversation = direct_conversation_id(self.peer_id, recipients[0])
            members: tuple[PeerId, ...] = (self.peer_id, recipients[0])
            kind_of_conversation = "direct"
        else:
            members = (self.peer_id, *recipients)
            kind_of_conversation = "group"
        message_id = new_message_id(now)

        def build(lamport: int) -> tuple[Envelope, dict[PeerId, bytes]]:
            envelope = Envelope(
                id=message_id, conversation=conversation, author=self.peer_id,
                recipients=recipients, timestamp_ms=now, lamport=lamport, body=body,
                kind=kind, reply_to=reply_to, metadata=metadata,
            )  # fmt: skip
            copies = {r: seal(envelope, self.key, r) for r in recipients}
            sizes.update((r, len(sealed)) for r, sealed in copies.items())
            return envelope, copies

        sizes: dict[PeerId, int] = {}

        await self._commit(_QueuedSend(conversation, kind_of_conversation, members, build))
        # No await since the commit: an ack cannot have arrived before the waiter exists.
        event = trio.Event()
        if wait:
            self._waiters[message_id] = event
        for recipient in recipients:
            self._link(recipient).kick(sizes[recipient])
        if wait:
            await self._wait_delivered(message_id, event, timeout)
        return message_id

    async def _commit(self, queued: _QueuedSend) -> None:
        """Hand a message to the committer and wait until it is durable (or refused)."""
        if self._nursery is None:
            raise NodeClosed("the node is not running; start it with open_node() or serve()")
        self._commit_queue.append(queued)
        self._commit_wakeup.set()
        # Shielded: once handed over, the commit decides. A cancelled caller still gets its id
        # back when the message was stored (the cancellation arrives at its next checkpoint),
        # so "send raised" always means "nothing was queued".
        with trio.CancelScope(shield=True):
            await queued.done.wait()
        if queued.error is not None:
            raise queued.error

    async def _checkpointer(self) -> None:
        """Keep the WAL short from a worker thread, off the commit path (skipped while idle)."""
        checkpointed_at = self.store.total_changes
        while True:
            await trio.sleep(self.config.checkpoint_interval)
            if self.store.total_changes == checkpointed_at:
                continue
            checkpointed_at = self.store.total_changes
            try:
                await trio.to_thread.run_sync(self.store.checkpoint)
            except MeshtalkError as exc:
                logger.warning("%s", exc)
            except Exception:  # the WAL just grows until the next try; the node goes on
                logger.exception("checkpointing the store failed unexpectedly")

    async def _committer(self) -> None:
        """Commit queued sends in groups: concurrent senders share one transaction."""
        while True:
            await self._commit_wakeup.wait()
            self._commit_wakeup = trio.Event()
            batch, self._commit_queue = self._commit_queue, []
            try:
                results = self.store.messages.queue_outgoing_many(
                    [(q.conversation, q.kind, q.members, q.build) for q in batch], self.clock()
                )
            except MeshtalkError as exc:
                results = [exc] * len(batch)
            except Exception as exc:
                # A bug, not the caller's fault: fail these sends, never the node (the
                # transaction rolled back, so nothing of them was stored).
                logger.exception("storing %d outgoing message(s) failed", len(batch))
                results = [_internal_error("storing the message", exc)] * len(batch)
            for queued, result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    queued.error = result
                queued.done.set()
            self.statistics_counter["commits"] += 1

    async def _wait_delivered(
        self, message_id: bytes, event: trio.Event, timeout: float | None
    ) -> None:
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                await event.wait()
        finally:
            self._waiters.pop(message_id, None)
        if message_id in self._failures:
            raise DeliveryFailed(str(self._failures.pop(message_id))).about(message_id)
        if not event.is_set():
            raise DeliveryTimeout(
                f"message {message_id.hex()} was not acknowledged within {timeout} s; it stays "
                "queued and will still be delivered"
            ).about(message_id)
        if self._closed.is_set():
            raise NodeClosed(
                "the node stopped before the message was acknowledged; it stays queued"
            )

    async def wait_delivered(self, message_id: bytes, timeout: float | None = None) -> None:
        """Wait until a message this node sent is acknowledged by all its recipients.

        Raises DeliveryFailed if a recipient refused it, DeliveryTimeout after `timeout` s.
        """
        message = self.store.messages.message(self.peer_id, message_id)
        if message is None:
            raise UnknownPeer(f"this node sent no message {message_id.hex()}")
        if message.status is MessageStatus.DELIVERED:
            return
        if message.status is MessageStatus.FAILED:
            raise DeliveryFailed(message.error or "the message was refused").about(message_id)
        event = self._waiters.setdefault(message_id, trio.Event())
        await self._wait_delivered(message_id, event, timeout)

    def _link(self, peer: PeerId) -> PeerLink:
        link = self._links.get(peer)
        if link is None:
            if self._nursery is None:
                raise NodeClosed("the node is not running")
            link = self._links[peer] = PeerLink(self, peer)
            self._nursery.start_soon(link.run, name=f"meshtalk link {peer}")
        return link

    async def wait_flushed(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is empty (everything acked or failed); False on timeout."""
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            while True:
                changed = self._outbox_changed
                if not self.store.outbox.has_pending():
                    return True
                await changed.wait()
        return False

    def _note_outbox_change(self) -> None:
        self._outbox_changed.set()
        self._outbox_changed = trio.Event()

    def delivery_acked(self, peer: PeerId, message_ids: list[bytes]) -> None:
        """Called by a link when `peer` acked these ids."""
        self._note_outbox_change()
        for message_id in self.store.outbox.acknowledge(peer, message_ids):
            event = self._waiters.get(message_id)
            if event is not None:
                event.set()

    def delivery_failed(self, peer: PeerId, message_id: bytes, error: MeshtalkError) -> None:
        """Called by a link when `peer` refused a message for good."""
        logger.warning("%s refused message %s: %s", peer, message_id.hex(), error)
        self._note_outbox_change()
        if self.store.outbox.fail(peer, message_id, f"{type(error).__name__}: {error}"):
            event = self._waiters.get(message_id)
            if event is not None:
                self._failures[message_id] = error
                event.set()

    # -- receiving ---------------------------------------------------------------------------

    def store_incoming(
        self, items: list[tuple[Envelope, bytes]]
    ) -> list[IncomingResult | MeshtalkError]:
        """Store opened envelopes (called by inbound streams) and wake readers."""
        results = self.store.messages.store_incoming(items, self.peer_id, self.clock())
        stored = sum(1 for r in results if isinstance(r, IncomingResult) and not r.duplicate)
        self.statistics_counter["received"] += stored
        self.statistics_counter["duplicates"] += sum(
            1 for r in results if isinstance(r, IncomingResult) and r.duplicate
        )
        if stored:
            self._incoming.set()
            self._incoming = trio.Event()
        return results

    @property
    def incoming_changed(self) -> trio.Event:
        """An event set when the next message is stored (take it before reading the store)."""
        return self._incoming

    def messages(self, after: int | None = None, consumer: str | None = None) -> MessageStream:
        """Incoming messages, oldest first, waiting for new ones forever.

        Resume with `after=cursor`, or name a `consumer` whose position the store remembers (a
        message counts as handled when the consumer asks for the next one).
        """
        if after is None:
            after = self.store.messages.consumer_cursor(consumer) if consumer is not None else 0
        return MessageStream(self, after, consumer)

    def history(
        self, conversation: bytes | str | PeerId, after: int = 0, limit: int = 100
    ) -> list[Message]:
        """Messages of a conversation (an id, or a contact for the direct one), both ways."""
        if not isinstance(conversation, bytes):
            conversation = direct_conversation_id(self.peer_id, self.resolve(conversation))
        return self.store.messages.history(conversation, after, limit)

    def conversations(self) -> list[Conversation]:
        """Every conversation, most recently active first."""
        return self.store.messages.conversations()

    def statistics(self) -> dict[str, Any]:
        """Counters, outbox size and the state of each peer link."""
        return {
            **self.statistics_counter,
            "outbox": self.store.outbox.size(),
            "links": {str(p): link.statistics() for p, link in self._links.items()},
            "discovery": self.discovery.statistics(),
            "inbound": self.inbound_limits.statistics(),
        }


class MessageStream:
    """Async iterator over a node's incoming messages (see `Node.messages`)."""

    def __init__(self, node: Node, after: int, consumer: str | None) -> None:
        self._node = node
        self.cursor = after
        self._consumer = consumer
        self._buffer: collections.deque[Message] = collections.deque()
        self._handled: int | None = None

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Message:
        node = self._node
        if self._consumer is not None and self._handled is not None:
            node.store.messages.set_consumer_cursor(self._consumer, self._handled)
            self._handled = None
        while not self._buffer:
            event = node._incoming
            if node._closed.is_set():
                raise NodeClosed("the node stopped")
            batch = node.store.messages.incoming(self.cursor, 100)
            if batch:
                self._buffer.extend(batch)
            else:
                await event.wait()
        message = self._buffer.popleft()
        self.cursor = self._handled = message.cursor
        return message


@asynccontextmanager
async def open_node(profile: str | Path, config: NodeConfig | None = None) -> AsyncIterator[Node]:
    """Start a node on a profile folder; it stops when the block ends.

    An error from the node or from the block is raised as itself, not wrapped in an
    exception group.
    """
    node = Node(profile, config)
    node._prepare()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.serve)
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = unwrap_group(group)
        if isinstance(leaf, Exception) and not isinstance(leaf, BaseExceptionGroup):
            raise leaf from None
        raise
