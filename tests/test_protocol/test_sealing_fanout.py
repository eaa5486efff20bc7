"""Sign once, seal many (rooms' fan-out), and forwarded copies (sealed version 2, catch-up)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import crypto_box_easy_afternm

from meshtalk.protocol import (
    DEFAULT_MAX_AGE_MS,
    DEFAULT_MAX_FUTURE_SKEW_MS,
    MAX_LAMPORT,
    MAX_SEALED_SIZE,
    SIGNING_CONTEXT,
    AuthorMismatch,
    BadSignature,
    ClockSkew,
    DecryptionFailed,
    Envelope,
    LamportOutOfRange,
    MalformedEnvelope,
    MeshtalkError,
    MessageTooLarge,
    NodeKey,
    NotARecipient,
    UnsupportedVersion,
    open_sealed,
    packb,
    seal,
)
from meshtalk.protocol.forwarding import OpenedMessage, open_any
from meshtalk.protocol.sealing import (
    FORWARDED_SEALED_VERSION,
    MAX_SIGNED_SIZE,
    SEALED_VERSION,
    SignedEnvelope,
    seal_signed,
    sign_envelope,
    verify_signed,
)
from tests.conftest import NOW_MS, fixed_key, make_envelope

pytestmark = pytest.mark.timeout(60)

ALICE, BOB, CAROL, DAVE = (fixed_key(n) for n in ("alice", "bob", "carol", "dave"))
NONCE = bytes(range(24))
DAY_MS = 24 * 3600 * 1000


class CountingKey(NodeKey):
    """A node key that counts its signatures."""

    signatures = 0

    def sign(self, data: bytes) -> bytes:
        self.signatures += 1
        return super().sign(data)


def room_envelope(**fields: Any) -> Envelope:
    """Alice's message to bob and carol (dave is not a recipient)."""
    return make_envelope(ALICE, BOB, CAROL, conversation=b"r" * 16, **fields)


def by_hand(version: int, sender: NodeKey, to: NodeKey, plain: bytes, header: bytes = b"") -> bytes:
    """A sealed copy of `plain` boxed by `sender` for `to`, naming `header` (or the sender)."""
    box = NONCE + crypto_box_easy_afternm(plain, NONCE, sender.shared_key(to.peer_id))
    return packb([version, header or sender.peer_id.to_bytes(), to.peer_id.to_bytes(), box])


def signed_by(signer: NodeKey, packed: bytes) -> bytes:
    return signer.sign(SIGNING_CONTEXT + packed) + packed


def forwarded_to_carol() -> tuple[SignedEnvelope, bytes]:
    """Bob opens alice's copy and forwards the signed bytes to carol."""
    opened = open_any(seal(room_envelope(), ALICE, BOB.peer_id), BOB, NOW_MS)
    return opened.signed, seal_signed(opened.signed, BOB, CAROL.peer_id)


# Sign once, seal many


def test_sign_once_seal_to_64_members_opens_for_each() -> None:
    author = CountingKey(ALICE.signing_key)
    members = [fixed_key(f"member{i}") for i in range(64)]
    envelope = make_envelope(ALICE, *members, conversation=b"r" * 16)
    signed = sign_envelope(envelope, author)
    copies = [seal_signed(signed, author, m.peer_id) for m in members]
    assert author.signatures == 1
    assert len(set(copies)) == 64  # a fresh nonce and box per member
    for member, sealed in zip(members, copies, strict=True):
        assert open_sealed(sealed, member, NOW_MS) == envelope
        opened = open_any(sealed, member, NOW_MS)
        assert opened == OpenedMessage(signed, None)
        assert opened.signed.data == signed.data
    with pytest.raises(NotARecipient):  # a copy for another member is not this one's
        open_sealed(copies[0], members[1], NOW_MS)


def test_seal_signs_on_every_call_seal_signed_never() -> None:
    author = CountingKey(ALICE.signing_key)
    envelope = room_envelope()
    seal(envelope, author, BOB.peer_id)
    seal(envelope, author, CAROL.peer_id)
    signed = sign_envelope(envelope, author)
    seal_signed(signed, author, BOB.peer_id)
    seal_signed(signed, author, CAROL.peer_id)
    assert author.signatures == 3


def test_seal_signed_by_the_author_is_todays_version_1() -> None:
    envelope = room_envelope(body="same bytes")
    signed = sign_envelope(envelope, ALICE)
    sealed = seal_signed(signed, ALICE, BOB.peer_id, lambda n: NONCE[:n])
    # Ed25519 is deterministic: with the same nonce, seal() makes the very same bytes.
    assert sealed == seal(envelope, ALICE, BOB.peer_id, lambda n: NONCE[:n])
    version, author, recipient, box = msgpack.unpackb(sealed)
    assert (version, author, recipient) == (1, ALICE.peer_id.to_bytes(), BOB.peer_id.to_bytes())
    assert box[:24] == NONCE
    assert open_sealed(sealed, BOB, NOW_MS) == envelope


def test_signed_envelope_parts() -> None:
    envelope = room_envelope()
    signed = sign_envelope(envelope, ALICE)
    assert signed.packed == envelope.pack()
    assert len(signed.signature) == 64
    assert signed.data == signed.signature + signed.packed
    assert verify_signed(signed.data, NOW_MS) == signed
    with pytest.raises(TypeError):
        SignedEnvelope(envelope, signed.signature)  # no envelope after the signature
    with pytest.raises(TypeError):
        SignedEnvelope(envelope.pack(), signed.data)  # type: ignore[arg-type]


def test_sealing_checks_author_and_recipient_before_signing() -> None:
    mallory = CountingKey(fixed_key("mallory").signing_key)
    with pytest.raises(AuthorMismatch):
        sign_envelope(room_envelope(), mallory)
    # seal() keeps its order of checks: the author first, even for a stranger as recipient.
    with pytest.raises(AuthorMismatch):
        seal(room_envelope(), mallory, DAVE.peer_id)
    author = CountingKey(ALICE.signing_key)
    with pytest.raises(NotARecipient):
        seal(room_envelope(), author, DAVE.peer_id)
    assert mallory.signatures == author.signatures == 0
    with pytest.raises(NotARecipient):
        seal_signed(sign_envelope(room_envelope(), ALICE), ALICE, DAVE.peer_id)


# Forwarding


def test_forward_by_a_third_member_opens_and_names_both() -> None:
    signed, forwarded = forwarded_to_carol()
    version, sender, recipient, _ = msgpack.unpackb(forwarded)
    assert version == FORWARDED_SEALED_VERSION == 2
    assert (sender, recipient) == (BOB.peer_id.to_bytes(), CAROL.peer_id.to_bytes())
    opened = open_any(forwarded, CAROL, NOW_MS)
    assert opened.forwarded_by == BOB.peer_id
    assert opened.envelope == room_envelope()
    assert opened.envelope.author == ALICE.peer_id
    assert opened.signed.data == signed.data  # the author's bytes, unchanged
    # Forwarded again, by carol back to bob: still alice's message.
    again = open_any(seal_signed(opened.signed, CAROL, BOB.peer_id), BOB, NOW_MS)
    assert (again.signed, again.forwarded_by) == (signed, CAROL.peer_id)


def test_the_author_may_get_its_own_message_forwarded_back() -> None:
    envelope = make_envelope(ALICE, ALICE, BOB, conversation=b"r" * 16)
    signed = sign_envelope(envelope, ALICE)
    opened = open_any(seal_signed(signed, BOB, ALICE.peer_id), ALICE, NOW_MS)
    assert (opened.signed, opened.forwarded_by) == (signed, BOB.peer_id)


def test_open_sealed_refuses_forwarded_copies() -> None:
    _, forwarded = forwarded_to_carol()
    with pytest.raises(UnsupportedVersion, match="speaks 1\\)"):
        open_sealed(forwarded, CAROL, NOW_MS)


def test_forwarder_altering_the_envelope_or_signature_is_refused() -> None:
    signed, _ = forwarded_to_carol()
    envelope_id = room_envelope().id
    altered_body = room_envelope(body="alice never said this").pack()
    other_author = make_envelope(BOB, BOB, CAROL, conversation=b"r" * 16).pack()
    flipped = bytearray(signed.data)
    flipped[10] ^= 1
    forgeries = [
        signed.signature + altered_body,  # alice's signature on other bytes
        bytes(flipped),  # a bit of the signature
        signed_by(BOB, signed.packed),  # bob's signature, alice still named as author
        signed.signature + other_author,  # alice's signature, bob named as author
    ]
    for plain in forgeries:
        with pytest.raises(BadSignature) as refused:
            open_any(by_hand(2, BOB, CAROL, plain), CAROL, NOW_MS)
        assert refused.value.message_id == envelope_id
        assert type(refused.value) is BadSignature  # not AuthorMismatch, a subclass
    # Alice's bytes sealed as a direct copy by bob: checked against bob, refused.
    with pytest.raises(BadSignature):
        open_any(by_hand(1, BOB, CAROL, signed.data), CAROL, NOW_MS)


def test_forwarder_claiming_to_be_the_author_is_refused() -> None:
    signed, _ = forwarded_to_carol()
    # Bob names alice as the sender: carol's box with alice does not open.
    for version in (1, 2):
        header = ALICE.peer_id.to_bytes()
        with pytest.raises(DecryptionFailed):
            open_any(by_hand(version, BOB, CAROL, signed.data, header), CAROL, NOW_MS)
    # Bob rewrites the author to himself and signs: a message by bob, which he must seal as
    # version 1; as a "forwarded" copy it is refused.
    bobs = make_envelope(BOB, BOB, CAROL, conversation=b"r" * 16)
    with pytest.raises(MalformedEnvelope, match="own author") as refused:
        open_any(by_hand(2, BOB, CAROL, signed_by(BOB, bobs.pack())), CAROL, NOW_MS)
    assert refused.value.message_id == bobs.id
    assert open_any(seal(bobs, BOB, CAROL.peer_id), CAROL, NOW_MS).forwarded_by is None


def test_author_sealing_version_2_is_refused() -> None:
    signed = sign_envelope(room_envelope(), ALICE)
    assert msgpack.unpackb(seal_signed(signed, ALICE, BOB.peer_id))[0] == SEALED_VERSION
    with pytest.raises(MalformedEnvelope, match="must use sealed version 1"):
        open_any(by_hand(2, ALICE, BOB, signed.data), BOB, NOW_MS)


def test_forwarded_to_a_non_recipient_is_refused() -> None:
    signed, _ = forwarded_to_carol()
    with pytest.raises(NotARecipient):
        seal_signed(signed, BOB, DAVE.peer_id)
    with pytest.raises(NotARecipient, match="signed recipients") as refused:
        open_any(by_hand(2, BOB, DAVE, signed.data), DAVE, NOW_MS)
    assert refused.value.message_id == room_envelope().id


def test_forwarder_outside_the_recipients_is_refused() -> None:
    signed, _ = forwarded_to_carol()  # dave got hold of the signed bytes somehow
    with pytest.raises(NotARecipient, match="cannot forward"):
        seal_signed(signed, DAVE, CAROL.peer_id)
    with pytest.raises(NotARecipient, match="forwarded a message") as refused:
        open_any(by_hand(2, DAVE, CAROL, signed.data), CAROL, NOW_MS)
    assert refused.value.message_id == room_envelope().id


def test_forwarded_copies_keep_the_future_skew_not_the_age_limit() -> None:
    old = sign_envelope(room_envelope(timestamp_ms=NOW_MS - 90 * DAY_MS), ALICE)
    forwarded = seal_signed(old, BOB, CAROL.peer_id)
    assert open_any(forwarded, CAROL, NOW_MS).signed == old  # history from 90 days ago
    with pytest.raises(ClockSkew, match="old"):
        open_any(forwarded, CAROL, NOW_MS, max_forwarded_age_ms=DEFAULT_MAX_AGE_MS)
    with pytest.raises(ClockSkew, match="old"):  # a direct copy keeps its month
        open_any(seal_signed(old, ALICE, CAROL.peer_id), CAROL, NOW_MS)
    future = sign_envelope(
        room_envelope(timestamp_ms=NOW_MS + DEFAULT_MAX_FUTURE_SKEW_MS + 1), ALICE
    )
    with pytest.raises(ClockSkew, match="clocks"):
        open_any(seal_signed(future, BOB, CAROL.peer_id), CAROL, NOW_MS)


# Hostile bytes


def test_every_truncation_and_byte_flip_of_a_forwarded_copy_is_refused() -> None:
    _, forwarded = forwarded_to_carol()
    for length in range(len(forwarded)):
        with pytest.raises(MeshtalkError):
            open_any(forwarded[:length], CAROL, NOW_MS)
    for position in range(len(forwarded)):
        tampered = bytearray(forwarded)
        tampered[position] ^= 0x01
        with pytest.raises(MeshtalkError):
            open_any(bytes(tampered), CAROL, NOW_MS)


def test_hostile_forwarded_headers() -> None:
    _, forwarded = forwarded_to_carol()
    _, sender, recipient, box = msgpack.unpackb(forwarded)
    with pytest.raises(UnsupportedVersion, match="speaks 1 and 2"):
        open_any(packb([3, sender, recipient, box]), CAROL, NOW_MS)
    with pytest.raises(NotARecipient, match="addressed to another peer"):
        open_any(forwarded, BOB, NOW_MS)
    with pytest.raises(DecryptionFailed):  # readdressed: bob's box for carol is not dave's
        open_any(packb([2, sender, DAVE.peer_id.to_bytes(), box]), DAVE, NOW_MS)
    malformed = [
        [True, sender, recipient, box],
        [2, sender, recipient],
        [2, sender, "carol", box],
        [2, b"\x00" * 38, recipient, box],
        [2, sender, recipient, box[:103]],
        [2, sender, recipient, box, b""],
    ]
    for header in malformed:
        with pytest.raises(MalformedEnvelope):
            open_any(packb(header), CAROL, NOW_MS)


def test_oversized_copies_are_refused_before_decoding() -> None:
    # Valid msgpack with a box that would decrypt-and-fail: the size cap answers first.
    header = [2, BOB.peer_id.to_bytes(), CAROL.peer_id.to_bytes()]
    big = packb([*header, b"\x00" * MAX_SEALED_SIZE])
    with pytest.raises(MessageTooLarge):
        open_any(big, CAROL, NOW_MS)
    with pytest.raises(MessageTooLarge, match="signed envelope is"):
        verify_signed(b"\x00" * (MAX_SIGNED_SIZE + 1), None)


def test_forwarded_lamport_beyond_the_range_is_refused() -> None:
    wire = room_envelope().to_wire()
    wire["l"] = MAX_LAMPORT + 1
    with pytest.raises(LamportOutOfRange) as refused:
        open_any(by_hand(2, BOB, CAROL, signed_by(ALICE, packb(wire))), CAROL, NOW_MS)
    assert refused.value.message_id == room_envelope().id


PEER_IDS = [k.peer_id.to_bytes() for k in (ALICE, BOB, CAROL)]
ITEMS = (
    st.sampled_from(PEER_IDS)
    | st.binary(max_size=120)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.none()
)


@given(st.lists(ITEMS, max_size=5))
def test_open_any_on_msgpack_arrays(items: list[Any]) -> None:
    for version in (1, 2):
        with pytest.raises(MeshtalkError):
            open_any(packb([version, *items]), CAROL, NOW_MS)


# verify_signed: what an offline transcript verifier calls on stored bytes


def test_verify_signed_offline_and_with_a_clock() -> None:
    old = sign_envelope(room_envelope(timestamp_ms=NOW_MS - 400 * DAY_MS), ALICE)
    assert verify_signed(old.data, None) == old  # no clock: any age
    with pytest.raises(ClockSkew):
        verify_signed(old.data, NOW_MS)
    assert verify_signed(old.data, NOW_MS, max_age_ms=None) == old


def test_verify_signed_refusals() -> None:
    signed = sign_envelope(room_envelope(), ALICE)
    with pytest.raises(BadSignature) as refused:
        verify_signed(signed.signature + room_envelope(body="edited").pack(), None)
    assert refused.value.message_id == room_envelope().id
    for short in (b"", signed.signature, signed.data[:65]):
        with pytest.raises(MalformedEnvelope):
            verify_signed(short, None)
    with pytest.raises(MalformedEnvelope):
        verify_signed(bytearray(signed.data), None)  # type: ignore[arg-type]
    with pytest.raises(MalformedEnvelope):
        verify_signed(signed.data + b"\x00", None)  # trailing bytes
