"""Conversation guards: two agents that auto-reply to each other must not loop forever.

Messages an agent sends carry `metadata["via"] = "agent"`; a person's (`meshtalk send`, chat)
carry `"human"`. Before an agent's message is queued, its conversation is checked against
three limits (profile settings, see `meshtalk config`):

- `guard_per_minute`: messages this node's agents sent in the conversation in the last 60 s
  (counted in memory since the node started);
- `guard_agent_turns`: agent messages in a row, both directions, with no human message between;
- `guard_max_bytes`: the size of the text.

A tripped guard raises `GuardTripped` saying which limit and how to go on; nothing is queued.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..profile.settings import default_settings
from ..protocol.codec import packb
from ..protocol.errors import GuardTripped

__all__ = ["GuardLimits", "AgentGuard", "via_of", "Authorship"]


@dataclass(frozen=True)
class GuardLimits:
    """The three limits (their defaults are the profile settings' defaults)."""

    per_minute: int
    agent_turns: int
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> GuardLimits:
        """Read guard_per_minute, guard_agent_turns and guard_max_bytes."""
        return cls(
            settings["guard_per_minute"], settings["guard_agent_turns"], settings["guard_max_bytes"]
        )

    @classmethod
    def defaults(cls) -> GuardLimits:
        """The limits of a profile whose settings were never changed."""
        return cls.from_settings(default_settings())


def via_of(metadata: Any) -> str | None:
    """Who wrote a message, from its metadata: "agent", "human", or None if it did not say."""
    via = metadata.get("via") if isinstance(metadata, dict) else None
    return via if isinstance(via, str) else None


Authorship = Iterable[tuple[str, int, Any]]  # (direction, timestamp_ms, metadata), newest first


def _size_of(body: Any) -> int:
    if isinstance(body, str):
        return len(body.encode())
    try:
        return len(packb(body))
    except Exception:  # not a body the envelope can carry: building it refuses it
        return 0


class AgentGuard:
    """Checks agent sends against the limits; remembers recent agent sends per conversation.

    The per-minute count lives in memory (a restarted node starts a fresh minute); the run of
    agent messages is read from the store, newest first, only as far as it goes.
    """

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self._sent: dict[bytes, collections.deque[int]] = {}

    def check(
        self, conversation: bytes, body: Any, history: Callable[[], Authorship], now_ms: int
    ) -> None:
        """Raise GuardTripped if an agent may not send `body` now (a text, or any body: its
        packed size counts)."""
        limits = self.limits
        size = _size_of(body)
        if size > limits.max_bytes:
            raise GuardTripped(
                f"the message is {size} bytes; agents may send at most {limits.max_bytes} "
                "(setting guard_max_bytes)"
            )
        sent = self._sent.setdefault(conversation, collections.deque())
        while sent and sent[0] < now_ms - 60_000:
            sent.popleft()
        if len(sent) >= limits.per_minute:
            raise GuardTripped(
                f"agents on this node already sent {len(sent)} messages in this conversation "
                f"in the last minute (limit guard_per_minute = {limits.per_minute}); wait a little"
            )
        in_a_row = 0
        for _, _, metadata in history():
            if via_of(metadata) != "agent" or in_a_row >= limits.agent_turns:
                break
            in_a_row += 1
        if in_a_row >= limits.agent_turns:
            raise GuardTripped(
                f"this conversation has had {in_a_row} agent messages in a row with no human "
                f"one (limit guard_agent_turns = {limits.agent_turns}); a person must reply "
                "(`meshtalk send` or `meshtalk chat`) before agents may go on"
            )

    def sent(self, conversation: bytes, now_ms: int) -> None:
        """Count an agent message that was queued."""
        self._sent.setdefault(conversation, collections.deque()).append(now_ms)
