"""The membership changes a node signs in a room it is in (a mixin of `Rooms`): leave,
remove, promote, demote and rename.

Each signs one log entry (protocol/rooms.py) with the room's next Lamport, applies it here
and pushes it to every other member as a `room-log` message; the member set is then what
the replay rules make of all the entries held (protocol/room_state.py), on every member
alike, so changes signed concurrently on two nodes converge once the entries meet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..protocol.keys import PeerId
from ..protocol.room_errors import NotAMember, NotRoomAdmin, RoomError
from ..protocol.room_wire import KIND_LOG, split_log
from ..protocol.rooms import MAX_NAME_LENGTH, RoomOp, member_entry, rename_entry

if TYPE_CHECKING:
    from ..protocol.keys import NodeKey
    from ..protocol.room_state import RoomState
    from .contacts import Contacts
    from .ports import Clock
    from .room_sync import RoomSync
    from .store import Store

__all__ = ["RoomChanges"]


class RoomChanges:
    """Leave, remove, promote, demote and rename, for `Rooms` (which provides the rest)."""

    _key: NodeKey
    _own: PeerId
    _store: Callable[[], Store]
    _clock: Clock
    _contacts: Contacts
    _co_members: frozenset[PeerId] | None
    sync: RoomSync
    _in_room: Callable[[str | bytes], tuple[bytes, RoomState]]
    _apply: Callable[[bytes, Sequence[bytes]], None]

    async def leave(self, ref: str | bytes) -> None:
        """Leave a room: sign this node's removal, tell the members, keep the history."""
        room, state = self._in_room(ref)
        await self._sign(room, state, RoomOp.REMOVE, self._own)
        self._store().rooms.leave(room, self._clock())
        self._co_members = None

    async def remove(self, ref: str | bytes, member: str | PeerId) -> None:
        """Remove a member (an admin only); it is told, and gets nothing sealed from now on."""
        room, state = self._as_admin(ref, "remove members")
        await self._sign(room, state, RoomOp.REMOVE, self._member(state, member))

    async def promote(self, ref: str | bytes, member: str | PeerId) -> None:
        """Make a member an admin (an admin only)."""
        room, state = self._as_admin(ref, "promote members")
        peer = self._member(state, member)
        if state.is_admin(peer):
            raise RoomError(f"{member} is an admin of room {state.name!r} already")
        await self._sign(room, state, RoomOp.PROMOTE, peer)

    async def demote(self, ref: str | bytes, member: str | PeerId) -> None:
        """Take a member's admin rights (an admin only; it stays a member). The last admin
        cannot be demoted: every room keeps one."""
        room, state = self._as_admin(ref, "demote admins")
        peer = self._member(state, member)
        if not state.is_admin(peer):
            raise RoomError(f"{member} is not an admin of room {state.name!r}")
        if state.admins == {peer}:
            raise RoomError(f"{member} is the only admin of room {state.name!r}; promote another")
        await self._sign(room, state, RoomOp.DEMOTE, peer)

    async def rename(self, ref: str | bytes, name: str) -> None:
        """Give a room a new name (an admin only); every member sees it."""
        room, state = self._as_admin(ref, "rename it")
        store = self._store()
        entry = rename_entry(
            self._key, room, name[:MAX_NAME_LENGTH], store.rooms.bump_lamport(room), self._clock()
        )
        await self._push(room, state, entry)

    def require_admin(self, ref: str | bytes, what: str) -> bytes:
        """The id of a room this node is an admin of (NotAMember, NotRoomAdmin saying that
        it cannot `what`)."""
        return self._as_admin(ref, what)[0]

    def _as_admin(self, ref: str | bytes, what: str) -> tuple[bytes, RoomState]:
        room, state = self._in_room(ref)
        if not state.is_admin(self._own):
            raise NotRoomAdmin(f"only an admin of room {state.name!r} can {what}; ask one")
        return room, state

    def _member(self, state: RoomState, ref: str | PeerId) -> PeerId:
        """A member by its name in the room or its peer ID (or a contact's name)."""
        if isinstance(ref, PeerId):
            peer = ref
        else:
            named = [p for p, m in state.members.items() if ref in (m.name, str(p))]
            peer = named[0] if named else self._contacts.resolve(ref)
        if not state.is_member(peer):
            raise NotAMember(f"{ref} is not a member of room {state.name!r}")
        return peer

    async def _sign(self, room: bytes, state: RoomState, op: RoomOp, peer: PeerId) -> None:
        lamport = self._store().rooms.bump_lamport(room)
        await self._push(
            room, state, member_entry(self._key, op, room, peer, lamport, self._clock())
        )

    async def _push(self, room: bytes, state: RoomState, entry: bytes) -> None:
        """Apply `entry` here, then send it to every other member the room had before it."""
        self._apply(room, [entry])
        told = tuple(p for p in state.members if p != self._own)
        for part in split_log([entry]):
            await self.sync.send(room, told, KIND_LOG, {"log": list(part)})
