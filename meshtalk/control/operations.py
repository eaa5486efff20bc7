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
from ..protocol.invite_tokens import ROOM_TOKEN_PREFIX, parse_room_token
from ..protocol.keys import PeerId
from .arguments import arg, label_arg, limit_arg, message_id_arg, reader_arg, seconds_arg
from .room_operations import ROOM_OPERATION_NAMES, RoomOperations
from .server import Emit, Operation
from .views import (
    agent_view,
    connections_view,
    contact_view,
    message_view,
    peer_view,
    reach_view,
)

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
    *ROOM_OPERATION_NAMES,
)


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
        handlers: dict[str, Operation] = RoomOperations(self.node).table()
        for name in OPERATION_NAMES:
            if name in handlers:
                continue
            handlers[name] = getattr(self, name.replace(".", "_"))
        return handlers

    # Shared helpers.

    def names(self) -> dict[PeerId, str | None]:
        """Each contact's name by peer ID, and for other room members the name the room's log
        gives them."""
        node = self.node
        found: dict[PeerId, str | None] = {}
        for room in node.rooms():
            found.update((m.peer, m.name) for m in node.members(room.id))
        found.update((c.peer_id, c.name) for c in node.contacts())
        return found

    def room_names(self) -> dict[bytes, str]:
        """Each room's name, by room id (a room id is its conversation id)."""
        return {room.id: room.name for room in self.node.rooms()}

    def views(self, messages: list[Message]) -> list[dict[str, Any]]:
        known, rooms = self.names(), self.room_names()
        return [message_view(m, known, rooms) for m in messages]

    def conversation_of(self, ref: str | None) -> bytes | None:
        """A conversation id given as 32 hex digits, a contact's direct conversation, or a
        room (by name or id prefix)."""
        if ref is None:
            return None
        if len(ref) == 32:
            try:
                return bytes.fromhex(ref)
            except ValueError:
                pass
        return self.node.conversation_id(ref)

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
            "reach": reach_view(node.reach.status()),
        }

    async def whoami(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        return {
            "peer_id": str(node.peer_id),
            "name": node.config.name or self.profile_name,
            "profile": self.profile_name,
            "mesh": node.config.mesh,
            "addresses": node.own_addresses(),
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
        peer = arg(args, "peer", str)
        name = arg(args, "name", str, None)
        addresses = arg(args, "addresses", list, [])
        return contact_view(self.node.add_contact(peer, name, addresses, Trust.TRUSTED))

    async def contacts_remove(self, args: dict[str, Any], emit: Emit) -> Any:
        contact = self.node.contact(arg(args, "ref", str))
        self.node.remove_contact(contact.peer_id)
        return contact_view(contact)

    async def contacts_rename(self, args: dict[str, Any], emit: Emit) -> Any:
        contact = self.node.contact(arg(args, "ref", str))
        name = arg(args, "name", str)
        return contact_view(self.node.add_contact(contact.peer_id, name, (), contact.trust))

    async def contacts_trust(self, args: dict[str, Any], emit: Emit) -> Any:
        trust = Trust(arg(args, "trust", str))
        return contact_view(self.node.set_trust(arg(args, "ref", str), trust))

    # Messages.

    async def send(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        to, text = arg(args, "to", str), arg(args, "text", str)
        if not text.strip():  # every client's sends come here: Mesh, MCP, the CLI, chat
            raise EmptyMessage("the message is empty (or only blanks): nothing was sent")
        wait, timeout = arg(args, "wait", bool, True), seconds_arg(args, "timeout", None)
        metadata = {"via": arg(args, "via", str, "agent"), **label_arg(args)}
        explicit = self.conversation_of(arg(args, "conversation", str, None))
        chosen = message_id_arg(arg(args, "id", str, None))  # a retry names the same id
        room = node.room_named(to) if explicit is None else None
        if room is not None:  # `to` names a room (and no contact)
            summary = node.room(room)
            message_id = await node.send(to, text, metadata=metadata, message_id=chosen)
            await emit({"queued": message_id.hex(), "to": summary.name, "room": summary.name})
            conversation = room
        else:
            contact = node.contact(to)
            conversation = explicit or direct_conversation_id(node.peer_id, contact.peer_id)
            # The node checks an agent's message against the conversation guards (GuardTripped).
            message_id = await node.send(
                contact.peer_id, text, conversation=explicit, metadata=metadata,
                message_id=chosen,
            )  # fmt: skip
            await emit({"queued": message_id.hex(), "to": contact.name or str(contact.peer_id)})
        if wait:
            await node.wait_delivered(message_id, timeout)
        return {"id": message_id.hex(), "delivered": wait, "conversation": conversation.hex()}

    async def receive(self, args: dict[str, Any], emit: Emit) -> Any:
        node, readers = self.node, self.node.store.readers
        consumer = reader_arg(args, None, "consumer")  # a reader, as in `inbox`
        after = arg(args, "after", int, None)
        by_reader = consumer is not None and after is None  # what is new to the consumer
        if after is None:
            after = readers.position(consumer) if consumer is not None else 0
        conversation = self.conversation_of(arg(args, "conversation", str, None))
        wait = min(seconds_arg(args, "wait", 0) or 0.0, 300.0)
        limit = limit_arg(args, 50)
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
                known = self.names() if batch else {}
                rooms = self.room_names() if batch else {}
                for message in batch:
                    after = message.cursor
                    if conversation is not None and message.conversation != conversation:
                        continue
                    sender = contacts.get(message.author)
                    trusted = sender is not None and sender.trust is Trust.TRUSTED
                    if trusted or message.conversation in rooms:  # a room: only from members
                        found.append(agent_view(message, known, rooms, contact=trusted))
                if found:
                    break
                if batch:  # all hidden; a page cut by size may have more behind it
                    await trio.lowlevel.checkpoint()
                    continue
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
        reader = reader_arg(args, DEFAULT_READER) or DEFAULT_READER
        limit = limit_arg(args, 1000)
        found = readers.unread(reader, limit)
        if found and not arg(args, "peek", bool, False):
            readers.advance(reader, found[-1].cursor)
        return self.views(found)

    async def history(self, args: dict[str, Any], emit: Emit) -> Any:
        conversation = self.conversation_of(arg(args, "conversation", str, None))
        after, limit = arg(args, "after", int, None), limit_arg(args, 100)
        reader = reader_arg(args, None)
        if after is None:  # the newest `limit` messages
            found = self.node.store.messages.latest(conversation, limit)
        else:
            found = self._fetch(conversation, after, limit)
        if reader is not None:  # what it shows is read, when it leaves no gap (store/readers.py)
            self.node.store.readers.displayed(reader, conversation, found)
        return self.views(found)

    async def follow(self, args: dict[str, Any], emit: Emit) -> Any:
        conversation = self.conversation_of(arg(args, "conversation", str, None))
        after = arg(args, "after", int, None)
        reader = reader_arg(args, None)
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
            if found:  # a backlog: the next page now, not after the poll
                continue
            with trio.move_on_after(_FOLLOW_POLL):
                await incoming.wait()

    async def prune(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        older = arg(args, "older_than_days", (int, float), None)
        max_mib = arg(args, "max_mib", (int, float), None)
        for name, value, most in (("older_than_days", older, 36500), ("max_mib", max_mib, 2**40)):
            if value is not None and not 0 <= value <= most:  # NaN fails too
                raise ConfigError(f"control argument {name!r} must be from 0 to {most}")
        if older is None and max_mib is None:  # the profile's retain_days and retain_mib
            older, max_mib = node.config.retain_days, node.config.retain_mib
        conversation = self.conversation_of(arg(args, "conversation", str, None))
        now_ms = node.clock()
        rule = retention_rule(now_ms, older, max_mib, conversation)
        if rule is None:
            return {"rule": None, **PruneReport(dry_run=True).to_json()}
        report = await prune(
            node.store, rule, now_ms, node.config.max_age_ms,
            dry_run=arg(args, "dry_run", bool, False), release=arg(args, "release", bool, True),
        )  # fmt: skip
        limits = {"older_than_days": older or None, "max_mib": max_mib or None}
        return {"rule": limits, **report.to_json()}

    # Pairing and invites.

    async def pair_offer(self, args: dict[str, Any], emit: Emit) -> Any:
        pairing = self.node.pairing
        ttl = seconds_arg(args, "ttl", self.pair_ttl) or 0.0
        offer = pairing.offer(ttl, arg(args, "name", str, None))
        await emit({"code": offer.code, "expires_ms": offer.expires_ms})
        try:
            return contact_view(await pairing.wait(offer))
        finally:
            pairing.cancel(offer)

    async def pair_join(self, args: dict[str, Any], emit: Emit) -> Any:
        code, name = arg(args, "code", str), arg(args, "name", str, None)
        timeout = seconds_arg(args, "timeout", 60) or 0.0
        return contact_view(await self.node.pairing.join(code, timeout, name))

    async def invite_create(self, args: dict[str, Any], emit: Emit) -> Any:
        ttl = seconds_arg(args, "ttl", self.invite_ttl) or 0.0
        token, expires = self.node.pairing.invite(ttl)
        return {"token": token, "expires_ms": expires}

    async def invite_join(self, args: dict[str, Any], emit: Emit) -> Any:
        token, name = arg(args, "token", str), arg(args, "name", str, None)
        timeout = seconds_arg(args, "timeout", 30) or 0.0
        if token.strip().startswith(ROOM_TOKEN_PREFIX):  # pair, and join the room too
            room = await self.node.join_room_token(token, timeout)
            inviter = self.node.contact(parse_room_token(token).invite.peer_id)
            return {**contact_view(inviter), "room": room.name, "room_id": room.id.hex()}
        return contact_view(await self.node.pairing.join_invite(token, timeout, name))
