"""Node keys and libp2p peer IDs, without libp2p.

A node has one Ed25519 key. Its libp2p peer ID is the identity multihash of the protobuf-encoded
public key, so a peer ID *is* the public key: from it we derive the verify key for signatures and
(via libsodium's Ed25519->Curve25519 conversion) the X25519 key for encryption.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from nacl.bindings import (
    crypto_box_beforenm,
    crypto_core_ed25519_is_valid_point,
    crypto_sign,
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_seed_keypair,
)
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from .errors import IdentityError, InvalidPeerId

__all__ = ["PeerId", "NodeKey", "RandomBytes"]

RandomBytes = Callable[[int], bytes]
"""A source of random bytes: `random_bytes(n) -> n bytes` (os.urandom by default)."""

_B58_ALPHABET: Final = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}

# protobuf PublicKey{Type: Ed25519 (1), Data: 32 bytes}, inside an identity multihash (0x00, len)
_PROTOBUF_ED25519_PREFIX: Final = b"\x08\x01\x12\x20"
_PEER_ID_PREFIX: Final = b"\x00\x24" + _PROTOBUF_ED25519_PREFIX
PEER_ID_LENGTH: Final = len(_PEER_ID_PREFIX) + 32
_SHARED_KEY_CACHE_SIZE: Final = 1024


def _b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\x00"))
    num = int.from_bytes(data, "big")
    out = bytearray()
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58_ALPHABET[rem])
    out.extend(b"1" * zeros)
    out.reverse()
    return out.decode("ascii")


def _b58decode(text: str) -> bytes:
    raw = text.encode("ascii", errors="replace")
    num = 0
    for c in raw:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise InvalidPeerId(f"peer ID {text!r} contains a character that is not base58")
        num = num * 58 + digit
    zeros = len(raw) - len(raw.lstrip(b"1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\x00" * zeros + body


class PeerId:
    """A libp2p peer ID that embeds an Ed25519 public key (the `12D3KooW...` form)."""

    __slots__ = ("_bytes", "_str")

    def __init__(self, peer_id_bytes: bytes) -> None:
        if (
            not isinstance(peer_id_bytes, bytes)
            or len(peer_id_bytes) != PEER_ID_LENGTH
            or not peer_id_bytes.startswith(_PEER_ID_PREFIX)
        ):
            raise InvalidPeerId(
                "not an Ed25519 libp2p peer ID: expected the 38-byte identity multihash of an "
                "Ed25519 public key (the 12D3KooW... form)"
            )
        if not crypto_core_ed25519_is_valid_point(peer_id_bytes[6:]):
            raise InvalidPeerId("peer ID does not embed a valid Ed25519 public key")
        self._bytes = peer_id_bytes
        self._str: str | None = None

    @classmethod
    def from_string(cls, text: str) -> PeerId:
        """Parse the base58 text form (`12D3KooW...`)."""
        if not isinstance(text, str) or not 40 <= len(text) <= 60:
            raise InvalidPeerId(f"{text!r} is not a peer ID (expected 12D3KooW... in base58)")
        return cls(_b58decode(text))

    @classmethod
    def from_public_key(cls, public_key: bytes | VerifyKey) -> PeerId:
        """The peer ID of a raw 32-byte Ed25519 public key."""
        raw = bytes(public_key)
        if len(raw) != 32:
            raise InvalidPeerId("an Ed25519 public key is exactly 32 bytes")
        return cls(_PEER_ID_PREFIX + raw)

    def to_bytes(self) -> bytes:
        """The binary multihash form used on the wire (38 bytes)."""
        return self._bytes

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key embedded in this ID."""
        return self._bytes[6:]

    @property
    def verify_key(self) -> VerifyKey:
        """The key that verifies this peer's signatures."""
        return _derived_keys(self._bytes)[0]

    @property
    def encryption_key(self) -> PublicKey:
        """This peer's X25519 public key, for boxes addressed to it."""
        return _derived_keys(self._bytes)[1]

    def __str__(self) -> str:
        if self._str is None:
            self._str = _b58encode(self._bytes)
        return self._str

    def __repr__(self) -> str:
        return f"PeerId({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PeerId) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __lt__(self, other: PeerId) -> bool:
        return self._bytes < other._bytes


@functools.lru_cache(maxsize=4096)
def _derived_keys(peer_id_bytes: bytes) -> tuple[VerifyKey, PublicKey]:
    raw = peer_id_bytes[6:]
    try:
        curve = crypto_sign_ed25519_pk_to_curve25519(raw)
    except CryptoError as exc:
        raise InvalidPeerId("peer ID's key cannot be converted to an encryption key") from exc
    return VerifyKey(raw), PublicKey(curve)


class NodeKey:
    """A node's private Ed25519 key with its derived peer ID and X25519 key.

    Keeps a bounded cache of shared box keys (one X25519 exchange per peer, not per message).
    """

    def __init__(self, signing_key: SigningKey) -> None:
        self.signing_key = signing_key
        self.peer_id = PeerId.from_public_key(signing_key.verify_key)
        self.encryption_key: PrivateKey = signing_key.to_curve25519_private_key()
        self._sign_secret = crypto_sign_seed_keypair(bytes(signing_key))[1]
        self._shared_keys: OrderedDict[bytes, bytes] = OrderedDict()

    @classmethod
    def generate(cls, random_bytes: RandomBytes = os.urandom) -> NodeKey:
        """A new random key (the random source is a parameter for reproducible tests)."""
        for _ in range(100):
            seed = random_bytes(32)
            try:
                return cls.from_seed(seed)
            except IdentityError:
                continue  # astronomically rare: the public key is not a usable point
        raise IdentityError("could not generate a valid Ed25519 key: is the random source broken?")

    @classmethod
    def from_seed(cls, seed: bytes) -> NodeKey:
        """Rebuild a key from its 32-byte seed."""
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise IdentityError("an Ed25519 seed is exactly 32 bytes")
        return cls(SigningKey(seed))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed: everything needed to rebuild this key. Keep it secret."""
        return bytes(self.signing_key)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `data`."""
        return crypto_sign(data, self._sign_secret)[:64]

    def shared_key(self, peer: PeerId) -> bytes:
        """The X25519 box key shared with `peer` (precomputed once, cached, bounded)."""
        cache_key = peer.to_bytes()
        shared = self._shared_keys.get(cache_key)
        if shared is not None:
            self._shared_keys.move_to_end(cache_key)
            return shared
        shared = crypto_box_beforenm(bytes(peer.encryption_key), bytes(self.encryption_key))
        self._shared_keys[cache_key] = shared
        if len(self._shared_keys) > _SHARED_KEY_CACHE_SIZE:
            self._shared_keys.popitem(last=False)
        return shared

    def __repr__(self) -> str:
        return f"NodeKey(peer_id={str(self.peer_id)!r})"
