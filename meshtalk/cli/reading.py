"""Commands that read messages: `inbox` and `history`.

Both are the reader "cli" (as `chat` is): a received message is **new** until one of them has
shown it, so `inbox` does not show again what `history` or `chat` displayed. `history` marks
read what it showed only when no new message comes before the first one it showed (a gap it did
not show stays new for `inbox`); `inbox --peek` marks nothing. See docs/control.md, "Readers".
"""

from __future__ import annotations

import argparse
from typing import Any

from ..control.client import connect_control
from .output import emit_json, format_message, profile_of, wants_json

__all__ = ["READER", "inbox", "history"]

READER = "cli"  # the CLI's read position in the node (docs/control.md, "Readers")


def _call(args: argparse.Namespace, op: str, **request: Any) -> Any:
    with connect_control(profile_of(args)) as control:
        return control.call(op, **request)


def inbox(args: argparse.Namespace) -> int:
    """Received messages no CLI view (inbox, history, chat) has shown yet; marks them read."""
    found = _call(args, "inbox", peek=args.peek, reader=READER)
    if wants_json(args):
        emit_json(found)
    elif not found:
        print("no new messages")
    else:
        for message in found:
            print(format_message(message))
    return 0


def _print_message(args: argparse.Namespace, message: dict[str, Any]) -> None:
    if wants_json(args):
        emit_json(message)
    else:
        print(format_message(message), flush=True)


def history(args: argparse.Namespace) -> int:
    """Messages of one conversation or of all; --follow keeps printing new ones."""
    with connect_control(profile_of(args)) as control:
        found = control.call(
            "history",
            conversation=args.conversation,
            after=args.after,
            limit=args.limit,
            reader=READER,
        )
        if wants_json(args) and not args.follow:
            emit_json(found)
            return 0
        for message in found:
            _print_message(args, message)
        if not found and not args.follow and not wants_json(args):
            print("no messages yet")
        if args.follow:
            after = found[-1]["cursor"] if found else args.after
            control.call(
                "follow",
                lambda e: _print_message(args, e["message"]),
                conversation=args.conversation,
                after=after,
                reader=READER,
            )
    return 0
