"""meshtalk: a peer-to-peer mesh for AI agents, with no central server.

Users import from here, not from the private modules. Importing `meshtalk` does not import
py-libp2p or trio: the node's and discovery's names (`open_node`, `Node`, ...) load them on
first use.

`accept_libp2p_gencode()` lets py-libp2p load on the protobuf runtime that AutoGen pins (see
meshtalk/net/gencode.py): every import of a meshtalk module runs this file first, so it is the
one place sure to come before py-libp2p's first import.
"""

from typing import Any

from ._version import __version__
from .net.gencode import accept_libp2p_gencode
from .profile import (
    DEFAULT_PROFILE,
    HOME_ENV,
    KEY_FILE_NAME,
    PROFILE_ENV,
    create_identity,
    default_home,
    key_path,
    libp2p_key_pair,
    load_identity,
    load_or_create_identity,
    profile_dir,
)
from .protocol import *  # noqa: F403
from .protocol import __all__ as _protocol_all

accept_libp2p_gencode()  # before py-libp2p's first import, which none of the above makes

_NODE_NAMES = (
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
    "PairOffer",
    "Pairing",
    "Trust",
    "open_node",
)
_DISCOVERY_NAMES = (
    "PeerRecord",
    "Registry",
    "RegistryLimits",
    "RendezvousClient",
    "RendezvousPoint",
    "RendezvousSession",
    "RendezvousStream",
    "namespace_for",
    "open_peer_record",
    "open_rendezvous_point",
    "sign_peer_record",
)

_CLIENT_NAMES = ("ControlClient", "connect_control", "open_control")
_MESH_NAMES = ("Mesh", "AsyncMesh", "PairingOffer")


def __getattr__(name: str) -> Any:
    if name in _MESH_NAMES:
        from .facade import async_mesh, mesh, offer

        home = {"Mesh": mesh, "AsyncMesh": async_mesh, "PairingOffer": offer}[name]
        return getattr(home, name)
    if name in _CLIENT_NAMES:
        from .control import client

        return getattr(client, name)
    if name in _NODE_NAMES:
        from . import peer

        return getattr(peer, name)
    if name in _DISCOVERY_NAMES:
        from . import discovery

        return getattr(discovery, name)
    raise AttributeError(f"module 'meshtalk' has no attribute {name!r}")


__all__ = [
    "__version__",
    *_NODE_NAMES,
    *_DISCOVERY_NAMES,
    *_CLIENT_NAMES,
    *_MESH_NAMES,
    "DEFAULT_PROFILE",
    "HOME_ENV",
    "KEY_FILE_NAME",
    "PROFILE_ENV",
    "create_identity",
    "default_home",
    "key_path",
    "libp2p_key_pair",
    "load_identity",
    "load_or_create_identity",
    "profile_dir",
    *_protocol_all,
]
