"""Verifiable transcripts: a conversation's signed envelopes (and a room's log), checked offline.

`meshtalk export CONVERSATION > file` writes one; `meshtalk verify file` checks it without a
store, a node or a network. The file is one msgpack map:

    {"format": "meshtalk-transcript", "version": 1, "conversation": id16,
     "kind": "direct" | "room" | "group", "log": [entry, ...], "messages": [signed, ...]}

`messages` are each message's signed bytes (`signature || packed envelope`, exactly what its
author signed: protocol/sealing.py), in the conversation's order (Lamport, author, id); `log`
is a room's membership log (protocol/rooms.py entries), empty otherwise. Verification checks,
per message: the signature against the envelope's author, that it belongs to the
conversation, that its author could write there (a room: a member at that Lamport, by the
log; a direct conversation: one of the two peers whose id it is), that it is not listed twice,
and that the order is the conversation's. It says which entry fails and why; it never stops
at the first failure. Nothing here proves that a transcript is *complete*: an exporter can
leave messages out, but it cannot alter, invent or reorder one unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from .codec import packb, unpackb_strict
from .envelope import ID_LENGTH, Envelope, direct_conversation_id
from .error_classes import MalformedEnvelope, MeshtalkError
from .room_errors import InvalidTranscript
from .room_state import MAX_LOG_ENTRIES, RoomLog, RoomState
from .sealing import MAX_SIGNED_SIZE, verify_signed

__all__ = [
    "FORMAT",
    "MAX_TRANSCRIPT_BYTES",
    "MAX_TRANSCRIPT_MESSAGES",
    "Checked",
    "TranscriptReport",
    "transcript_bytes",
    "transcript_head",
    "transcript_item",
    "verify_transcript",
]

FORMAT: Final = "meshtalk-transcript"
VERSION: Final = 1
MAX_TRANSCRIPT_MESSAGES: Final = 1_000_000
MAX_TRANSCRIPT_BYTES: Final = 2 * 1024**3
_KINDS: Final = frozenset({"direct", "room", "group"})
_KEYS: Final = frozenset({"format", "version", "conversation", "kind", "log", "messages"})


def order_key(envelope: Envelope) -> tuple[int, bytes, bytes]:
    """A conversation's total order: (Lamport, author's peer ID bytes, id)."""
    return envelope.lamport, envelope.author.to_bytes(), envelope.id


def transcript_head(conversation: bytes, kind: str, log: Sequence[bytes], count: int) -> bytes:
    """The bytes of a transcript before its messages. The file is this head, then each of
    `count` messages' `transcript_item`, in the conversation's order: an exporter can write it
    a page at a time, never holding the whole conversation."""
    if kind not in _KINDS:
        raise ValueError(f"a transcript's kind is one of {sorted(_KINDS)}")
    packer = msgpack.Packer(use_bin_type=True)
    fields = {"format": FORMAT, "version": VERSION, "conversation": conversation, "kind": kind,
              "log": list(log)}  # fmt: skip
    head: bytes = packer.pack_map_header(len(fields) + 1)
    for name, value in fields.items():
        head += packb(name) + packb(value)
    array: bytes = packer.pack_array_header(count)
    return head + packb("messages") + array


def transcript_item(signed: bytes) -> bytes:
    """One message of a transcript after its head: its signed bytes."""
    return packb(signed)


def transcript_bytes(
    conversation: bytes, kind: str, log: Sequence[bytes], signed: Sequence[bytes]
) -> bytes:
    """A transcript file's bytes; `signed` are sorted into the conversation's order here."""
    ordered = sorted(signed, key=lambda data: order_key(verify_signed(data, None).envelope))
    head = transcript_head(conversation, kind, log, len(ordered))
    return head + b"".join(transcript_item(data) for data in ordered)


@dataclass(frozen=True, slots=True)
class Checked:
    """One listed message: its position, and its envelope if the signature held."""

    index: int
    envelope: Envelope | None
    error: str | None


@dataclass(frozen=True)
class TranscriptReport:
    """What `verify_transcript` found: the conversation, the room (if any) and each message."""

    conversation: bytes
    kind: str
    room: RoomState | None
    checked: tuple[Checked, ...]
    log_errors: tuple[str, ...] = field(default=())

    @property
    def failures(self) -> tuple[Checked, ...]:
        """The messages that failed a check."""
        return tuple(c for c in self.checked if c.error is not None)

    @property
    def ok(self) -> bool:
        """Whether every message and the log passed."""
        return not self.failures and not self.log_errors


def _fields(data: bytes) -> dict[str, Any]:
    if type(data) is not bytes or len(data) > MAX_TRANSCRIPT_BYTES:
        raise InvalidTranscript(f"a transcript is bytes, at most {MAX_TRANSCRIPT_BYTES}")
    try:
        fields = unpackb_strict(data, MalformedEnvelope, "the transcript")
    except MalformedEnvelope as exc:
        raise InvalidTranscript(f"this is not a meshtalk transcript: {exc}") from None
    if type(fields) is not dict or fields.get("format") != FORMAT:
        raise InvalidTranscript("this is not a meshtalk transcript (no 'format' field)")
    if fields.get("version") != VERSION or set(fields) != _KEYS:
        raise InvalidTranscript(
            f"transcript version {fields.get('version')!r} is not one this meshtalk reads "
            f"({VERSION}), or its fields are not {sorted(_KEYS)}"
        )
    conversation, kind = fields["conversation"], fields["kind"]
    if type(conversation) is not bytes or len(conversation) != ID_LENGTH or kind not in _KINDS:
        raise InvalidTranscript("a transcript names a 16-byte conversation and its kind")
    log, messages = fields["log"], fields["messages"]
    if type(log) is not list or len(log) > MAX_LOG_ENTRIES:
        raise InvalidTranscript(f"a transcript's log lists at most {MAX_LOG_ENTRIES} entries")
    if type(messages) is not list or len(messages) > MAX_TRANSCRIPT_MESSAGES:
        raise InvalidTranscript(f"a transcript lists at most {MAX_TRANSCRIPT_MESSAGES} messages")
    return fields


def _room_state(conversation: bytes, log: list[Any]) -> tuple[RoomState | None, list[str]]:
    errors: list[str] = []
    if not log:
        return None, ["the room's membership log is missing: no author can be checked"]
    room = RoomLog(conversation)
    for index, entry in enumerate(log):
        try:
            room.add(entry)
        except MeshtalkError as exc:
            errors.append(f"log entry {index}: {exc}")
    if not room.has_create:
        return None, [*errors, "the log lacks the room's create entry (or it is another room's)"]
    return room.state(), errors  # entries the replay skips are no error: every member skips them


def _author_error(envelope: Envelope, kind: str, room: RoomState | None) -> str | None:
    if kind == "room":
        if room is not None and not room.was_member(envelope.author, envelope.lamport):
            return f"{envelope.author} was not a member of the room at Lamport {envelope.lamport}"
        return None
    if kind == "direct":
        others = [r for r in envelope.recipients if r != envelope.author]
        if len(others) != 1 or direct_conversation_id(envelope.author, others[0]) != (
            envelope.conversation
        ):
            return f"{envelope.author} is not one of the two peers of this direct conversation"
    return None


def verify_transcript(data: bytes) -> TranscriptReport:
    """Check a transcript (see the module docstring). Raises InvalidTranscript when the file
    itself is not a transcript; each failing message or log entry is listed in the report."""
    fields = _fields(data)
    conversation, kind = fields["conversation"], fields["kind"]
    room: RoomState | None = None
    log_errors: list[str] = []
    if kind == "room":
        room, log_errors = _room_state(conversation, fields["log"])
    checked: list[Checked] = []
    seen: set[tuple[bytes, bytes]] = set()
    last: tuple[int, bytes, bytes] | None = None
    for index, signed in enumerate(fields["messages"]):
        if type(signed) is not bytes or len(signed) > MAX_SIGNED_SIZE:
            checked.append(
                Checked(index, None, f"not signed envelope bytes (at most {MAX_SIGNED_SIZE})")
            )
            continue
        try:
            envelope = verify_signed(signed, None).envelope
        except MeshtalkError as exc:
            checked.append(Checked(index, None, f"{type(exc).__name__}: {exc}"))
            continue
        key = order_key(envelope)
        if envelope.conversation != conversation:
            error: str | None = f"it belongs to conversation {envelope.conversation.hex()}"
        elif (error := _author_error(envelope, kind, room)) is not None:
            pass
        elif (key[1], key[2]) in seen:
            error = "it is listed twice"
        elif last is not None and key < last:
            error = "it is out of order (the order is Lamport, author, id)"
        seen.add((key[1], key[2]))
        last = key if last is None else max(last, key)
        checked.append(Checked(index, envelope, error))
    return TranscriptReport(conversation, kind, room, tuple(checked), tuple(log_errors))
