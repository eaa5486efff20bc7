"""Peer IDs and node keys agree with py-libp2p and PyNaCl."""

from __future__ import annotations

import pytest
from libp2p.crypto.ed25519 import Ed25519PublicKey
from libp2p.peer.id import ID
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519
from nacl.public import Box

from meshtalk.profile.identity import libp2p_key_pair
from meshtalk.protocol import IdentityError, InvalidPeerId, NodeKey, PeerId
from tests.conftest import fixed_key


@pytest.mark.parametrize("name", ["alice", "bob", "carol", "x" * 32])
def test_peer_id_matches_libp2p(name: str) -> None:
    key = fixed_key(name)
    theirs = ID.from_pubkey(Ed25519PublicKey(key.signing_key.verify_key))
    assert str(key.peer_id) == theirs.to_base58()
    assert key.peer_id.to_bytes() == theirs.to_bytes()
    assert str(key.peer_id).startswith("12D3KooW")


def test_libp2p_key_pair_is_the_same_identity(alice: NodeKey) -> None:
    pair = libp2p_key_pair(alice)
    assert ID.from_pubkey(pair.public_key).to_base58() == str(alice.peer_id)
    signature = pair.private_key.sign(b"data")
    alice.peer_id.verify_key.verify(b"data", signature)


def test_string_round_trip(alice: NodeKey) -> None:
    text = str(alice.peer_id)
    parsed = PeerId.from_string(text)
    assert parsed == alice.peer_id
    assert hash(parsed) == hash(alice.peer_id)
    assert repr(parsed) == f"PeerId({text!r})"


def test_keys_derived_from_peer_id_alone(alice: NodeKey, bob: NodeKey) -> None:
    bob_seen_by_alice = PeerId.from_string(str(bob.peer_id))
    signed = bob.signing_key.sign(b"from bob")
    assert bob_seen_by_alice.verify_key.verify(signed) == b"from bob"
    expected = crypto_sign_ed25519_pk_to_curve25519(bob.peer_id.public_key)
    assert bytes(bob_seen_by_alice.encryption_key) == expected
    boxed = Box(alice.encryption_key, bob_seen_by_alice.encryption_key).encrypt(b"secret")
    assert Box(bob.encryption_key, alice.peer_id.encryption_key).decrypt(boxed) == b"secret"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "12D3KooW" + "0" * 44,  # '0' is not in the base58 alphabet
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",  # sha256 peer ID: no key inside
        "12D3KooWBSQH9YqWQfi2KKeHyb9Lwe2H36cJWKjuf7TnquT6sN9",  # one character short
        "12D3KooWBSQH9YqWQfi2KKeHyb9Lwe2H36cJWKjuf7TnquT6sN9YY",
        "é" * 52,
    ],
)
def test_invalid_peer_id_strings(text: str) -> None:
    with pytest.raises(InvalidPeerId):
        PeerId.from_string(text)


def test_peer_id_rejects_non_point() -> None:
    # y = 2 has no matching x on the curve, so this is not a usable public key.
    not_a_point = (2).to_bytes(32, "little")
    with pytest.raises(InvalidPeerId, match="valid Ed25519"):
        PeerId.from_public_key(not_a_point)


def test_generate_uses_the_random_source() -> None:
    seeds = iter([b"\x07" * 32])
    key = NodeKey.generate(lambda n: next(seeds))
    assert key.seed == b"\x07" * 32


def test_generate_refuses_a_broken_random_source() -> None:
    with pytest.raises(IdentityError):
        NodeKey.generate(lambda n: b"")


def test_shared_keys_match_nacl_and_cache_is_bounded(alice: NodeKey, bob: NodeKey) -> None:
    assert (
        alice.shared_key(bob.peer_id)
        == Box(alice.encryption_key, bob.peer_id.encryption_key).shared_key()
    )
    assert alice.shared_key(bob.peer_id) == bob.shared_key(alice.peer_id)
    for i in range(1100):
        alice.shared_key(fixed_key(f"peer{i}").peer_id)
    assert len(alice._shared_keys) == 1024


def test_sign_matches_nacl(alice: NodeKey) -> None:
    assert alice.sign(b"data") == alice.signing_key.sign(b"data").signature
