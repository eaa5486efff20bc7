"""Conversation guards: two agents that auto-reply to each other must not loop forever.

Messages an agent sends carry `metadata["via"] = "agent"`; a person's (`meshtalk send`, chat)
carry `"human"`. Before an agent's message is queued, its conversation is checked against
three limits (profile settings, see `meshtalk config`):

- `guard_per_minute`: messages this node's agents sent in the conversation in the last 60 s;
- `guard_agent_turns`: agent messages in a row, both directions, with no human message between;
- `guard_max_bytes`: the size of the text.

A tripped guard raises `GuardTripped` saying which limit and how to go on; nothing is queued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol.errors import GuardTripped
from .models import Direction, Message

__all__ = ["GuardLimits", "check_agent_send", "via_of"]


@dataclass(frozen=True)
class GuardLimits:
    """The three limits; defaults match the profile settings' defaults."""

    per_minute: int = 20
    agent_turns: int = 50
    max_bytes: int = 32 * 1024

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> GuardLimits:
        """Read guard_per_minute, guard_agent_turns and guard_max_bytes (defaults if absent)."""
        default = cls()
        return cls(
            settings.get("guard_per_minute", default.per_minute),
            settings.get("guard_agent_turns", default.agent_turns),
            settings.get("guard_max_bytes", default.max_bytes),
        )

    @property
    def history_needed(self) -> int:
        """How many recent messages of the conversation `check_agent_send` looks at."""
        return max(self.per_minute, self.agent_turns) + 1


def via_of(message: Message) -> str | None:
    """Who wrote a message: "agent", "human", or None when the sender did not say."""
    via = (message.metadata or {}).get("via")
    return via if isinstance(via, str) else None


def check_agent_send(
    limits: GuardLimits, text: str, recent: Sequence[Message], now_ms: int
) -> None:
    """Raise GuardTripped if an agent may not send `text` after `recent` (oldest first)."""
    size = len(text.encode())
    if size > limits.max_bytes:
        raise GuardTripped(
            f"the message is {size} bytes; agents may send at most {limits.max_bytes} "
            "(setting guard_max_bytes)"
        )
    last_minute = [
        m for m in recent
        if m.direction is Direction.OUT and via_of(m) == "agent"
        and m.timestamp_ms >= now_ms - 60_000
    ]  # fmt: skip
    if len(last_minute) >= limits.per_minute:
        raise GuardTripped(
            f"agents on this node already sent {len(last_minute)} messages in this conversation "
            f"in the last minute (limit guard_per_minute = {limits.per_minute}); wait a little"
        )
    in_a_row = 0
    for message in reversed(recent):
        if via_of(message) != "agent":
            break
        in_a_row += 1
    if in_a_row >= limits.agent_turns:
        raise GuardTripped(
            f"this conversation has had {in_a_row} agent messages in a row with no human one "
            f"(limit guard_agent_turns = {limits.agent_turns}); a person must reply "
            "(`meshtalk send` or `meshtalk chat`) before agents may go on"
        )
