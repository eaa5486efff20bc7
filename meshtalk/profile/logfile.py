"""The node's log: `node.log` in the profile, rotated by size, 0600, never through a link.

A detached node (`meshtalk up --detach`) writes everything here: its own lines, what the
library logs at the chosen level, and (through its stdout and stderr, which point at the same
file) anything else it prints. `PrivateLogHandler` is the standard library's
`RotatingFileHandler` that opens the file the way `open_private_log` does, and that after a
rotation moves the process's stdout and stderr to the new file too, so nothing keeps growing
the renamed one. The verbosity (`-v`) picks the level of meshtalk's loggers.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import BinaryIO, Final

from .paths import open_private_log

__all__ = [
    "LOG_FILE_NAME",
    "LOG_BACKUPS",
    "LOG_FORMAT",
    "DAEMON_LOGGER",
    "log_path",
    "level_for",
    "PrivateLogHandler",
    "configure_logging",
    "last_lines",
]

LOG_FILE_NAME: Final = "node.log"
LOG_BACKUPS: Final = 3  # node.log.1 .. node.log.3
LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Lines of the daemon itself (ready, stopping, one per incoming message) are kept at every
# verbosity: they are what a user looks for in node.log.
DAEMON_LOGGER: Final = "meshtalk.daemon"
_BLOCK: Final = 64 * 1024


def log_path(profile: Path) -> Path:
    """Where a profile's node log lives."""
    return profile / LOG_FILE_NAME


def level_for(verbosity: int) -> int:
    """meshtalk's log level for a `-v` count: WARNING, INFO (-v), DEBUG (-vv and more).

    At the default level, routine network failures (a peer that is away, a rendezvous point
    that does not answer, a stream that broke) stay out: meshtalk logs those at INFO.
    """
    if verbosity <= 0:
        return logging.WARNING
    return logging.INFO if verbosity == 1 else logging.DEBUG


class PrivateLogHandler(RotatingFileHandler):
    """A RotatingFileHandler whose files are 0600 and never opened through a symbolic link.

    With `own_std_streams`, the process's stdout and stderr (file descriptors 1 and 2) follow
    the log to each new file, so that stray prints and a last error line land in node.log.
    """

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int = LOG_BACKUPS,
        *,
        own_std_streams: bool = False,
    ) -> None:
        self._own_std_streams = own_std_streams
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def _open(self) -> io.TextIOWrapper:
        # The parent's `open_private_log` checks: O_NOFOLLOW, a regular file, mode 0600.
        fd = open_private_log(Path(self.baseFilename))
        stream = os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")
        if self._own_std_streams:
            for std in (sys.stdout, sys.stderr):
                std.flush()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        return stream


def configure_logging(
    verbosity: int,
    *,
    log_file: Path | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    own_std_streams: bool = False,
) -> logging.Handler:
    """Send log records to `log_file` (rotated at `max_bytes`) or else to stderr.

    meshtalk's loggers get `level_for(verbosity)`, the daemon's own lines INFO at least, other
    libraries WARNING (DEBUG from -vvv). Replaces handlers an earlier call installed. Returns
    the handler.
    """
    handler: logging.Handler
    if log_file is not None:
        handler = PrivateLogHandler(log_file, max_bytes, own_std_streams=own_std_streams)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    level = level_for(verbosity)
    logging.getLogger("meshtalk").setLevel(level)
    logging.getLogger(DAEMON_LOGGER).setLevel(min(level, logging.INFO))
    return handler


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a log file (every line with 0), without their line ends."""
    with path.open("rb") as file:
        return [line.decode("utf-8", "replace") for line in tail(file, count)]


def tail(file: BinaryIO, count: int) -> list[bytes]:
    """The last `count` complete or final lines of `file` (all with 0), reading from the end.

    Leaves the file positioned at its end, so a follower goes on from there.
    """
    end = file.seek(0, os.SEEK_END)
    if count <= 0:
        file.seek(0)
        data = file.read()
        return data.splitlines()
    data, start = b"", end
    # count + 1 line ends: the last line may end with one, and the one before the first
    # wanted line bounds it
    while start > 0 and data.count(b"\n") <= count:
        step = min(_BLOCK, start)
        start -= step
        file.seek(start)
        data = file.read(step) + data
    file.seek(end)
    lines = data.splitlines()
    return lines[-count:]
