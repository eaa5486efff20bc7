"""Sign then encrypt an envelope for one recipient, and the reverse with every check.

Sealed message (msgpack array): `[1, author_peer_id, recipient_peer_id, box]`, where
`box = nonce(24) || XSalsa20-Poly1305(X25519(author, recipient), signature(64) || envelope)`
and `signature = Ed25519(author, SIGNING_CONTEXT || envelope)`. See docs/protocol.md.
"""

from __future__ import annotations

import os
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
    "SIGNING_CONTEXT",
    "MAX_SEALED_SIZE",
    "DEFAULT_MAX_FUTURE_SKEW_MS",
    "DEFAULT_MAX_AGE_MS",
    "seal",
    "open_sealed",
]

SEALED_VERSION: Final = 1
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
"""Largest sealed message a node accepts, in bytes."""
DEFAULT_MAX_FUTURE_SKEW_MS: Final = 5 * 60 * 1000
DEFAULT_MAX_AGE_MS: Final = 30 * 24 * 3600 * 1000
"""Messages may wait in an outbox while their recipient is offline: accept a month of age."""


def seal(
    envelope: Envelope,
    author_key: NodeKey,
    recipient: PeerId,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """Sign `envelope` with the author's key and encrypt it to `recipient`."""
    if envelope.author != author_key.peer_id:
        raise AuthorMismatch(
            f"envelope author is {envelope.author} but the sealing key belongs to "
            f"{author_key.peer_id}"
        )
    if recipient not in envelope.recipients:
        raise NotARecipient(f"{recipient} is not among the envelope's recipients")
    packed = envelope.pack()
    signature = author_key.sign(SIGNING_CONTEXT + packed)
    nonce = random_bytes(_NONCE_SIZE)
    if len(nonce) != _NONCE_SIZE:
        raise ValueError("random_bytes returned the wrong number of bytes")
    ciphertext = crypto_box_easy_afternm(
        signature + packed, nonce, author_key.shared_key(recipient)
    )
    header = [SEALED_VERSION, author_key.peer_id.to_bytes(), recipient.to_bytes()]
    return packb([*header, nonce + ciphertext])


def _parse_header(data: bytes) -> tuple[bytes, bytes, bytes]:
    if len(data) > MAX_SEALED_SIZE:
        raise MessageTooLarge(
            f"sealed message is {len(data)} bytes; the limit is {MAX_SEALED_SIZE}"
        )
    outer = unpackb_strict(data, MalformedEnvelope, "sealed message")
    if not isinstance(outer, list) or len(outer) != 4:
        raise MalformedEnvelope("sealed message must be a msgpack array of 4 items")
    version, author, recipient, box = outer
    if type(version) is not int:
        raise MalformedEnvelope("sealed message version must be an integer")
    if version != SEALED_VERSION:
        raise UnsupportedVersion(
            f"sealed message version {version} is not supported (this node speaks {SEALED_VERSION})"
        )
    if not (isinstance(author, bytes) and isinstance(recipient, bytes)):
        raise MalformedEnvelope("sealed message author and recipient must be peer ID bytes")
    if not isinstance(box, bytes) or len(box) < _NONCE_SIZE + _MAC_SIZE + _SIGNATURE_SIZE:
        raise MalformedEnvelope("sealed message box is missing or too short")
    return author, recipient, box


def _signed_id(packed: bytes) -> bytes | None:
    """The 16-byte `id` of a signed envelope that failed validation, if it has one."""
    try:
        wire = unpackb_strict(packed, MalformedEnvelope, "envelope")
    except MalformedEnvelope:
        return None
    if type(wire) is dict and type(wire.get("id")) is bytes and len(wire["id"]) == ID_LENGTH:
        return bytes(wire["id"])
    return None


def open_sealed(
    data: bytes,
    my_key: NodeKey,
    now_ms: int,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
) -> Envelope:
    """Decrypt, verify and validate a sealed message addressed to `my_key`'s peer."""
    author_raw, recipient_raw, box = _parse_header(data)
    if recipient_raw != my_key.peer_id.to_bytes():
        raise NotARecipient(f"sealed message is addressed to another peer, not {my_key.peer_id}")
    try:
        author = peer_id_from_bytes(author_raw)
    except InvalidPeerId as exc:
        raise MalformedEnvelope(f"sealed message author is not a valid peer ID: {exc}") from exc
    try:
        plain = crypto_box_open_easy_afternm(
            box[_NONCE_SIZE:], box[:_NONCE_SIZE], my_key.shared_key(author)
        )
    except CryptoError as exc:
        raise DecryptionFailed(
            f"message from {author} could not be decrypted: it was altered, or not sealed "
            "by that peer for this node"
        ) from exc
    packed = plain[_SIGNATURE_SIZE:]
    try:
        crypto_sign_open(plain[:_SIGNATURE_SIZE] + SIGNING_CONTEXT + packed, author.public_key)
    except BadSignatureError as exc:
        raise BadSignature(f"message signature does not verify against {author}") from exc
    try:
        envelope = Envelope.unpack(packed)
    except (MalformedEnvelope, MessageTooLarge, LamportOutOfRange) as exc:
        # The author signed these bytes, so the id inside names the message it refuses: the
        # sender can fail that one message instead of resending it forever.
        claimed = _signed_id(packed)
        raise (exc.about(claimed) if claimed is not None else exc) from None
    if envelope.author != author:
        raise AuthorMismatch(
            f"message signed by {author} claims to be written by {envelope.author}"
        ).about(envelope.id)
    if my_key.peer_id not in envelope.recipients:
        raise NotARecipient(f"{my_key.peer_id} is not among the message's signed recipients").about(
            envelope.id
        )
    age = now_ms - envelope.timestamp_ms
    if age < -max_future_skew_ms:
        raise ClockSkew(
            f"message from {author} is dated {-age / 1000:.0f} s in the future (limit "
            f"{max_future_skew_ms / 1000:.0f} s); check both machines' clocks"
        ).about(envelope.id)
    if age > max_age_ms:
        raise ClockSkew(
            f"message from {author} is {age / 1000:.0f} s old, older than the accepted "
            f"{max_age_ms / 1000:.0f} s"
        ).about(envelope.id)
    return envelope
