"""The control socket's room operations (docs/control.md, "Rooms"): one handler per op.

`room.create`, `room.list`, `room.show`, `room.members`, `room.invite`, `room.invites`,
`room.join`, `room.leave`, `room.remove`, `room.promote`, `room.demote` and `room.rename`;
and `export`, a conversation's (or room's) verifiable transcript. Posting and reading use
`send`, `history`, `receive` and `follow`, whose `to` or `conversation` may name a room.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..peer.transcripts import export_transcript
from ..protocol.errors import ConfigError
from ..protocol.invite_tokens import ROOM_TOKEN_PREFIX
from .arguments import arg, seconds_arg
from .views import member_view, room_view

if TYPE_CHECKING:
    from ..peer.node import Node
    from .server import Emit, Operation

__all__ = ["ROOM_OPERATION_NAMES", "RoomOperations"]

_MAX_TOKEN_TTL = 30 * 86400.0

ROOM_OPERATION_NAMES: tuple[str, ...] = (
    "room.create",
    "room.list",
    "room.show",
    "room.members",
    "room.invite",
    "room.invites",
    "room.token",
    "room.join",
    "room.leave",
    "room.remove",
    "room.promote",
    "room.demote",
    "room.rename",
    "export",
)


def _text(args: dict[str, Any], name: str) -> str:
    """A required text argument."""
    value: str = arg(args, name, str)
    return value


def _timeout(args: dict[str, Any], default: float) -> float:
    return seconds_arg(args, "timeout", default) or 0.0


class RoomOperations:
    """The room handlers of one running node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def table(self) -> dict[str, Operation]:
        """Op name -> handler."""
        return {name: getattr(self, name.replace(".", "_")) for name in ROOM_OPERATION_NAMES}

    def _room(self, ref: str) -> dict[str, Any]:
        node = self.node
        summary = node.room(ref)
        return room_view(summary, node.members(summary.id), node.peer_id)

    async def room_create(self, args: dict[str, Any], emit: Emit) -> Any:
        summary = self.node.create_room(_text(args, "name"))
        return self._room(summary.id.hex())

    async def room_list(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        return [room_view(s, node.members(s.id), node.peer_id) for s in node.rooms()]

    async def room_show(self, args: dict[str, Any], emit: Emit) -> Any:
        return self._room(_text(args, "room"))

    async def room_members(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        return [
            member_view(m, node.peer_id) for m in node.members(node.room(_text(args, "room")).id)
        ]

    async def room_invite(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        room, contact = node.room(_text(args, "room")), node.contact(_text(args, "contact"))
        message_id = await node.room_invite(
            room.id, contact.peer_id, wait=True, timeout=_timeout(args, 60.0)
        )
        return {"room": room.name, "room_id": room.id.hex(), "invited": str(contact.peer_id),
                "invited_name": contact.name, "id": message_id.hex()}  # fmt: skip

    async def room_invites(self, args: dict[str, Any], emit: Emit) -> Any:
        names = {c.peer_id: c.name for c in self.node.contacts()}
        return [
            {"room": invite.name, "room_id": invite.room.hex(), "inviter": str(inviter),
             "inviter_name": names.get(inviter)}
            for inviter, invite in self.node.room_invites()
        ]  # fmt: skip

    async def room_token(self, args: dict[str, Any], emit: Emit) -> Any:
        summary = self.node.room(_text(args, "room"))
        ttl = seconds_arg(args, "ttl", 86400.0) or 0.0
        if not 0 < ttl <= _MAX_TOKEN_TTL:
            raise ConfigError(f"a room token's ttl must be 1 s to 30 days, not {ttl:g} s")
        token, expires = self.node.room_token(summary.id, ttl)
        return {"token": token, "expires_ms": expires, "room": summary.name,
                "room_id": summary.id.hex()}  # fmt: skip

    async def room_join(self, args: dict[str, Any], emit: Emit) -> Any:
        room = _text(args, "room")
        timeout = _timeout(args, 30.0)
        if room.strip().startswith(ROOM_TOKEN_PREFIX):  # a token: pair with the admin first
            await emit({"joining": "the room of this token"})
            summary = await self.node.join_room_token(room, timeout)
        else:
            await emit({"joining": room})
            summary = await self.node.join_room(room, wait=True, timeout=timeout)
        return self._room(summary.id.hex())

    async def room_leave(self, args: dict[str, Any], emit: Emit) -> Any:
        summary = self.node.room(_text(args, "room"))
        await self.node.leave_room(summary.id)
        return self._room(summary.id.hex())

    async def room_remove(self, args: dict[str, Any], emit: Emit) -> Any:
        return await self._member_change(args, self.node.remove_member)

    async def room_promote(self, args: dict[str, Any], emit: Emit) -> Any:
        return await self._member_change(args, self.node.promote_member)

    async def room_demote(self, args: dict[str, Any], emit: Emit) -> Any:
        return await self._member_change(args, self.node.demote_member)

    async def _member_change(
        self, args: dict[str, Any], change: Callable[[bytes, Any], Awaitable[None]]
    ) -> Any:
        """Remove, promote or demote the `member` of `room`; the room as it is then."""
        node = self.node
        summary = node.room(_text(args, "room"))
        await change(summary.id, _text(args, "member"))  # a name in the room, contact or ID
        return self._room(summary.id.hex())

    async def room_rename(self, args: dict[str, Any], emit: Emit) -> Any:
        summary = self.node.room(_text(args, "room"))
        await self.node.rename_room(summary.id, _text(args, "name"))
        return self._room(summary.id.hex())

    async def export(self, args: dict[str, Any], emit: Emit) -> Any:
        node = self.node
        ref = _text(args, "conversation")
        conversation = _hex_id(ref) or node.conversation_id(ref)
        found = export_transcript(node.store, conversation)
        summary = {
            "conversation": conversation.hex(),
            "kind": found.kind,
            "messages": found.messages,
            "unsigned": found.unsigned,
        }
        await emit({"transcript": summary})
        size = len(found.head)
        await emit({"chunk": found.head})
        for page in found.pages():  # a page per event: the node never holds the whole file
            size += len(page)
            await emit({"chunk": page})
        return {**summary, "bytes": size}


def _hex_id(ref: str) -> bytes | None:
    """A conversation id given as 32 hex digits."""
    try:
        return bytes.fromhex(ref) if len(ref) == 32 else None
    except ValueError:
        return None
