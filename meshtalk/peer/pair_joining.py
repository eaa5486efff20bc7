"""The joining side of a pairing: which peers may hold an offer, asking them, and why not.

Peers that may hold offer n: those registered under its namespace at this node's rendezvous
points, and those seen on the LAN (mDNS) lately. An attempt with a peer that has no such offer
ends in "no offer" and spends nothing there; a wrong code raises (docs/pairing.md). A search
(`Joiner.join`) asks every such peer once, and one that could not be reached again after a
growing back-off; it ends at once on a wrong code (WrongCode), early when every peer that could
hold the offer said it has none or that the code was used, cancelled or expired (CodeExpired:
any peer could say that, so it ends the search only when no other peer is left to ask), and
otherwise at its timeout, saying what it asked and what each answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

import trio

from ..net.host import NETWORK_ERRORS, reset_quietly
from ..protocol.errors import (
    CodeExpired,
    MeshtalkError,
    NoPairingOffer,
    PairingError,
    PeerUnreachable,
    WrongCode,
)
from ..protocol.pairing import PAIR_PROTOCOL, JoinerHandshake, error_message
from .backoff import Backoff, StateLog
from .pair_common import open_pair_stream, pair_namespace, read_step, try_write, write_step
from .store import AddressSource

if TYPE_CHECKING:
    from ..protocol.keys import PeerId
    from ..protocol.pairing import PairCode
    from .config import NodeConfig
    from .discovering import NodeDiscovery
    from .models import Contact
    from .pair_common import Introducer
    from .ports import Clock, Dialer
    from .store import AddressBook

__all__ = ["JoinOutcome", "JoinSearch", "Joiner"]

logger = logging.getLogger("meshtalk.pairing")
_LAN_RECENT_MS: Final = 10 * 60 * 1000
_ROUND: Final = 0.5  # seconds between rounds of a search
SETTLE: Final = 5.0
"""Seconds a search runs before "every peer said no such offer" ends it: time for mDNS and the
rendezvous points to show the offerer (tests may lower it)."""
RETRY_FIRST: Final = 1.0  # an unreachable peer is asked again after 1, 2, 4... s
RETRY_MOST: Final = 15.0
# How long one candidate may take to get as far as a pairing stream. The node's own dial and
# stream timeouts are long (a busy peer is slow, not gone), but a search must not spend its
# whole timeout on one candidate that accepted a connection and then stalled: it moves on, and
# that candidate is asked again after its back-off.
REACH_TIMEOUT: Final = 12.0

JoinOutcome = Literal["no offer", "unreachable", "refused", "expired"]
"""Why one attempt made no contact: that peer has no such offer, could not be reached (or
broke off before it answered), answered something no offerer would (it is not asked again), or
said the code was used, cancelled or expired."""


@dataclass
class JoinSearch:
    """What one search for an offer asked, and what it heard."""

    code: PairCode
    started: float  # trio time
    registered: set[PeerId] = field(default_factory=set)  # at a point, under the number
    answers: dict[PeerId, JoinOutcome] = field(default_factory=dict)  # the last of each
    points: int = 0  # rendezvous points this node has
    points_failed: dict[PeerId, str] = field(default_factory=dict)  # in the last round
    expired: CodeExpired | None = None  # a peer said the code was used, cancelled or expired

    def settled(self, peers: list[PeerId], now: float) -> bool:
        """Whether the search can end now: after SETTLE s, every point answered this round,
        and every peer that may hold the offer said it has none (or is no offerer)."""
        return (
            now - self.started >= SETTLE
            and bool(peers)
            and not self.points_failed
            and all(self.answers.get(p) in ("no offer", "refused", "expired") for p in peers)
        )

    def everyone_said_no(self, peers: list[PeerId]) -> PairingError:
        """The early end: none of `peers`, which could hold the offer, has it. CodeExpired
        when one of them said the code was used, cancelled or expired: then that is why."""
        if self.expired is not None:
            return self.expired
        odd = sum(1 for p in peers if self.answers.get(p) == "refused")
        besides = f" ({odd} answered what no offerer would)" if odd else ""
        return NoPairingOffer(
            f"no node offers the code {self.code.text}: {self._who(peers)} asked, and each "
            f"answered that it has no such offer{besides}; check the number (the part before the "
            "words), and that `meshtalk pair` still runs on the other side"
        )

    def not_found(self, timeout: float) -> PairingError:
        """The end at the timeout: what was asked, and who answered what (CodeExpired when
        a peer said the code was used, cancelled or expired)."""
        if self.expired is not None:
            return self.expired
        said: dict[JoinOutcome, list[PeerId]] = {}
        for peer, outcome in self.answers.items():
            said.setdefault(outcome, []).append(peer)
        if not self.answers:
            heard = (
                f"no peer was registered for number {self.code.number} at the "
                f"{self.points} rendezvous point(s) and none was seen on the LAN"
                if self.points
                else "no peer was seen on the LAN and no rendezvous point is configured"
            )
        else:
            parts = [f"{len(said.get('no offer', []))} said it has no such offer"]
            if "unreachable" in said:
                unreachable = said["unreachable"]
                parts.append(f"{len(unreachable)} could not be reached ({_ids(unreachable)})")
            if "refused" in said:
                parts.append(f"{len(said['refused'])} answered what no offerer would")
            heard = f"asked {self._who(list(self.answers))}: " + ", ".join(parts)
        if self.points_failed:
            heard += f"; {len(self.points_failed)} rendezvous point(s) could not be asked"
        return NoPairingOffer(
            f"no node offering the code {self.code.text} was found within {timeout:g} s "
            f"({heard}); check the code, and that both nodes share a rendezvous point or a LAN"
        )

    def _who(self, peers: list[PeerId]) -> str:
        registered = sum(1 for p in peers if p in self.registered)
        where = [
            *([f"{len(peers) - registered} seen on the LAN"] if len(peers) > registered else []),
            *([f"{registered} registered for {self.code.number} at a point"] if registered else []),
        ]
        return f"{len(peers)} peer(s) ({', '.join(where)})"


def _ids(peers: list[PeerId]) -> str:
    shown = ", ".join(str(p) for p in peers[:3])
    return shown + (f" and {len(peers) - 3} more" if len(peers) > 3 else "")


class Joiner:
    """Finds the peers that may hold an offer, and asks them."""

    def __init__(
        self,
        own: PeerId,
        config: NodeConfig,
        clock: Clock,
        book: Callable[[], AddressBook],
        discovery: NodeDiscovery,
        dialer: Dialer,
        introducer: Introducer,
        random_bytes: Callable[[int], bytes],
    ) -> None:
        """`book`: the running node's address book (for the peers seen on the LAN)."""
        self._own = own
        self._config = config
        self._clock = clock
        self._book = book
        self._discovery = discovery
        self._dialer = dialer
        self._introducer = introducer
        self._random_bytes = random_bytes
        self._states = StateLog(logger)  # across searches: one INFO line per change

    async def join(self, code: PairCode, timeout: float, name: str | None) -> Contact:
        """Search for the offer `code` names and pair with it (see the module's docstring)."""
        search = JoinSearch(code, trio.current_time(), points=len(self._discovery.sessions))
        backoff = Backoff(RETRY_FIRST, RETRY_MOST)
        with trio.move_on_after(timeout):
            while True:
                peers = await self.candidates(search, backoff)
                for peer in peers:
                    if search.answers.get(peer, "unreachable") != "unreachable":
                        continue  # it answered: once is enough
                    if not backoff.ready(peer):
                        continue
                    try:
                        outcome = await self.attempt(peer, code.nameplate, code.password, name)
                    except CodeExpired as exc:
                        if not exc.remote:
                            raise
                        # Not final at once: any peer can say so, so it must not end a search
                        # another peer (the real offerer) could still answer.
                        search.expired, outcome = exc, "expired"
                    if not isinstance(outcome, str):
                        return outcome
                    search.answers[peer] = outcome
                    if outcome == "unreachable":
                        backoff.failed(peer)
                if search.settled(peers, trio.current_time()):
                    raise search.everyone_said_no(peers)
                await trio.sleep(_ROUND)
        raise search.not_found(timeout)

    async def candidates(self, search: JoinSearch, backoff: Backoff) -> list[PeerId]:
        """Peers that may hold the offer: registered for its number, or seen on the LAN lately.

        A point that could not be asked waits (`backoff`) and is in `search.points_failed`.
        """
        found: list[PeerId] = []
        namespace = pair_namespace(self._config.mesh, search.code.number)
        for session in self._discovery.sessions:
            point = session.client.point
            if not backoff.ready(point):
                continue  # still failed, as far as this round knows
            try:
                records, _, _ = await session.client.discover(namespace)
            except (*NETWORK_ERRORS, MeshtalkError, trio.TooSlowError) as exc:
                search.points_failed[point] = str(exc)
                backoff.failed(point)
                self._states.failed(point, "looking up %s at %s: %s", namespace, point, exc)
                continue
            search.points_failed.pop(point, None)
            backoff.succeeded(point)
            self._states.succeeded(point, "rendezvous point %s answers again", point)
            for record in records:
                self._discovery.found_record(record)
                found.append(record.peer_id)
                search.registered.add(record.peer_id)
        recent = self._clock() - _LAN_RECENT_MS
        for known in self._book().everything():
            if known.source is AddressSource.MDNS and known.last_seen_ms >= recent:
                found.append(known.peer_id)
        return [p for p in dict.fromkeys(found) if p != self._own]

    async def attempt(
        self, peer: PeerId, nameplate: str, password: bytes, name: str | None
    ) -> Contact | JoinOutcome:
        """One attempt with one peer: the new contact, why not, or raises (wrong code...).

        Nothing that happens before the peer's REPLY is a guess at the code (the peer saw our
        PAKE message, which alone reveals nothing): a break then is "unreachable", an answer
        no offerer gives "refused". CodeExpired (the search weighs it) and a mismatch
        (WrongCode: a guess was spent) raise.
        """
        try:
            with trio.fail_after(REACH_TIMEOUT):
                if not self._dialer.is_connected(peer):
                    await self._dialer.dial(peer)
                raw = await self._dialer.open_stream(peer, PAIR_PROTOCOL)
        except (*NETWORK_ERRORS, PeerUnreachable, trio.TooSlowError) as exc:
            why = str(exc) if str(peer) in str(exc) else f"{peer} is not reachable: {exc!r}"
            self._states.failed(peer, "pairing: %s", why)
            return "unreachable"
        self._states.succeeded(peer, "pairing: %s is reachable again", peer)
        stream = open_pair_stream(raw)
        try:
            handshake = JoinerHandshake(nameplate, password, self._own, peer, self._random_bytes)
            try:
                await write_step(stream, handshake.start())
                reply = await read_step(stream)
                confirm = handshake.receive_reply(reply, self._introducer.own_info())
            except (NoPairingOffer, CodeExpired):
                raise
            except WrongCode as exc:
                if exc.remote:  # said before any REPLY: no offerer does that
                    logger.info("pairing: %s answered WrongCode before any guess", peer)
                    return "refused"
                await try_write(stream, error_message(exc))  # our check: tell the offerer
                raise
            except MeshtalkError as exc:  # garbage, or an ERROR no offerer sends here
                logger.info("pairing: %s answered what no offerer would: %s", peer, exc)
                return "refused"
            except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
                logger.info("pairing: %s broke off before it answered: %r", peer, exc)
                return "unreachable"
            await write_step(stream, confirm)
            theirs = handshake.receive_info(await read_step(stream))
            return self._introducer.pin(peer, theirs, name)
        except NoPairingOffer:
            return "no offer"
        except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
            raise PairingError(f"the pairing stream with {peer} broke: {exc!r}") from None
        finally:
            await reset_quietly(raw)
