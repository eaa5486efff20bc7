"""Known-answer vectors: the code must produce exactly the committed bytes, and the bytes must
open by following docs/protocol.md with bare PyNaCl and msgpack (as another implementation would).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519
from nacl.public import Box, PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from meshtalk.protocol import NEED_DATA, AckFrame, FrameDecoder, NodeKey, open_sealed
from tests.vectors.make_vectors import build

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "protocol-v1.json").read_text()
)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_code_reproduces_the_committed_bytes(name: str) -> None:
    assert build()[name] == VECTORS[name]


def test_vectors_open_with_the_library() -> None:
    bob = NodeKey.from_seed(bytes.fromhex(VECTORS["bob"]["seed"]))
    envelope = open_sealed(bytes.fromhex(VECTORS["sealed"]), bob, VECTORS["now_ms"])
    assert envelope.body == {"text": "hello bob", "n": 1}
    assert str(envelope.author) == VECTORS["alice"]["peer_id"]


def test_vectors_open_by_following_the_spec_alone() -> None:
    """Re-implements docs/protocol.md section "Opening" with nothing but PyNaCl and msgpack."""
    bob_signing = SigningKey(bytes.fromhex(VECTORS["bob"]["seed"]))
    sealed = bytes.fromhex(VECTORS["sealed"])

    version, author, recipient, box = msgpack.unpackb(sealed)
    assert version == 1
    assert recipient.hex() == VECTORS["bob"]["peer_id_bytes"]
    assert author[:6] == bytes.fromhex("002408011220")  # identity multihash, Ed25519 protobuf
    author_ed25519 = author[6:]
    author_x25519 = PublicKey(crypto_sign_ed25519_pk_to_curve25519(author_ed25519))
    assert bytes(author_x25519).hex() == VECTORS["alice"]["x25519_public"]

    bob_x25519: PrivateKey = bob_signing.to_curve25519_private_key()
    plain = Box(bob_x25519, author_x25519).decrypt(box)
    assert box[:24].hex() == VECTORS["nonce"]
    signature, packed = plain[:64], plain[64:]
    VerifyKey(author_ed25519).verify(b"meshtalk/envelope/v1\x00" + packed, signature)
    assert packed.hex() == VECTORS["envelope_packed"]

    env = msgpack.unpackb(packed)
    assert env["v"] == 1
    assert env["a"] == author
    assert env["r"] == [recipient]
    assert env["t"] == VECTORS["now_ms"]
    assert env["id"].hex() == VECTORS["message_id"]
    low, high = sorted([author, recipient])
    conversation = hashlib.blake2b(low + high, digest_size=16, person=b"meshtalk/direct")
    assert env["c"] == conversation.digest()


def test_frames_decode_as_documented() -> None:
    ack = bytes.fromhex(VECTORS["frames"]["ack"])
    # varint length, then [2, [id]]
    assert ack[0] == len(ack) - 1
    assert msgpack.unpackb(ack[1:]) == [2, [bytes.fromhex(VECTORS["message_id"])]]
    decoder = FrameDecoder()
    decoder.receive_data(b"".join(bytes.fromhex(v) for v in VECTORS["frames"].values()))
    frames = []
    while (frame := decoder.next_frame()) is not NEED_DATA:
        frames.append(frame)
    assert len(frames) == 4
    assert frames[2] == AckFrame((bytes.fromhex(VECTORS["message_id"]),))
