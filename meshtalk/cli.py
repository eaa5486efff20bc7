"""The `meshtalk` command line. Each command's module is imported only when it runs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._version import __version__
from .protocol.errors import MeshtalkError

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshtalk",
        description="A peer-to-peer mesh for AI agents: signed, end-to-end encrypted messages "
        "between nodes, with no central server.",
    )
    parser.add_argument("--version", action="version", version=f"meshtalk {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "selfcheck",
        help="verify this installation: identities, sealing and opening, tamper refusal",
        description="Create two identities in a temporary folder, seal a message from one to "
        "the other and open it, and check that tampered or misaddressed copies are refused. "
        "Uses no network and leaves nothing behind.",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    return parser


def _selfcheck(args: argparse.Namespace) -> int:
    from .selfcheck import CheckStep, run_selfcheck

    def report(step: CheckStep) -> None:
        if not args.json:
            print(f"  ok  {step.name:<10} {step.detail}", flush=True)

    if not args.json:
        print(f"meshtalk {__version__} self-check")
    steps = run_selfcheck(report)
    if args.json:
        out = {"ok": True, "version": __version__, "steps": [vars(s) for s in steps]}
        print(json.dumps(out))
    else:
        print(f"all {len(steps)} checks passed")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "selfcheck":
            return _selfcheck(args)
    except MeshtalkError as exc:
        print(f"meshtalk: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("meshtalk: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2  # unreachable: parser.error exits


if __name__ == "__main__":
    sys.exit(main())
