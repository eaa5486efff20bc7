"""Build the known-answer vectors that freeze meshtalk's wire format.

Run `python -m tests.vectors.make_vectors > tests/vectors/protocol-v1.json` only when the wire
format changes on purpose (and then bump the protocol version): the test suite checks that the
code still produces exactly these bytes.
"""

from __future__ import annotations

import json
from typing import Any

from meshtalk.protocol import (
    AckFrame,
    Envelope,
    ErrorFrame,
    HelloFrame,
    MessageFrame,
    NodeKey,
    direct_conversation_id,
    encode_frame,
    new_message_id,
    seal,
)

NOW_MS = 1_790_000_000_123
ALICE_SEED = bytes(range(32))
BOB_SEED = bytes(range(32, 64))
NONCE = bytes(range(100, 124))
ID_RANDOM = bytes(range(200, 210))


def build() -> dict[str, Any]:
    """Every vector, computed from the fixed inputs above."""
    alice, bob = NodeKey.from_seed(ALICE_SEED), NodeKey.from_seed(BOB_SEED)
    envelope = Envelope(
        id=new_message_id(NOW_MS, lambda n: ID_RANDOM[:n]),
        conversation=direct_conversation_id(alice.peer_id, bob.peer_id),
        author=alice.peer_id,
        recipients=(bob.peer_id,),
        timestamp_ms=NOW_MS,
        lamport=7,
        body={"text": "hello bob", "n": 1},
        kind="data",
        reply_to=bytes(16),
        metadata={"lang": "en"},
    )
    packed = envelope.pack()
    sealed = seal(envelope, alice, bob.peer_id, random_bytes=lambda n: NONCE[:n])
    frames = {
        "hello": encode_frame(HelloFrame((1,), "meshtalk/test")),
        "message": encode_frame(MessageFrame(sealed)),
        "ack": encode_frame(AckFrame((envelope.id,))),
        "error": encode_frame(ErrorFrame(206, "clock skew", envelope.id)),
    }
    return {
        "now_ms": NOW_MS,
        "alice": {
            "seed": ALICE_SEED.hex(),
            "peer_id": str(alice.peer_id),
            "peer_id_bytes": alice.peer_id.to_bytes().hex(),
            "x25519_public": bytes(alice.encryption_key.public_key).hex(),
        },
        "bob": {
            "seed": BOB_SEED.hex(),
            "peer_id": str(bob.peer_id),
            "peer_id_bytes": bob.peer_id.to_bytes().hex(),
            "x25519_public": bytes(bob.encryption_key.public_key).hex(),
        },
        "message_id": envelope.id.hex(),
        "id_random": ID_RANDOM.hex(),
        "conversation_id": envelope.conversation.hex(),
        "envelope_packed": packed.hex(),
        "nonce": NONCE.hex(),
        "sealed": sealed.hex(),
        "frames": {name: data.hex() for name, data in frames.items()},
    }


if __name__ == "__main__":
    print(json.dumps(build(), indent=2))
