"""Exporting a conversation's transcript from the store (protocol/transcript.py checks it).

A transcript holds each message's signed bytes as its author signed them, so it can be
checked anywhere, later, without this node: `meshtalk export CONVERSATION > file`, then
`meshtalk verify file`. Messages stored before signed bytes were kept (store version 5) have
none; they are counted, not exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol.transcript import transcript_bytes

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Exported", "export_transcript"]


@dataclass(frozen=True)
class Exported:
    """A transcript's bytes, how many messages it holds, and how many had no signed bytes."""

    data: bytes
    kind: str
    messages: int
    unsigned: int


def export_transcript(store: Store, conversation: bytes) -> Exported:
    """The transcript of `conversation` (a room's with its membership log)."""
    signed, unsigned = store.room_messages.signed(conversation)
    if store.rooms.is_held(conversation):
        kind, log = "room", store.rooms.log(conversation).entries()
    else:
        found = store.messages.conversations(conversation)
        kind, log = ("group" if found and found[0].kind == "group" else "direct"), ()
    data = transcript_bytes(conversation, kind, log, signed)
    return Exported(data, kind, len(signed), unsigned)
