"""Hostile values a trusted peer can sign (issue 12, items 1 and 2), and exceptions of any type
inside the node: each fails one message or one stream, never the node, and no caller waits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from nacl.bindings import crypto_box_easy_afternm

from meshtalk.peer.node import Node
from meshtalk.peer.store.messages import Incoming
from meshtalk.protocol import (
    MAX_LAMPORT,
    MAX_LAMPORT_STEP,
    SIGNING_CONTEXT,
    AckFrame,
    DeliveryFailed,
    ErrorFrame,
    Frame,
    InternalError,
    NodeKey,
    direct_conversation_id,
    new_message_id,
)
from meshtalk.protocol.envelope import Envelope
from tests.test_peer.helpers import collect, running
from tests.test_peer.test_hostile import reply, rogue_stream, still_serving

INTEGER_EDGES = [0, 1, 2**31, 2**32, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63)]


def wire_from(author: NodeKey, to: Node, **fields: Any) -> dict[str, Any]:
    """A valid envelope's msgpack map, with `fields` replacing any of its short keys."""
    now = to.clock()
    wire: dict[str, Any] = {
        "v": 1,
        "id": new_message_id(now),
        "k": "text",
        "c": direct_conversation_id(author.peer_id, to.peer_id),
        "a": author.peer_id.to_bytes(),
        "r": [to.peer_id.to_bytes()],
        "t": now,
        "l": 1,
        "b": "hi",
    }
    wire.update(fields)
    return wire


def seal_wire(wire: dict[str, Any], author: NodeKey, to: Node) -> bytes:
    """Sign and seal any map, valid or not, as a buggy or hostile implementation could."""
    packed = msgpack.packb(wire)
    signature = author.sign(SIGNING_CONTEXT + packed)
    nonce = os.urandom(24)
    box = crypto_box_easy_afternm(signature + packed, nonce, author.shared_key(to.peer_id))
    return bytes(msgpack.packb([1, author.peer_id.to_bytes(), to.peer_id.to_bytes(), nonce + box]))


async def send_one(framed: Any, sealed: bytes) -> Frame:
    from meshtalk.protocol import MessageFrame

    await framed.write_frames([MessageFrame(sealed)])
    return await reply(framed)


async def test_a_lamport_at_any_edge_is_acked_or_refused_alone(tmp_path: Path) -> None:
    """Item 2: every value is answered for that message (ACK, or ERROR with its id), the stream
    stays up, and nothing the store cannot hold is stored."""
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        async with rogue_stream(rogue, bob) as framed:
            for value in INTEGER_EDGES:
                wire = wire_from(rogue, bob, l=value)
                answer = await send_one(framed, seal_wire(wire, rogue, bob))
                if 0 <= value <= MAX_LAMPORT_STEP:
                    assert answer == AckFrame((wire["id"],)), value
                else:
                    assert isinstance(answer, ErrorFrame), value
                    assert answer.ref == wire["id"], value
                    assert answer.code == (103 if value < 0 else 208), value
        lamports = [m.lamport for m in bob.store.messages.incoming(0, 100)]
        assert max(lamports) <= MAX_LAMPORT_STEP
        await still_serving(alice, bob, "after the edges")


async def test_a_peer_cannot_push_the_clock_to_the_edge(tmp_path: Path) -> None:
    """Item 1: a jump past the step is refused; a clock at the cap saturates, sends still work."""
    rogue = NodeKey.generate()
    async with running(tmp_path, "bob") as (bob,):
        bob.add_contact(rogue.peer_id, "rogue")
        conversation = direct_conversation_id(rogue.peer_id, bob.peer_id)
        async with rogue_stream(rogue, bob) as framed:
            first = wire_from(rogue, bob, l=MAX_LAMPORT_STEP)
            assert isinstance(await send_one(framed, seal_wire(first, rogue, bob)), AckFrame)
            jump = wire_from(rogue, bob, l=2 * MAX_LAMPORT_STEP + 1)
            refused = await send_one(framed, seal_wire(jump, rogue, bob))
            assert isinstance(refused, ErrorFrame)
            assert (refused.code, refused.ref) == (208, jump["id"])
        await bob.send("rogue", "next")
        [conv] = bob.store.messages.conversations(conversation)
        assert conv.lamport == MAX_LAMPORT_STEP + 1
        # However a clock got to the cap (billions of messages), the next send saturates.
        with bob.store.db.transaction() as db:
            db.execute(
                "UPDATE conversations SET lamport = ? WHERE id = ?", (MAX_LAMPORT, conversation)
            )
        for text in ("at the cap", "still at the cap"):
            await bob.send("rogue", text)
        assert [m.lamport for m in bob.history("rogue")[-2:]] == [MAX_LAMPORT, MAX_LAMPORT]


async def test_a_sender_fails_a_refused_message_and_moves_on(tmp_path: Path) -> None:
    """Item 2 from the sender's side: a copy the receiver refuses (here a Lamport counter a
    buggy implementation put past the cap) is marked failed; the link delivers the next one."""
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
        bad_id = new_message_id(alice.clock())

        def build(lamport: int) -> tuple[Envelope, dict[Any, bytes]]:
            envelope = Envelope(
                id=bad_id, conversation=conversation, author=alice.peer_id,
                recipients=(bob.peer_id,), timestamp_ms=alice.clock(), lamport=lamport, body="x",
            )  # fmt: skip
            wire = wire_from(alice.key, bob, id=bad_id, l=2**63)
            return envelope, {bob.peer_id: seal_wire(wire, alice.key, bob)}

        item = (conversation, "direct", (alice.peer_id, bob.peer_id), build)
        [queued] = alice.store.messages.queue_outgoing_many([item], alice.clock())
        assert isinstance(queued, tuple), queued
        alice.deliver_now(bob.peer_id)
        with pytest.raises(DeliveryFailed, match="Lamport"):
            await alice.wait_delivered(bad_id, timeout=10)
        await alice.send("bob", "after the refusal", wait=True, timeout=10)
        [message] = await collect(bob, 1)
        assert message.body == "after the refusal"
        assert alice.store.outbox.size() == 0


class Injected(Exception):
    """Not a MeshtalkError: stands for a bug anywhere below the node."""


def fail_once(obj: Any, name: str, when: Any = lambda *a: True) -> list[int]:
    """Make `obj.name` raise Injected on the first call for which `when(*args)` holds."""
    original = getattr(obj, name)
    calls = [0]

    def patched(*args: Any, **kwargs: Any) -> Any:
        if calls[0] == 0 and when(*args):
            calls[0] += 1
            raise Injected(f"injected into {name}")
        return original(*args, **kwargs)

    setattr(obj, name, patched)
    return calls


async def test_a_bug_in_the_committer_fails_that_send_not_the_node(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        calls = fail_once(alice.store.messages, "queue_outgoing_many")
        with trio.fail_after(10), pytest.raises(InternalError, match="Injected"):
            await alice.send("bob", "lost to the bug")
        assert calls == [1]
        await still_serving(alice, bob, "the node goes on")
        assert [m.body for m in alice.history("bob")] == ["the node goes on"]


async def test_a_bug_in_a_link_costs_a_retry_not_the_node(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        calls = fail_once(alice.store.outbox, "acknowledge")
        await alice.send("bob", "acked after a retry", wait=True, timeout=10)
        assert calls == [1]
        assert alice.statistics().counters["delivery_interruptions"] >= 1
        await still_serving(alice, bob, "and the next")
        assert [m.body for m in bob.store.messages.incoming(0, 10)] == [
            "acked after a retry",
            "and the next",
        ]


async def test_a_bug_storing_one_incoming_message_refuses_that_one(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):

        def poisoned(items: list[Incoming], *args: Any) -> bool:
            return any(envelope.body == "poison" for envelope, *_ in items)

        original = bob.store.messages.store_incoming

        def store_incoming(items: Any, *args: Any) -> Any:
            if poisoned(items):
                raise Injected("injected into store_incoming")
            return original(items, *args)

        bob.store.messages.store_incoming = store_incoming  # type: ignore[method-assign]
        with pytest.raises(DeliveryFailed, match="could not store this message"):
            await alice.send("bob", "poison", wait=True, timeout=10)
        await still_serving(alice, bob, "the stream goes on")


async def test_a_bug_in_a_stream_handler_loses_only_that_stream(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        fail_once(bob._events, "connected")  # the LinkEvents port the inbound handler reports to
        await alice.send("bob", "after the handler bug", wait=True, timeout=15)
        await still_serving(alice, bob, "and more")
