"""What the control socket can ask of a node: one handler per operation (docs/control.md).

`Operations` holds one running node and has one method per operation, named after it
(`contacts.add` is `Operations.contacts_add`); `table()` maps the op names to them, and
`build_operations` is that table for a node. Handlers take checked arguments and return plain
values (JSON-ready, see `views`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import trio

from .._version import __version__
from ..net.host import split_peer_address
from ..peer.models import Message, Trust
from ..peer.node import Node
from ..peer.retention import PruneReport, prune, retention_rule
from ..profile.settings import default_settings
from ..protocol.control import CONTROL_VERSION
from ..protocol.envelope import direct_conversation_id
from ..protocol.errors import ConfigError, EmptyMessage
from ..protocol.keys import PeerId
from .server import Emit, Operation
from .views import agent_view, connections_view, contact_view, message_view, peer_view

__all__ = ["DEFAULT_READER", "OPERATION_NAMES", "Operations", "build_operations"]

_FOLLOW_POLL = 0.5  # also catch messages sent by other local tools
DEFAULT_READER = "cli"  # whose position `inbox` uses when no reader is named

# Every op name of docs/control.md; each is served by the method of the same name, "." as "_".
OPERATION_NAMES: tuple[str, ...] = (
    "hello",
    "status",
    "peers",
    "contacts.list",
    "contacts.add",
    "contacts.remove",
    "contacts.rename",
    "contacts.trust",
    "send",
    "receive",
    "conversations",
    "whoami",
    "inbox",
    "history",
    "follow",
    "prune",
    "pair.offer",
    "pair.join",
    "invite.create",
    "invite.join",
    "shutdown",
)


def _arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """Argument `name` of a request, checked against `kind`; required when there is no default."""
    value = args.get(name, default)
    if value is ...:
        raise ConfigError(f"the control request needs {name!r}")
    if value is not None and value is not default and not isinstance(value, kind):
        raise ConfigError(f"control argument {name!r} has the wrong type")
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"control argument {name!r} has the wrong type")
    return value


def _limit(args: dict[str, Any], default: int) -> int:
    """The `limit` argument: how many messages, from 1 to 1000 (a negative LIMIT is none)."""
    limit: int = _arg(args, "limit", int, default)
    if not 1 <= limit <= 1000:
        raise ConfigError("control argument 'limit' must be from 1 to 1000")
    return limit


def _message_id(given: str | None) -> bytes | None:
    """The `id` a client chose for its message (32 hex digits), so that a retry is idempotent."""
    if given is None:
        return None
    try:
        chosen = bytes.fromhex(given) if len(given) == 32 else b""
    except ValueError:
        chosen = b""
    if not chosen:
        raise ConfigError("control argument 'id' must be 32 hex digits (a UUIDv7 message id)")
    return chosen


def _reader(args: dict[str, Any], default: str | None, name: str = "reader") -> str | None:
    """The `reader` argument (or `name`): a short name whose read position the node keeps."""
    reader: str | None = _arg(args, name, str, default)
    if reader is not None and not 0 < len(reader) <= 64:
        raise ConfigError(f"control argument {name!r} must be a name of 1 to 64 characters")
    return reader


def build_operations(
    node: Node,
    profile_name: str,
    stop: Callable[[], None],
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Operation]:
    """The handlers for one running node (`settings`: the profile's, for the pairing timeouts)."""
    return Operations(node, profile_name, stop, settings).table()


class Operations:
    """The control operations of one running node; `stop` is called by `shutdown`."""

    def __init__(
        self,
        node: Node,
        profile_name: str,
        stop: Callable[[], None],
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.node = node
        self.profile_name = profile_name
        self.stop = stop
        self.started = time.time()
        settings = {**default_settings(), **(settings or {})}
        self.pair_ttl, self.invite_ttl = settings["pair_timeout"], settings["invite_timeout"]
        self.points = {str(split_peer_address(a)[0]) for a in node.config.rendezvous}

    def table(self) -> dict[str, Operation]:
        """Op name -> handler, for `ControlServer`."""
        handlers: dict[str, Operation] = {}
        for name in OPERATION_NAMES:
            handlers[name] = getattr(self, name.replace(".", "_"))
        return handlers

    # Shared helpers.

    def names(self) -> dict[PeerId, str | None]:
        """Each contact's name, by peer ID."""
        return {c.peer_id: c.name for c in self.node.contacts()}

    def views(self, messages: list[Message]) -> list[dict[str, Any]]:
        known = self.names()
        return [message_view(m, known) for m in messages]

    def conversation_of(self, ref: str | None) -> bytes | None:
        """A conversation id given as 32 hex digits, or a contact's direct conversation."""
        if ref is None:
            return None
        if len(ref) == 32:
            try:
                return bytes.fromhex(ref)
            except ValueError:
                pass
        contact = self.node.contact(ref)
        return direct_conversation_id(self.node.peer_id, contact.peer_id)

    def _fetch(self, conversation: bytes | None, after: int, limit: int) -> list[Message]:
        messages = self.node.store.messages
        if conversation is None:
            return messages.all_messages(after, limit)
        return messages.history(conversation, after, limit)

    # The node.

    async def hello(self, args: dict[str, Any], emit: Emit) -> Any:
        return {
            "control_version": CONTROL_VERSION,
            "version": __version__,
            "peer_id": str(self.node.peer_id),
            "profile": self.profile_name,
            "pid": os.getpid(),
        }

    async def status(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        contacts = node.contacts()
        stats = node.statistics()
        discovery = stats.discovery.to_json()
        return {
            **(await self.hello(args, emit)),
            "name": node.config.name or self.profile_name,
            "mesh": node.config.mesh,
            "uptime_s": round(time.time() - self.started, 1),
            "listening": node.listen_addrs,
            "rendezvous": discovery["rendezvous"],
            "rendezvous_point": discovery["point"],
            "mdns": discovery["mdns"],
            "contacts": len(contacts),
            "contacts_online": [
                c.name or str(c.peer_id) for c in contacts if node.is_connected(c.peer_id)
            ],
            "outbox": stats.outbox,
            "received": stats.counters.get("received", 0),
            "refused": stats.counters.get("refused", 0),
            "connections": connections_view(stats),
        }

    async def whoami(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        return {
            "peer_id": str(node.peer_id),
            "name": node.config.name or self.profile_name,
            "profile": self.profile_name,
            "mesh": node.config.mesh,
            "addresses": list(node.listen_addrs),
            "version": __version__,
        }

    async def shutdown(self, args: dict[str, Any], emit: Emit) -> Any:
        self.stop()
        return {"stopping": True}

    # Peers and contacts.

    async def peers(self, args: dict[str, Any], emit: Emit) -> Any:
        return [
            {**peer_view(p), "rendezvous_point": str(p.peer_id) in self.points}
            for p in self.node.peers()
        ]

    async def contacts_list(self, args: dict[str, Any], emit: Emit) -> Any:
        return [contact_view(c) for c in self.node.contacts()]

    async def contacts_add(self, args: dict[str, Any], emit: Emit) -> Any:
        peer = _arg(args, "peer", str)
        name = _arg(args, "name", str, None)
        addresses = _arg(args, "addresses", list, [])
        return contact_view(self.node.add_contact(peer, name, addresses, Trust.TRUSTED))

    async def contacts_remove(self, args: dict[str, Any], emit: Emit) -> Any:
        contact = self.node.contact(_arg(args, "ref", str))
        self.node.remove_contact(contact.peer_id)
        return contact_view(contact)

    async def contacts_rename(self, args: dict[str, Any], emit: Emit) -> Any:
        contact = self.node.contact(_arg(args, "ref", str))
        name = _arg(args, "name", str)
        return contact_view(self.node.add_contact(contact.peer_id, name, (), contact.trust))

    async def contacts_trust(self, args: dict[str, Any], emit: Emit) -> Any:
        trust = Trust(_arg(args, "trust", str))
        return contact_view(self.node.set_trust(_arg(args, "ref", str), trust))

    # Messages.

    async def send(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        to, text = _arg(args, "to", str), _arg(args, "text", str)
        if not text.strip():  # every client's sends come here: Mesh, MCP, the CLI, chat
            raise EmptyMessage("the message is empty (or only blanks): nothing was sent")
        wait, timeout = _arg(args, "wait", bool, True), _arg(args, "timeout", (int, float), None)
        via = _arg(args, "via", str, "agent")
        explicit = self.conversation_of(_arg(args, "conversation", str, None))
        chosen = _message_id(_arg(args, "id", str, None))  # a retry names the same id
        contact = node.contact(to)
        conversation = explicit or direct_conversation_id(node.peer_id, contact.peer_id)
        # The node checks an agent's message against the conversation guards (GuardTripped).
        message_id = await node.send(
            contact.peer_id, text, conversation=explicit, metadata={"via": via},
            message_id=chosen,
        )  # fmt: skip
        await emit({"queued": message_id.hex(), "to": contact.name or str(contact.peer_id)})
        if wait:
            await node.wait_delivered(message_id, timeout)
        return {"id": message_id.hex(), "delivered": wait, "conversation": conversation.hex()}

    async def receive(self, args: dict[str, Any], emit: Emit) -> Any:
        node, readers = self.node, self.node.store.readers
        consumer = _reader(args, None, "consumer")  # a reader, as in `inbox`
        after = _arg(args, "after", int, None)
        by_reader = consumer is not None and after is None  # what is new to the consumer
        if after is None:
            after = readers.position(consumer) if consumer is not None else 0
        conversation = self.conversation_of(_arg(args, "conversation", str, None))
        wait = min(float(_arg(args, "wait", (int, float), 0)), 300.0)
        limit = _limit(args, 50)
        found: list[dict[str, Any]] = []
        with trio.move_on_after(wait):
            while True:
                incoming = node.incoming_changed
                if by_reader:
                    assert consumer is not None
                    batch = readers.unread(consumer, limit, conversation, after)
                else:
                    batch = node.store.messages.incoming(after, limit)
                contacts = {c.peer_id: c for c in node.contacts()} if batch else {}
                known = {peer: c.name for peer, c in contacts.items()}
                for message in batch:
                    after = message.cursor
                    if conversation is not None and message.conversation != conversation:
                        continue
                    sender = contacts.get(message.author)
                    if sender is not None and sender.trust is Trust.TRUSTED:
                        found.append(agent_view(message, known))
                if found or len(batch) == limit:
                    break
                await incoming.wait()
        if consumer is not None:  # with a conversation, only that conversation is read
            readers.advance(consumer, after, conversation)
        return {"messages": found, "cursor": after}

    async def conversations(self, args: dict[str, Any], emit: Emit) -> Any:
        known = self.names()
        return [
            {"id": c.id.hex(), "kind": c.kind, "name": c.name,
             "members": [str(m) for m in c.members],
             "member_names": [known.get(m) for m in c.members],
             "message_count": c.message_count, "last_cursor": c.last_cursor}
            for c in self.node.conversations()
        ]  # fmt: skip

    async def inbox(self, args: dict[str, Any], emit: Emit) -> Any:
        readers = self.node.store.readers
        reader = _reader(args, DEFAULT_READER) or DEFAULT_READER
        limit = _limit(args, 1000)
        found = readers.unread(reader, limit)
        if found and not _arg(args, "peek", bool, False):
            readers.advance(reader, found[-1].cursor)
        return self.views(found)

    async def history(self, args: dict[str, Any], emit: Emit) -> Any:
        conversation = self.conversation_of(_arg(args, "conversation", str, None))
        after, limit = _arg(args, "after", int, None), _limit(args, 100)
        reader = _reader(args, None)
        if after is None:  # the newest `limit` messages
            found = self.node.store.messages.latest(conversation, limit)
        else:
            found = self._fetch(conversation, after, limit)
        if reader is not None:  # what it shows is read, when it leaves no gap (store/readers.py)
            self.node.store.readers.displayed(reader, conversation, found)
        return self.views(found)

    async def follow(self, args: dict[str, Any], emit: Emit) -> Any:
        conversation = self.conversation_of(_arg(args, "conversation", str, None))
        after = _arg(args, "after", int, None)
        reader = _reader(args, None)
        if after is None:
            after = self.node.store.messages.last_cursor()
        while True:
            incoming = self.node.incoming_changed
            found = self._fetch(conversation, after, 100)
            for view in self.views(found):
                await emit({"message": view})
                after = view["cursor"]
            if reader is not None and found:  # emitted: shown to the reader
                self.node.store.readers.displayed(reader, conversation, found)
            with trio.move_on_after(_FOLLOW_POLL):
                await incoming.wait()

    async def prune(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        older = _arg(args, "older_than_days", (int, float), None)
        max_mib = _arg(args, "max_mib", (int, float), None)
        for name, value, most in (("older_than_days", older, 36500), ("max_mib", max_mib, 2**40)):
            if value is not None and not 0 <= value <= most:  # NaN fails too
                raise ConfigError(f"control argument {name!r} must be from 0 to {most}")
        if older is None and max_mib is None:  # the profile's retain_days and retain_mib
            older, max_mib = node.config.retain_days, node.config.retain_mib
        conversation = self.conversation_of(_arg(args, "conversation", str, None))
        now_ms = node.clock()
        rule = retention_rule(now_ms, older, max_mib, conversation)
        if rule is None:
            return {"rule": None, **PruneReport(dry_run=True).to_json()}
        report = await prune(
            node.store, rule, now_ms, node.config.max_age_ms,
            dry_run=_arg(args, "dry_run", bool, False), release=_arg(args, "release", bool, True),
        )  # fmt: skip
        limits = {"older_than_days": older or None, "max_mib": max_mib or None}
        return {"rule": limits, **report.to_json()}

    # Pairing and invites.

    async def pair_offer(self, args: dict[str, Any], emit: Emit) -> Any:
        pairing = self.node.pairing
        ttl = _arg(args, "ttl", (int, float), self.pair_ttl)
        offer = pairing.offer(ttl, _arg(args, "name", str, None))
        await emit({"code": offer.code, "expires_ms": offer.expires_ms})
        try:
            return contact_view(await pairing.wait(offer))
        finally:
            pairing.cancel(offer)

    async def pair_join(self, args: dict[str, Any], emit: Emit) -> Any:
        code, name = _arg(args, "code", str), _arg(args, "name", str, None)
        timeout = _arg(args, "timeout", (int, float), 60)
        return contact_view(await self.node.pairing.join(code, timeout, name))

    async def invite_create(self, args: dict[str, Any], emit: Emit) -> Any:
        ttl = _arg(args, "ttl", (int, float), self.invite_ttl)
        token, expires = self.node.pairing.invite(ttl)
        return {"token": token, "expires_ms": expires}

    async def invite_join(self, args: dict[str, Any], emit: Emit) -> Any:
        token, name = _arg(args, "token", str), _arg(args, "name", str, None)
        timeout = _arg(args, "timeout", (int, float), 30)
        return contact_view(await self.node.pairing.join_invite(token, timeout, name))
