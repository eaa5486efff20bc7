"""How a failed command is reported: one line for people, one JSON object under --json.

Both go to stderr, with the same exit code. The JSON object always has the same keys:

    {"error": "NodeNotRunning", "code": 801, "message": "no node is running ...",
     "remote": false, "exit": 3}

`error` is the exception's class name (a MeshtalkError's, or `UsageError` for bad arguments,
`KeyboardInterrupt`, or an OSError's like `PermissionError`); `code` is the MeshtalkError's
stable number (docs/protocol.md, section 6), null for the others; `remote` is true when the
other node refused (the message then starts with "peer refused: "). Bad arguments add `usage`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..profile.paths import KEY_FILE_NAME, profile_dir
from ..protocol.errors import MeshtalkError, NodeNotRunning
from .output import command_hint
from .parser import UsageError

__all__ = ["json_requested", "report", "report_usage", "explain_no_node"]


def json_requested(argv: Sequence[str]) -> bool:
    """Whether --json is among the arguments, before or after the command, for errors that
    come before (or instead of) a parsed namespace. An abbreviation argparse would accept
    (`--js`) counts; nothing after `--` does."""
    for arg in argv:
        if arg == "--":
            return False
        if len(arg) >= 3 and "--json".startswith(arg):
            return True
    return False


def report(error: BaseException, exit_code: int, as_json: bool, message: str | None = None) -> int:
    """Print `error` as one line or one JSON object on stderr; returns `exit_code`."""
    text = message if message is not None else str(error) or type(error).__name__
    if as_json:
        _emit_error(error, text, exit_code)
    else:
        print(f"meshtalk: error: {text}", file=sys.stderr, flush=True)
    return exit_code


def report_usage(error: UsageError, as_json: bool) -> int:
    """Bad arguments: argparse's usage and error line, or JSON with the usage; exit code 2."""
    if as_json:
        _emit_error(error, error.message, 2, usage=error.parser.format_usage().strip())
    else:
        error.parser.print_usage(sys.stderr)
        print(f"{error.parser.prog}: error: {error.message}", file=sys.stderr, flush=True)
    return 2


def _emit_error(error: BaseException, message: str, exit_code: int, **extra: Any) -> None:
    code, remote = (error.code, error.remote) if isinstance(error, MeshtalkError) else (None, False)
    document = {
        "error": type(error).__name__,
        "code": code,
        "message": message,
        "remote": remote,
        "exit": exit_code,
        **extra,
    }
    print(json.dumps(document, ensure_ascii=False), file=sys.stderr, flush=True)


def explain_no_node(args: argparse.Namespace, error: NodeNotRunning) -> NodeNotRunning:
    """The error for "no node runs" that fits the profile: when the profile does not even
    exist (a mistyped --profile), say so and list the ones that do, instead of suggesting
    `up`, which would create a new identity under the mistyped name."""
    try:
        profile = profile_dir(args.profile)
    except MeshtalkError:
        return error
    if profile.exists():  # a profile set up without an identity yet: `up` makes it, as meant
        return error
    others = sorted(
        p.name for p in profile.parent.glob("*") if (p / KEY_FILE_NAME).is_file()
    ) if profile.parent.is_dir() else []  # fmt: skip
    known = f"the profiles here are: {', '.join(others)}" if others else "there is no profile yet"
    init = command_hint(args, "init")
    return NodeNotRunning(
        f"no node is running for profile {profile.name!r}: there is no such profile ({known}); "
        f"check the name, or create it with `{init}`"
    )
