"""Seal a message from one identity to another and open it: the protocol core, no network.

    python examples/seal_and_open.py

Creates alice's identity in a temporary MESHTALK_HOME (as a real node keeps it), makes a key for
bob, and shows what bob can open and what he refuses.
"""

from __future__ import annotations

import os
import tempfile
import time

from meshtalk import (
    DecryptionFailed,
    Envelope,
    NodeKey,
    create_identity,
    direct_conversation_id,
    load_identity,
    new_message_id,
    open_sealed,
    profile_dir,
    seal,
)


def main() -> None:
    """Run the example."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["MESHTALK_HOME"] = home
        alice = create_identity(profile_dir("alice"))
        print(f"alice is {alice.peer_id} (key in {profile_dir('alice')})")
        assert load_identity(profile_dir("alice")).peer_id == alice.peer_id
        bob = NodeKey.generate()
        print(f"bob   is {bob.peer_id}")

        now = int(time.time() * 1000)
        envelope = Envelope(
            id=new_message_id(now),
            conversation=direct_conversation_id(alice.peer_id, bob.peer_id),
            author=alice.peer_id,
            recipients=(bob.peer_id,),
            timestamp_ms=now,
            lamport=1,
            body={"text": "hello bob", "task": "review PR 12"},
            kind="data",
        )
        sealed = seal(envelope, alice, bob.peer_id)
        opened = open_sealed(sealed, bob, now)
        print(f"bob opened {len(sealed)} sealed bytes from {opened.author}: {opened.body}")

        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        try:
            open_sealed(tampered, bob, now)
        except DecryptionFailed as exc:
            print(f"a tampered copy is refused: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
