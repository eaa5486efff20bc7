"""What the node's API hands out: contacts, conversations and stored messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from ..protocol.errors import ConfigError, InvalidPeerId
from ..protocol.keys import PeerId
from ..protocol.room_wire import KIND_INVITE
from ..protocol.rooms import MAX_NAME_LENGTH

__all__ = [
    "Trust",
    "Contact",
    "KnownPeer",
    "Conversation",
    "Message",
    "MessageStatus",
    "Direction",
]


MAX_CONTACT_NAME: Final = 64


def check_contact_name(name: str) -> None:
    """Raise ConfigError unless `name` can name a contact (names are resolved before peer IDs)."""
    if len(name) > MAX_CONTACT_NAME or not name.strip():
        raise ConfigError(f"a contact name is 1 to {MAX_CONTACT_NAME} characters, not {name!r}")
    try:
        PeerId.from_string(name)
    except InvalidPeerId:
        return
    raise ConfigError(f"a contact name cannot be a peer ID: {name!r}")


class Trust(enum.StrEnum):
    """How far a contact is trusted: `trusted` may deliver messages, `blocked` may not."""

    TRUSTED = "trusted"
    BLOCKED = "blocked"


class Direction(enum.StrEnum):
    """Whether a stored message came in or went out."""

    IN = "in"
    OUT = "out"


class MessageStatus(enum.StrEnum):
    """Where a message stands: received, or for outgoing ones queued -> sent -> delivered/failed."""

    RECEIVED = "received"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Contact:
    """A peer this node knows by name, with its trust level and known addresses."""

    peer_id: PeerId
    name: str | None
    trust: Trust
    addresses: tuple[str, ...]
    added_ms: int
    last_seen_ms: int | None


@dataclass(frozen=True, slots=True)
class KnownPeer:
    """A contact or discovered peer: its addresses, where they came from, and whether it is on."""

    peer_id: PeerId
    name: str | None
    trust: Trust | None  # None: not a contact
    addresses: tuple[str, ...]
    sources: tuple[str, ...]  # rendezvous, mdns, bootstrap, identify, connection, contact
    last_seen_ms: int | None
    online: bool
    connection: str | None = None  # "direct" or "relayed" while online


@dataclass(frozen=True, slots=True)
class Conversation:
    """A direct (two-peer) or group conversation."""

    id: bytes
    kind: str
    name: str | None
    members: tuple[PeerId, ...]
    lamport: int
    created_ms: int
    last_cursor: int | None
    message_count: int


@dataclass(frozen=True, slots=True)
class Message:
    """A message as stored locally; `cursor` orders all messages of this node."""

    cursor: int
    id: bytes
    conversation: bytes
    author: PeerId
    recipients: tuple[PeerId, ...]
    direction: Direction
    kind: str
    body: Any
    timestamp_ms: int
    lamport: int
    reply_to: bytes | None
    metadata: dict[str, Any] | None
    status: MessageStatus
    error: str | None
    stored_ms: int

    @property
    def text(self) -> str:
        """The body as text (str bodies as they are, a room invite as a sentence, others as
        their repr)."""
        if isinstance(self.body, str):
            return self.body
        if self.kind == KIND_INVITE and isinstance(self.body, dict):
            name = str(self.body.get("name", ""))[:MAX_NAME_LENGTH]
            return f"an invitation to room {name!r} (accept it: meshtalk room join {name})"
        return repr(self.body)
