"""AutoGen teams in meshtalk rooms (`pip install 'meshtalk[autogen]'`, autogen-agentchat 0.7).

- `RoomMemberAgent`: a ChatAgent of a local team that stands for one member of a room, on
  another machine. What the team said since its last turn is posted to the room (once, however
  many room agents the team has), and the member's next post in the room is this agent's reply.
- `serve_room(mesh, room, agent, answer=...)`: the member's side: every post of `answer` (the
  team's node) is answered in the room by running a local AutoGen agent on what was said in the
  room since its last answer.

Every member holds the room; the team's node is a member like the others. The room's per-room
turn guard still applies: agents that answer each other forever are stopped by the node.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

try:
    from autogen_agentchat.agents import BaseChatAgent
    from autogen_agentchat.base import ChatAgent, Response
    from autogen_agentchat.messages import BaseChatMessage, TextMessage
    from autogen_core import CancellationToken
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "meshtalk's AutoGen support needs autogen-agentchat 0.7: pip install 'meshtalk[autogen]'"
    ) from exc

from ..facade.mesh import Mesh
from ..protocol.room_errors import NotAMember
from .autogen import wait_texts

__all__ = ["RoomMemberAgent", "serve_room"]


@dataclass
class _TeamRoom:
    """What the room agents of one team share (one Mesh, one room): the team messages already
    posted, the names of the agents standing for members (their messages came from the room
    and are not posted again), and the store cursor where the team's first turn began."""

    agents: set[str] = field(default_factory=set)
    posted: set[str] = field(default_factory=set)
    start: int | None = None


_TEAM_ROOMS: weakref.WeakKeyDictionary[Mesh, dict[str, _TeamRoom]] = weakref.WeakKeyDictionary()


def _team_room(mesh: Mesh, room: str) -> _TeamRoom:
    return _TEAM_ROOMS.setdefault(mesh, {}).setdefault(room, _TeamRoom())


def member_peer_id(mesh: Mesh, room: str, member: str) -> str:
    """The peer ID of `member` (its name in the room's log, or a peer ID) in `room`."""
    for found in mesh.members(room):
        if member in (found["peer_id"], found["name"]):
            return str(found["peer_id"])
    raise NotAMember(f"{member!r} is not a member of room {room!r}; see `meshtalk room members`")


class RoomMemberAgent(BaseChatAgent):
    """An agent of a local team that is really a member of a meshtalk room on another machine."""

    def __init__(
        self,
        name: str,
        mesh: Mesh,
        room: str,
        member: str,
        *,
        description: str | None = None,
        reply_timeout: float = 120.0,
    ) -> None:
        super().__init__(name, description or f"{member}, an agent in room {room} elsewhere")
        self._mesh, self._room, self._member = mesh, room, member
        self._reply_timeout = reply_timeout
        self._shared = _team_room(mesh, room)
        self._shared.agents.add(name)
        self._member_id: str | None = None
        self._cursor: int | None = None

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        """It answers with text."""
        return (TextMessage,)

    async def on_messages(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> Response:
        """Post what the team said that the room has not seen, then wait for the member's post."""
        shared = self._shared
        if self._member_id is None:
            self._member_id = await asyncio.to_thread(
                member_peer_id, self._mesh, self._room, self._member
            )
        if shared.start is None:  # the members' answers are what arrives after the first post
            newest = await asyncio.to_thread(self._mesh.history, limit=1)
            shared.start = newest[-1]["cursor"] if newest else 0
        if self._cursor is None:
            self._cursor = shared.start
        new = [m for m in messages if m.source not in shared.agents and m.id not in shared.posted]
        if new:
            text = "\n\n".join(f"{m.source}: {m.to_model_text()}" for m in new)
            await asyncio.to_thread(self._mesh.send, self._room, text, wait=False)
            shared.posted.update(m.id for m in new)
        reply = await self._wait_post(self._member_id)
        return Response(chat_message=TextMessage(content=reply, source=self.name))

    async def _wait_post(self, author: str) -> str:
        assert self._cursor is not None
        posts, self._cursor = await wait_texts(
            self._mesh, self._cursor, self._room, author, self._reply_timeout
        )
        if not posts:
            raise TimeoutError(
                f"{self._member} did not post in room {self._room} within {self._reply_timeout:g} s"
            )
        return "\n\n".join(posts)

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        """Start over: the next turn waits for posts after the team's next first post."""
        self._cursor = None
        self._shared.start = None
        self._shared.posted.clear()


async def serve_room(
    mesh: Mesh,
    room: str,
    agent: ChatAgent,
    *,
    answer: str,
    consumer: str = "autogen-room",
    max_messages: int | None = None,
) -> int:
    """Take part in `room` with `agent` until cancelled (or `max_messages` answered): each post
    of the member `answer` (its name in the room or peer ID) is answered in the room with the
    agent's last message, run on everything said in the room since the previous answer."""
    author = await asyncio.to_thread(member_peer_id, mesh, room, answer)
    heard: list[str] = []
    answered = 0
    while max_messages is None or answered < max_messages:
        batch = await asyncio.to_thread(
            mesh.receive, consumer=consumer, conversation=room, wait=30.0
        )
        for message in batch["messages"]:
            heard.append(f"{message['from_name'] or message['from']}: {message['text']}")
            if message["from"] != author:
                continue  # context for the next answer, not a turn of ours
            result = await agent.run(task="\n\n".join(heard))
            heard.clear()
            last = result.messages[-1]
            text = last.to_model_text() if isinstance(last, BaseChatMessage) else str(last)
            await asyncio.to_thread(mesh.send, room, text, wait=False)
            answered += 1
            await agent.on_reset(CancellationToken())
            if max_messages is not None and answered >= max_messages:
                break
    return answered
