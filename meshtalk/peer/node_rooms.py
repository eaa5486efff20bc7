"""The node's room methods, a mixin of `Node` (peer/rooms.py does the work).

room = node.create_room("planning")
await node.room_invite("planning", "bob")       # bob: await node.join_room("planning")
await node.send("planning", "hello, room")      # `to` may name a room
node.history("planning")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol.connection import ROOMS_VERSION
from ..protocol.errors import UnsupportedVersion

if TYPE_CHECKING:
    from ..protocol.keys import PeerId
    from ..protocol.room_state import Member
    from ..protocol.room_wire import RoomInvite
    from .contacts import Contacts
    from .link_events import NodeLinkEvents
    from .models import Conversation, Message
    from .rooms import Rooms
    from .store import RoomSummary

__all__ = ["NodeRooms"]


class NodeRooms:
    """Rooms and conversations by name, on a node whose `_rooms` part is wired."""

    _rooms: Rooms
    _contacts: Contacts
    _events: NodeLinkEvents

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
