"""`meshtalk demo`: the whole story on one machine, in about ten seconds, with nothing set up.

A rendezvous point and three nodes (alice, bob, carol) start on 127.0.0.1 in temporary
profiles. They find each other through the point, pair (bob with a short code, carol with an
invite token), exchange signed and encrypted messages directly, and carol goes away while
alice writes to her: the messages wait in alice's outbox and arrive when carol returns.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import trio

from ..discovery.point import open_rendezvous_point
from ..peer.node import Node, NodeConfig, open_node
from ..protocol.keys import NodeKey
from ..protocol.sealing import seal

__all__ = ["demo", "run_demo"]

Say = Callable[[str], None]
Step = Callable[[float | None, str], None]
"""Receives each line of the demo with the seconds since it began (None: no time)."""


class _Clock:
    def __init__(self, step: Step) -> None:
        self.start = time.monotonic()
        self._step = step

    def __call__(self, text: str) -> None:
        self._step(time.monotonic() - self.start, text)


def _config(point: list[str], name: str) -> NodeConfig:
    return NodeConfig(rendezvous=point, name=name, mdns=False, retry_max=1.0,
                      discover_interval=(0.2, 2.0))  # fmt: skip


async def _first_message(node: Node, after: int) -> str:
    async for message in node.messages(after=after):
        return message.text
    raise AssertionError("unreachable")


async def _pair(alice: Node, bob: Node, carol: Node, log: Say) -> None:
    """bob pairs with alice by a short code (SPAKE2), carol by a one-use invite token."""
    offer = alice.pairing.offer(ttl=60)
    log(f"alice offers pairing code {offer.code}; bob types it in")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(alice.pairing.wait, offer)
        with trio.fail_after(20):
            await bob.pairing.join(offer.code or "", timeout=20)
    log("SPAKE2 with the code matched: alice and bob pinned each other's peer IDs")
    token, _ = alice.pairing.invite(ttl=600)
    log(f"alice made an invite token for carol ({len(token)} characters, one use)")
    with trio.fail_after(20):
        await carol.pairing.join_invite(token, timeout=20)
    log("carol joined with the token: alice and carol are paired too")


async def _demo(root: Path, step: Step) -> None:
    log = _Clock(step)
    async with open_rendezvous_point(NodeKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as (
        point, point_addrs,
    ):  # fmt: skip
        log(f"rendezvous point up at {point_addrs[0].split('/p2p/')[0]} "
            "(it introduces peers and never sees a message)")  # fmt: skip
        async with AsyncExitStack() as stack, AsyncExitStack() as carol_stack:
            names = ("alice", "bob", "carol")
            alice, bob, carol = [
                await (carol_stack if n == "carol" else stack).enter_async_context(
                    open_node(root / n, _config(point_addrs, n))
                )
                for n in names
            ]
            for name, node in zip(names, (alice, bob, carol), strict=True):
                log(f"{name:<5} started: peer ID {node.peer_id}")
            with trio.fail_after(20):
                for other in (bob, carol):
                    await alice.wait_known(other.peer_id)
            held = point.statistics().registry.registrations
            log("alice found bob and carol through the point (no contacts yet: strangers)")

            await _pair(alice, bob, carol, log)

            wire = len(seal_probe(bob, alice))
            after = alice.store.messages.last_cursor()
            started = time.monotonic()
            await bob.send("alice", "hi alice, bob here", wait=True, timeout=20)
            took = (time.monotonic() - started) * 1000
            text = await _first_message(alice, after)
            log(f"bob -> alice: {text!r} delivered and acked in {took:.0f} ms "
                f"(signed by bob, encrypted for alice, ~{wire} bytes on the wire)")  # fmt: skip
            after = bob.store.messages.last_cursor()
            await alice.send("bob", "hello bob! welcome to the mesh", wait=True, timeout=20)
            log(f"alice -> bob: {await _first_message(bob, after)!r} delivered")

            await carol_stack.aclose()
            log("carol goes offline")
            for text in ("carol, are you there?", "the plan is ready when you are"):
                await alice.send("carol", text)
            log(f"alice sends carol 2 messages; they wait in alice's outbox "
                f"(outbox: {alice.store.outbox.size()})")  # fmt: skip
            await trio.sleep(1.0)
            carol = await carol_stack.enter_async_context(
                open_node(root / "carol", _config(point_addrs, "carol"))
            )
            log("carol is back (same profile and identity)")
            with trio.fail_after(30):
                delivered = await alice.wait_flushed(timeout=30)
            got = [m.text for m in carol.store.messages.incoming(0, 10)]
            log(f"carol received {len(got)} message(s) from alice: {got}")
            if not delivered or len(got) != 2:
                raise RuntimeError("carol did not get alice's messages")
        log(f"the point held {held} registrations and carried no message: every message "
            "went directly from peer to peer")  # fmt: skip


def seal_probe(sender: Node, recipient: Node) -> bytes:
    """A sealed copy of a short message, to show its size on the wire."""
    from ..protocol.envelope import Envelope, direct_conversation_id, new_message_id

    now = sender.clock()
    envelope = Envelope(
        id=new_message_id(now),
        conversation=direct_conversation_id(sender.peer_id, recipient.peer_id),
        author=sender.peer_id, recipients=(recipient.peer_id,), timestamp_ms=now, lamport=1,
        body="hi alice, bob here",
    )  # fmt: skip
    return seal(envelope, sender.key, recipient.peer_id)


def run_demo(step: Step) -> None:
    """Run the demo, giving `step` one line per step; raises if a step fails."""
    step(None, "meshtalk demo: three agents on this machine, talking with no server in the middle")
    with tempfile.TemporaryDirectory(prefix="meshtalk-demo-") as root:
        trio.run(_demo, Path(root), step)
    step(None, "demo finished: discovery, pairing, direct encrypted messages, offline delivery")


def demo(args: argparse.Namespace) -> int:
    """`meshtalk demo`: run the built-in demo on loopback (--json: one JSON line per step)."""
    from .output import emit_json, wants_json

    def show(elapsed: float | None, text: str) -> None:
        if wants_json(args):
            emit_json({"elapsed_s": None if elapsed is None else round(elapsed, 2), "text": text})
        else:
            print(text if elapsed is None else f"[{elapsed:5.2f}s] {text}", flush=True)

    run_demo(show)
    return 0
