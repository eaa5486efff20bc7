"""The meshtalk node: its lifecycle, and the wiring of its parts.

    async with open_node(profile_dir("alice")) as node:
        await node.send("bob", "hello", wait=True)
        async for message in node.messages(consumer="agent"):
            ...

`send` returns once the message is committed to the store and outbox (durable across kill -9);
delivery then runs in the background until the recipient acks.

Parts get ports (peer/ports.py), not the node: `Contacts`, `Sender`, `Receiver`, `Connector`,
`ConnectionKeeper`, `LinkSet`/`PeerLink`, `NodeLinkEvents`, `InboundHandler`, `NodeDiscovery`,
`Pairing`, retention (docs/architecture.md says what each does). The node opens and closes what
they share (lock, store, host) and delegates.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .._version import __version__
from ..net.connections import ConnectionKeeper
from ..net.host import (
    accept_statistics,
    announce_addrs,
    close_host,
    parse_multiaddrs,
    quiet_libp2p_logging,
    split_peer_address,
    to_libp2p_id,
)
from ..net.relay import RelayClient, RelayServer, announce_circuits
from ..profile.identity import load_or_create_identity
from ..profile.lock import ProfileLock
from ..protocol.connection import PROTOCOL_VERSIONS
from ..protocol.errors import ConfigError, unwrap_group
from ..protocol.keys import PeerId
from .config import NodeConfig
from .connecting import Connector
from .contacts import Contacts
from .discovering import NodeDiscovery
from .guards import AgentGuard
from .hosting import node_host
from .inbound import InboundHandler
from .inbound_limits import InboundLimits
from .link_events import NodeLinkEvents
from .links import LinkSet
from .listen import ensure_listening, preferred_listen_addrs
from .models import KnownPeer
from .node_contacts import NodeContacts
from .node_reach import NodeReach
from .node_rooms import NodeRooms
from .outbound import PeerLink
from .pairing import Pairing
from .reach import Reach
from .receiving import MessageStream, Receiver
from .retention import keep_pruned
from .rooms import Rooms
from .sending import Sender
from .state import NodeState, not_running
from .stats import NodeStatistics
from .store import STORE_FILE_NAME, Store, keep_wal_short

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from trio_typing import TaskStatus  # py-libp2p's trio-typing stubs stand in for trio's

__all__ = ["Node", "NodeConfig", "NodeState", "NodeStatistics", "MessageStream", "open_node"]

logger = logging.getLogger("meshtalk.node")


class Node(NodeContacts, NodeRooms, NodeReach):
    """One meshtalk node on one profile folder. Start it with `open_node` or `serve`."""

    def __init__(self, profile: str | Path, config: NodeConfig | None = None) -> None:
        self.profile = Path(profile)
        self.config = config = config or NodeConfig()
        if config.accept not in ("contacts", "anyone"):
            raise ConfigError(f"accept must be 'contacts' or 'anyone', not {config.accept!r}")
        self.clock = config.clock
        self.versions = PROTOCOL_VERSIONS
        self.agent = f"meshtalk/{__version__}"
        self.key, _ = load_or_create_identity(self.profile)
        self.peer_id = self.key.peer_id
        self.state = NodeState.CREATED
        self.listen_addrs: list[str] = []
        self.statistics_counter: collections.Counter[str] = collections.Counter()
        self._store: Store | None = None
        self._host: IHost | None = None
        self._relay_client: RelayClient | None = None
        self.relay_server: RelayServer | None = None
        self._lock: ProfileLock | None = None
        self._cancel: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._wire()

    def _wire(self) -> None:
        """Build the parts; each gets the ports it needs, none gets the node."""
        config, clock, count = self.config, self.clock, self._count
        hello = (self.versions, self.agent)
        self.inbound_limits = InboundLimits(
            config.max_inbound_streams_per_peer,
            config.max_inbound_streams,
            config.max_inbound_buffered_bytes,
        )
        self._links = LinkSet(self._new_link)
        self._contacts = Contacts(
            self.peer_id, lambda: self.store.contacts, clock, config.accept, self._links.retry
        )
        self.discovery = NodeDiscovery(
            self.key, config, clock, lambda: self.store.book, self.own_addresses,
            self._addresses_learned, count,
        )  # fmt: skip
        self._connector = Connector(
            lambda: self.host, lambda: self.store.book, self._contacts, clock, config.dial_timeout,
            self.discovery.lookup, config.max_dials_in_flight, config.handshake_timeout,
            lambda peer, address: self.relay_client.dial(peer, address),
        )  # fmt: skip
        self.reach = Reach(
            self.peer_id, lambda: self.host, self._connector.is_connected,
            lambda: self.relay_client, [split_peer_address(a) for a in config.relays],
            [split_peer_address(a) for a in config.rendezvous], self.discovery.addresses_changed,
            config.dial_timeout, config.retry_max,
        )  # fmt: skip
        self._events = NodeLinkEvents(
            self._contacts, self.discovery, self._links, lambda: self.store.book, clock,
            lambda: self.connections, self._connector,
            lambda peer: self._rooms.sync.connected(peer),
        )  # fmt: skip
        events = self._events  # the keeper's budget is set when the node starts (peer/hosting.py)
        self.connections = ConnectionKeeper(
            to_libp2p_id(self.peer_id), 0, events.superseded, events.inbound,
            on_relayed=self._relayed_connection,
        )  # fmt: skip
        guard = AgentGuard(config.guards) if config.guards is not None else None
        self._sender = Sender(
            self.key, lambda: self.store, clock, self._recipient, self._links.kick, guard, count
        )
        self._receiver = Receiver(self.peer_id, lambda: self.store, clock, count)
        self._rooms = Rooms(
            self.key, lambda: self.store, self._contacts, self._sender, self._receiver, clock,
            (self.profile.name, self.own_addresses),
            (lambda peer: self._links.get(peer).rewind(), self._addresses_learned),
        )  # fmt: skip
        self._inbound = InboundHandler(
            self.key, self._contacts, self._receiver, self._rooms, self._events,
            self.inbound_limits, config, clock, hello,
        )  # fmt: skip
        self.pairing = Pairing(
            self.peer_id, self.profile.name, config, clock,
            (lambda: self.store.db, lambda: self.store.book), self.discovery, self._contacts,
            self._connector, self._addresses_learned, room_token_used=self._room_token_used,
        )  # fmt: skip

    def _new_link(self, peer: PeerId) -> PeerLink:
        hello = (self.versions, self.agent)
        return PeerLink(
            peer, self._sender, self._connector, self._events, self.config, self._count, hello
        )

    def _count(self, name: str, n: int) -> None:
        self.statistics_counter[name] += n

    def _recipient(self, ref: str | PeerId) -> PeerId:
        return self._contacts.get(ref).peer_id

    def _addresses_learned(self, peer: PeerId) -> None:  # a waiting delivery tries them now
        self._connector.learned()
        self._links.retry(peer)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The node's store (only while the node runs)."""
        if self._store is None:
            raise not_running(self.state)
        return self._store

    @property
    def host(self) -> IHost:
        """The py-libp2p host (only while the node runs)."""
        if self._host is None:
            raise not_running(self.state)
        return self._host

    def _prepare(self) -> None:
        """Take the profile lock and open the store: errors here are plain, not groups."""
        if self._lock is not None:
            return
        if self.state is not NodeState.CREATED:
            raise not_running(self.state)
        quiet_libp2p_logging()
        parse_multiaddrs(self.config.listen)
        lock = ProfileLock(self.profile)
        try:
            self._store = Store(
                self.profile / STORE_FILE_NAME, self.config.durability, me=self.peer_id
            )
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        self.state = NodeState.STARTING

    async def serve(self, *, task_status: TaskStatus[Node] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the node until cancelled or `aclose()`; reports `started()` once it listens."""
        self._prepare()
        assert self._store is not None
        try:
            self._host = host = node_host(
                self.key, self.connections, self.config, self._inbound.serve_libp2p
            )
            self.discovery.attach(host)
            self.pairing.attach(host)
            self._relay_client = RelayClient(host, self.config.dial_timeout)
            announce_circuits(host, self.reach.circuit_addresses)
            if self.config.serve_relay:
                self.relay_server = RelayServer(host, self.config.relay_limits)
            with trio.CancelScope() as self._cancel:
                await self._run(host, self._store, task_status)
        finally:
            self.state = NodeState.STOPPING
            self._close()

    async def _run(self, host: IHost, store: Store, task_status: TaskStatus[Node]) -> None:
        preferred = preferred_listen_addrs(self.config.listen, store)
        async with host.run(parse_multiaddrs(preferred)):
            try:
                await ensure_listening(host, self.config.listen, preferred, store)
                async with trio.open_nursery() as nursery:
                    self.listen_addrs = announce_addrs(host)
                    await nursery.start(self._sender.run_committer)
                    await nursery.start(self._rooms.sync.run)
                    nursery.start_soon(keep_wal_short, store, self.config.checkpoint_interval)
                    nursery.start_soon(keep_pruned, store, self.config)  # retain_days, _mib
                    nursery.start_soon(self.connections.run)
                    await nursery.start(self.relay_client.run)
                    if self.relay_server is not None:
                        await nursery.start(self.relay_server.run)
                    self._links.start(nursery)
                    for peer in store.outbox.recipients_with_pending():
                        self._links.get(peer).kick()
                    self.discovery.run(nursery)
                    self.reach.run(nursery)
                    self._rooms.sync.start()
                    self.state = NodeState.RUNNING
                    task_status.started(self)
                    await trio.sleep_forever()
            finally:
                self._links.stop()
                await close_host(host)

    def _close(self) -> None:
        self._host = None
        self._relay_client = self.relay_server = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._contacts.forget_cache()
        self._sender.stopped()
        self._receiver.stopped()
        self.state = NodeState.STOPPED
        self._stopped.set()

    async def aclose(self) -> None:
        """Stop the node and wait until it has released its profile."""
        if self._cancel is not None:
            self._cancel.cancel()
            await self._stopped.wait()

    # -- contacts and peers ------------------------------------------------------------------

    def is_connected(self, peer: PeerId) -> bool:
        """Whether the host holds an open connection to `peer` now."""
        return self._connector.is_connected(peer)

    async def dial(self, peer: PeerId) -> None:
        """Connect to `peer` (known addresses first, then discovery); raises PeerUnreachable."""
        await self._connector.dial(peer)

    def addresses_of(self, peer: PeerId) -> list[str]:
        """Known addresses of a peer: most recently seen first, then the contact's own."""
        return self._connector.addresses_of(peer)

    async def wait_known(self, peer: str | PeerId, timeout: float | None = None) -> list[str]:
        """Wait until an address of `peer` is known; raises PeerUnreachable after `timeout` s."""
        return await self._connector.wait_known(self.resolve(peer), timeout)

    def peers(self) -> list[KnownPeer]:
        """Every peer this node knows: contacts and discovered peers, most recently seen first."""
        running = self._host is not None
        return self._connector.peers(
            lambda peer: self._connector.connection_kind(peer) if running else None
        )

    # -- sending and receiving ---------------------------------------------------------------

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
        message_id: bytes | None = None,
    ) -> bytes:
        """Queue a message durably and return its id; with wait=True, return once delivered.

        A send that returned is never lost; a send that raised queued nothing (see Sender.send:
        the guards, and a `message_id` chosen by the caller that makes a retry idempotent).
        `to` may name a room (when no contact has that name): the message goes to its members.
        """
        room = self._rooms.room_named(to) if isinstance(to, str) and conversation is None else None
        if room is not None:
            return await self._rooms.send(room, body, kind=kind, reply_to=reply_to,
                metadata=metadata, wait=wait, timeout=timeout, message_id=message_id)  # fmt: skip
        return await self._sender.send(to, body, conversation=conversation, kind=kind,
            reply_to=reply_to, metadata=metadata, wait=wait, timeout=timeout,
            message_id=message_id)  # fmt: skip

    def deliver_now(self, peer: str | PeerId) -> None:
        """Deliver what waits for `peer` now: start its link, or cut its back-off short."""
        self._links.get(peer_id := self.resolve(peer)).kick()
        self._links.retry(peer_id)

    async def wait_delivered(self, message_id: bytes, timeout: float | None = None) -> None:
        """Wait until all recipients acked a message this node sent; DeliveryFailed if one
        refused it, DeliveryTimeout after `timeout` s."""
        await self._sender.wait_delivered(message_id, timeout)

    async def wait_flushed(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is empty (everything acked or failed); False on timeout."""
        return await self._sender.wait_flushed(timeout)

    @property
    def incoming_changed(self) -> trio.Event:
        """An event set when the next message is stored (take it before reading the store)."""
        return self._receiver.changed

    def messages(self, after: int | None = None, consumer: str | None = None) -> MessageStream:
        """Incoming messages, oldest first, waiting for new ones forever.

        Resume with `after=cursor`, or name a `consumer` whose position the store remembers (a
        message counts as handled when the consumer asks for the next one).
        """
        if after is None:
            after = self.store.messages.consumer_cursor(consumer) if consumer is not None else 0
        return self._receiver.stream(after, consumer)

    def statistics(self) -> NodeStatistics:
        """Counters, outbox, links, discovery, inbound streams, connections, dials, accepts."""
        return NodeStatistics(
            counters=dict(self.statistics_counter),
            outbox=self.store.outbox.size(),
            links=self._links.statistics(),
            discovery=self.discovery.statistics(),
            inbound=self.inbound_limits.statistics(),
            connections=self.connections.statistics(),
            dials=self._connector.statistics(),
            accepts=accept_statistics(self.host),
        )


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
