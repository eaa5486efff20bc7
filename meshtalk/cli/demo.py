"""`meshtalk demo`: the whole story on one machine, in about ten seconds, with nothing set up.

A rendezvous point and three nodes (alice, bob, carol) start on 127.0.0.1 in temporary
profiles. They find each other through the point, pair (bob with a short code, carol with an
invite token), exchange signed and encrypted messages directly, and carol goes away while
alice writes to her: the messages wait in alice's outbox and arrive when carol returns. Then
alice makes a room of the three; bob posts while carol is away and goes away too, and carol,
back, gets bob's signed message from alice.
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
from ..peer.models import Message
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


class _Nodes:
    """The demo's nodes by name, each started and stopped on its own (same profile each time)."""

    def __init__(self, root: Path, point: list[str]) -> None:
        self._root, self._point = root, point
        self._stacks: dict[str, AsyncExitStack] = {}
        self.running: dict[str, Node] = {}

    async def start(self, name: str) -> Node:
        stack = self._stacks[name] = AsyncExitStack()
        config = _config(self._point, name)
        node = await stack.enter_async_context(open_node(self._root / name, config))
        self.running[name] = node
        return node

    async def stop(self, name: str) -> None:
        """Stop one node; only the last started of those running (their nurseries nest)."""
        self.running.pop(name, None)
        await self._stacks.pop(name).aclose()

    async def aclose(self) -> None:
        """Stop the nodes still running, the last started first (their nurseries nest)."""
        for name in reversed(list(self._stacks)):
            await self.stop(name)


async def _demo(root: Path, step: Step) -> None:
    log = _Clock(step)
    async with open_rendezvous_point(NodeKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as (
        point, point_addrs,
    ):  # fmt: skip
        log(f"rendezvous point up at {point_addrs[0].split('/p2p/')[0]} "
            "(it introduces peers and never sees a message)")  # fmt: skip
        nodes = _Nodes(root, point_addrs)
        try:
            alice, bob, carol = [await nodes.start(n) for n in ("alice", "bob", "carol")]
            for node in (alice, bob, carol):
                log(f"{node.profile.name:<5} started: peer ID {node.peer_id}")
            with trio.fail_after(20):
                for other in (bob, carol):
                    await alice.wait_known(other.peer_id)
            held = point.statistics().registry.registrations
            log("alice found bob and carol through the point (no contacts yet: strangers)")
            await _pair(alice, bob, carol, log)
            await _talk(alice, bob, log)
            await _offline(nodes, alice, log)
            await _room(nodes, alice, log)
        finally:
            await nodes.aclose()
        log(f"the point held {held} registrations and carried no message: every message "
            "went directly from peer to peer")  # fmt: skip


async def _talk(alice: Node, bob: Node, log: Say) -> None:
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


async def _offline(nodes: _Nodes, alice: Node, log: Say) -> None:
    """carol goes away while alice writes to her; the messages wait and arrive when she is back."""
    await nodes.stop("carol")
    log("carol goes offline")
    for text in ("carol, are you there?", "the plan is ready when you are"):
        await alice.send("carol", text)
    log(f"alice sends carol 2 messages; they wait in alice's outbox "
        f"(outbox: {alice.store.outbox.size()})")  # fmt: skip
    await trio.sleep(1.0)
    carol = await nodes.start("carol")
    log("carol is back (same profile and identity)")
    with trio.fail_after(30):
        delivered = await alice.wait_flushed(timeout=30)
    got = [m.text for m in carol.store.messages.incoming(0, 10)]
    log(f"carol received {len(got)} message(s) from alice: {got}")
    if not delivered or len(got) != 2:
        raise RuntimeError("carol did not get alice's messages")


async def _room(nodes: _Nodes, alice: Node, log: Say) -> None:
    """A room of three: carol is away while bob posts, then bob goes too; carol comes back and
    gets bob's message from alice, signed by bob (bob and carol are not even contacts)."""
    bob, carol = nodes.running["bob"], nodes.running["carol"]
    room = alice.create_room("plan")
    with trio.fail_after(30):
        for member in (bob, carol):
            await alice.room_invite(room.id, member.peer_id, wait=True, timeout=20)
            await member.join_room("plan", timeout=20)
    log(f"alice made room 'plan' ({room.id.hex()[:8]}) and added bob and carol: a membership "
        "log signed by alice that each of them holds (bob and carol are not contacts)")  # fmt: skip
    await nodes.stop("carol")
    log("carol goes offline")
    after = alice.store.messages.last_cursor()
    await bob.send("plan", "bob's draft for the room: ship on friday")
    with trio.fail_after(20):
        await _first_message(alice, after)
    log("bob posts to the room (signed once, sealed for each member); alice has it")
    await nodes.stop("bob")
    log("bob goes offline too: the author is gone, and so is his copy for carol")
    carol = await nodes.start("carol")
    with trio.fail_after(30):
        got = await _first_room_message(carol, room.id)
    author = "bob" if got.author == bob.peer_id else str(got.author)
    log(f"carol is back and caught up from alice: {got.text!r}, verified as written by "
        f"{author} (alice forwarded bob's signed envelope; she cannot alter it)")  # fmt: skip


async def _first_room_message(node: Node, room: bytes) -> Message:
    async for message in node.messages():
        if message.conversation == room and message.kind == "text":
            return message
    raise AssertionError("unreachable")


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
    step(
        None,
        "demo finished: discovery, pairing, direct encrypted messages, offline delivery, "
        "a room whose history any member can serve",
    )


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
