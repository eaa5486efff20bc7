"""The running node: libp2p host, stream handlers, store, outbox, contacts and the trio API."""

from .models import Contact, Conversation, Direction, Message, MessageStatus, Trust
from .node import PROTOCOL_VERSIONS, MessageStream, Node, NodeConfig, open_node

__all__ = [
    "Contact",
    "Conversation",
    "Direction",
    "Message",
    "MessageStatus",
    "MessageStream",
    "Node",
    "NodeConfig",
    "PROTOCOL_VERSIONS",
    "Trust",
    "open_node",
]
