"""A node's profile folder: where it lives, its identity key, its settings and its lock.

Everything below the node that touches the file system, and nothing that touches the network.
"""

from .identity import create_identity, libp2p_key_pair, load_identity, load_or_create_identity
from .paths import (
    DEFAULT_PROFILE,
    HOME_ENV,
    KEY_FILE_NAME,
    PROFILE_ENV,
    default_home,
    key_path,
    profile_dir,
)
from .settings import default_settings, load_settings, save_setting, save_settings

__all__ = [
    "DEFAULT_PROFILE",
    "HOME_ENV",
    "KEY_FILE_NAME",
    "PROFILE_ENV",
    "create_identity",
    "default_home",
    "default_settings",
    "key_path",
    "libp2p_key_pair",
    "load_identity",
    "load_or_create_identity",
    "load_settings",
    "profile_dir",
    "save_setting",
    "save_settings",
]
