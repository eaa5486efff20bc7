"""The joiner's search on its ports: trio's MockClock, a real store (address book, contacts),
and a scripted far side per peer that speaks the real pairing handshake over memory streams.

What is checked: a peer that could not be reached is dialled again after 1, 2, 4, 8, 15, 15...
s, not every round; routine dial failures log one INFO line per peer, the rest at DEBUG; "no such
offer" from every peer ends a search after SETTLE seconds, but not while the offerer could still
answer (so a peer that lies "no such offer" cannot end a search the offerer would answer); the
message at the timeout says whom it asked and what each answered.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from meshtalk.peer.contacts import Contacts
from meshtalk.peer.discovering import NodeDiscovery
from meshtalk.peer.models import Contact, Trust
from meshtalk.peer.node import NodeConfig
from meshtalk.peer.pair_common import Introducer, PairStream, open_pair_stream
from meshtalk.peer.pair_joining import REACH_TIMEOUT, SETTLE, Joiner
from meshtalk.peer.store import AddressSource, Store
from meshtalk.protocol import CodeExpired, NodeKey, NoPairingOffer, PeerId, PeerUnreachable
from meshtalk.protocol.pairing import OffererHandshake, PeerInfo, error_message, parse_code
from tests.test_peer.port_doubles import MemoryStreamLike, stream_pair

CODE = parse_code("7-amber-falcon")
Answer = Callable[[PeerId, PairStream], Awaitable[None]]


async def no_such_offer(joiner: PeerId, stream: PairStream) -> None:
    """What a node without the offer answers (honest, or lying)."""
    await stream.read()
    await stream.write(error_message(NoPairingOffer(f"no pairing offer {CODE.nameplate}")))


def offering(me: PeerId) -> Answer:
    """The real offerer's side of the handshake, for CODE."""

    async def answer(joiner: PeerId, stream: PairStream) -> None:
        handshake = OffererHandshake(CODE.password, me, joiner, os.urandom)
        await stream.write(handshake.receive_pake(await stream.read() or {}))
        _, info = handshake.receive_confirm(await stream.read() or {}, PeerInfo("alice", ()))
        await stream.write(info)

    return answer


@dataclass
class ScriptedDialer:
    """The Dialer port: dials to a peer fail until its `reachable_at` (trio time); each stream
    is answered by that peer's script."""

    me: PeerId
    nursery: trio.Nursery
    answers: dict[PeerId, Answer]
    reachable_at: dict[PeerId, float] = field(default_factory=dict)
    dials: dict[PeerId, list[float]] = field(default_factory=dict)
    stalls: set[PeerId] = field(default_factory=set)  # accept the connection, then nothing

    def is_connected(self, peer: PeerId) -> bool:
        return False

    async def dial(self, peer: PeerId, fresh: bool = False) -> None:
        self.dials.setdefault(peer, []).append(trio.current_time())
        await trio.sleep(0.1)  # a refused TCP connection takes a moment too
        if peer in self.stalls:
            await trio.sleep_forever()
        if trio.current_time() < self.reachable_at.get(peer, 0.0):
            raise PeerUnreachable(f"{peer} is unreachable: SwarmDialAllFailedError (test)")

    async def open_stream(
        self, peer: PeerId, protocol: str, timeout: float | None = None
    ) -> MemoryStreamLike:
        ours, far = stream_pair()
        far_stream = open_pair_stream(MemoryStreamLike(far.raw))
        self.nursery.start_soon(self.answers[peer], self.me, far_stream)
        return ours


@dataclass
class Search:
    joiner: Joiner
    dialer: ScriptedDialer
    store: Store


@asynccontextmanager
async def search_with(
    tmp_path: Path, on_lan: dict[PeerId, Answer], reachable_at: dict[PeerId, float]
) -> AsyncIterator[Search]:
    """A Joiner whose address book saw `on_lan` by mDNS just now."""
    key = NodeKey.generate()
    store = Store(tmp_path / "store.db")
    config = NodeConfig(mdns=False)

    def clock() -> int:
        return 1_700_000_000_000 + int(trio.current_time() * 1000)

    for peer in on_lan:
        store.book.learn(peer, ["/ip4/10.0.0.9/tcp/4001"], AddressSource.MDNS, clock())
    discovery = NodeDiscovery(
        key, config, clock, lambda: store.book, lambda: [], lambda _: None, lambda *_: None
    )
    contacts = Contacts(key.peer_id, lambda: store.contacts, clock, "contacts", lambda _: None)
    introducer = Introducer("bob", lambda: [], contacts, lambda _: None)
    try:
        async with trio.open_nursery() as nursery:
            dialer = ScriptedDialer(key.peer_id, nursery, on_lan, reachable_at)
            joiner = Joiner(
                key.peer_id,
                config,
                clock,
                lambda: store.book,
                discovery,
                dialer,
                introducer,
                os.urandom,
            )
            yield Search(joiner, dialer, store)
    finally:
        store.close()


async def test_an_unreachable_peer_is_dialled_again_after_a_growing_back_off(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stale, other = NodeKey.generate().peer_id, NodeKey.generate().peer_id
    answers = {stale: no_such_offer, other: no_such_offer}
    caplog.set_level(logging.DEBUG, logger="meshtalk.pairing")
    async with search_with(tmp_path, answers, {stale: float("inf")}) as search:
        with pytest.raises(NoPairingOffer) as caught:
            await search.joiner.join(CODE, 60, None)
    times = search.dialer.dials[stale]
    gaps = [round(b - a) for a, b in itertools.pairwise(times)]
    assert gaps[:5] == [1, 2, 4, 8, 15]  # a round is 0.5 s, so each gap rounds to the wait
    assert set(gaps[5:]) == {15}
    assert len(times) <= 9  # against ~100 dials at one a round
    assert len(search.dialer.dials[other]) == 1  # it answered: asked once
    # one INFO line for the peer that stays away, the rest at DEBUG
    lines = [r for r in caplog.records if "SwarmDialAllFailedError" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.INFO] + [logging.DEBUG] * (len(times) - 1)
    message = str(caught.value)
    assert "within 60 s" in message
    assert "asked 2 peer(s) (2 seen on the LAN): 1 said it has no such offer" in message
    assert f"1 could not be reached ({stale})" in message


async def test_every_peer_saying_no_such_offer_ends_the_search_early(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    peers = [NodeKey.generate().peer_id for _ in range(3)]
    async with search_with(tmp_path, dict.fromkeys(peers, no_such_offer), {}) as search:
        started = trio.current_time()
        with pytest.raises(NoPairingOffer, match="no node offers the code 7-amber-falcon") as c:
            await search.joiner.join(CODE, 60, None)
        assert SETTLE <= trio.current_time() - started < SETTLE + 1
    assert "3 peer(s) (3 seen on the LAN) asked, and each answered" in str(c.value)


async def test_a_peer_that_lies_no_such_offer_does_not_end_a_search_the_offerer_answers(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """The offerer is unreachable for 20 s (well past SETTLE); the liar's answer alone does
    not end the search, which pairs once the offerer can be reached."""
    liar, offerer = NodeKey.generate().peer_id, NodeKey.generate().peer_id
    answers = {liar: no_such_offer, offerer: offering(offerer)}
    async with search_with(tmp_path, answers, {offerer: 20.0}) as search:
        contact = await search.joiner.join(CODE, 60, None)
        assert isinstance(contact, Contact)
        assert (contact.peer_id, contact.name, contact.trust) == (offerer, "alice", Trust.TRUSTED)
        assert 20 <= trio.current_time() < 20 + 15 + 1  # at the first dial after 20 s
    assert len(search.dialer.dials[liar]) == 1


async def test_a_peer_that_stalls_does_not_use_up_the_search(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A candidate that accepts and then never answers is given up on after REACH_TIMEOUT
    (the node's own dial timeouts are longer), so the search still reaches the offerer."""
    stalled, offerer = NodeKey.generate().peer_id, NodeKey.generate().peer_id
    answers = {stalled: no_such_offer, offerer: offering(offerer)}
    async with search_with(tmp_path, answers, {offerer: 1.0}) as search:
        search.dialer.stalls.add(stalled)
        contact = await search.joiner.join(CODE, 60, None)
        assert contact.peer_id == offerer
        assert REACH_TIMEOUT <= trio.current_time() < 2 * REACH_TIMEOUT


async def expired_liar(joiner: PeerId, stream: PairStream) -> None:
    """A peer that says "already used" for any code (CodeExpired reveals nothing)."""
    await stream.read()
    await stream.write(error_message(CodeExpired("this code was already used")))


async def test_a_peer_that_lies_expired_does_not_end_a_search_the_offerer_answers(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Any peer on the LAN or at a point can answer CodeExpired: the search weighs it like
    "no such offer", so the real offerer, reachable from 3 s, still pairs."""
    liar, offerer = NodeKey.generate().peer_id, NodeKey.generate().peer_id
    answers = {liar: expired_liar, offerer: offering(offerer)}
    async with search_with(tmp_path, answers, {offerer: 3.0}) as search:
        contact = await search.joiner.join(CODE, 60, None)
        assert isinstance(contact, Contact)
        assert contact.peer_id == offerer


async def test_an_expired_code_ends_the_search_once_no_other_peer_could_answer(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """The offerer that ended its offer says so; with nobody else to ask, that is the reason,
    given once the search has settled (not at its timeout)."""
    ended, other = NodeKey.generate().peer_id, NodeKey.generate().peer_id
    answers = {ended: expired_liar, other: no_such_offer}
    async with search_with(tmp_path, answers, {}) as search:
        with pytest.raises(CodeExpired, match="already used"):
            await search.joiner.join(CODE, 60, None)
        assert trio.current_time() < SETTLE + 1
