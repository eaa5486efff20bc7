"""A PeerLink alone, through its ports: a recording outbox, dialer, events and counters, and a
far side scripted with frames over a memory stream. Every wait runs on a MockClock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.host.exceptions import StreamFailure

from meshtalk.net.host import MSG_PROTOCOL
from meshtalk.peer.config import NodeConfig
from meshtalk.peer.outbound import SENT_MARK_DELAY, PeerLink
from meshtalk.peer.store import OutboxItem
from meshtalk.protocol import (
    AckFrame,
    ConversationMismatch,
    ErrorFrame,
    Frame,
    HelloFrame,
    MessageFrame,
    NotAuthorized,
)
from tests.conftest import fixed_key
from tests.test_peer.port_doubles import (
    FAR_HELLO,
    HELLO,
    Call,
    Counts,
    RecordingDialer,
    RecordingEvents,
    RecordingOutbox,
    running,
)

PEER = fixed_key("bob").peer_id
EPSILON = 1e-9


def item(n: int) -> OutboxItem:
    return OutboxItem(n, bytes([n]) * 16, PEER, b"sealed copy %d" % n, attempts=0)


@dataclass
class Rig:
    outbox: RecordingOutbox
    dialer: RecordingDialer
    events: RecordingEvents
    counts: Counts
    link: PeerLink


def rig(*items: OutboxItem, fail_dials: int = 0, **config: Any) -> Rig:
    outbox, dialer, events, counts = (
        RecordingOutbox(*items),
        RecordingDialer(fail_dials),
        RecordingEvents(),
        Counts(),
    )
    link = PeerLink(PEER, outbox, dialer, events, NodeConfig(**config), counts, HELLO)
    return Rig(outbox, dialer, events, counts, link)


def gaps(calls: list[Call]) -> list[float]:
    return [later.at - earlier.at for earlier, later in pairwise(calls)]


async def test_pending_copies_are_pipelined_and_acks_reported_in_arrival_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one, two, three = item(1), item(2), item(3)
    r = rig(one, two, three)
    async with running(r.link):
        far = await r.dialer.accept()
        assert await far.hello() == HelloFrame(*HELLO)
        assert await far.read_messages(3) == [one.sealed, two.sealed, three.sealed]
        await far.send(AckFrame((one.message_id,)))
        await r.outbox.wait_for("acked", 1)
        await far.send(AckFrame((three.message_id,)), AckFrame((two.message_id,)))
        await r.outbox.wait_for("acked", 2)
        await trio.sleep(3 * NodeConfig().ack_timeout)  # nothing in flight: the stream stays
        assert r.link.statistics().state == "connected"
    assert r.outbox.args("acked") == [
        (PEER, [one.message_id]),
        (PEER, [three.message_id, two.message_id]),
    ]
    assert r.outbox.items == []
    assert r.dialer.args("open_stream") == [(PEER, MSG_PROTOCOL)]
    assert len(r.dialer.named("dial")) == 1
    assert r.counts["frames_sent"] == 3
    assert r.counts["delivery_interruptions"] == 0


async def test_an_ack_that_comes_while_its_batch_is_still_being_written_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The receiver acks the first copies of a batch before the write of the batch returns:
    those acks must count, or the copies stay "in flight" for good and the link writes
    nothing more until ack_timeout (seen as a 5 s stall in room catch-up)."""
    one, two, three = item(1), item(2), item(3)
    r = rig(one, two)
    gate = r.dialer.write_gate = trio.Event()
    async with running(r.link):
        far = await r.dialer.accept()
        far_hello = await far.hello()
        assert far_hello == HelloFrame(*HELLO)
        assert await far.read_messages(2) == [one.sealed, two.sealed]
        await far.send(AckFrame((one.message_id, two.message_id)))
        await r.outbox.wait_for("acked", 1)  # while the writer is still in its write
        gate.set()
        r.outbox.add(three)
        r.link.kick(len(three.sealed))
        with trio.fail_after(5):  # well within ack_timeout (30 s)
            assert await far.read_messages(1) == [three.sealed]
        await far.send(AckFrame((three.message_id,)))
        await r.outbox.wait_for("acked", 2)
    assert r.counts["delivery_interruptions"] == 0


async def test_an_error_with_ref_fails_that_message_and_the_stream_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one, two, three, four = item(1), item(2), item(3), item(4)
    r = rig(one, two, three)
    async with running(r.link):
        far = await r.dialer.accept()
        await far.hello()
        await far.read_messages(3)
        refusal = ErrorFrame(ConversationMismatch.code, "not a member", two.message_id)
        await far.send(AckFrame((one.message_id,)), refusal, AckFrame((three.message_id,)))
        await r.outbox.wait_for("acked")
        r.outbox.add(four)
        r.link.kick(len(four.sealed))
        assert await far.read_messages(1) == [four.sealed]  # the same stream
    assert [call.name for call in r.outbox.calls if call.name != "pending"] == ["failed", "acked"]
    [(peer, message_id, error)] = r.outbox.args("failed")
    assert (peer, message_id) == (PEER, two.message_id)
    assert isinstance(error, ConversationMismatch)
    assert error.remote
    assert error.message_id == two.message_id
    assert r.outbox.args("acked") == [(PEER, [one.message_id, three.message_id])]
    assert r.outbox.status[two.message_id] == "failed"
    assert len(r.dialer.named("dial")) == 1
    assert r.counts["delivery_interruptions"] == 0


async def test_a_refusal_at_the_door_fails_every_waiting_copy_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one, two = item(1), item(2)
    r = rig(one, two)
    async with running(r.link):
        far = await r.dialer.accept()
        await far.send(ErrorFrame(NotAuthorized.code, "X does not accept messages from you"))
        await far.end()
        await r.outbox.wait_for("failed", 2)
        await trio.sleep(60)  # final: no redial, no back-off
        assert r.link.state == "idle"
    assert [args[1] for args in r.outbox.args("failed")] == [one.message_id, two.message_id]
    [(_, _, error), _] = r.outbox.args("failed")
    assert isinstance(error, NotAuthorized)
    assert error.remote
    assert len(r.dialer.named("dial")) == 1
    assert r.events.named("connected") == []


async def _refuse(r: Rig) -> None:
    far = await r.dialer.accept()
    await far.send(ErrorFrame(NotAuthorized.code, "X does not accept messages from you"))
    await far.end()


async def test_a_room_copy_refused_at_the_door_is_retried_and_goes_once_the_door_knows_us(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A new member's door refuses members its log does not show yet (the admin's push of
    the log is on its way): the direct copy fails at once, the room copy waits and goes."""
    direct, room = item(1), item(2)
    r = rig(direct, room)
    r.outbox.room_copies.add(room.message_id)
    async with running(r.link):
        await _refuse(r)
        await _refuse(r)
        far = await r.dialer.accept()
        assert await far.hello() == HelloFrame(*HELLO)
        assert await far.read_messages(1) == [room.sealed]
        await far.send(AckFrame((room.message_id,)))
        await r.outbox.wait_for("acked", 1)
    assert r.outbox.status == {direct.message_id: "failed", room.message_id: "delivered"}
    assert [args[2] for args in r.outbox.args("refused_at_door")] == [False, False]
    assert len(r.dialer.named("open_stream")) == 3  # on the connection held


async def test_a_room_copy_refused_for_the_whole_grace_fails_then(
    autojump_clock: trio.testing.MockClock,
) -> None:
    room = item(1)
    r = rig(room, room_door_grace=30.0, retry_max=4.0)  # each accept() waits at most WAIT
    r.outbox.room_copies.add(room.message_id)
    start = trio.current_time()
    async with running(r.link):
        refusals = 0
        while r.outbox.items:
            await _refuse(r)
            refusals += 1
            await r.outbox.wait_for("refused_at_door", refusals)
    refusals = r.outbox.args("refused_at_door")
    assert [args[2] for args in refusals][-1] is True
    assert not any(args[2] for args in refusals[:-1])
    assert trio.current_time() - start >= 30.0
    assert r.outbox.status == {room.message_id: "failed"}


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (ErrorFrame(NotAuthorized.code, "who are you"), "NotAuthorized: peer refused: who are you"),
        (FAR_HELLO, "ProtocolError: the peer sent HELLO twice"),
        (MessageFrame(b"not for you"), "ProtocolError: a listener may not send MESSAGE"),
    ],
)
async def test_an_error_without_ref_or_an_unexpected_frame_ends_the_stream_and_the_link_retries(
    autojump_clock: trio.testing.MockClock, reply: Frame, error: str
) -> None:
    one = item(1)
    r = rig(one)
    async with running(r.link):
        far = await r.dialer.accept()
        await far.hello()
        await far.read_messages(1)
        await far.send(reply)
        assert await far.read_to_end() == []
        broke = trio.current_time()
        await trio.sleep(0.05)  # the back-off is at least retry_initial / 2 = 0.1 s
        assert r.link.state == "backoff"
        assert (r.link.last_error or "").startswith(error)
        # written, unacked, then the stream broke: that copy was sent
        assert r.outbox.args("mark_sent") == [(PEER, [one.cursor])]
        again = await r.dialer.accept()
        await again.hello()
        assert await again.read_messages(1) == [one.sealed]  # resent
    [_, reopened] = r.dialer.named("open_stream")  # on the connection held: no new dial
    assert len(r.dialer.named("dial")) == 1
    assert 0.1 - EPSILON <= reopened.at - broke <= 0.2 + EPSILON
    assert r.counts["delivery_interruptions"] == 1
    assert r.outbox.named("acked") == r.outbox.named("failed") == []


async def test_a_copy_waiting_for_its_ack_is_marked_sent_after_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Its status goes queued -> sent while no ack comes, and the outbox still holds it; a copy
    acked within SENT_MARK_DELAY is never marked sent."""
    quick, slow = item(1), item(2)
    r = rig(quick)
    async with running(r.link):
        far = await r.dialer.accept()
        await far.hello()
        await far.read_messages(1)
        await far.send(AckFrame((quick.message_id,)))
        await r.outbox.wait_for("acked")
        await trio.sleep(2 * SENT_MARK_DELAY)
        assert r.outbox.named("mark_sent") == []
        assert r.outbox.status[quick.message_id] == "delivered"

        r.outbox.add(slow)
        r.link.kick(len(slow.sealed))
        assert await far.read_messages(1) == [slow.sealed]  # and never acked
        written = trio.current_time()
        assert r.outbox.status[slow.message_id] == "queued"
        [mark] = await r.outbox.wait_for("mark_sent")
        assert r.link.statistics().in_flight == 1
    assert mark.args == (PEER, [slow.cursor])
    assert mark.at - written == pytest.approx(SENT_MARK_DELAY)
    assert r.outbox.status[slow.message_id] == "sent"
    assert r.outbox.items == [slow]


async def test_failed_dials_back_off_doubling_to_the_cap_and_stop_once_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one = item(1)
    r = rig(one, fail_dials=6, retry_initial=0.2, retry_max=1.0)
    async with running(r.link):
        far = await r.dialer.accept()
        await far.hello()
        await far.read_messages(1)
        await far.send(AckFrame((one.message_id,)))
        await r.outbox.wait_for("acked")
        await trio.sleep(100)
    dials = r.dialer.named("dial")
    assert len(dials) == 7  # no dial after the one that delivered
    for gap, base in zip(gaps(dials), [0.2, 0.4, 0.8, 1.0, 1.0, 1.0], strict=True):
        assert base / 2 - EPSILON <= gap <= base + EPSILON  # jitter: 0.5 to 1 times the base
    assert r.counts["delivery_interruptions"] == 6
    assert len(r.dialer.named("open_stream")) == 1


async def test_a_connection_that_delivered_restarts_the_back_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one, two = item(1), item(2)
    r = rig(one, fail_dials=3, retry_initial=0.2, retry_max=30.0)  # the back-off reaches 1.6 s
    async with running(r.link):
        far = await r.dialer.accept()
        await far.hello()
        await far.read_messages(1)
        await far.send(AckFrame((one.message_id,)))
        await r.outbox.wait_for("acked")
        r.outbox.add(two)
        r.link.kick(len(two.sealed))
        await far.read_messages(1)
        await far.end()
        await far.read_to_end()
        broke = trio.current_time()
        await r.dialer.accept()
    reopened = r.dialer.named("open_stream")[-1]
    assert reopened.at - broke <= 0.2 + EPSILON  # retry_initial, as after the first failure


async def test_the_back_off_grows_again_when_the_peer_stays_away_after_delivering(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one = item(1)
    r = rig(one, retry_initial=0.2, retry_max=30.0)
    async with running(r.link):
        far = await r.dialer.accept()
        await far.hello()
        await far.read_messages(1)
        await far.send(AckFrame((one.message_id,)))
        await r.outbox.wait_for("acked")
        r.outbox.add(item(2))
        r.link.kick(1)
        await far.read_messages(1)
        r.dialer.fail_dials = 1000  # the peer is gone for good, its connection too
        r.dialer.connected.clear()
        await far.end()
        await far.read_to_end()
        broke = trio.current_time()
        await r.dialer.wait_for("dial", 6)
    dials = [call.at for call in r.dialer.named("dial")][1:]
    assert dials[0] - broke <= 0.2 + EPSILON  # the first retry is quick: the peer was fine
    gaps = [later - earlier for earlier, later in itertools.pairwise(dials)]
    assert gaps[2] >= 0.8 - EPSILON  # then 0.4, 0.8, 1.6 s (times jitter 0.5-1): it grows
    assert gaps[3] >= 1.6 - EPSILON


async def test_retry_now_cuts_the_back_off_short_and_restarts_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    r = rig(item(1), fail_dials=4, retry_initial=1.0, retry_max=60.0)
    async with running(r.link):
        await r.dialer.wait_for("dial", 3)  # the third back-off: 2 to 4 s
        await trio.sleep(1)
        assert r.link.state == "backoff"
        assert len(r.dialer.named("dial")) == 3
        r.link.retry_now()
        await r.dialer.accept()  # the fourth dial fails, the fifth connects
    third, cut, connected = r.dialer.named("dial")[2:]
    assert cut.at - third.at == pytest.approx(1.0)
    # the back-off starts again from retry_initial (doubled: 1 to 2 s), not at 8 s
    assert connected.at - cut.at <= 2.0 + EPSILON


async def test_no_ack_within_ack_timeout_reconnects_and_resends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one, two = item(1), item(2)
    r = rig(one, two, ack_timeout=30.0)
    async with running(r.link):
        far = await r.dialer.accept()
        await far.hello()
        connected = trio.current_time()
        await far.read_messages(2)
        assert await far.read_to_end() == []  # the link gave up on this stream
        gave_up = trio.current_time()
        await trio.sleep(0.05)  # the link is backing off now
        assert "acknowledged nothing for 30 s" in (r.link.last_error or "")
        again = await r.dialer.accept()
        await again.hello()
        assert await again.read_messages(2) == [one.sealed, two.sealed]
        await again.send(AckFrame((one.message_id, two.message_id)))
        await r.outbox.wait_for("acked")
    assert gave_up - connected == pytest.approx(30.0)
    [_, reopened] = r.dialer.named("open_stream")  # a new stream on the connection held
    assert len(r.dialer.named("dial")) == 1
    assert 0.1 - EPSILON <= reopened.at - gave_up <= 0.2 + EPSILON
    assert r.outbox.items == []
    # the connection may be half-open: that stream gets the dial timeout, not the long one
    assert r.dialer.stream_timeouts == [None, NodeConfig().dial_timeout]


@pytest.mark.parametrize(
    ("failure", "fresh"),
    [
        (trio.TooSlowError(), True),
        (trio.BrokenResourceError("reset (test dialer)"), False),
        (EOFError(), False),
        (StreamFailure("refused"), False),
    ],
    ids=["timeout", "broken", "eof", "stream-failure"],
)
async def test_only_a_held_connection_that_does_not_answer_is_replaced_by_a_fresh_dial(
    autojump_clock: trio.testing.MockClock, failure: Exception, fresh: bool
) -> None:
    """A working connection is never dropped to redial, only one on which a new stream timed
    out: a reset or refused stream is no reason to close it (that would also cut the peer's
    deliveries to us), and the link reopens a stream on the connection it holds."""
    one = item(1)
    r = rig(one)
    async with running(r.link):
        far = await r.dialer.accept()
        await far.hello()
        await far.read_messages(1)
        r.dialer.fail_streams = 1
        r.dialer.stream_failure = failure
        await far.end()
        await far.read_to_end()
        again = await r.dialer.accept()
        await again.hello()
        assert await again.read_messages(1) == [one.sealed]
    dials = [call.args[1:] for call in r.dialer.named("dial")]
    assert dials == ([(False,), (True,)] if fresh else [(False,)])
    assert len(r.dialer.named("open_stream")) == 3


async def test_connected_is_reported_after_the_handshake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    r = rig(item(1))
    start = trio.current_time()
    async with running(r.link):
        far = await r.dialer.accept()
        assert await far.framed.read_frame() == HelloFrame(*HELLO)
        await trio.sleep(3)
        assert r.events.calls == []
        assert r.link.state == "connecting"
        await far.send(FAR_HELLO)
        [connected] = await r.events.wait_for("connected")
        assert r.link.statistics().state == "connected"
    assert connected.args == (PEER,)
    assert connected.at - start == pytest.approx(3.0)


async def test_a_hello_without_a_common_version_is_no_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    r = rig(item(1))
    async with running(r.link):
        far = await r.dialer.accept()
        await far.send(HelloFrame((2, 3), "from the future"))
        await far.read_to_end()
        await trio.sleep(0.05)
        assert r.link.state == "backoff"
        assert (r.link.last_error or "").startswith("UnsupportedVersion")
    assert r.events.calls == []
    assert r.outbox.named("mark_sent") == []


async def test_with_nothing_pending_the_link_is_idle_and_does_not_dial(
    autojump_clock: trio.testing.MockClock,
) -> None:
    r = rig()
    start = trio.current_time()
    async with running(r.link):
        await trio.sleep(100)
        assert r.link.state == "idle"
        assert r.dialer.calls == []
        r.outbox.add(item(1))
        r.link.kick(len(item(1).sealed))
        await r.dialer.accept()
    [dial] = r.dialer.named("dial")
    assert dial.at - start == pytest.approx(100.0)
