"""Build the known-answer vectors that freeze meshtalk's wire format.

Two files, both computed from fixed inputs only (no clock, no randomness):

- `protocol-v1.json` (`build`): one message, its bytes and the four frames. Kept exactly as it
  was: other implementations' tests may read it.
- `protocol-v1-cases.json` (`build_cases`, see cases.py): every input, intermediate value and
  refusal.

    python -m tests.vectors.make_vectors --check   # exit 1 if a committed file differs
    python -m tests.vectors.make_vectors --write   # rewrite both files

Rewrite them only when the wire format changes on purpose (and then bump the protocol
version): the test suite checks that the code still produces exactly these bytes. Without an
option the script prints `protocol-v1.json`, as it always did.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from meshtalk.protocol import (
    MAX_LAMPORT,
    MAX_LAMPORT_STEP,
    MSG_PROTOCOL,
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
from meshtalk.protocol.codec import MAX_DEPTH
from meshtalk.protocol.envelope import MAX_ENVELOPE_SIZE, MAX_RECIPIENTS
from meshtalk.protocol.frames import DEFAULT_MAX_FRAME_SIZE, MAX_ACK_IDS
from meshtalk.protocol.sealing import (
    DEFAULT_MAX_AGE_MS,
    DEFAULT_MAX_FUTURE_SKEW_MS,
    MAX_SEALED_SIZE,
    SIGNING_CONTEXT,
)

from . import cases, cases_sealed

NOW_MS = 1_790_000_000_123
ALICE_SEED = bytes(range(32))
BOB_SEED = bytes(range(32, 64))
NONCE = bytes(range(100, 124))
ID_RANDOM = bytes(range(200, 210))


def build_cases() -> dict[str, Any]:
    """Every vector of protocol-v1-cases.json."""
    keys = cases.node_keys()
    return {
        "about": cases.ABOUT,
        "constants": constants(),
        "keys": {name: cases.key_vector(key) for name, key in keys.items()},
        "shared_keys": cases.shared_key_vectors(keys),
        "peer_ids": cases.peer_id_vectors(keys),
        "message_ids": cases.message_id_vectors(),
        "conversations": cases.conversation_vectors(keys),
        "lamport": cases.lamport_vectors(),
        "envelopes": cases_sealed.valid_envelopes(keys),
        "refusals": cases_sealed.refusals(keys),
        "frames": cases.frame_vectors(),
        "connection": cases.connection_vectors(),
    }


def constants() -> dict[str, Any]:
    """The numbers and byte strings of docs/protocol.md, as the code has them."""
    return {
        "signing_context_hex": SIGNING_CONTEXT.hex(),
        "peer_id_prefix_hex": cases.PEER_ID_PREFIX.hex(),
        "direct_person_hex": b"meshtalk/direct".ljust(16, b"\x00").hex(),
        "moved_person_hex": b"meshtalk/moved".ljust(16, b"\x00").hex(),
        "max_envelope_size": MAX_ENVELOPE_SIZE,
        "max_sealed_size": MAX_SEALED_SIZE,
        "min_box_size": 24 + 16 + 64,
        "max_frame_size": DEFAULT_MAX_FRAME_SIZE,
        "max_recipients": MAX_RECIPIENTS,
        "max_depth": MAX_DEPTH,
        "max_lamport": MAX_LAMPORT,
        "max_lamport_step": MAX_LAMPORT_STEP,
        "max_age_ms": DEFAULT_MAX_AGE_MS,
        "max_future_skew_ms": DEFAULT_MAX_FUTURE_SKEW_MS,
        "max_ack_ids": MAX_ACK_IDS,
        "protocol_id": MSG_PROTOCOL,
    }


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


HERE = Path(__file__).parent
FILES = {"protocol-v1.json": build, "protocol-v1-cases.json": build_cases}


def render(name: str) -> str:
    """The exact text of one vector file."""
    return json.dumps(FILES[name](), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print, check or rewrite the vector files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="fail if a committed file differs")
    group.add_argument("--write", action="store_true", help="rewrite both files")
    args = parser.parse_args(argv)
    if not (args.check or args.write):
        print(json.dumps(build(), indent=2))
        return 0
    stale = []
    for name in FILES:
        text, path = render(name), HERE / name
        if args.write:
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(name)
    for name in stale:
        print(f"{name} differs from what the code produces", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
