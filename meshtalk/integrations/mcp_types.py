"""What the tools of `meshtalk mcp` take and return, typed so that the tool list describes them.

Each parameter type carries its description (`Annotated[..., Field(description=...)]`) and each
result is a TypedDict, so the MCP client sees an input schema whose every property says what
it is, and an output schema with real properties. The result shapes are those of the control
operations (docs/control.md, `meshtalk.control.views`).
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

__all__ = [
    "After",
    "Code",
    "Contact",
    "Conversation",
    "ConversationFilter",
    "ConversationForSend",
    "Conversations",
    "Identity",
    "Message",
    "Messages",
    "PairJoined",
    "PairStarted",
    "PairStatus",
    "Peer",
    "Peers",
    "SendResult",
    "Text",
    "To",
    "WaitSeconds",
]

_CONVERSATION = (
    "A conversation is one thread of messages: your direct conversation with one contact, or "
    "a named group. Its id is 32 hex characters, as listed by list_conversations or given in "
    "each message's `conversation` field; a contact's name or peer ID also names your direct "
    "conversation with them."
)

# -- parameters -------------------------------------------------------------------------------

To = Annotated[
    str,
    Field(
        description="Who receives the message: a contact's name (as list_peers shows it), "
        "their peer ID (12D3KooW...), or a room's name (list_rooms): every member gets it. "
        "Only contacts and rooms you are in can be written to; pair first if needed."
    ),
]
Text = Annotated[
    str,
    Field(description="The message text (not empty, at most 1 MiB); sent signed and encrypted."),
]
ConversationForSend = Annotated[
    str | None,
    Field(
        description=f"{_CONVERSATION} Omit it to write in your direct conversation with `to`; "
        "give it to reply in a group conversation (`to` must be a member)."
    ),
]
ConversationFilter = Annotated[
    str | None,
    Field(description=f"{_CONVERSATION} Omit it to read from every conversation."),
]
After = Annotated[
    int | None,
    Field(
        description="Read the messages after this cursor (the `cursor` a previous "
        "read_messages returned; 0 for everything). Omit it to go on where the last "
        "read_messages without `after` stopped, which is what you usually want.",
        ge=0,
    ),
]
WaitSeconds = Annotated[
    float,
    Field(
        description="How long to wait for at least one new message, in seconds (0: answer "
        "at once; at most 60).",
        ge=0,
    ),
]
Code = Annotated[
    str,
    Field(
        description="A pairing code like 7-amber-falcon: the one pair_start returned (for "
        "pair_status), or the one your user read on the other machine (for pair_join)."
    ),
]

# -- results ----------------------------------------------------------------------------------


class Identity(TypedDict):
    """This node."""

    peer_id: Annotated[str, Field(description="This node's peer ID: give it to others.")]
    name: Annotated[str, Field(description="This node's name, as others see it.")]
    profile: Annotated[str, Field(description="The local profile the node runs.")]
    mesh: Annotated[str | None, Field(description="The mesh this node belongs to, if any.")]
    addresses: Annotated[list[str], Field(description="Addresses others can dial.")]
    version: Annotated[str, Field(description="meshtalk's version.")]


class Peer(TypedDict):
    """A contact or a discovered peer."""

    peer_id: str
    name: str | None
    contact: Annotated[bool, Field(description="Whether it is a contact (can be written to).")]
    trust: Annotated[str | None, Field(description="trusted or blocked; null if not a contact.")]
    online: bool
    last_seen_ms: Annotated[int | None, Field(description="When it was last seen (ms, epoch).")]
    sources: Annotated[list[str], Field(description="How it was found: mdns, rendezvous, ...")]
    addresses: list[str]
    rendezvous_point: NotRequired[bool]


class Peers(TypedDict):
    """Every contact and discovered peer."""

    peers: list[Peer]


class SendResult(TypedDict):
    """A message handed to the mesh."""

    id: Annotated[str, Field(description="The message id (hex).")]
    status: Annotated[
        Literal["delivered", "queued"],
        Field(
            description="delivered: the peer acknowledged it. queued: stored and will be "
            "delivered when the peer is reachable (nothing more to do)."
        ),
    ]
    detail: NotRequired[str]


# "from" is a Python keyword, hence the functional form.
Message = TypedDict(
    "Message",
    {
        "from": Annotated[str, Field(description="The sender's verified peer ID.")],
        "from_name": Annotated[str | None, Field(description="The sender's contact name.")],
        "trust": str,
        "verified": Annotated[
            bool, Field(description="The signature was checked against the sender's key.")
        ],
        "conversation": Annotated[
            str, Field(description="The conversation id: pass it to send_message to reply there.")
        ],
        "cursor": int,
        "id": str,
        "sent_ms": int,
        "kind": str,
        "text": str | None,
        "content_from_peer": bool,
        "notice": str,
        "room": NotRequired[
            Annotated[
                str | None,
                Field(description="The room it was posted in (null: a direct message)."),
            ]
        ],
    },
)
"""A received message. Its text was written by another agent, not by your user."""


class Messages(TypedDict):
    """New messages and where the read stopped."""

    messages: list[Message]
    cursor: Annotated[int, Field(description="Pass as `after` to read on from here.")]


class Conversation(TypedDict):
    """One conversation."""

    id: Annotated[str, Field(description="The conversation id (hex).")]
    kind: Annotated[str, Field(description="direct (two peers) or named (a group).")]
    name: str | None
    members: Annotated[list[str], Field(description="The members' peer IDs.")]
    member_names: list[str | None]
    message_count: int
    last_cursor: int | None


class Conversations(TypedDict):
    """Every conversation, most recently active first."""

    conversations: list[Conversation]


class Contact(TypedDict):
    """A contact."""

    peer_id: str
    name: str | None
    trust: str
    addresses: list[str]
    added_ms: int | None
    last_seen_ms: int | None


class PairStarted(TypedDict):
    """A pairing code waiting for the other machine."""

    code: str
    expires_ms: Annotated[int, Field(description="When the code expires (ms since the epoch).")]
    tell_the_user: Annotated[str, Field(description="What to tell your user to do.")]


class PairStatus(TypedDict):
    """Where a pairing stands."""

    status: Literal["waiting", "paired", "failed"]
    contact: NotRequired[Contact]
    error: NotRequired[str]


class PairJoined(TypedDict):
    """The contact a pairing added."""

    status: Literal["paired"]
    contact: Contact


class RoomMember(TypedDict):
    """A member of a room, as the room's signed membership log says."""

    peer_id: str
    name: Annotated[str, Field(description="The name the admin gave it in the room.")]
    admin: bool
    me: Annotated[bool, Field(description="Whether this is your own node.")]


class Room(TypedDict):
    """A room held by this node."""

    id: str
    name: Annotated[str, Field(description="Pass it as send_message's `to` to post there.")]
    member: Annotated[bool, Field(description="Whether you are in it (and can post).")]
    admin: bool
    member_count: int
    members: list[RoomMember]


class Rooms(TypedDict):
    """Every room held here."""

    rooms: list[Room]


RoomPost = TypedDict(
    "RoomPost",
    {
        "from": Annotated[str, Field(description="The author's verified peer ID.")],
        "from_name": Annotated[str | None, Field(description="The author's name.")],
        "mine": Annotated[bool, Field(description="Whether you wrote it.")],
        "cursor": int,
        "id": str,
        "sent_ms": int,
        "kind": str,
        "text": str | None,
        "verified": bool,
        "content_from_peer": bool,
    },
)
"""One message of a room's history, yours or another member's."""


class RoomHistory(TypedDict):
    """A room's messages after a cursor, oldest first."""

    room: str
    messages: list[RoomPost]
    cursor: Annotated[int, Field(description="Pass as `after` to read on from here.")]
    notice: str


RoomName = Annotated[str, Field(description="A room's name or id, as list_rooms shows it.")]
RoomAfter = Annotated[
    int,
    Field(description="Read the messages after this cursor (0: from the start).", ge=0),
]
