"""The node's room methods, a mixin of `Node` (peer/rooms.py does the work).

room = node.create_room("planning")
await node.room_invite("planning", "bob")       # bob: await node.join_room("planning")
await node.send("planning", "hello, room")      # `to` may name a room
node.history("planning")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ..protocol.connection import ROOMS_VERSION
from ..protocol.errors import UnsupportedVersion
from ..protocol.invite_tokens import parse_room_token
from ..protocol.room_errors import RoomError

if TYPE_CHECKING:
    from ..protocol.keys import PeerId
    from ..protocol.room_state import Member
    from ..protocol.room_wire import RoomInvite
    from .contacts import Contacts
    from .link_events import NodeLinkEvents
    from .models import Conversation, Message
    from .pairing import Pairing
    from .receiving import Receiver
    from .rooms import Rooms
    from .store import RoomSummary

__all__ = ["NodeRooms"]


class NodeRooms:
    """Rooms and conversations by name, on a node whose `_rooms` part is wired."""

    _rooms: Rooms
    _contacts: Contacts
    _events: NodeLinkEvents
    pairing: Pairing
    _receiver: Receiver

    def create_room(self, name: str) -> RoomSummary:
        """A new room with this node as its only member and admin."""
        return self._rooms.create(name)

    async def room_invite(
        self,
        room: str | bytes,
        contact: str | PeerId,
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> bytes:
        """Invite a contact to a room (admins only); returns the invite message's id.

        A contact whose node is older than rooms (protocol 1 at its last handshake) cannot
        join: UnsupportedVersion, before the invite is queued when the version is known, after
        it was delivered (`wait`) when that handshake told it."""
        known = self._contacts.get(contact)
        self._check_rooms_version(known.peer_id, known.name, "")
        message_id = await self._rooms.invite(room, contact, wait=wait, timeout=timeout)
        if wait:
            self._check_rooms_version(
                known.peer_id, known.name, "; it got the invite as a note only"
            )
        return message_id

    def _check_rooms_version(self, peer: PeerId, name: str | None, note: str) -> None:
        version = self._events.protocol(peer)
        if version is not None and version < ROOMS_VERSION:
            raise UnsupportedVersion(
                f"{name or peer}'s node speaks protocol {version}, which has no rooms{note}; it "
                "must upgrade meshtalk to a release with rooms before it can be invited"
            )

    def room_token(self, room: str | bytes, ttl: float = 86400.0) -> tuple[str, int]:
        """A one-time room token (admins only) for an agent that is not a contact yet: its
        holder pairs with this node (becoming a contact), is invited and joins. Returns
        (token, expires_ms)."""
        room_id = self._rooms.require_admin(room, "make room tokens")
        return self.pairing.invite(ttl, room=room_id)

    def _room_token_used(self, peer: PeerId, room: bytes) -> None:
        """A room token's holder paired: invite it (queued, as any invite)."""

        async def invite() -> None:
            await self._rooms.invite(room, peer)

        self._rooms.sync.schedule(invite)

    async def join_room_token(self, token: str, timeout: float = 60.0) -> RoomSummary:
        """Redeem a room token: pair with the admin that made it, then join its room once
        its invite arrives (redeeming is the consent), waiting until added."""
        parsed = parse_room_token(token)
        with trio.move_on_after(timeout) as scope:
            inviter = (await self.pairing.join_invite(token, timeout)).peer_id
            while True:
                changed = self._receiver.changed
                invited = [i for p, i in self.room_invites() if p == inviter]
                if any(i.room == parsed.room for i in invited):
                    break
                await changed.wait()
            return await self._rooms.join(
                parsed.room.hex(), timeout=scope.deadline - trio.current_time()
            )
        raise RoomError(
            f"the room's admin did not invite this node within {timeout:g} s of the pairing; "
            "it invites once its node has the pairing (see `meshtalk room invites`)"
        )

    def room_invites(self) -> list[tuple[PeerId, RoomInvite]]:
        """Invites received from trusted contacts, newest first: (inviter, invite)."""
        return self._rooms.invites()

    async def join_room(
        self, room: str, *, wait: bool = True, timeout: float | None = 30.0
    ) -> RoomSummary:
        """Accept an invite (room id, name or id prefix); with `wait`, until added."""
        return await self._rooms.join(room, wait=wait, timeout=timeout)

    async def leave_room(self, room: str | bytes) -> None:
        """Leave a room; its history stays here, nothing more is sealed to this node."""
        await self._rooms.leave(room)

    async def remove_member(self, room: str | bytes, member: str | PeerId) -> None:
        """Remove a member from a room (admins only)."""
        await self._rooms.remove(room, member)

    async def promote_member(self, room: str | bytes, member: str | PeerId) -> None:
        """Make a member an admin of a room (admins only)."""
        await self._rooms.promote(room, member)

    async def demote_member(self, room: str | bytes, member: str | PeerId) -> None:
        """Take a member's admin rights in a room (admins only; never the last admin)."""
        await self._rooms.demote(room, member)

    async def rename_room(self, room: str | bytes, name: str) -> None:
        """Give a room a new name (admins only); every member sees it."""
        await self._rooms.rename(room, name)

    def rooms(self) -> list[RoomSummary]:
        """Every room held: the ones this node is in first, then by name."""
        return self._rooms.rooms()

    def room(self, room: str | bytes) -> RoomSummary:
        """One room by id, name or id prefix."""
        return self._rooms.summary(room)

    def members(self, room: str | bytes) -> list[Member]:
        """A room's members now, admins first."""
        return self._rooms.members(room)

    def room_named(self, ref: str) -> bytes | None:
        """The room `ref` names (a name or id prefix) when it names no contact, else None;
        UnknownPeer when it names neither."""
        return self._rooms.room_named(ref)

    def conversation_id(self, ref: bytes | str | PeerId) -> bytes:
        """A conversation's id from its id, a contact (the direct one) or a room."""
        return self._rooms.conversation_id(ref)

    def history(
        self, conversation: bytes | str | PeerId, after: int = 0, limit: int = 100
    ) -> list[Message]:
        """Messages of a conversation (an id, a contact for the direct one, or a room), both
        ways."""
        return self._rooms.history(conversation, after, limit)

    def conversations(self) -> list[Conversation]:
        """Every conversation, most recently active first."""
        return self._rooms.conversations()
