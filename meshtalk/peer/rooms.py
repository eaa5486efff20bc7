"""Rooms: create, invite, join, leave and post; and what the inbound path asks of rooms.

The model is docs/rooms.md: a room is its signed membership log (protocol/rooms.py,
protocol/room_state.py), held by every member (store/rooms.py). Here:

- **create** signs a create entry; the creator is the first admin.
- **invite** (an admin, to a contact) sends a `room-invite` message in their direct
  conversation, carrying the room's log so the invitee can see what it joins.
- **join** is the invitee's consent: it stores the log from the invite and sends `room-join`
  back; the admin checks it invited that peer, signs the add entry and pushes it to every
  member, and the whole log to the newcomer, who is then a member.
- **leave** signs the node's own removal and pushes it; **remove** (an admin) removes another.
- **send** seals one signed envelope to every other member (Sender.send_to); members need
  not be contacts: an admin the node accepted vouched for them.
- The inbound side (the `RoomInbox` port): co-members of a room pass the door, control
  messages (`room-log`, `room-sync`) and joins are acted on here and not stored, and every
  change of a log releases held-back messages and records the members' addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from ..protocol.envelope import direct_conversation_id
from ..protocol.errors import MessageRejected, UnknownPeer
from ..protocol.keys import PeerId
from ..protocol.room_errors import NotAMember, NotRoomAdmin, RoomError, RoomFull, UnknownRoom
from ..protocol.room_state import MAX_MEMBERS, Member, RoomState
from ..protocol.room_wire import (
    CONTROL_KINDS,
    KIND_INVITE,
    KIND_JOIN,
    KIND_LOG,
    RoomInvite,
    RoomJoin,
    SyncSummary,
    parse_log,
    split_log,
)
from ..protocol.rooms import (
    MAX_ADDRESSES,
    MAX_NAME_LENGTH,
    add_entry,
    create_entry,
    entry_hash,
)
from .models import Conversation as ConversationSummary
from .models import Message, Trust
from .room_changes import RoomChanges
from .room_sync import RoomSync
from .sending import Conversation
from .store import AddressSource, RoomSummary

if TYPE_CHECKING:
    from ..protocol.forwarding import OpenedMessage
    from ..protocol.keys import NodeKey
    from .contacts import Contacts
    from .ports import Clock, Inbox
    from .sending import Sender
    from .store import Store

__all__ = ["Rooms"]


class Rooms(RoomChanges):
    """The rooms of one node (and its `RoomInbox` port); membership changes are in
    `RoomChanges` (peer/room_changes.py)."""

    def __init__(
        self,
        key: NodeKey,
        store: Callable[[], Store],
        contacts: Contacts,
        sender: Sender,
        inbox: Inbox,
        clock: Clock,
        me: tuple[str, Callable[[], Sequence[str]]],
        links: tuple[Callable[[PeerId], None], Callable[[PeerId], None]],
    ) -> None:
        """`me`: this node's display name in rooms and its addresses now; `links`: (rewind,
        learned): copies with old cursors were queued for a peer, addresses of a peer learned."""
        self._key = key
        self._own = key.peer_id
        self._store = store
        self._contacts = contacts
        self._sender = sender
        self._inbox = inbox
        self._clock = clock
        self._name, self._addresses = me
        rewind, self._learned = links
        self.sync = RoomSync(key, store, sender, rewind)
        self._co_members: frozenset[PeerId] | None = None
        self._changed = trio.Event()

    # -- the inbound side -------------------------------------------------------------------

    def holds(self, conversation: bytes) -> bool:
        """Whether `conversation` is a room held here."""
        return self._store().rooms.is_held(conversation)

    def is_blocked(self, peer: PeerId) -> bool:
        """Whether `peer` is a blocked contact."""
        contact = self._contacts.find(peer)
        return contact is not None and contact.trust is Trust.BLOCKED

    def admits(self, peer: PeerId) -> bool:
        """Whether `peer` may open message streams as a member of a room this node is in."""
        if self._co_members is None:
            rooms = self._store().rooms
            members: set[PeerId] = set()
            for summary in rooms.rooms():
                if not summary.left:
                    members.update(rooms.state(summary.id).members)
            self._co_members = frozenset(members - {self._own})
        return peer in self._co_members and not self.is_blocked(peer)

    def handle(self, opened: OpenedMessage) -> bool:
        """Act on a join or a room control message; True when it is consumed (acked, not
        stored). Raises a MeshtalkError to refuse it."""
        envelope = opened.envelope
        if envelope.kind != KIND_JOIN and envelope.kind not in CONTROL_KINDS:
            if opened.forwarded_by is not None:  # catch-up in progress from that member
                self.sync.forwarded(envelope.conversation, opened.forwarded_by)
            return False
        if opened.forwarded_by is not None:
            raise MessageRejected(f"a {envelope.kind} message is never forwarded")
        if envelope.kind == KIND_JOIN:
            self._joined(envelope.author, RoomJoin.parse(envelope.body))
            return True
        room = envelope.conversation
        if not self._store().rooms.is_held(room, joined=True):
            raise UnknownRoom(f"{self._own} is not in room {room.hex()}")
        if envelope.kind == KIND_LOG:
            self._apply(room, parse_log(envelope.body))
        else:
            if not self._store().rooms.state(room).is_member(envelope.author):
                raise NotAMember(f"{envelope.author} is not a member of room {room.hex()}")
            self.sync.answer(room, envelope.author, SyncSummary.parse(envelope.body))
        return True

    def _joined(self, joiner: PeerId, join: RoomJoin) -> None:
        """An invitee consents: sign its add entry, push it to all, the whole log to it."""
        store, room = self._store(), join.room
        if not store.rooms.is_held(room, joined=True):
            raise UnknownRoom(f"{self._own} is not in room {room.hex()}")
        state = store.rooms.state(room)
        if not state.is_admin(self._own):
            raise NotRoomAdmin(f"{self._own} is no longer an admin of room {state.name!r}")
        if not store.room_messages.invited(room, joiner):
            raise NotAMember(f"{joiner} was not invited to room {state.name!r} by {self._own}")
        member = state.members.get(joiner)
        if member is None or (member.name, member.addresses) != (join.name, join.addresses):
            if member is None and len(state.members) >= MAX_MEMBERS:
                raise RoomFull(f"room {state.name!r} has {MAX_MEMBERS} members, the most")
            lamport = store.rooms.bump_lamport(room)
            entry = add_entry(
                self._key, room, joiner, join.name, join.addresses, lamport, self._clock()
            )
            self._apply(room, [entry])
            self.sync.push_log(room, tuple(set(state.members) - {joiner}), (entry,))
        self.sync.push_log(room, (joiner,), store.rooms.log(room).entries())

    def _apply(self, room: bytes, entries: Sequence[bytes]) -> None:
        """Store log entries, then act on the change: addresses, held messages, syncs."""
        store = self._store()
        before = store.rooms.state(room)
        if not store.rooms.add_entries(room, entries):
            return
        self._co_members = None
        state = store.rooms.state(room)
        now = self._clock()
        for peer, member in state.members.items():
            changed = peer != self._own and member != before.members.get(peer)
            if changed and store.book.learn(peer, member.addresses, AddressSource.ROOM, now):
                self._learned(peer)
        store.room_messages.release(room, self._inbox.store_incoming)
        self._drop_copies_of_the_gone(room, before, state)
        if state.is_member(self._own):
            became = not before.is_member(self._own)
            for peer in state.members:
                if became or peer not in before.members:
                    self.sync.request(room, peer)
        self._changed.set()
        self._changed = trio.Event()

    def _drop_copies_of_the_gone(self, room: bytes, before: RoomState, now: RoomState) -> None:
        """Copies queued for members that left (all of them, if this node did) would never be
        taken: a former member's door refuses this node (rooms.md)."""
        if before.is_member(self._own) and not now.is_member(self._own):
            gone = [p for p in before.members if p != self._own]
            why = NotAMember(f"this node is no longer a member of room {now.name!r}")
        else:
            gone = [p for p in before.members if p not in now.members]
            why = NotAMember(f"no longer a member of room {now.name!r}")
        if gone:
            self._sender.drop_room_copies(room, gone, why)

    # -- rooms ------------------------------------------------------------------------------

    def find(self, ref: str | bytes) -> bytes:
        """A room's id from its id, name or id prefix (UnknownRoom, RoomError if ambiguous)."""
        rooms = self._store().rooms
        if isinstance(ref, bytes):
            if not rooms.is_held(ref):
                raise UnknownRoom(f"no room {ref.hex()} is held here; see `meshtalk room list`")
            return ref
        return rooms.find(ref)

    def rooms(self) -> list[RoomSummary]:
        """Every room held: the ones this node is in first, then by name."""
        return self._store().rooms.rooms()

    def summary(self, ref: str | bytes) -> RoomSummary:
        """One room as `rooms()` lists it."""
        return self._store().rooms.summary(self.find(ref))

    def members(self, ref: str | bytes) -> list[Member]:
        """The room's members now, admins first, then by name."""
        state = self._store().rooms.state(self.find(ref))
        return sorted(state.members.values(), key=lambda m: (not m.admin, m.name, str(m.peer)))

    def _in_room(self, ref: str | bytes) -> tuple[bytes, RoomState]:
        room = self.find(ref)
        store = self._store()
        state = store.rooms.state(room)
        if store.rooms.summary(room).left or not state.is_member(self._own):
            raise NotAMember(f"this node is not a member of room {state.name!r}")
        return room, state

    def create(self, name: str) -> RoomSummary:
        """A new room, with this node as its only member and admin.

        The creator adds itself too (an add of a member updates its name and addresses), so
        that members see its name and can reach it from the log alone."""
        store = self._store()
        room = store.rooms.create(create_entry(self._key, name, self._clock()), self._clock())
        addresses = tuple(self._addresses())[:MAX_ADDRESSES]
        entry = add_entry(
            self._key, room, self._own, self._name[:MAX_NAME_LENGTH], addresses,
            store.rooms.bump_lamport(room), self._clock(),
        )  # fmt: skip
        self._apply(room, [entry])
        self._co_members = None
        return store.rooms.summary(room)

    async def invite(self, ref: str | bytes, contact: str | PeerId, **send: Any) -> bytes:
        """Invite a contact (an admin only); the id of the invite message (send's options)."""
        room, state = self._in_room(ref)
        peer = self._contacts.get(contact).peer_id
        if not state.is_admin(self._own):
            raise NotRoomAdmin(f"only an admin of room {state.name!r} can invite; ask one")
        if state.is_member(peer):
            raise RoomError(f"{contact} is a member of room {state.name!r} already")
        if len(state.members) >= MAX_MEMBERS:
            raise RoomFull(f"room {state.name!r} has {MAX_MEMBERS} members, the most")
        log = split_log(self._store().rooms.log(room).entries())[0]
        body = RoomInvite(room, state.name, log).to_body()
        return await self._sender.send(peer, body, kind=KIND_INVITE, **send)

    def invites(self) -> list[tuple[PeerId, RoomInvite]]:
        """The invites received from trusted contacts, newest first, one per room."""
        seen: set[bytes] = set()
        found: list[tuple[PeerId, RoomInvite]] = []
        for received in self._store().room_messages.invites():
            contact = self._contacts.find(received.inviter)
            if received.invite.room in seen or contact is None or contact.trust is Trust.BLOCKED:
                continue
            seen.add(received.invite.room)
            found.append((received.inviter, received.invite))
        return found

    def _invite_for(self, ref: str) -> tuple[PeerId, RoomInvite]:
        invites = self.invites()
        key = ref.strip().lower()
        tests: tuple[Callable[[RoomInvite], bool], ...] = (
            lambda i: i.room.hex() == key,
            lambda i: i.name == ref,
            lambda i: i.name.casefold() == ref.casefold(),
            lambda i: len(key) >= 4 and i.room.hex().startswith(key),
        )
        for test in tests:
            found = [(p, i) for p, i in invites if test(i)]
            if len(found) == 1:
                return found[0]
            if found:
                raise RoomError(f"several invites match {ref[:80]!r}; use the room's id")
        names = ", ".join(f"{i.name!r} ({i.room.hex()[:8]})" for _, i in invites[:10])
        listed = f"invites held: {names}" if names else "no invite was received"
        raise UnknownRoom(f"no invite to a room {ref[:80]!r}; {listed}")

    async def join(
        self, ref: str, *, wait: bool = True, timeout: float | None = 30.0
    ) -> RoomSummary:
        """Accept an invite (a room id, name or id prefix): store the room's log, ask the
        inviter to add this node and, with `wait`, wait until the added log arrives."""
        inviter, invite = self._invite_for(ref)
        if entry_hash(invite.log[0]) != invite.room:
            raise RoomError(f"the invite to {invite.name!r} carries another room's log")
        store = self._store()
        store.rooms.create(invite.log[0], self._clock())
        self._apply(invite.room, invite.log[1:])
        self._co_members = None
        addresses = tuple(self._addresses())[:MAX_ADDRESSES]
        body = RoomJoin(invite.room, self._name[:MAX_NAME_LENGTH], addresses).to_body()
        await self._sender.send(inviter, body, kind=KIND_JOIN)
        if wait:
            await self.wait_member(invite.room, timeout)
        return store.rooms.summary(invite.room)

    async def wait_member(self, room: bytes, timeout: float | None) -> None:
        """Wait until the room's log shows this node as a member."""
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            while not self._store().rooms.state(room).is_member(self._own):
                await self._changed.wait()
            return
        raise RoomError(
            f"not added to the room after {timeout} s: the inviter adds this node when it "
            "gets the join, which stays queued until then (see `meshtalk room list`)"
        )

    async def send(self, ref: str | bytes, body: Any, **send: Any) -> bytes:
        """Post to a room: one signed envelope, sealed to every other member."""
        room, state = self._in_room(ref)
        others = tuple(peer for peer in state.members if peer != self._own)
        if not others:
            raise RoomError(f"nobody else is in room {state.name!r} yet; invite a contact first")
        conversation = Conversation(room, "group", tuple(state.members))
        return await self._sender.send_to(others, body, conversation, **send)

    # -- conversations by name --------------------------------------------------------------

    def conversation_id(self, ref: bytes | str | PeerId) -> bytes:
        """A conversation's id from its id, a contact (the direct one) or a room's name or id."""
        if isinstance(ref, bytes):
            return ref
        try:
            return direct_conversation_id(self._own, self._contacts.resolve(ref))
        except UnknownPeer:
            pass
        assert isinstance(ref, str)  # a PeerId always resolves
        try:
            return self._store().rooms.find(ref)
        except UnknownRoom:
            raise UnknownPeer(
                f"no contact or room is named {ref[:80]!r}, and it is not a peer ID"
            ) from None

    def room_named(self, ref: str | PeerId) -> bytes | None:
        """The room `ref` names when it names no contact (send's `to` may be a room)."""
        if isinstance(ref, PeerId):
            return None
        try:
            self._contacts.resolve(ref)
        except UnknownPeer:
            return self.conversation_id(ref)  # a room, or UnknownPeer naming both
        return None

    def history(self, ref: bytes | str | PeerId, after: int, limit: int) -> list[Message]:
        """Messages of a conversation (see `conversation_id`), both ways, in store order."""
        return self._store().messages.history(self.conversation_id(ref), after, limit)

    def conversations(self) -> list[ConversationSummary]:
        """Every conversation, most recently active first."""
        return self._store().messages.conversations()
