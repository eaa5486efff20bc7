"""meshtalk: a peer-to-peer mesh for AI agents, with no central server.

Users import from here, not from the private modules. Importing `meshtalk` does not import
py-libp2p or trio; the node (a later part) loads them when it starts.
"""

from ._version import __version__
from .identity import (
    DEFAULT_PROFILE,
    HOME_ENV,
    KEY_FILE_NAME,
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

__all__ = [
    "__version__",
    "DEFAULT_PROFILE",
    "HOME_ENV",
    "KEY_FILE_NAME",
    "create_identity",
    "default_home",
    "key_path",
    "libp2p_key_pair",
    "load_identity",
    "load_or_create_identity",
    "profile_dir",
    *_protocol_all,
]
