"""seal/open_sealed: round trips and every way a message can be refused."""

from __future__ import annotations

import msgpack
import pytest
from nacl.public import Box

from meshtalk.protocol import (
    DEFAULT_MAX_AGE_MS,
    DEFAULT_MAX_FUTURE_SKEW_MS,
    MAX_SEALED_SIZE,
    SIGNING_CONTEXT,
    AuthorMismatch,
    BadSignature,
    ClockSkew,
    DecryptionFailed,
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
from tests.conftest import NOW_MS, fixed_key, make_envelope

BODY_300 = "m" * 300


def test_round_trip(alice: NodeKey, bob: NodeKey) -> None:
    envelope = make_envelope(alice, bob, body=BODY_300)
    assert open_sealed(seal(envelope, alice, bob.peer_id), bob, NOW_MS) == envelope


def test_each_seal_uses_a_fresh_nonce(alice: NodeKey, bob: NodeKey) -> None:
    envelope = make_envelope(alice, bob)
    assert seal(envelope, alice, bob.peer_id) != seal(envelope, alice, bob.peer_id)


def test_message_to_self(alice: NodeKey) -> None:
    envelope = make_envelope(alice, alice)
    assert open_sealed(seal(envelope, alice, alice.peer_id), alice, NOW_MS) == envelope


def test_every_single_byte_tamper_is_refused(alice: NodeKey, bob: NodeKey) -> None:
    sealed = seal(make_envelope(alice, bob, body=BODY_300), alice, bob.peer_id)
    for position in range(len(sealed)):
        for flip in (0x01, 0x80, 0xFF):
            tampered = bytearray(sealed)
            tampered[position] ^= flip
            with pytest.raises(MeshtalkError):
                open_sealed(bytes(tampered), bob, NOW_MS)


def test_every_truncation_is_refused(alice: NodeKey, bob: NodeKey) -> None:
    sealed = seal(make_envelope(alice, bob), alice, bob.peer_id)
    for length in range(len(sealed)):
        with pytest.raises(MeshtalkError):
            open_sealed(sealed[:length], bob, NOW_MS)
    with pytest.raises(MalformedEnvelope):
        open_sealed(sealed + b"\x00", bob, NOW_MS)


def test_wrong_recipient(alice: NodeKey, bob: NodeKey, carol: NodeKey) -> None:
    sealed = seal(make_envelope(alice, bob, carol), alice, bob.peer_id)
    with pytest.raises(NotARecipient):
        open_sealed(sealed, carol, NOW_MS)
    # Readdressing the outer header to carol does not let her open bob's box.
    version, author, _, box = msgpack.unpackb(sealed)
    with pytest.raises(DecryptionFailed):
        open_sealed(packb([version, author, carol.peer_id.to_bytes(), box]), carol, NOW_MS)


def test_group_message_each_recipient_opens_own_copy(
    alice: NodeKey, bob: NodeKey, carol: NodeKey
) -> None:
    envelope = make_envelope(alice, bob, carol)
    assert open_sealed(seal(envelope, alice, bob.peer_id), bob, NOW_MS) == envelope
    assert open_sealed(seal(envelope, alice, carol.peer_id), carol, NOW_MS) == envelope


def test_sealed_for_someone_outside_the_signed_recipients(
    alice: NodeKey, bob: NodeKey, carol: NodeKey
) -> None:
    with pytest.raises(NotARecipient):
        seal(make_envelope(alice, bob), alice, carol.peer_id)
    # Built by hand, bypassing seal()'s check: carol still refuses it.
    packed = make_envelope(alice, bob).pack()
    signature = alice.signing_key.sign(SIGNING_CONTEXT + packed).signature
    box = Box(alice.encryption_key, carol.peer_id.encryption_key).encrypt(signature + packed)
    forged = packb([1, alice.peer_id.to_bytes(), carol.peer_id.to_bytes(), bytes(box)])
    with pytest.raises(NotARecipient, match="signed recipients"):
        open_sealed(forged, carol, NOW_MS)


def test_sealing_with_someone_elses_key_refused(alice: NodeKey, bob: NodeKey) -> None:
    mallory = fixed_key("mallory")
    with pytest.raises(AuthorMismatch):
        seal(make_envelope(alice, bob), mallory, bob.peer_id)


def by_hand(
    signer: NodeKey, boxer: NodeKey, header_author: NodeKey, to: NodeKey, packed: bytes
) -> bytes:
    signature = signer.signing_key.sign(SIGNING_CONTEXT + packed).signature
    box = Box(boxer.encryption_key, to.peer_id.encryption_key).encrypt(signature + packed)
    return packb([1, header_author.peer_id.to_bytes(), to.peer_id.to_bytes(), bytes(box)])


def test_forged_author_is_refused(alice: NodeKey, bob: NodeKey) -> None:
    mallory = fixed_key("mallory")
    claims_alice = make_envelope(alice, bob).pack()
    # Mallory signs and seals honestly as herself an envelope that claims alice wrote it.
    with pytest.raises(AuthorMismatch):
        open_sealed(by_hand(mallory, mallory, mallory, bob, claims_alice), bob, NOW_MS)
    # Mallory puts alice in the header: bob's box with alice does not open.
    with pytest.raises(DecryptionFailed):
        open_sealed(by_hand(mallory, mallory, alice, bob, claims_alice), bob, NOW_MS)


def test_recipient_cannot_forge_a_signature(alice: NodeKey, bob: NodeKey) -> None:
    # The box key is shared by alice and bob, so bob can build a box "from alice"; only the
    # signature proves alice wrote it.
    packed = make_envelope(alice, bob).pack()
    signature = bob.signing_key.sign(SIGNING_CONTEXT + packed).signature
    box = Box(bob.encryption_key, alice.peer_id.encryption_key).encrypt(signature + packed)
    forged = packb([1, alice.peer_id.to_bytes(), bob.peer_id.to_bytes(), bytes(box)])
    with pytest.raises(BadSignature):
        open_sealed(forged, bob, NOW_MS)


def test_signature_without_context_is_refused(alice: NodeKey, bob: NodeKey) -> None:
    packed = make_envelope(alice, bob).pack()
    signature = alice.signing_key.sign(packed).signature
    box = Box(alice.encryption_key, bob.peer_id.encryption_key).encrypt(signature + packed)
    sealed = packb([1, alice.peer_id.to_bytes(), bob.peer_id.to_bytes(), bytes(box)])
    with pytest.raises(BadSignature):
        open_sealed(sealed, bob, NOW_MS)


@pytest.mark.parametrize(
    ("offset_ms", "ok"),
    [
        (DEFAULT_MAX_FUTURE_SKEW_MS, True),
        (DEFAULT_MAX_FUTURE_SKEW_MS + 1, False),
        (-DEFAULT_MAX_AGE_MS, True),
        (-DEFAULT_MAX_AGE_MS - 1, False),
    ],
)
def test_clock_skew_window(alice: NodeKey, bob: NodeKey, offset_ms: int, ok: bool) -> None:
    envelope = make_envelope(alice, bob, timestamp_ms=NOW_MS + offset_ms)
    sealed = seal(envelope, alice, bob.peer_id)
    if ok:
        assert open_sealed(sealed, bob, NOW_MS) == envelope
    else:
        with pytest.raises(ClockSkew, match="clocks" if offset_ms > 0 else "old"):
            open_sealed(sealed, bob, NOW_MS)


def test_custom_skew_window(alice: NodeKey, bob: NodeKey) -> None:
    sealed = seal(make_envelope(alice, bob, timestamp_ms=NOW_MS - 2000), alice, bob.peer_id)
    with pytest.raises(ClockSkew):
        open_sealed(sealed, bob, NOW_MS, max_age_ms=1000)
    sealed = seal(make_envelope(alice, bob, timestamp_ms=NOW_MS + 2000), alice, bob.peer_id)
    with pytest.raises(ClockSkew):
        open_sealed(sealed, bob, NOW_MS, max_future_skew_ms=1000)


def test_unsupported_and_malformed_headers(alice: NodeKey, bob: NodeKey) -> None:
    sealed = seal(make_envelope(alice, bob), alice, bob.peer_id)
    _, author, recipient, box = msgpack.unpackb(sealed)
    with pytest.raises(UnsupportedVersion):
        open_sealed(packb([2, author, recipient, box]), bob, NOW_MS)
    bad_headers = [
        [True, author, recipient, box],
        [1, author, recipient],
        [1, "author", recipient, box],
        [1, author, recipient, box[:50]],
        [1, b"\x00" * 38, recipient, box],
        {"v": 1},
    ]
    for header in bad_headers:
        with pytest.raises(MalformedEnvelope):
            open_sealed(packb(header), bob, NOW_MS)


def test_oversized_sealed_message_refused_before_decoding(bob: NodeKey) -> None:
    with pytest.raises(MessageTooLarge):
        open_sealed(b"\x00" * (MAX_SEALED_SIZE + 1), bob, NOW_MS)
