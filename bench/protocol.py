"""Seal+open throughput of meshtalk against the bare PyNaCl operations it is built on.

    python bench/protocol.py [--seconds 0.25] [--rounds 21]

Both sides handle the same 300-byte text message. The baseline does exactly the crypto a sealed
message needs (Ed25519 sign and verify, XSalsa20-Poly1305 box and unbox with a precomputed
shared key) on the packed envelope bytes; meshtalk adds building and validating the envelope,
msgpack framing and every check of open_sealed. Rounds alternate between the two so machine
noise hits both alike; the median of the per-round ratios is the figure to watch (target
>= 0.8).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable

from nacl.public import Box

from meshtalk.protocol import (
    Envelope,
    NodeKey,
    direct_conversation_id,
    new_message_id,
    open_sealed,
    seal,
)

TEXT = "x" * 300


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second over about `seconds`."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            operation()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.25, help="length of one round")
    parser.add_argument("--rounds", type=int, default=21, help="rounds per contender")
    args = parser.parse_args()

    alice, bob = NodeKey.generate(), NodeKey.generate()
    now = int(time.time() * 1000)
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)

    def envelope() -> Envelope:
        return Envelope(
            id=new_message_id(now),
            conversation=conversation,
            author=alice.peer_id,
            recipients=(bob.peer_id,),
            timestamp_ms=now,
            lamport=1,
            body=TEXT,
        )

    # Distinct messages, built ahead, so each contender handles fresh bytes every time.
    envelopes = [envelope() for _ in range(1000)]
    packed = [e.pack() for e in envelopes]
    next_envelope = itertools.cycle(envelopes).__next__
    next_packed = itertools.cycle(packed).__next__

    def meshtalk_seal_open() -> None:
        open_sealed(seal(next_envelope(), alice, bob.peer_id), bob, now)

    def meshtalk_create_seal_open() -> None:
        open_sealed(seal(envelope(), alice, bob.peer_id), bob, now)

    signing, verify = alice.signing_key, alice.signing_key.verify_key
    box_out = Box(alice.encryption_key, bob.encryption_key.public_key)
    box_in = Box(bob.encryption_key, alice.encryption_key.public_key)

    def bare_nacl() -> None:
        data = next_packed()
        signature = signing.sign(data).signature
        plain = box_in.decrypt(box_out.encrypt(signature + data, os.urandom(24)))
        verify.verify(plain[64:], plain[:64])

    contenders = {
        "bare PyNaCl sign+box+unbox+verify": bare_nacl,
        "meshtalk seal+open_sealed": meshtalk_seal_open,
        "meshtalk Envelope()+seal+open_sealed": meshtalk_create_seal_open,
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, operation in contenders.items():
            rates[name].append(rate(operation, args.seconds))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    bare = medians["bare PyNaCl sign+box+unbox+verify"]
    print(
        f"python {sys.version.split()[0]}, {len(packed[0])}-byte packed envelope, "
        f"{len(TEXT)}-byte text; median of {args.rounds} rounds of {args.seconds} s"
    )
    for name, value in medians.items():
        print(f"{name:<38} {value:9,.0f} /s   ratio to bare {value / bare:5.3f}")
    print("target: meshtalk seal+open_sealed ratio >= 0.80")
    return 0


if __name__ == "__main__":
    sys.exit(main())
