"""Exporting a conversation's transcript from the store (protocol/transcript.py checks it).

A transcript holds each message's signed bytes as its author signed them, so it can be
checked anywhere, later, without this node: `meshtalk export CONVERSATION > file`, then
`meshtalk verify file`. Messages stored before signed bytes were kept (store version 5) have
none; they are counted, not exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol.errors import StoreError
from ..protocol.transcript import transcript_head, transcript_item

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Exported", "export_transcript"]


@dataclass(frozen=True)
class Exported:
    """A transcript to write a page at a time: `head`, then what `pages()` yields. It holds
    the messages stored when it was made (up to cursor `upto`): later ones are not in it."""

    store: Store
    conversation: bytes
    kind: str
    head: bytes
    messages: int  # with signed bytes: the ones in the transcript
    unsigned: int  # stored before signed bytes were kept: counted, not in it
    upto: int

    def pages(self) -> Iterator[bytes]:
        """The transcript's messages after its head, in the conversation's order, about
        PAGE_BYTES at a time (each page one query: nothing is held open between pages).

        StoreError if messages were pruned meanwhile: the head has promised them."""
        after, written = None, 0
        while True:
            page = self.store.room_messages.signed_page(self.conversation, self.upto, after)
            if not page:
                break
            written += len(page)
            after = page[-1][0]
            yield b"".join(transcript_item(signed) for _, signed in page)
        if written != self.messages:
            raise StoreError(
                f"{self.messages - written} message(s) of this conversation were pruned "
                "during the export, so this transcript is cut short; export it again"
            )


def export_transcript(store: Store, conversation: bytes) -> Exported:
    """The transcript of `conversation` (a room's with its membership log), to write out."""
    upto = store.messages.last_cursor()
    if store.rooms.is_held(conversation):
        kind, log = "room", store.rooms.log(conversation).entries()
    else:
        found = store.messages.conversations(conversation)
        kind, log = ("group" if found and found[0].kind == "group" else "direct"), ()
    signed, unsigned = store.room_messages.signed_count(conversation, upto)
    head = transcript_head(conversation, kind, log, signed)
    return Exported(store, conversation, kind, head, signed, unsigned, upto)
