"""`meshtalk selfcheck`: prove this installation works end to end, without any network.

Creates two identities in a temporary home, reloads one from disk, seals a message from one to
the other, opens it, and checks that a tampered copy and a copy for the wrong peer are refused.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..profile.identity import create_identity, load_identity
from ..profile.paths import profile_dir
from ..protocol import (
    DecryptionFailed,
    Envelope,
    MeshtalkError,
    NotARecipient,
    direct_conversation_id,
    new_message_id,
    open_sealed,
    seal,
)

__all__ = ["CheckStep", "run_selfcheck"]


@dataclass(frozen=True)
class CheckStep:
    """One verified step of the self-check, as a line for people."""

    name: str
    detail: str


def run_selfcheck(report: Callable[[CheckStep], None] = lambda step: None) -> list[CheckStep]:
    """Run every check, calling `report` after each; raise MeshtalkError if one fails."""
    steps: list[CheckStep] = []

    def done(name: str, detail: str) -> None:
        step = CheckStep(name, detail)
        steps.append(step)
        report(step)

    with tempfile.TemporaryDirectory(prefix="meshtalk-selfcheck-") as home:
        alice_dir, bob_dir = profile_dir("alice", home), profile_dir("bob", home)
        alice = create_identity(alice_dir)
        bob = create_identity(bob_dir)
        done("identity", f"created alice {alice.peer_id} and bob {bob.peer_id}")
        if load_identity(alice_dir).peer_id != alice.peer_id:
            raise MeshtalkError("reloading alice's key file gave a different peer ID")
        done("keystore", "alice's key file reloads to the same peer ID (mode 0600)")

        now = int(time.time() * 1000)
        envelope = Envelope(
            id=new_message_id(now),
            conversation=direct_conversation_id(alice.peer_id, bob.peer_id),
            author=alice.peer_id,
            recipients=(bob.peer_id,),
            timestamp_ms=now,
            lamport=1,
            body="hello from alice",
        )
        sealed = seal(envelope, alice, bob.peer_id)
        opened = open_sealed(sealed, bob, now)
        if opened != envelope:
            raise MeshtalkError("the opened envelope differs from the one sealed")
        done("seal/open", f"bob opened alice's {len(sealed)}-byte sealed message: {opened.body!r}")

        tampered = bytearray(sealed)
        tampered[-1] ^= 0x01
        try:
            open_sealed(bytes(tampered), bob, now)
        except DecryptionFailed:
            done("tamper", "a copy with one flipped bit was refused (DecryptionFailed)")
        else:
            raise MeshtalkError("a tampered message was accepted")
        try:
            open_sealed(sealed, alice, now)
        except NotARecipient:
            done("recipient", "alice cannot open the copy sealed for bob (NotARecipient)")
        else:
            raise MeshtalkError("a message was opened by a peer it was not sealed for")
    return steps
