"""The running node: libp2p host, stream handlers, store, outbox, contacts and the trio API."""

from ..protocol.connection import PROTOCOL_VERSIONS
from .guards import GuardLimits
from .models import Contact, Conversation, Direction, KnownPeer, Message, MessageStatus, Trust
from .node import (
    MessageStream,
    Node,
    NodeConfig,
    NodeState,
    NodeStatistics,
    open_node,
)
from .outbound import LinkStatistics
from .pairing import Pairing, PairOffer
from .store import AddressBook, AddressSource, KnownAddress

__all__ = [
    "AddressBook",
    "AddressSource",
    "Contact",
    "Conversation",
    "Direction",
    "GuardLimits",
    "KnownAddress",
    "KnownPeer",
    "LinkStatistics",
    "Message",
    "MessageStatus",
    "MessageStream",
    "Node",
    "NodeConfig",
    "NodeState",
    "NodeStatistics",
    "PROTOCOL_VERSIONS",
    "PairOffer",
    "Pairing",
    "Trust",
    "open_node",
]
