"""`meshtalk prune`: forget delivered and read messages now, and give the space back."""

from __future__ import annotations

import argparse
from typing import Any

from ..control.client import connect_control
from .output import emit_json, profile_of, wants_json

__all__ = ["prune"]

_MIB = 1024 * 1024


def _mib(count: int) -> str:
    return f"{count / _MIB:.1f} MiB"


def prune(args: argparse.Namespace) -> int:
    """Forget old messages by age and/or size (default: the profile's retain_days, retain_mib)."""
    request: dict[str, Any] = {"dry_run": args.dry_run}
    if args.older_than is not None:
        request["older_than_days"] = args.older_than
    if args.max_mib is not None:
        request["max_mib"] = args.max_mib
    with connect_control(profile_of(args)) as control:
        report = control.call("prune", **request)
    if wants_json(args):
        emit_json(report)
    else:
        for line in describe(report):
            print(line)
    return 0


def describe(report: dict[str, Any]) -> list[str]:
    """What a prune report says, as lines for a person."""
    if report["rule"] is None:
        return [
            "nothing to prune: give --older-than DAYS or --max-mib MIB, or set retain_days or "
            "retain_mib (meshtalk config set retain_days 30)"
        ]
    verb = "would forget" if report["dry_run"] else "forgot"
    lines = [
        f"{verb} {report['deleted']} messages (about {_mib(report['deleted_bytes'])}) "
        f"in {report['seconds']:.2f} s"
    ]
    if report["kept_unread"]:
        readers = ", ".join(report["unread_by"])
        lines.append(f"kept {report['kept_unread']} not yet read (by: {readers})")
    if report["kept_pending"]:
        lines.append(f"kept {report['kept_pending']} still queued, unacknowledged or failed")
    if not report["dry_run"]:
        lines.append(
            f"store: {_mib(report['file_bytes_before'])} -> {_mib(report['file_bytes_after'])} "
            f"on disk, {_mib(report['free_bytes'])} free inside it for new messages"
        )
    return lines
