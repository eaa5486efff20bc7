"""The `meshtalk` command line. Each command's module is imported only when it runs.

Errors reach the user as one line on stderr (`meshtalk: error: ...`), never a traceback:
exit code 1 for an error, 2 for bad arguments, 3 when the profile has no running node, 4 when
the recipient refused the message (final: it is marked failed and not retried).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from ..protocol.errors import DeliveryFailed, MeshtalkError, NodeNotRunning
from .parser import build_parser

__all__ = ["main"]

# command -> module in meshtalk.cli that has a function of the same name (minus dashes)
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
}
EXIT_NO_NODE = 3
EXIT_REFUSED = 4


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("contacts", "config") and args.action is None:
        args.action = "list" if args.command == "contacts" else "get"
        args.key = None
    module = importlib.import_module(f".{_COMMANDS[args.command]}", __name__)
    try:
        return int(getattr(module, args.command)(args) or 0)
    except NodeNotRunning as exc:
        print(f"meshtalk: error: {exc}", file=sys.stderr)
        return EXIT_NO_NODE
    except DeliveryFailed as exc:
        print(f"meshtalk: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except MeshtalkError as exc:
        print(f"meshtalk: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `meshtalk history | head`
        return 0
    except OSError as exc:  # a file or socket problem nothing above turned into a MeshtalkError
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"meshtalk: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("meshtalk: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
