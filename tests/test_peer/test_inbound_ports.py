"""The InboundHandler alone, through its ports: a trust set, a recording inbox and events, and
a dialer scripted with frames over a memory stream. Every wait runs on a MockClock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from meshtalk.peer.config import NodeConfig
from meshtalk.peer.inbound import InboundHandler
from meshtalk.peer.inbound_limits import InboundLimits
from meshtalk.protocol import (
    AckFrame,
    ClockSkew,
    ConversationMismatch,
    Envelope,
    ErrorFrame,
    Frame,
    HelloFrame,
    MessageFrame,
    MessageRejected,
    NodeKey,
    NotAuthorized,
    ProtocolError,
    StreamRefused,
    UnsupportedVersion,
    seal,
)
from tests.conftest import NOW_MS, make_envelope
from tests.test_peer.port_doubles import (
    FAR_HELLO,
    HELLO,
    FarSide,
    NoRooms,
    RecordingEvents,
    RecordingInbox,
    TrustSet,
    stream_pair,
)


@dataclass
class Rig:
    handler: InboundHandler
    trust: TrustSet
    inbox: RecordingInbox
    events: RecordingEvents
    limits: InboundLimits


def rig(me: NodeKey, *trusted: NodeKey) -> Rig:
    trust = TrustSet(key.peer_id for key in trusted)
    inbox, events, limits = RecordingInbox(), RecordingEvents(), InboundLimits()
    handler = InboundHandler(
        me, trust, inbox, NoRooms(), events, limits, NodeConfig(), lambda: NOW_MS, HELLO
    )
    return Rig(handler, trust, inbox, events, limits)


def message(author: NodeKey, to: NodeKey, n: int, **fields: object) -> tuple[Envelope, bytes]:
    envelope = make_envelope(author, to, id=bytes([n]) * 16, lamport=n, **fields)
    return envelope, seal(envelope, author, to.peer_id)


async def exchange(r: Rig, author: NodeKey, *sealed: bytes) -> list[Frame]:
    """Serve one stream from `author`: handshake, send `sealed` in one write, take the replies
    to that write, end the stream; the handler must return."""
    ours, far = stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.handler.serve, author.peer_id, ours)
        assert await far.hello() == HelloFrame(*HELLO)
        await far.send(*(MessageFrame(s) for s in sealed))
        replies = await far.read()
        await far.end()
    return replies


def codes(frames: Sequence[Frame]) -> list[tuple[int, bytes | None]]:
    return [(f.code, f.ref) for f in frames if isinstance(f, ErrorFrame)]


async def test_an_untrusted_peer_gets_not_authorized_and_the_stream_closes(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey
) -> None:
    r = rig(bob)
    ours, far = stream_pair()
    await r.handler.serve(alice.peer_id, ours)
    assert codes(await far.read_to_end()) == [(NotAuthorized.code, None)]
    assert ours.ended == "close"
    [(peer, refusal)] = r.inbox.args("count_refusal")
    assert peer == alice.peer_id
    assert isinstance(refusal, NotAuthorized)
    assert r.events.calls == []
    assert r.inbox.named("store_incoming") == []
    assert r.limits.total_streams == 0


async def test_a_trusted_peers_sealed_message_is_stored_and_acked(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey
) -> None:
    r = rig(bob, alice)
    envelope, sealed = message(alice, bob, 1)
    assert await exchange(r, alice, sealed) == [AckFrame((envelope.id,))]
    assert r.inbox.stored == [(envelope, sealed)]
    assert r.inbox.named("count_refusal") == []
    assert r.limits.total_streams == 0  # the stream's slot was given back


async def test_a_message_that_does_not_open_gets_an_error_with_its_id(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey
) -> None:
    r = rig(bob, alice)
    stale, stale_sealed = message(alice, bob, 1, timestamp_ms=NOW_MS - NodeConfig().max_age_ms - 1)
    good, good_sealed = message(alice, bob, 2)
    replies = await exchange(r, alice, stale_sealed, good_sealed)
    assert codes(replies) == [(ClockSkew.code, stale.id)]
    assert replies[-1] == AckFrame((good.id,))  # the batch goes on
    assert [envelope for envelope, _ in r.inbox.stored] == [good]
    [(peer, refusal)] = r.inbox.args("count_refusal")
    assert peer is None  # refused before the author was known to be who it says
    assert isinstance(refusal, ClockSkew)


async def test_a_message_the_inbox_refuses_gets_an_error_with_its_id_and_is_counted(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey
) -> None:
    r = rig(bob, alice)
    refused, refused_sealed = message(alice, bob, 1)
    good, good_sealed = message(alice, bob, 2)
    r.inbox.refuse[refused.id] = ConversationMismatch("not a member")
    replies = await exchange(r, alice, refused_sealed, good_sealed)
    assert codes(replies) == [(ConversationMismatch.code, refused.id)]
    assert replies[-1] == AckFrame((good.id,))
    assert r.inbox.args("store_incoming") == [([refused.id, good.id],)]  # one transaction
    assert r.inbox.args("count_refusal") == [(alice.peer_id, r.inbox.refuse[refused.id])]


async def test_a_batch_the_inbox_fails_on_is_stored_one_by_one(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey
) -> None:
    r = rig(bob, alice)
    good, good_sealed = message(alice, bob, 1)
    bad, bad_sealed = message(alice, bob, 2)
    r.inbox.explode.add(bad.id)
    replies = await exchange(r, alice, good_sealed, bad_sealed)
    assert codes(replies) == [(MessageRejected.code, bad.id)]
    assert replies[-1] == AckFrame((good.id,))
    assert r.inbox.args("store_incoming") == [([good.id, bad.id],), ([good.id],), ([bad.id],)]


async def test_a_hello_after_the_handshake_gets_error_100_and_the_handler_raises(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey
) -> None:
    r = rig(bob, alice)
    ours, far = stream_pair()
    await far.send(FAR_HELLO, FAR_HELLO)
    with pytest.raises(ProtocolError, match="sent HELLO twice"):  # MessageConnection's text
        await r.handler.serve(alice.peer_id, ours)
    hello, error = await far.read()
    assert hello == HelloFrame(*HELLO)
    assert codes([error]) == [(ProtocolError.code, None)]
    assert r.events.args("connected") == [(alice.peer_id,)]
    assert r.limits.total_streams == 0


async def test_connected_is_reported_after_the_handshake(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey
) -> None:
    r = rig(bob, alice)
    ours, far = stream_pair()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.handler.serve, alice.peer_id, ours)
        assert await far.framed.read_frame() == HelloFrame(*HELLO)  # the handler speaks first
        await trio.sleep(3)
        assert r.events.calls == []
        await far.send(FAR_HELLO)
        [connected] = await r.events.wait_for("connected")
        await far.end()
    assert connected.args == (alice.peer_id,)
    assert connected.at - start == pytest.approx(3.0)


async def test_a_hello_without_a_common_version_gets_error_105_and_no_connection(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey
) -> None:
    r = rig(bob, alice)
    ours, far = stream_pair()
    await far.send(HelloFrame((2, 3), "from the future"))
    with pytest.raises(UnsupportedVersion):
        await r.handler.serve(alice.peer_id, ours)
    hello, error = await far.read()
    assert hello == HelloFrame(*HELLO)
    assert codes([error]) == [(UnsupportedVersion.code, None)]
    assert r.events.calls == []


async def test_a_fifth_stream_from_one_peer_is_refused(
    autojump_clock: trio.testing.MockClock, alice: NodeKey, bob: NodeKey, carol: NodeKey
) -> None:
    r = rig(bob, alice, carol)
    open_streams: list[FarSide] = []
    async with trio.open_nursery() as nursery:
        for peer in (alice, alice, alice, alice, carol):
            ours, far = stream_pair()
            nursery.start_soon(r.handler.serve, peer.peer_id, ours)
            await far.hello()
            open_streams.append(far)
        ours, fifth = stream_pair()
        await r.handler.serve(alice.peer_id, ours)  # answered at once
        assert codes(await fifth.read_to_end()) == [(StreamRefused.code, None)]
        assert ours.ended == "close"
        assert r.limits.total_streams == 5
        for far in open_streams:
            await far.end()
    assert r.limits.total_streams == 0
    assert r.limits.refused == 1
    assert len(r.events.named("connected")) == 5
