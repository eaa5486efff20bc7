"""Pairing on a running node: short codes, invites, and the `/meshtalk/pair/1.0.0` handler.

    offer = node.pairing.offer()              # offer.code == "7-amber-falcon"
    contact = await node.pairing.wait(offer)  # returns once the other side joined
    contact = await node.pairing.join("7-amber-falcon")

An offer is found by its number: the offering node registers under `meshtalk-pair/<mesh>/<n>`
at its rendezvous points, and the joiner also asks every peer it saw on the LAN (mDNS). Peers
without that offer answer "no offer" without spending anything. The offer allows one attempt,
one guess at the code: the first valid PAKE message spends it, whatever happens next; an
invalid one (garbage, a point not on the curve) is refused and spends nothing. Invites are
offers that outlive the command (and the node: they are kept in the store) and carry the
offering node's addresses in the token.
The handshake itself is `meshtalk.protocol.pairing`; see docs/pairing.md. The parts: the
offering side of the stream is `pair_offering` (`Answerer`), the joining side `pair_joining`
(`Joiner`), and what both share (namespace, stream steps, pinning the contact) `pair_common`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import trio
from libp2p.custom_types import TProtocol

from ..net.host import NETWORK_ERRORS, safe_handler
from ..protocol.errors import CodeExpired, MeshtalkError, NoPairingOffer, PairingError
from ..protocol.keys import PeerId
from ..protocol.pairing import (
    PAIR_PROTOCOL,
    Invite,
    RoomToken,
    encode_invite,
    encode_room_token,
    new_code,
    new_invite,
    parse_code,
    parse_invite,
)
from .backoff import Backoff, StateLog
from .models import Contact
from .pair_common import Introducer, pair_namespace
from .pair_joining import Joiner
from .pair_offering import Answerer, PairOffer
from .store import AddressSource

if TYPE_CHECKING:
    from libp2p.abc import IHost

    from ..discovery.rendezvous import RendezvousClient
    from .config import NodeConfig
    from .contacts import Contacts
    from .discovering import NodeDiscovery
    from .ports import Clock, Dialer
    from .store import AddressBook, Database

__all__ = ["Pairing", "PairOffer"]

logger = logging.getLogger("meshtalk.pairing")
_INVITES_SETTING: Final = "invites"
_ENDED_KEPT: Final = 64  # ended offers remembered
_ENDED_KEPT_MS: Final = 10 * 60 * 1000  # for this long
_REGISTER_TTL: Final = 120  # seconds: the shortest a point grants, as a registration may linger
_REGISTER_EVERY: Final = 60.0
_REGISTER_RETRY_FIRST: Final = 2.0


class Pairing:
    """The pairing side of one running node."""

    def __init__(
        self,
        own: PeerId,
        own_name: str,
        config: NodeConfig,
        clock: Clock,
        stores: tuple[Callable[[], Database], Callable[[], AddressBook]],
        discovery: NodeDiscovery,
        contacts: Contacts,
        dialer: Dialer,
        on_learned: Callable[[PeerId], None],
        random_bytes: Callable[[int], bytes] = os.urandom,
        room_token_used: Callable[[PeerId, bytes], None] = lambda peer, room: None,
    ) -> None:
        """`own_name`: how this node introduces itself (config.name wins); `stores`: the
        running node's database (for saved invites) and address book; `room_token_used(peer,
        room)`: a room token's holder paired and is now a contact (invite it to `room`)."""
        self._room_token_used = room_token_used
        self._own = own
        self._config = config
        self._clock = clock
        self._db, book = stores
        self._discovery = discovery
        self.random_bytes = random_bytes
        self.offers: dict[str, PairOffer] = {}
        # Offers that ended (used, cancelled, expired), so a joiner who still has the code is
        # told why at once instead of searching until its timeout; the newest few, a while.
        self._ended: collections.OrderedDict[str, tuple[PairOffer, int]] = collections.OrderedDict()
        introducer = Introducer(
            config.name or own_name, discovery.own_addresses, contacts, on_learned
        )
        self._answerer = Answerer(own, introducer, self._find_offer, self._spend, random_bytes)
        self._states = StateLog(logger)
        self._joiner = Joiner(own, config, clock, book, discovery, dialer, introducer, random_bytes)

    def attach(self, host: IHost) -> None:
        """Install the stream handler (before the host listens)."""
        host.set_stream_handler(
            TProtocol(PAIR_PROTOCOL), safe_handler("pairing", self._answerer.serve)
        )

    # -- offering ----------------------------------------------------------------------------

    def offer(self, ttl: float = 600.0, name: str | None = None) -> PairOffer:
        """Make a new code, valid for `ttl` seconds and one attempt."""
        self._expire()
        for _ in range(20):
            code = new_code(self.random_bytes)
            if code.nameplate not in self.offers and code.nameplate not in self._ended:
                break
        offer = PairOffer(
            code.nameplate,
            code.password,
            self._clock() + int(ttl * 1000),
            code=code.text,
            name=name,
        )
        self.offers[offer.nameplate] = offer
        return offer

    async def wait(self, offer: PairOffer) -> Contact:
        """Wait until someone joins `offer` (advertising it at the rendezvous points meanwhile).

        Cancelling the wait cancels the offer: a late joiner is told "cancelled".
        """
        timeout = max(0.0, (offer.expires_ms - self._clock()) / 1000)
        expired = CodeExpired(f"nobody used the code {offer.code} in time; it has expired")
        try:
            async with trio.open_nursery() as nursery:
                if offer.code is not None:
                    nursery.start_soon(self._advertise, offer)
                with trio.move_on_after(timeout):
                    await offer.done.wait()
                offer.finish(None, expired)  # (if nobody came) before _advertise ends
                nursery.cancel_scope.cancel()
        finally:
            offer.finish(None, CodeExpired("the pairing was cancelled"))
            self._end(offer)
        if offer.error is not None:
            raise offer.error
        if offer.contact is None:
            raise expired
        return offer.contact

    def cancel(self, offer: PairOffer) -> None:
        """Withdraw an offer."""
        offer.finish(None, CodeExpired("the pairing was cancelled"))
        self._end(offer)

    async def _advertise(self, offer: PairOffer) -> None:
        """Keep the offer registered at every point while it is open.

        When it ends (used, expired, cancelled), the registration is left to lapse (TTL 120 s)
        rather than withdrawn: a joiner still finds this node there and hears why at once
        (CodeExpired), where it would otherwise search until its timeout. Only a wait cancelled
        from outside (the node stopping) withdraws it.
        """
        assert offer.code is not None
        namespace = pair_namespace(self._config.mesh, parse_code(offer.code).number)
        clients = [session.client for session in self._discovery.sessions]
        addresses = self._discovery.own_addresses()
        retry = Backoff(_REGISTER_RETRY_FIRST, _REGISTER_EVERY)
        due = {client.point: 0.0 for client in clients}  # trio time of the next REGISTER
        try:
            while clients:
                for client in clients:
                    if trio.current_time() >= due[client.point]:
                        due[client.point] = trio.current_time() + await self._register(
                            client, namespace, addresses, retry
                        )
                await trio.sleep_until(min(due.values()))
            await trio.sleep_forever()
        finally:
            if not offer.done.is_set():
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    for client in clients:
                        with contextlib.suppress(*NETWORK_ERRORS, MeshtalkError, trio.TooSlowError):
                            await client.unregister(namespace)

    async def _register(
        self, client: RendezvousClient, namespace: str, addresses: list[str], retry: Backoff
    ) -> float:
        """Register the offer at one point; returns the seconds until the next time (60, or
        2, 4... while the point refuses or cannot be reached)."""
        point = client.point
        try:
            await client.register(namespace, addresses, ttl=_REGISTER_TTL)
        except (*NETWORK_ERRORS, MeshtalkError, trio.TooSlowError) as exc:
            self._states.failed(point, "advertising the code at %s: %s", point, exc)
            return retry.failed(point)
        retry.succeeded(point)
        self._states.succeeded(point, "advertising the code at %s works again", point)
        return _REGISTER_EVERY

    def _expire(self) -> None:
        now = self._clock()
        for offer in list(self.offers.values()):
            if offer.expires_ms <= now:
                offer.finish(None, CodeExpired(f"the code {offer.code} expired"))
                self._end(offer)

    def _end(self, offer: PairOffer) -> None:
        """`offer` is over: keep it a while to tell late joiners why."""
        self.offers.pop(offer.nameplate, None)
        if offer.code is None:
            return  # invites say "used or expired" already
        self._ended[offer.nameplate] = (offer, self._clock() + _ENDED_KEPT_MS)
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)

    def _find_offer(self, nameplate: str) -> PairOffer | None:
        """The open offer, saved invite or recently ended offer a joiner names (expired ones
        are dropped first)."""
        self._expire()
        invite = nameplate.startswith("invite:")
        found = self.offers.get(nameplate) or (self._find_invite(nameplate) if invite else None)
        if found is None and nameplate in self._ended:
            ended, until_ms = self._ended[nameplate]
            if until_ms > self._clock():
                return ended
            del self._ended[nameplate]
        return found

    def _spend(self, offer: PairOffer) -> None:
        """A joiner made its one guess at `offer`: used up (a saved invite is forgotten)."""
        offer.used = True
        if offer.nameplate.startswith("invite:"):
            self._drop_invite(offer.nameplate)

    # -- invites -----------------------------------------------------------------------------

    def _saved_invites(self) -> list[dict[str, Any]]:
        text = self._db().get_setting(_INVITES_SETTING)
        now = self._clock()
        return [i for i in json.loads(text or "[]") if i["expires_ms"] > now]

    def invite(self, ttl: float = 86400.0, room: bytes | None = None) -> tuple[str, int]:
        """A one-time invite token valid for `ttl` seconds; returns (token, expires_ms). With
        a `room`, a room token: its holder also joins that room once paired."""
        expires = self._clock() + int(ttl * 1000)
        invite = new_invite(self._own, self._discovery.own_addresses(), expires, self.random_bytes)
        saved = self._saved_invites()
        item = {"nameplate": invite.nameplate, "secret": invite.secret.hex(), "expires_ms": expires}
        if room is not None:
            item["room"] = room.hex()
        saved.append(item)
        self._db().set_setting(_INVITES_SETTING, json.dumps(saved[-100:]))
        if room is not None:
            return encode_room_token(RoomToken(invite, room)), expires
        return encode_invite(invite), expires

    def _find_invite(self, nameplate: str) -> PairOffer | None:
        """A saved invite as an offer (still saved: `_drop_invite` spends it)."""
        found = [i for i in self._saved_invites() if i["nameplate"] == nameplate]
        if not found:
            return None
        item = found[0]
        offer = PairOffer(nameplate, bytes.fromhex(item["secret"]), item["expires_ms"])
        if "room" in item:
            room = bytes.fromhex(item["room"])
            offer.paired = lambda contact: self._room_token_used(contact.peer_id, room)
        return offer

    def _drop_invite(self, nameplate: str) -> None:
        """Forget a saved invite (one attempt each)."""
        saved = self._saved_invites()
        self._db().set_setting(
            _INVITES_SETTING, json.dumps([i for i in saved if i["nameplate"] != nameplate])
        )

    # -- joining -----------------------------------------------------------------------------

    async def join(self, code: str, timeout: float = 60.0, name: str | None = None) -> Contact:
        """Pair with the node that offered `code`: found at rendezvous points or on the LAN.

        Ends at once when the offerer says the code is used, cancelled or expired
        (CodeExpired) or the words do not match (WrongCode); after a few seconds when every
        peer that could hold the offer says it has none (NoPairingOffer); else at `timeout`
        with NoPairingOffer saying whom it asked and what each answered.
        """
        return await self._joiner.join(parse_code(code), timeout, name)

    async def join_invite(
        self, token: str, timeout: float = 30.0, name: str | None = None
    ) -> Contact:
        """Pair with the node that made an invite token."""
        invite: Invite = parse_invite(token)
        if invite.expires_ms <= self._clock():
            raise CodeExpired("this invite has expired; ask for a new one")
        self._discovery.learn(invite.peer_id, list(invite.addresses), AddressSource.BOOTSTRAP)
        retry = Backoff(1.0, 8.0)  # 1, 2, 4, 8, 8... s between dials of an absent inviter
        with trio.move_on_after(timeout):
            while True:
                outcome = await self._joiner.attempt(
                    invite.peer_id, invite.nameplate, invite.secret, name
                )
                if isinstance(outcome, Contact):
                    return outcome
                if outcome != "unreachable":  # "no offer" or nonsense: no inviter says that
                    raise PairingError(
                        f"{invite.peer_id} does not know this invite ({outcome}); ask for a new one"
                    )
                self._discovery.lookup(invite.peer_id)
                await trio.sleep(retry.failed(invite.peer_id))
        raise NoPairingOffer(
            f"could not reach {invite.peer_id} within {timeout:g} s; is its node running?"
        )
