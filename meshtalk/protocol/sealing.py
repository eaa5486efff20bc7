"""Sign then encrypt an envelope for one recipient, and the reverse with every check.

The author signs an envelope once (`sign_envelope`): `signed = signature(64) || envelope`, with
`signature = Ed25519(author, SIGNING_CONTEXT || envelope)`. Each copy is then sealed to one
recipient (`seal_signed`) as a msgpack array `[version, sender_peer_id, recipient_peer_id, box]`
with `box = nonce(24) || XSalsa20-Poly1305(X25519(sender, recipient), signed)`:

- version 1, a direct copy: the sender is the author (`seal`, `open_sealed`);
- version 2, a forwarded copy: a recipient of the message re-seals the author's signed bytes to
  another recipient (room catch-up). The signature is checked against the envelope's author,
  not the sender, so a forwarder can neither alter nor invent a message. A version-2 copy whose
  sender is the author is refused: the author's own copies are version 1, which older nodes read.

`open_sealed` opens version 1 only (what every node has spoken so far); `forwarding.open_any`
opens both and says who forwarded. See docs/protocol.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from nacl.bindings import crypto_box_easy_afternm, crypto_box_open_easy_afternm, crypto_sign_open
from nacl.exceptions import BadSignatureError, CryptoError

from .codec import packb, unpackb_strict
from .envelope import ID_LENGTH, MAX_ENVELOPE_SIZE, Envelope, peer_id_from_bytes
from .errors import (
    AuthorMismatch,
    BadSignature,
    ClockSkew,
    DecryptionFailed,
    InvalidPeerId,
    LamportOutOfRange,
    MalformedEnvelope,
    MessageTooLarge,
    NotARecipient,
    UnsupportedVersion,
)
from .keys import NodeKey, PeerId, RandomBytes

__all__ = [
    "SEALED_VERSION",
    "FORWARDED_SEALED_VERSION",
    "SIGNING_CONTEXT",
    "MAX_SEALED_SIZE",
    "MAX_SIGNED_SIZE",
    "DEFAULT_MAX_FUTURE_SKEW_MS",
    "DEFAULT_MAX_AGE_MS",
    "SignedEnvelope",
    "sign_envelope",
    "verify_signed",
    "seal_signed",
    "seal",
    "open_sealed",
]

SEALED_VERSION: Final = 1
FORWARDED_SEALED_VERSION: Final = 2
SIGNING_CONTEXT: Final = b"meshtalk/envelope/v1\x00"
"""Prefix of every signed envelope, so the node key's signatures can't be replayed elsewhere
(the same key signs libp2p Noise handshakes and peer records)."""
_NONCE_SIZE: Final = 24
_MAC_SIZE: Final = 16
_SIGNATURE_SIZE: Final = 64
_HEADER_ALLOWANCE: Final = 128  # msgpack array + two 38-byte peer IDs, generously
MAX_SEALED_SIZE: Final = (
    MAX_ENVELOPE_SIZE + _SIGNATURE_SIZE + _NONCE_SIZE + _MAC_SIZE + _HEADER_ALLOWANCE
)
"""Largest sealed message a node accepts, in bytes (either version)."""
MAX_SIGNED_SIZE: Final = _SIGNATURE_SIZE + MAX_ENVELOPE_SIZE
"""Largest signed envelope (signature and packed envelope), in bytes."""
DEFAULT_MAX_FUTURE_SKEW_MS: Final = 5 * 60 * 1000
DEFAULT_MAX_AGE_MS: Final = 30 * 24 * 3600 * 1000
"""Messages may wait in an outbox while their recipient is offline: accept a month of age."""


@dataclass(frozen=True, slots=True)
class SignedEnvelope:
    """An envelope with its author's signature: `data` is exactly the bytes the author signed,
    `signature(64) || packed envelope`, the plaintext of every sealed copy and what a
    transcript keeps. Make one with `sign_envelope` or `verify_signed`, which check that the
    two fields agree; the constructor checks only their types."""

    envelope: Envelope
    data: bytes

    def __post_init__(self) -> None:
        if type(self.envelope) is not Envelope:
            raise TypeError("SignedEnvelope.envelope must be an Envelope")
        if type(self.data) is not bytes or len(self.data) <= _SIGNATURE_SIZE:
            raise TypeError("SignedEnvelope.data must be a signature followed by an envelope")

    @property
    def signature(self) -> bytes:
        """The author's 64-byte Ed25519 signature over SIGNING_CONTEXT || packed."""
        return self.data[:_SIGNATURE_SIZE]

    @property
    def packed(self) -> bytes:
        """The packed envelope, byte for byte as the author signed it."""
        return self.data[_SIGNATURE_SIZE:]


def _require_author(envelope: Envelope, author_key: NodeKey) -> None:
    if envelope.author != author_key.peer_id:
        raise AuthorMismatch(
            f"envelope author is {envelope.author} but the sealing key belongs to "
            f"{author_key.peer_id}"
        )


def _require_recipient(envelope: Envelope, recipient: PeerId) -> None:
    if recipient not in envelope.recipients:
        raise NotARecipient(f"{recipient} is not among the envelope's recipients")


def sign_envelope(envelope: Envelope, author_key: NodeKey) -> SignedEnvelope:
    """Sign `envelope` with its author's key, once for every copy that will be sealed."""
    _require_author(envelope, author_key)
    packed = envelope.pack()
    return SignedEnvelope(envelope, author_key.sign(SIGNING_CONTEXT + packed) + packed)


def seal_signed(
    signed: SignedEnvelope,
    sender_key: NodeKey,
    recipient: PeerId,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """Encrypt an already signed envelope to `recipient`, one of its signed recipients.

    Sealed by the author it is a version-1 copy, the same as `seal` makes; sealed by anyone
    else it is a version-2 (forwarded) copy, and the sender must itself be one of the
    envelope's recipients (only they could have read it).
    """
    envelope = signed.envelope
    _require_recipient(envelope, recipient)
    sender = sender_key.peer_id
    version = SEALED_VERSION
    if sender != envelope.author:
        if sender not in envelope.recipients:
            raise NotARecipient(
                f"{sender} cannot forward a message it is not among the recipients of"
            )
        version = FORWARDED_SEALED_VERSION
    nonce = random_bytes(_NONCE_SIZE)
    if len(nonce) != _NONCE_SIZE:
        raise ValueError("random_bytes returned the wrong number of bytes")
    ciphertext = crypto_box_easy_afternm(signed.data, nonce, sender_key.shared_key(recipient))
    return packb([version, sender.to_bytes(), recipient.to_bytes(), nonce + ciphertext])


def seal(
    envelope: Envelope,
    author_key: NodeKey,
    recipient: PeerId,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """Sign `envelope` with the author's key and encrypt it to `recipient` (version 1).

    To seal one envelope to several recipients, `sign_envelope` once and `seal_signed` each
    copy: this function signs again on every call.
    """
    # Checked before signing, in this order, as seal() always has: no signature is wasted.
    _require_author(envelope, author_key)
    _require_recipient(envelope, recipient)
    return seal_signed(sign_envelope(envelope, author_key), author_key, recipient, random_bytes)


def _check_signature(signature: bytes, packed: bytes, author: PeerId) -> None:
    try:
        crypto_sign_open(signature + SIGNING_CONTEXT + packed, author.public_key)
    except BadSignatureError as exc:
        raise BadSignature(f"message signature does not verify against {author}") from exc


def _signed_id(packed: bytes) -> bytes | None:
    """The 16-byte `id` of a signed envelope that failed validation, if it has one."""
    try:
        wire = unpackb_strict(packed, MalformedEnvelope, "envelope")
    except MalformedEnvelope:
        return None
    if type(wire) is dict and type(wire.get("id")) is bytes and len(wire["id"]) == ID_LENGTH:
        return bytes(wire["id"])
    return None


def _unpack_signed(packed: bytes) -> Envelope:
    try:
        return Envelope.unpack(packed)
    except (MalformedEnvelope, MessageTooLarge, LamportOutOfRange) as exc:
        # The id inside names the message refused (its author signed it, or the forwarder's
        # box vouches for the bytes): the sender can fail that one message instead of
        # resending it forever.
        claimed = _signed_id(packed)
        raise (exc.about(claimed) if claimed is not None else exc) from None


def _check_addressed(envelope: Envelope, me: PeerId) -> None:
    if me not in envelope.recipients:
        raise NotARecipient(f"{me} is not among the message's signed recipients").about(envelope.id)


def _check_clock(
    envelope: Envelope, now_ms: int, max_future_skew_ms: int, max_age_ms: int | None
) -> None:
    age = now_ms - envelope.timestamp_ms
    if age < -max_future_skew_ms:
        raise ClockSkew(
            f"message from {envelope.author} is dated {-age / 1000:.0f} s in the future (limit "
            f"{max_future_skew_ms / 1000:.0f} s); check both machines' clocks"
        ).about(envelope.id)
    if max_age_ms is not None and age > max_age_ms:
        raise ClockSkew(
            f"message from {envelope.author} is {age / 1000:.0f} s old, older than the accepted "
            f"{max_age_ms / 1000:.0f} s"
        ).about(envelope.id)


def verify_signed(
    data: bytes,
    now_ms: int | None,
    *,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    max_age_ms: int | None = DEFAULT_MAX_AGE_MS,
) -> SignedEnvelope:
    """Parse signed envelope bytes and verify the signature against the envelope's author.

    The envelope gets every check `Envelope.unpack` makes (sizes, fields, Lamport range); with
    `now_ms` its timestamp must also lie in the clock window (`max_age_ms=None`: no age limit).
    An offline verifier of stored bytes passes `now_ms=None`. Errors after the envelope
    decodes name its id (`message_id`).
    """
    if type(data) is not bytes:
        raise MalformedEnvelope("a signed envelope must be bytes")
    if len(data) > MAX_SIGNED_SIZE:
        raise MessageTooLarge(
            f"signed envelope is {len(data)} bytes; the limit is {MAX_SIGNED_SIZE}"
        )
    if len(data) <= _SIGNATURE_SIZE:
        raise MalformedEnvelope(
            f"signed envelope is {len(data)} bytes, too short for a signature and an envelope"
        )
    envelope = _unpack_signed(data[_SIGNATURE_SIZE:])
    try:
        _check_signature(data[:_SIGNATURE_SIZE], data[_SIGNATURE_SIZE:], envelope.author)
    except BadSignature as exc:
        raise exc.about(envelope.id) from exc.__cause__
    if now_ms is not None:
        _check_clock(envelope, now_ms, max_future_skew_ms, max_age_ms)
    return SignedEnvelope(envelope, data)


def _parse_header(data: bytes, versions: tuple[int, ...]) -> tuple[int, bytes, bytes, bytes]:
    if len(data) > MAX_SEALED_SIZE:
        raise MessageTooLarge(
            f"sealed message is {len(data)} bytes; the limit is {MAX_SEALED_SIZE}"
        )
    outer = unpackb_strict(data, MalformedEnvelope, "sealed message")
    if not isinstance(outer, list) or len(outer) != 4:
        raise MalformedEnvelope("sealed message must be a msgpack array of 4 items")
    version, sender, recipient, box = outer
    if type(version) is not int:
        raise MalformedEnvelope("sealed message version must be an integer")
    if version not in versions:
        speaks = " and ".join(map(str, versions))
        raise UnsupportedVersion(
            f"sealed message version {version} is not supported (this node speaks {speaks})"
        )
    if not (isinstance(sender, bytes) and isinstance(recipient, bytes)):
        raise MalformedEnvelope("sealed message author and recipient must be peer ID bytes")
    if not isinstance(box, bytes) or len(box) < _NONCE_SIZE + _MAC_SIZE + _SIGNATURE_SIZE:
        raise MalformedEnvelope("sealed message box is missing or too short")
    return version, sender, recipient, box


def _open_box(data: bytes, my_key: NodeKey, versions: tuple[int, ...]) -> tuple[int, PeerId, bytes]:
    """The version, the sender and the plaintext (`signature || packed`) of a sealed copy."""
    version, sender_raw, recipient_raw, box = _parse_header(data, versions)
    if recipient_raw != my_key.peer_id.to_bytes():
        raise NotARecipient(f"sealed message is addressed to another peer, not {my_key.peer_id}")
    role = "author" if version == SEALED_VERSION else "sender"
    try:
        sender = peer_id_from_bytes(sender_raw)
    except InvalidPeerId as exc:
        raise MalformedEnvelope(f"sealed message {role} is not a valid peer ID: {exc}") from exc
    try:
        plain = crypto_box_open_easy_afternm(
            box[_NONCE_SIZE:], box[:_NONCE_SIZE], my_key.shared_key(sender)
        )
    except CryptoError as exc:
        raise DecryptionFailed(
            f"message from {sender} could not be decrypted: it was altered, or not sealed "
            "by that peer for this node"
        ) from exc
    return version, sender, plain


def _verify_direct(
    plain: bytes, author: PeerId, me: PeerId, now_ms: int, max_future_skew_ms: int, max_age_ms: int
) -> Envelope:
    """Version 1: the signature is checked against the header's author before decoding."""
    packed = plain[_SIGNATURE_SIZE:]
    _check_signature(plain[:_SIGNATURE_SIZE], packed, author)
    envelope = _unpack_signed(packed)
    if envelope.author != author:
        raise AuthorMismatch(
            f"message signed by {author} claims to be written by {envelope.author}"
        ).about(envelope.id)
    _check_addressed(envelope, me)
    _check_clock(envelope, now_ms, max_future_skew_ms, max_age_ms)
    return envelope


def open_sealed(
    data: bytes,
    my_key: NodeKey,
    now_ms: int,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
) -> Envelope:
    """Decrypt, verify and validate a version-1 sealed message addressed to `my_key`'s peer.

    A forwarded (version 2) copy is refused with UnsupportedVersion: use `open_any`.
    """
    _, author, plain = _open_box(data, my_key, (SEALED_VERSION,))
    return _verify_direct(plain, author, my_key.peer_id, now_ms, max_future_skew_ms, max_age_ms)
