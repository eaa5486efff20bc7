"""The room methods of `Mesh` (a mixin): the control socket's `room.*` operations.

    with Mesh("alice") as mesh:
        mesh.create_room("planning")
        mesh.room_invite("planning", "bob")           # bob: mesh.join_room("planning")
        mesh.send("planning", "hello, room")          # `to` may name a room
        mesh.history("planning")                      # each message carries "room"

Results are the plain dicts of docs/control.md ("Rooms").
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["MeshRooms"]


class _Calls(Protocol):
    timeout: float

    def call(
        self, op: str, on_event: Any = None, deadline: float | None = None, **args: Any
    ) -> Any: ...


class MeshRooms:
    """Rooms, for a `Mesh` (anything with its `call` and `timeout`)."""

    def create_room(self: _Calls, name: str) -> dict[str, Any]:
        """A new room with this node as its admin and only member."""
        result: dict[str, Any] = self.call("room.create", name=name)
        return result

    def rooms(self: _Calls) -> list[dict[str, Any]]:
        """Every room held here: name, id, whether this node is in it, members."""
        result: list[dict[str, Any]] = self.call("room.list")
        return result

    def room(self: _Calls, room: str) -> dict[str, Any]:
        """One room (by name or id) with its members."""
        result: dict[str, Any] = self.call("room.show", room=room)
        return result

    def members(self: _Calls, room: str) -> list[dict[str, Any]]:
        """A room's members: peer ID, the name the room's log gives, admin or not."""
        result: list[dict[str, Any]] = self.call("room.members", room=room)
        return result

    def room_invite(self: _Calls, room: str, contact: str, timeout: float = 60.0) -> dict[str, Any]:
        """Invite a contact to a room (admins only); returns once the invite is delivered."""
        result: dict[str, Any] = self.call(
            "room.invite", None, timeout + self.timeout, room=room, contact=contact,
            timeout=timeout,
        )  # fmt: skip
        return result

    def room_token(self: _Calls, room: str, ttl: float | None = None) -> dict[str, Any]:
        """A one-time room token (admins only) for an agent that is not a contact: whoever
        redeems it (`join_room(token)`, `meshtalk room join TOKEN`) pairs with this node and
        joins. Returns `token`, `expires_ms`, `room`, `room_id`."""
        result: dict[str, Any] = self.call("room.token", room=room, ttl=ttl)
        return result

    def room_invites(self: _Calls) -> list[dict[str, Any]]:
        """Invites received from contacts: room, room_id, inviter."""
        result: list[dict[str, Any]] = self.call("room.invites")
        return result

    def join_room(self: _Calls, room: str, timeout: float = 30.0) -> dict[str, Any]:
        """Accept an invite (the room's name or id) or redeem a room token, and wait until the
        admin has added this node."""
        result: dict[str, Any] = self.call(
            "room.join", None, timeout + self.timeout, room=room, timeout=timeout
        )
        return result

    def leave_room(self: _Calls, room: str) -> dict[str, Any]:
        """Leave a room: its history stays here, nothing more is sealed to this node."""
        result: dict[str, Any] = self.call("room.leave", room=room)
        return result

    def remove_member(self: _Calls, room: str, member: str) -> dict[str, Any]:
        """Remove a member (by its name in the room or peer ID; admins only)."""
        result: dict[str, Any] = self.call("room.remove", room=room, member=member)
        return result

    def promote_member(self: _Calls, room: str, member: str) -> dict[str, Any]:
        """Make a member an admin (admins only)."""
        result: dict[str, Any] = self.call("room.promote", room=room, member=member)
        return result

    def demote_member(self: _Calls, room: str, member: str) -> dict[str, Any]:
        """Take a member's admin rights; it stays a member (admins only, never the last)."""
        result: dict[str, Any] = self.call("room.demote", room=room, member=member)
        return result

    def rename_room(self: _Calls, room: str, name: str) -> dict[str, Any]:
        """Give a room a new name (admins only); every member sees it."""
        result: dict[str, Any] = self.call("room.rename", room=room, name=name)
        return result
