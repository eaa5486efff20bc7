"""The running node: libp2p host, stream handlers, store, outbox, contacts and the trio API."""

from .addressbook import AddressBook, AddressSource, KnownAddress
from .models import Contact, Conversation, Direction, KnownPeer, Message, MessageStatus, Trust
from .node import PROTOCOL_VERSIONS, MessageStream, Node, NodeConfig, open_node

__all__ = [
    "AddressBook",
    "AddressSource",
    "Contact",
    "Conversation",
    "Direction",
    "KnownAddress",
    "KnownPeer",
    "Message",
    "MessageStatus",
    "MessageStream",
    "Node",
    "NodeConfig",
    "PROTOCOL_VERSIONS",
    "Trust",
    "open_node",
]
