"""`meshtalk logs [-f] [-n N]`: the profile's node log, whether the node runs or not.

`-f` follows the log as the node writes it, across rotations: when node.log is renamed to
node.log.1 and a new node.log begins, the rest of the old file is printed, then the new one
from its start; a file truncated in place is read again from its start. Ctrl-C ends it
(exit 130, nothing printed). With `--json`, each line is one JSON object: `time`, `level`,
`logger` and `message` for a log record, only `message` (the others null) for any other line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final

from ..profile.logfile import LOG_BACKUPS, log_path, tail
from ..protocol.errors import ConfigError, NodeError
from .output import profile_of, wants_json

__all__ = ["logs", "follow", "parse_line"]

_POLL: Final = 0.2  # seconds between looks at a log that has nothing new
_READ: Final = 64 * 1024
_RECORD: Final = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)"
)
Emit = Callable[[bytes], None]


def logs(args: argparse.Namespace) -> int:
    """Print the last lines of node.log; with --follow, keep printing what is added."""
    profile = profile_of(args)
    if args.lines < 0:
        raise ConfigError(f"--lines takes 0 (the whole file) or more, not {args.lines}")
    path = log_path(profile)
    try:
        file = path.open("rb")
    except FileNotFoundError:
        raise NodeError(
            f"profile {profile.name!r} has no node log yet ({path}); "
            "a node started with `meshtalk up --detach` writes it"
        ) from None
    emit = _json_line if wants_json(args) else _plain_line
    try:
        with file:
            for line in tail(file, args.lines):
                emit(line)
            sys.stdout.flush()
            if args.follow:
                follow(path, file, emit)
    except KeyboardInterrupt:  # the way to end --follow: no message, the usual 130
        return 130
    return 0


def follow(path: Path, file: BinaryIO, emit: Emit, poll: float = _POLL) -> None:
    """Emit each line added to the log at `path` from `file`'s position on, until interrupted.

    A rotation (a new file at `path`) is followed once the old file has been read to its end,
    and the backups written after it if several rotations came between two looks.
    """
    pending = b""
    try:
        while True:
            chunk = file.read(_READ)
            if chunk:
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    emit(line)
                sys.stdout.flush()
                continue
            replaced, truncated = _moved(path, file)
            if replaced:
                rest = pending + file.read()  # what was written just before the switch
                for line in rest.split(b"\n") if rest else ():
                    emit(line)
                for newer in _missed(path, os.fstat(file.fileno())):
                    for line in _whole(newer):
                        emit(line)
                file.close()
                file, pending = path.open("rb"), b""
            elif truncated:
                file.seek(0)
                pending = b""
            else:
                time.sleep(poll)
    finally:
        file.close()


def _moved(path: Path, file: BinaryIO) -> tuple[bool, bool]:
    """(another file is at `path` now, `file` is shorter than what was read of it)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:  # between the rename and the new file
        return False, False
    mine = os.fstat(file.fileno())
    if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
        return True, False
    return False, mine.st_size < file.tell()


def _missed(path: Path, mine: os.stat_result) -> list[Path]:
    """The older files written after the one read (several rotations between two looks)."""
    for number in range(1, LOG_BACKUPS + 1):
        try:
            backup = os.stat(f"{path}.{number}")
        except FileNotFoundError:
            continue
        if (backup.st_dev, backup.st_ino) == (mine.st_dev, mine.st_ino):
            return [Path(f"{path}.{n}") for n in range(number - 1, 0, -1)]
    return []


def _whole(path: Path) -> list[bytes]:
    try:
        return path.read_bytes().splitlines()
    except FileNotFoundError:  # rotated away meanwhile
        return []


def parse_line(line: str) -> dict[str, str | None]:
    """A log line as {time, level, logger, message}; other lines only have a message."""
    match = _RECORD.fullmatch(line)
    if match is None:
        return {"time": None, "level": None, "logger": None, "message": line}
    when, level, logger, message = match.groups()
    return {"time": when, "level": level, "logger": logger, "message": message}


def _plain_line(line: bytes) -> None:
    print(line.decode("utf-8", "replace"))


def _json_line(line: bytes) -> None:
    print(json.dumps(parse_line(line.decode("utf-8", "replace")), ensure_ascii=False))
