"""How the CLI prints: JSON for scripts, aligned lines and tables for people."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..profile.paths import profile_dir

__all__ = [
    "wants_json",
    "emit_json",
    "table",
    "ago",
    "clock",
    "status_line",
    "profile_of",
    "format_message",
    "who",
]


def profile_of(args: argparse.Namespace) -> Path:
    """The profile folder the command works on."""
    return profile_dir(args.profile)


def wants_json(args: argparse.Namespace) -> bool:
    """Whether the user asked for JSON."""
    return bool(getattr(args, "json", False))


def emit_json(value: Any) -> None:
    """Print one JSON document."""
    print(json.dumps(value, ensure_ascii=False), flush=True)


def status_line(text: str) -> None:
    """A progress line on stderr (so stdout stays clean for pipes)."""
    print(text, file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows in aligned columns under a header."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def ago(ms: int | None, now: float | None = None) -> str:
    """`12 s ago`, `3 min ago`, `never`."""
    if ms is None:
        return "never"
    seconds = max(0.0, (now if now is not None else time.time()) - ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now" if seconds < 5 else f"{int(seconds)} s ago"


def clock(ms: int) -> str:
    """Local date and time of a timestamp."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def who(name: str | None, peer_id: str) -> str:
    """A contact name, or a shortened peer ID."""
    return name or f"{peer_id[:12]}…{peer_id[-4:]}"


def format_message(message: dict[str, Any]) -> str:
    """One message as a line: cursor, time, sender -> recipient, text, status."""
    if message["direction"] == "in":
        route = f"{who(message['author_name'], message['author'])} → me"
        status = ""
    else:
        names = [
            who(n, p)
            for n, p in zip(message["recipient_names"], message["recipients"], strict=True)
        ]
        route = f"me → {', '.join(names)}"
        status = f"  [{message['status']}]"
    when = clock(message["timestamp_ms"])
    return f"#{message['cursor']:<5} {when}  {route}: {message['text']}{status}"
