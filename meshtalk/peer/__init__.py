"""The running node: libp2p host, stream handlers, store, outbox, contacts and the trio API."""

from .models import Contact, Conversation, Direction, KnownPeer, Message, MessageStatus, Trust
from .node import PROTOCOL_VERSIONS, MessageStream, Node, NodeConfig, open_node
from .pairing import Pairing, PairOffer
from .store import AddressBook, AddressSource, KnownAddress

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
    "PairOffer",
    "Pairing",
    "Trust",
    "open_node",
]
