"""`meshtalk export CONVERSATION` and `meshtalk verify FILE`: transcripts anyone can check.

`export` asks the running node for a conversation's (or room's) signed envelopes and writes
them, with a room's membership log, to a file or stdout. `verify` needs no node and no network:
it re-checks every signature, every author's right to write and the order
(protocol/transcript.py), prints one line per message that fails, and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, BinaryIO

from ..control.client import connect_control
from ..protocol.room_errors import InvalidTranscript
from ..protocol.transcript import MAX_TRANSCRIPT_BYTES, TranscriptReport, verify_transcript
from .output import clock, emit_json, profile_of, safe, status_line, wants_json

__all__ = ["export", "verify"]


def export(args: argparse.Namespace) -> int:
    """Write a conversation's transcript to --output or stdout (never to a terminal)."""
    if args.output is None and sys.stdout.isatty():
        raise InvalidTranscript(
            "a transcript is binary: redirect it (`meshtalk export ROOM > file`) or give --output"
        )
    if args.output is None:
        found = _export(args, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:  # written beside it, then moved into place: a failed export leaves no short file
        target = Path(args.output)
        partial = target.with_name(f".{target.name}.partial")
        try:
            with partial.open("wb") as out:
                found = _export(args, out)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    unsigned = (
        f"; {found['unsigned']} older message(s) had no signed bytes" if found["unsigned"] else ""
    )
    status_line(f"exported {found['messages']} message(s) of {found['kind']} conversation "
                f"{found['conversation'][:12]}{unsigned}")  # fmt: skip
    return 0


def _export(args: argparse.Namespace, out: BinaryIO) -> dict[str, Any]:
    """Ask the node for the transcript and write its chunks to `out` as they come."""

    def write(event: dict[str, Any]) -> None:
        chunk = event.get("chunk")
        if isinstance(chunk, bytes):
            out.write(chunk)

    with connect_control(profile_of(args)) as control:
        found: dict[str, Any] = control.call("export", write, conversation=args.conversation)
    return found


def verify(args: argparse.Namespace) -> int:
    """Check a transcript file offline; exit 1 if a message or the log fails."""
    path = Path(args.file)
    if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
        raise InvalidTranscript(f"{path} is larger than a transcript may be")
    report = verify_transcript(path.read_bytes())
    if wants_json(args):
        emit_json(_report_json(report))
    else:
        _print(report)
    if not report.ok:
        failed = len(report.failures) + len(report.log_errors)
        raise InvalidTranscript(
            f"{failed} of {len(report.checked)} message(s) and log checks failed in {path}"
        )
    return 0


def _print(report: TranscriptReport) -> None:
    room = report.room
    what = f"room {safe(room.name)!r} ({len(room.members)} members now)" if room else report.kind
    print(f"transcript of {what} conversation {report.conversation.hex()}")
    for line in report.log_errors:
        print(f"  log: {safe(line)}")
    for checked in report.checked:
        envelope = checked.envelope
        if checked.error is None and envelope is not None:
            continue
        where = f"#{checked.index}"
        if envelope is not None:
            where += f" (id {envelope.id.hex()[:12]}, by {envelope.author})"
        print(f"  FAILED {where}: {safe(checked.error or '')}")
    good = len(report.checked) - len(report.failures)
    authors = {c.envelope.author for c in report.checked if c.envelope and c.error is None}
    span = [c.envelope.timestamp_ms for c in report.checked if c.envelope and c.error is None]
    when = f", {clock(min(span))} to {clock(max(span))}" if span else ""
    print(f"{good} of {len(report.checked)} message(s) verified, by {len(authors)} "
          f"author(s){when}")  # fmt: skip


def _report_json(report: TranscriptReport) -> dict[str, Any]:
    return {
        "conversation": report.conversation.hex(),
        "kind": report.kind,
        "room": report.room.name if report.room else None,
        "ok": report.ok,
        "log_errors": list(report.log_errors),
        "messages": [
            {"index": c.index, "ok": c.error is None, "error": c.error,
             "id": c.envelope.id.hex() if c.envelope else None,
             "author": str(c.envelope.author) if c.envelope else None,
             "lamport": c.envelope.lamport if c.envelope else None,
             "timestamp_ms": c.envelope.timestamp_ms if c.envelope else None,
             "text": c.envelope.body if c.envelope and isinstance(c.envelope.body, str) else None}
            for c in report.checked
        ],
    }  # fmt: skip
