"""Transcripts checked offline: every signature, every author's right to write, the order; each
failure named by its position, the others still checked."""

from __future__ import annotations

import random

import pytest

from meshtalk.protocol.codec import packb
from meshtalk.protocol.room_errors import InvalidTranscript
from meshtalk.protocol.rooms import RoomOp, add_entry, create_entry, entry_hash, member_entry
from meshtalk.protocol.sealing import sign_envelope
from meshtalk.protocol.transcript import FORMAT, transcript_bytes, verify_transcript
from tests.conftest import NOW_MS, fixed_key, make_envelope

pytestmark = pytest.mark.timeout(30)

ALICE, BOB, CAROL, MALLORY = (fixed_key(n) for n in ("alice", "bob", "carol", "mallory"))
_rng = random.Random(7)


def _room() -> tuple[bytes, list[bytes]]:
    """Room "team": alice creates it (Lamport 0) and adds bob (1) and carol (2); carol is
    removed at 20."""
    create = create_entry(ALICE, "team", NOW_MS, _rng.randbytes)
    room = entry_hash(create)
    log = [
        create,
        add_entry(ALICE, room, BOB.peer_id, "bob", (), 1, NOW_MS, _rng.randbytes),
        add_entry(ALICE, room, CAROL.peer_id, "carol", (), 2, NOW_MS, _rng.randbytes),
        member_entry(ALICE, RoomOp.REMOVE, room, CAROL.peer_id, 20, NOW_MS, _rng.randbytes),
    ]
    return room, log


def _post(room: bytes, author: object, lamport: int, body: str) -> bytes:
    envelope = make_envelope(
        author, ALICE, BOB, CAROL, conversation=room, lamport=lamport, body=body,  # type: ignore[arg-type]
        id=_rng.randbytes(16),
    )  # fmt: skip
    return sign_envelope(envelope, author).data  # type: ignore[arg-type]


def test_a_genuine_room_transcript_verifies_in_order() -> None:
    room, log = _room()
    posts = [_post(room, BOB, 10, "b"), _post(room, CAROL, 5, "c"), _post(room, ALICE, 10, "a")]
    report = verify_transcript(transcript_bytes(room, "room", log, posts))
    assert report.ok, report.failures
    assert report.room is not None
    assert report.room.name == "team"
    lamports = [c.envelope.lamport for c in report.checked if c.envelope]
    assert lamports == sorted(lamports)  # exported in the room's order


def test_each_bad_message_is_named_and_the_rest_still_checked() -> None:
    room, log = _room()
    good = _post(room, BOB, 10, "meet at noon")
    altered = good.replace(b"meet at noon", b"meet at nine")
    late = _post(room, CAROL, 25, "after my removal")
    stranger = _post(room, MALLORY, 11, "let me in")
    early = _post(room, BOB, 3, "back-dated, listed last")
    messages = [good, altered, late, stranger, good, early]
    data = packb({"format": FORMAT, "version": 1, "conversation": room, "kind": "room",
                  "log": log, "messages": messages})  # fmt: skip
    report = verify_transcript(data)
    assert not report.ok
    errors = {c.index: c.error for c in report.checked}
    assert errors[0] is None
    assert "BadSignature" in (errors[1] or "")
    assert "not a member" in (errors[2] or "")
    assert "not a member" in (errors[3] or "")
    assert "twice" in (errors[4] or "")
    assert "out of order" in (errors[5] or "")


def test_a_direct_transcript_checks_its_two_peers() -> None:
    to_bob = sign_envelope(make_envelope(ALICE, BOB, id=b"1" * 16), ALICE).data
    back = sign_envelope(make_envelope(BOB, ALICE, id=b"2" * 16, lamport=2), BOB).data
    conversation = make_envelope(ALICE, BOB).conversation
    assert verify_transcript(transcript_bytes(conversation, "direct", (), [back, to_bob])).ok
    # mallory's message claims the conversation of alice and bob
    intruder = make_envelope(MALLORY, BOB, conversation=conversation, id=b"3" * 16, lamport=3)
    data = transcript_bytes(
        conversation, "direct", (), [to_bob, sign_envelope(intruder, MALLORY).data]
    )
    [failed] = verify_transcript(data).failures
    assert "not one of the two peers" in (failed.error or "")


def test_a_room_transcript_without_its_log_fails() -> None:
    room, _ = _room()
    report = verify_transcript(transcript_bytes(room, "room", [], [_post(room, BOB, 10, "x")]))
    assert not report.ok
    assert "log is missing" in report.log_errors[0]


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", packb({"format": "other"}), packb([1, 2]),
     packb({"format": FORMAT, "version": 2, "conversation": b"x" * 16, "kind": "room",
            "log": [], "messages": []}),
     packb({"format": FORMAT, "version": 1, "conversation": b"short", "kind": "room",
            "log": [], "messages": []})],
)  # fmt: skip
def test_what_is_not_a_transcript_is_one_clear_error(data: bytes) -> None:
    with pytest.raises(InvalidTranscript):
        verify_transcript(data)


def test_a_transcript_written_in_parts_is_one_msgpack_map() -> None:
    room, log = _room()
    posts = [_post(room, BOB, 10 + n, f"post {n}") for n in range(3)]
    whole = packb({"format": FORMAT, "version": 1, "conversation": room, "kind": "room",
                   "log": log, "messages": posts})  # fmt: skip
    assert transcript_bytes(room, "room", log, posts[::-1]) == whole  # sorted into order
