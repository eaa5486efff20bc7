"""One node per profile: a flock on `<profile>/node.lock`, freed when the process dies.

Taking the lock is where a node starts, so it is also where the profile folder is made private
(0700, its files 0600; see `profile.private_profile_dir`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Final

from ..protocol.errors import ProfileLocked, StoreError
from .paths import private_profile_dir

__all__ = ["ProfileLock", "LOCK_FILE_NAME", "profile_in_use"]

LOCK_FILE_NAME: Final = "node.lock"


class ProfileLock:
    """Holds the profile's lock file open with an exclusive flock (the kernel frees it on exit)."""

    def __init__(self, profile: Path) -> None:
        self.path = profile / LOCK_FILE_NAME
        try:
            private_profile_dir(profile)  # at every start: 0700, and files 0600
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise ProfileLocked(
                f"profile {profile} is in use by another meshtalk node (pid {holder}); stop it "
                "or choose another profile"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Let another node use the profile."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = -1


def profile_in_use(profile: Path) -> bool:
    """Whether a node holds the profile's lock right now (without taking it)."""
    try:
        fd = os.open(profile / LOCK_FILE_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if we got it
    return False
