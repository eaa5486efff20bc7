"""Exporting a transcript from a real store a page at a time: the same file as one built whole,
nothing stored after the export began, and a clear error when messages vanish meanwhile."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from meshtalk.peer.store import Store
from meshtalk.peer.store.rows import PAGE_BYTES
from meshtalk.peer.transcripts import Exported, export_transcript
from meshtalk.protocol import NodeKey, StoreError, direct_conversation_id, seal
from meshtalk.protocol.sealing import sign_envelope
from meshtalk.protocol.transcript import transcript_bytes, verify_transcript
from tests.conftest import NOW_MS, make_envelope

pytestmark = pytest.mark.timeout(60)

_COUNT = 24
_SIZE = PAGE_BYTES // 8  # three pages or so


def _receive(store: Store, alice: NodeKey, bob: NodeKey, lamport: int, body: str) -> bytes:
    envelope = make_envelope(alice, bob, id=random.Random(lamport).randbytes(16),
                             lamport=lamport, body=body)  # fmt: skip
    signed = sign_envelope(envelope, alice).data
    sealed = seal(envelope, alice, bob.peer_id)
    [stored] = store.messages.store_incoming([(envelope, sealed, signed)], bob.peer_id, NOW_MS)
    assert not isinstance(stored, Exception), stored
    return signed


def _file(exported: Exported) -> tuple[bytes, int]:
    pages = list(exported.pages())
    return exported.head + b"".join(pages), len(pages)


def test_a_transcript_in_pages_is_the_whole_one(tmp_path: Path, alice: NodeKey,
                                                bob: NodeKey) -> None:  # fmt: skip
    store = Store(tmp_path / "store.db")
    lamports = random.Random(3).sample(range(1, 1000), _COUNT)  # stored out of order
    signed = [_receive(store, alice, bob, n, f"{n}:" + "x" * _SIZE) for n in lamports]
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
    exported = export_transcript(store, conversation)
    _receive(store, alice, bob, 5000, "after the export began")
    data, pages = _file(exported)
    assert pages > 1
    assert exported.messages == _COUNT
    assert data == transcript_bytes(conversation, "direct", (), signed)
    report = verify_transcript(data)
    assert report.ok, report.failures
    shown = [c.envelope.lamport for c in report.checked if c.envelope]
    assert shown == sorted(lamports)
    store.close()


def test_messages_pruned_during_an_export_fail_it(tmp_path: Path, alice: NodeKey,
                                                 bob: NodeKey) -> None:  # fmt: skip
    store = Store(tmp_path / "store.db")
    for n in range(1, _COUNT + 1):
        _receive(store, alice, bob, n, "x" * _SIZE)
    exported = export_transcript(store, direct_conversation_id(alice.peer_id, bob.peer_id))
    pages = exported.pages()
    next(pages)
    with store.db.transaction() as db:  # what retention does to old messages
        db.execute("DELETE FROM messages WHERE lamport > ?", (_COUNT - 3,))
    with pytest.raises(StoreError, match=r"3 message.*pruned during the export"):
        list(pages)
    store.close()
