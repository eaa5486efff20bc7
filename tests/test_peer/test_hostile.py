"""Hostile peers on the real stream: every bad frame is refused with the right error, the
stream at most is lost, and the node keeps serving everyone else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.custom_types import TProtocol
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.tcp.tcp import TCP

from meshtalk.net.framed import FramedStream
from meshtalk.net.host import MSG_PROTOCOL, build_host, close_host, peer_info, to_libp2p_id
from meshtalk.peer.node import Node
from meshtalk.profile.identity import libp2p_key_pair
from meshtalk.protocol import (
    AckFrame,
    DecryptionFailed,
    ErrorFrame,
    Frame,
    FrameTooLarge,
    HelloFrame,
    MalformedFrame,
    MessageFrame,
    NodeKey,
    NotAuthorized,
    direct_conversation_id,
    encode_uvarint,
    new_message_id,
    seal,
)
from meshtalk.protocol.envelope import Envelope
from tests.test_peer.helpers import collect, running

LOCAL = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


@asynccontextmanager
async def rogue_stream(
    key: NodeKey, target: Node, hello: bool = True
) -> AsyncIterator[FramedStream]:
    """A raw libp2p host with `key`, holding an open /meshtalk/msg stream to `target`."""
    host = build_host(key)
    async with host.run([LOCAL]):
        try:
            with trio.fail_after(10):
                await host.connect(peer_info(target.peer_id, target.listen_addrs))
                stream = await host.new_stream(to_libp2p_id(target.peer_id), [MSG_PROTOCOL])
                framed = FramedStream(stream)
                if hello:
                    await framed.hello((1,), "rogue", 5)
            yield framed
        finally:
            await close_host(host)


def sealed_from(author: NodeKey, to: Node, body: str = "hi", **fields: Any) -> tuple[bytes, bytes]:
    now = to.clock()
    envelope = Envelope(
        id=fields.pop("id", new_message_id(now)),
        conversation=direct_conversation_id(author.peer_id, to.peer_id),
        author=author.peer_id,
        recipients=(to.peer_id,),
        timestamp_ms=fields.pop("timestamp_ms", now),
        lamport=1,
        body=body,
        **fields,
    )
    return envelope.id, seal(envelope, author, to.peer_id)


async def reply(framed: FramedStream) -> Frame:
    with trio.fail_after(10):
        return await framed.read_frame()


async def still_serving(alice: Node, bob: Node, text: str) -> None:
    before = bob.store.messages.last_cursor()
    await alice.send("bob", text, wait=True, timeout=10)
    [message] = await collect(bob, 1, after=before)
    assert message.body == text


async def test_bad_messages_are_refused_one_by_one(tmp_path: Path) -> None:
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        async with rogue_stream(rogue, bob) as framed:
            good_id, good = sealed_from(rogue, bob, "genuine")
            tampered = bytearray(good)
            tampered[-5] ^= 1
            await framed.write_frames([MessageFrame(bytes(tampered))])
            error = await reply(framed)
            assert isinstance(error, ErrorFrame)
            assert isinstance(error.to_exception(), DecryptionFailed)

            # Signed by alice, sealed by the rogue: the author does not match the sealer.
            _, alice_copy = sealed_from(alice.key, bob, "from alice")
            await framed.write_frames([MessageFrame(good), MessageFrame(good)])
            ack = await reply(framed)
            assert ack == AckFrame((good_id, good_id))  # a replay is acked, never stored twice

            old_id, too_old = sealed_from(rogue, bob, timestamp_ms=bob.clock() - 40 * 86_400_000)
            await framed.write_frames([MessageFrame(too_old)])
            skew = await reply(framed)
            assert isinstance(skew, ErrorFrame)
            assert skew.code == 206
            assert skew.ref == old_id

            # A message from someone bob does not trust, carried by a trusted peer.
            stranger = NodeKey.generate()
            stranger_id, from_stranger = sealed_from(stranger, bob)
            await framed.write_frames([MessageFrame(from_stranger), MessageFrame(alice_copy)])
            refused, ack = await reply(framed), await reply(framed)
            assert isinstance(refused, ErrorFrame)
            assert isinstance(refused.to_exception(), NotAuthorized)
            assert refused.ref == stranger_id
            assert isinstance(ack, AckFrame)
        stored = [m.body for m in bob.store.messages.incoming(0, 100)]
        assert stored == ["genuine", "from alice"]
        await still_serving(alice, bob, "after the rogue")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (encode_uvarint(50 * 1024 * 1024), FrameTooLarge),
        (b"\x05garbage", MalformedFrame),
        (b"\x00", MalformedFrame),
        (b"\x03\x92\x07\x01", MalformedFrame),  # unknown frame type 7
    ],
)
async def test_broken_frames_lose_only_that_stream(
    tmp_path: Path, raw: bytes, error: type[Exception]
) -> None:
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        async with rogue_stream(rogue, bob) as framed:
            await framed.stream.write(raw)
            answer = await reply(framed)
            assert isinstance(answer, ErrorFrame)
            assert isinstance(answer.to_exception(), error)
            with trio.fail_after(10), pytest.raises(EOFError):
                await framed.read_frames()  # bob reset the stream
        await still_serving(alice, bob, "still here")


async def test_hello_is_required_and_checked(tmp_path: Path) -> None:
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        async with rogue_stream(rogue, bob, hello=False) as framed:
            await framed.write_frames([HelloFrame((9, 10), "future")])
            hello, refusal = await reply(framed), await reply(framed)
            assert isinstance(hello, HelloFrame)
            assert isinstance(refusal, ErrorFrame)
            assert refusal.code == 105
        async with rogue_stream(rogue, bob, hello=False) as framed:
            _, sealed = sealed_from(rogue, bob)
            await framed.write_frames([MessageFrame(sealed)])
            hello, refusal = await reply(framed), await reply(framed)
            assert isinstance(refusal, ErrorFrame)
            assert refusal.code == 102
        await still_serving(alice, bob, "fine")


async def test_unknown_peer_is_refused_at_the_door(tmp_path: Path) -> None:
    stranger = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        async with rogue_stream(stranger, bob, hello=False) as framed:
            refusal = await reply(framed)
            assert isinstance(refusal, ErrorFrame)
            assert isinstance(refusal.to_exception(), NotAuthorized)
        assert bob.store.contacts.refusals() == {stranger.peer_id: 1}
        await still_serving(alice, bob, "ok")


async def test_plaintext_dialer_cannot_connect(tmp_path: Path) -> None:
    key = NodeKey.generate()
    pair = libp2p_key_pair(key)
    plain = new_host(
        key_pair=pair,
        sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(pair)},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        transports=[TCP()],
    )
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(key.peer_id, "plain")
        async with plain.run([LOCAL]):
            try:
                with trio.fail_after(10), pytest.raises(Exception, match="unable to connect"):
                    await plain.connect(peer_info(bob.peer_id, bob.listen_addrs))
            finally:
                await close_host(plain)
        assert bob.store.messages.incoming(0, 10) == []
        await still_serving(alice, bob, "noise only")


async def test_refusals_of_strangers_are_bounded(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.store.contacts.max_refusals = 3
        strangers = [NodeKey.generate() for _ in range(5)]
        for stranger in strangers:
            async with rogue_stream(stranger, bob, hello=False) as framed:
                assert isinstance(await reply(framed), ErrorFrame)
        assert set(bob.store.contacts.refusals()) == {s.peer_id for s in strangers[-3:]}
        await still_serving(alice, bob, "bounded")


@pytest.mark.parametrize("frame", [HelloFrame((1,), "again"), AckFrame((b"i" * 16,))])
async def test_a_frame_the_dialer_may_not_send_is_answered_before_the_reset(
    tmp_path: Path, frame: Frame
) -> None:
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        async with rogue_stream(rogue, bob) as framed:
            await framed.write_frames([frame])
            answer = await reply(framed)
            assert isinstance(answer, ErrorFrame)
            assert answer.code == 100
            with trio.fail_after(10), pytest.raises(EOFError):
                await framed.read_frames()
        await still_serving(alice, bob, "after the odd frame")
