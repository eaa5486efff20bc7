"""How the CLI prints: JSON for scripts, aligned lines and tables for people."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..profile.paths import DEFAULT_PROFILE, profile_dir
from ..protocol import errors

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
    "command_hint",
    "clean_reason",
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


_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """`text` with control and bidi characters shown as escapes (\\x1b), newlines kept."""
    return _UNSAFE.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", text
    )


def format_message(message: dict[str, Any]) -> str:
    """One message as a line: cursor, time, sender -> recipient, text, status."""
    room = message.get("room")  # a daemon of an older version sends none
    if room is not None:
        author = (
            "me"
            if message["direction"] == "out"
            else who(message["author_name"], message["author"])
        )
        route = f"{safe(author)} → #{safe(room)}"
        status = f"  [{message['status']}]" if message["direction"] == "out" else ""
    elif message["direction"] == "in":
        route = f"{safe(who(message['author_name'], message['author']))} → me"
        status = ""
    else:
        names = [
            safe(who(n, p))
            for n, p in zip(message["recipient_names"], message["recipients"], strict=True)
        ]
        route = f"me → {', '.join(names)}"
        status = f"  [{message['status']}]"
    when = clock(message["timestamp_ms"])
    return f"#{message['cursor']:<5} {when}  {route}: {safe(message['text'])}{status}"


def command_hint(args: argparse.Namespace, command: str) -> str:
    """`meshtalk COMMAND` as the user should type it next: with `--profile NAME` when the
    command ran on another profile than the default (without it, it would go to that one)."""
    profile = getattr(args, "profile", DEFAULT_PROFILE)
    flag = "" if profile == DEFAULT_PROFILE else f" --profile {profile}"
    return f"meshtalk{flag} {command}"


# What the network layer's errors mean, by a phrase of their text: (phrase, reason).
_REASONS = (
    ("negative cache", "unreachable: its addresses failed a moment ago (trying again)"),
    ("no addresses established", "unreachable: no address of it answered"),
    ("no known addresses", "no known address for it"),
    ("connection refused", "connection refused (nothing listens at its address)"),
    ("connect call failed", "connection refused (nothing listens at its address)"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network is unreachable"),
    ("handshake", "the secure handshake failed (is its peer ID right?)"),
    ("timed out", "timed out"),
)
_ERRNO = re.compile(r"^\[Errno \d+\]\s*")
_REASON_WIDTH = 100


def clean_reason(raw: str) -> str:
    """A node's raw error text (`TypeName: message`, maybe from py-libp2p, maybe several
    lines) as a short line a person can act on."""
    kind, sep, text = raw.partition(": ")
    if not sep or " " in kind:  # not a `TypeName: ` prefix
        kind, text = "", raw
    if kind == "TooSlowError":
        return "timed out"
    ours = getattr(errors, kind, None) if kind else None
    if not (isinstance(ours, type) and issubclass(ours, errors.MeshtalkError)):
        lowered = raw.lower()  # our own errors' text is written for people already
        for phrase, reason in _REASONS:
            if phrase in lowered:
                return reason
    line = next((part.strip() for part in text.splitlines() if part.strip()), kind or "failed")
    line = " ".join(_ERRNO.sub("", line).split())
    return line if len(line) <= _REASON_WIDTH else line[: _REASON_WIDTH - 1] + "…"
