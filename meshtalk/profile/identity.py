"""Profiles and the node identity key kept in them.

A profile is one folder (`<home>/profiles/<name>`, home = `$MESHTALK_HOME` or the platform's user
data dir) holding everything of one node. Its identity is one Ed25519 key in `identity.key`,
mode 0600. A key file that others can read, or that is damaged, is refused with an error: meshtalk
never silently makes a new identity in place of an existing one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ..protocol.errors import (
    IdentityError,
    KeyFileCorrupt,
    KeyFileError,
    KeyFileInsecure,
    KeyFileMissing,
)
from ..protocol.keys import NodeKey, RandomBytes
from .paths import key_path, private_profile_dir

if TYPE_CHECKING:
    from libp2p.crypto.keys import KeyPair

__all__ = [
    "create_identity",
    "load_identity",
    "load_or_create_identity",
    "libp2p_key_pair",
]

_FORMAT_TAG: Final = "meshtalk-identity"
_FORMAT_VERSION: Final = "1"
_MAX_KEY_FILE: Final = 4096


def _render(key: NodeKey) -> bytes:
    seed = base64.b64encode(key.seed).decode("ascii")
    return (
        f"# meshtalk identity: the secret key of peer {key.peer_id}\n"
        "# Anyone holding this file can act as that peer. Keep it private (mode 0600).\n"
        f"{_FORMAT_TAG}: {_FORMAT_VERSION}\n"
        f"peer-id: {key.peer_id}\n"
        f"seed: {seed}\n"
    ).encode("ascii")


def _parse(path: Path, data: bytes) -> NodeKey:
    def corrupt(why: str) -> KeyFileCorrupt:
        return KeyFileCorrupt(
            f"identity key file {path} is damaged ({why}); restore it from a backup, or move it "
            "away to start a new identity (a new peer ID)"
        )

    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise corrupt("not text") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep or name.strip() in fields:
            raise corrupt(f"unexpected line {line[:40]!r}")
        fields[name.strip()] = value.strip()
    if fields.get(_FORMAT_TAG) != _FORMAT_VERSION:
        raise corrupt("missing or unknown format line")
    if fields.keys() != {_FORMAT_TAG, "peer-id", "seed"}:
        raise corrupt("missing or extra fields")
    try:
        seed = base64.b64decode(fields["seed"], validate=True)
    except binascii.Error:
        raise corrupt("the seed is not base64") from None
    if len(seed) != 32:
        raise corrupt(f"the seed is {len(seed)} bytes, not 32")
    try:
        key = NodeKey.from_seed(seed)
    except IdentityError as exc:
        raise corrupt(str(exc)) from exc
    if str(key.peer_id) != fields["peer-id"]:
        raise corrupt("the seed does not match the recorded peer ID")
    return key


def load_identity(profile: str | os.PathLike[str]) -> NodeKey:
    """Load the identity of the profile folder `profile`, refusing unsafe or damaged key files."""
    path = key_path(profile)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise KeyFileMissing(
            f"no identity in {Path(profile)}: create one with `meshtalk init`"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyFileError(
                f"identity key file {path} is a symbolic link; meshtalk only reads a regular "
                "file there (copy the key in place, mode 0600)"
            ) from exc
        raise KeyFileError(f"cannot open identity key file {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileCorrupt(f"identity key file {path} is not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise KeyFileInsecure(
                f"identity key file {path} can be read by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); fix it with: chmod 600 {path}"
            )
        data = b""
        while len(data) <= _MAX_KEY_FILE:
            chunk = os.read(fd, _MAX_KEY_FILE + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise KeyFileError(f"cannot read identity key file {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE:
        raise KeyFileCorrupt(f"identity key file {path} is too large to be a meshtalk key")
    return _parse(path, data)


def create_identity(
    profile: str | os.PathLike[str], random_bytes: RandomBytes = os.urandom
) -> NodeKey:
    """Make a new identity in the profile folder; refuses to replace an existing key."""
    folder = Path(profile)
    path = key_path(folder)
    key = NodeKey.generate(random_bytes)
    try:
        private_profile_dir(folder)
        _write_new_file(path, _render(key))
    except FileExistsError:
        raise KeyFileError(
            f"{path} already exists; meshtalk never overwrites an identity key"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot write identity key file {path}: {exc.strerror}") from exc
    return key


def load_or_create_identity(profile: str | os.PathLike[str]) -> tuple[NodeKey, bool]:
    """The profile's identity, creating it if there is none; also says whether it was created."""
    try:
        return load_identity(profile), False
    except KeyFileMissing:
        pass
    try:
        return create_identity(profile), True
    except KeyFileError:
        if not key_path(profile).exists():
            raise
        return load_identity(profile), False  # another process created it meanwhile


def _write_new_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (complete or absent) and only if `path` does not exist."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temp, path)  # fails if path exists: never replaces a key
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def libp2p_key_pair(key: NodeKey) -> KeyPair:
    """The same key as a py-libp2p KeyPair, for the node's host (imports libp2p on first use)."""
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.crypto.keys import KeyPair

    private = Ed25519PrivateKey(key.signing_key)
    return KeyPair(private, private.get_public_key())
