"""Where profiles live, and keeping everything in one private to its user.

A profile is one folder (`<home>/profiles/<name>`, home = `$MESHTALK_HOME` or the platform's user
data dir) holding everything of one node. The folder is 0700 and every file 0600, whatever the
umask. `private_profile_dir` makes or fixes the folder (and tightens files another user could
read, with a warning); `private_file` and `open_private_log` create single files that way.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
from pathlib import Path
from typing import Final

import platformdirs

from ..protocol.errors import ConfigError, StoreError

__all__ = [
    "HOME_ENV",
    "DEFAULT_PROFILE",
    "PROFILE_ENV",
    "KEY_FILE_NAME",
    "default_home",
    "profile_dir",
    "key_path",
    "FILE_MODE",
    "private_profile_dir",
    "private_file",
    "private_store_file",
    "open_private_log",
]

HOME_ENV: Final = "MESHTALK_HOME"
PROFILE_ENV: Final = "MESHTALK_PROFILE"
DEFAULT_PROFILE: Final = "default"
KEY_FILE_NAME: Final = "identity.key"
_PROFILE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
# The identity key is never tightened in place: one others could read is refused (identity.py).
_LEFT_ALONE: Final = frozenset({"identity.key"})
_log = logging.getLogger("meshtalk.profile")


def private_profile_dir(profile: Path) -> Path:
    """Make the profile folder 0700, creating it if needed, and tighten what others could read.

    A folder that already existed open to group or others is set to 0700, and regular files in
    it readable by group or others to 0600, each with a warning naming the path and old mode.
    """
    profile.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    if os.name != "posix":
        return profile
    mode = stat.S_IMODE(os.stat(profile).st_mode)
    if mode & 0o077:
        os.chmod(profile, _DIR_MODE)
        _log.warning(
            "profile folder %s was open to other users (mode %04o); set it to 0700", profile, mode
        )
    loose: list[str] = []
    with os.scandir(profile) as entries:
        for entry in entries:
            if entry.name in _LEFT_ALONE or not entry.is_file(follow_symlinks=False):
                continue
            file_mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            if file_mode & 0o077:
                os.chmod(entry.path, file_mode & FILE_MODE)
                loose.append(f"{entry.name} ({file_mode:04o})")
    if loose:
        _log.warning(
            "files in profile %s were readable by other users; set to 0600: %s",
            profile,
            ", ".join(sorted(loose)),
        )
    return profile


def _tighten(fd: int) -> None:
    if os.name == "posix" and stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
        os.fchmod(fd, FILE_MODE)


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if it is missing; tighten it to 0600 if it exists."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, FILE_MODE)
    try:
        _tighten(fd)
    finally:
        os.close(fd)


def private_store_file(path: Path) -> None:
    """Make a SQLite database file 0600 before it is opened (SQLite gives its -wal and -shm
    files the database file's mode), and tighten a -wal or -shm left from before."""
    try:
        private_file(path)
        for suffix in ("-wal", "-shm", "-journal"):
            side = path.with_name(path.name + suffix)
            with contextlib.suppress(FileNotFoundError):
                if side.lstat().st_mode & 0o077 and not side.is_symlink():
                    os.chmod(side, FILE_MODE)
    except OSError as exc:
        raise StoreError(f"cannot open the store {path}: {exc.strerror or exc}") from exc


def open_private_log(path: Path) -> int:
    """Open a log file for appending, mode 0600, never through a symbolic link: returns the fd."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(
                f"{path} is a symbolic link; meshtalk writes its log only to a regular file "
                f"there (remove the link: rm {path})"
            ) from None
        raise ConfigError(f"cannot open the log {path}: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{path} is not a regular file; meshtalk writes its log only there")
        _tighten(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def default_home() -> Path:
    """`$MESHTALK_HOME` if set, else the platform's per-user data folder for meshtalk."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("meshtalk", appauthor=False))


def profile_dir(profile: str | None = None, home: str | os.PathLike[str] | None = None) -> Path:
    """The folder of profile `profile` (default "default") under `home` (default_home())."""
    name = DEFAULT_PROFILE if profile is None else profile
    if not _PROFILE_RE.fullmatch(name):
        raise ConfigError(
            f"profile name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    base = Path(home).expanduser() if home is not None else default_home()
    return base / "profiles" / name


def key_path(profile: str | os.PathLike[str]) -> Path:
    """Where the identity key of the profile folder `profile` lives."""
    return Path(profile) / KEY_FILE_NAME
