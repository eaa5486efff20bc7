"""`AsyncMesh`: `Mesh` for asyncio code (agent frameworks that are not trio).

    async with AsyncMesh("alice") as mesh:
        await mesh.send("bob", "hello", wait=True)
        batch = await mesh.receive(wait=30)

Every call runs the same `Mesh` method in a worker thread; long-polls are taken in slices so
that a cancelled task frees its thread soon.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, ParamSpec, TypeVar

from ..protocol.errors import ControlError
from .mesh import Mesh
from .offer import PairingOffer

__all__ = ["AsyncMesh"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_WAIT_SLICE = 1.0  # seconds an AsyncMesh long-poll holds a worker thread at a time


class AsyncMesh:
    """`Mesh` for asyncio code: the same methods, awaited (each call runs in a worker thread)."""

    def __init__(
        self,
        profile: str | os.PathLike[str] | None = None,
        *,
        embedded: bool | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._args = (profile, embedded, timeout)
        self._mesh: Mesh | None = None

    async def start(self) -> AsyncMesh:
        """Connect to (or start) the node; `async with AsyncMesh(...)` does it for you."""
        profile, embedded, timeout = self._args
        self._mesh = await asyncio.to_thread(Mesh, profile, embedded=embedded, timeout=timeout)
        return self

    @property
    def sync(self) -> Mesh:
        """The underlying `Mesh` (after `start`)."""
        if self._mesh is None:
            raise ControlError("AsyncMesh is not started: use `async with AsyncMesh(...)`")
        return self._mesh

    async def aclose(self) -> None:
        """Let go of the node."""
        if self._mesh is not None:
            await asyncio.to_thread(self._mesh.close)

    async def __aenter__(self) -> AsyncMesh:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, method: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return await asyncio.to_thread(method, *args, **kwargs)

    async def call(self, op: str, **args: Any) -> Any:
        """Run any control operation."""
        return await self._run(self.sync.call, op, **args)

    async def whoami(self) -> dict[str, Any]:
        """This node."""
        return await self._run(self.sync.whoami)

    async def send(self, to: str, text: str, **kwargs: Any) -> str:
        """See `Mesh.send`."""
        return await self._run(self.sync.send, to, text, **kwargs)

    async def receive(
        self, after: int | None = None, *, wait: float = 0.0, **kwargs: Any
    ) -> dict[str, Any]:
        """See `Mesh.receive`. Long waits are taken in slices of at most a second, so that
        cancelling the awaiting task frees its worker thread within a second."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            step = max(0.0, min(_WAIT_SLICE, deadline - loop.time()))
            batch = await self._run(self.sync.receive, after, wait=step, **kwargs)
            if batch["messages"] or loop.time() >= deadline:
                return batch
            if kwargs.get("consumer") is None:
                after = batch["cursor"]

    async def messages(
        self, after: int | None = None, *, consumer: str | None = None, poll: float = 30.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Every message from trusted contacts, waiting for new ones forever."""
        while True:
            batch = await self.receive(after, wait=poll, consumer=consumer)
            for message in batch["messages"]:
                yield message
            after = batch["cursor"]

    async def inbox(
        self, *, reader: str | None = None, peek: bool = False, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """See `Mesh.inbox`."""
        return await self._run(self.sync.inbox, reader=reader, peek=peek, limit=limit)

    async def history(self, conversation: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """See `Mesh.history`."""
        return await self._run(self.sync.history, conversation, **kwargs)

    async def conversations(self) -> list[dict[str, Any]]:
        """See `Mesh.conversations`."""
        return await self._run(self.sync.conversations)

    async def peers(self) -> list[dict[str, Any]]:
        """See `Mesh.peers`."""
        return await self._run(self.sync.peers)

    async def contacts(self) -> list[dict[str, Any]]:
        """See `Mesh.contacts`."""
        return await self._run(self.sync.contacts)

    async def add_contact(self, peer: str, name: str | None = None) -> dict[str, Any]:
        """See `Mesh.add_contact`."""
        return await self._run(self.sync.add_contact, peer, name)

    async def start_pairing(self, ttl: float | None = None) -> PairingOffer:
        """See `Mesh.start_pairing` (await `asyncio.to_thread(offer.wait)` for the result)."""
        return await self._run(self.sync.start_pairing, ttl)

    async def pair_join(self, code: str, **kwargs: Any) -> dict[str, Any]:
        """See `Mesh.pair_join`."""
        return await self._run(self.sync.pair_join, code, **kwargs)

    async def invite(self, ttl: float | None = None) -> str:
        """See `Mesh.invite`."""
        return await self._run(self.sync.invite, ttl)

    async def join(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """See `Mesh.join`."""
        return await self._run(self.sync.join, token, **kwargs)

    # -- rooms (see MeshRooms) --------------------------------------------------------------

    async def create_room(self, name: str) -> dict[str, Any]:
        """See `Mesh.create_room`."""
        return await self._run(self.sync.create_room, name)

    async def rooms(self) -> list[dict[str, Any]]:
        """See `Mesh.rooms`."""
        return await self._run(self.sync.rooms)

    async def room(self, room: str) -> dict[str, Any]:
        """See `Mesh.room`."""
        return await self._run(self.sync.room, room)

    async def members(self, room: str) -> list[dict[str, Any]]:
        """See `Mesh.members`."""
        return await self._run(self.sync.members, room)

    async def room_invite(self, room: str, contact: str, **kwargs: Any) -> dict[str, Any]:
        """See `Mesh.room_invite`."""
        return await self._run(self.sync.room_invite, room, contact, **kwargs)

    async def room_token(self, room: str, ttl: float | None = None) -> dict[str, Any]:
        """See `Mesh.room_token`."""
        return await self._run(self.sync.room_token, room, ttl)

    async def room_invites(self) -> list[dict[str, Any]]:
        """See `Mesh.room_invites`."""
        return await self._run(self.sync.room_invites)

    async def join_room(self, room: str, **kwargs: Any) -> dict[str, Any]:
        """See `Mesh.join_room`."""
        return await self._run(self.sync.join_room, room, **kwargs)

    async def leave_room(self, room: str) -> dict[str, Any]:
        """See `Mesh.leave_room`."""
        return await self._run(self.sync.leave_room, room)

    async def remove_member(self, room: str, member: str) -> dict[str, Any]:
        """See `Mesh.remove_member`."""
        return await self._run(self.sync.remove_member, room, member)

    async def promote_member(self, room: str, member: str) -> dict[str, Any]:
        """See `Mesh.promote_member`."""
        return await self._run(self.sync.promote_member, room, member)

    async def demote_member(self, room: str, member: str) -> dict[str, Any]:
        """See `Mesh.demote_member`."""
        return await self._run(self.sync.demote_member, room, member)

    async def rename_room(self, room: str, name: str) -> dict[str, Any]:
        """See `Mesh.rename_room`."""
        return await self._run(self.sync.rename_room, room, name)
