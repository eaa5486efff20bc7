# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this line)
"""The `meshtalk` command line. Each command's module is imported only when it runs.

Errors reach the user as one line on stderr (`meshtalk: error: ...`), never a traceback, or
under --json as one JSON object on stderr (cli/failures.py): exit code 1 for an error, 2 for
bad arguments, 3 when the profile has no running node, 4 when the recipient refused the
message (final: it is marked failed and not retried), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..protocol.errors import DeliveryFailed, MeshtalkError, NodeNotRunning, unwrap_group
from .completion import autocomplete
from .failures import explain_no_node, json_requested, report, report_usage
from .parser import UsageError, build_parser

__all__ = ["main"]

# command -> module in meshtalk.cli that has a function of the same name (dashes as _)
_COMMANDS = {
    "init": "local",
    "id": "local",
    "up": "local",
    "down": "local",
    "logs": "logs",
    "prune": "prune",
    "completion": "completion",
    "config": "local",
    "rendezvous": "local",
    "selfcheck": "local",
    "mcp": "agents",
    "demo": "demo",
    "status": "remote",
    "peers": "remote",
    "contacts": "remote",
    "send": "remote",
    "inbox": "reading",
    "history": "reading",
    "chat": "chat",
    "pair": "remote",
    "invite": "remote",
    "join": "remote",
    "room": "rooms",
    "export": "transcripts",
    "verify": "transcripts",
    "http-key": "http_api",
    "http-url": "http_api",
}
EXIT_NO_NODE = 3
EXIT_REFUSED = 4


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    autocomplete(parser)  # a Tab in the shell: answers and ends the process here
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        return report_usage(exc, json_requested(arguments))
    if args.command is None:
        if args.json:
            return report_usage(UsageError(parser, "no command given"), True)
        parser.print_help()
        return 2
    _with_verbosity(args)
    if args.command in ("contacts", "config", "room") and args.action is None:
        args.action = "get" if args.command == "config" else "list"
        args.key = None
    return _run(args)


def _with_verbosity(args: argparse.Namespace) -> argparse.Namespace:
    """Add the -v given after the command to the count given before it (`-v up -v` is -vv)."""
    args.verbose += getattr(args, "verbose_after", 0)
    return args


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; every failure becomes one line (or JSON object) and an exit code."""
    module = importlib.import_module(f".{_COMMANDS[args.command]}", __name__)
    try:
        return int(getattr(module, args.command.replace("-", "_"))(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:
        # trio wraps a task's error in exception groups: report the one error inside
        code = _failed(args, unwrap_group(exc))
        if code is None:
            raise  # not an error meshtalk expects: a bug, keep its traceback
        return code


def _failed(args: argparse.Namespace, exc: BaseException) -> int | None:
    """Report an expected failure; returns the exit code, or None for any other exception."""
    as_json = bool(args.json)
    if isinstance(exc, NodeNotRunning):
        return report(explain_no_node(args, exc), EXIT_NO_NODE, as_json)
    if isinstance(exc, DeliveryFailed):
        return report(exc, EXIT_REFUSED, as_json)
    if isinstance(exc, MeshtalkError):
        return report(exc, 1, as_json)
    if isinstance(exc, BrokenPipeError):  # `meshtalk history | head`
        return 0
    if isinstance(exc, OSError):  # a file or socket problem nothing turned into a MeshtalkError
        where = f" ({exc.filename})" if exc.filename else ""
        return report(exc, 1, as_json, f"{exc.strerror or exc}{where}")
    if isinstance(exc, KeyboardInterrupt):
        if as_json:
            return report(exc, 130, True, "interrupted")
        print("meshtalk: interrupted", file=sys.stderr)
        return 130
    return None


if __name__ == "__main__":
    sys.exit(main())
