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
The handshake itself is `meshtalk.protocol.pairing`; see docs/pairing.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import trio

from ..net.host import (
    NETWORK_ERRORS,
    PrefixedStream,
    parse_multiaddrs,
    remote_peer,
    reset_quietly,
    safe_handler,
)
from ..protocol.errors import (
    CodeExpired,
    ConfigError,
    MeshtalkError,
    NoPairingOffer,
    PairingError,
    PeerUnreachable,
    ProtocolError,
    WrongCode,
)
from ..protocol.keys import PeerId
from ..protocol.pairing import (
    MAX_PAIR_MESSAGE,
    PAIR_PROTOCOL,
    Invite,
    JoinerHandshake,
    OffererHandshake,
    PeerInfo,
    decode_pair_message,
    encode_invite,
    encode_pair_message,
    error_message,
    new_code,
    new_invite,
    parse_code,
    parse_invite,
)
from .models import MAX_CONTACT_NAME, Contact, Trust, check_contact_name
from .store import AddressSource

if TYPE_CHECKING:
    from .config import NodeConfig
    from .contacts import Contacts
    from .discovering import NodeDiscovery
    from .ports import Clock, Dialer
    from .store import AddressBook, Database

__all__ = ["Pairing", "PairOffer"]

logger = logging.getLogger("meshtalk.pairing")
_INVITES_SETTING: Final = "invites"
_STEP_TIMEOUT: Final = 15.0  # each read or write of one pairing message
_HANDSHAKE_TIMEOUT: Final = 40.0  # one whole attempt, as the offerer sees it
_LAN_RECENT_MS: Final = 10 * 60 * 1000


def pair_namespace(mesh: str, number: int) -> str:
    """The rendezvous namespace an offer with this number registers under."""
    return f"meshtalk-pair/{mesh}/{number}"


@dataclass
class PairOffer:
    """A code (or invite) this node is waiting on."""

    nameplate: str
    password: bytes
    expires_ms: int
    code: str | None = None  # None for invites
    name: str | None = None  # what to call the peer instead of the name it gives
    used: bool = False
    done: trio.Event = field(default_factory=trio.Event)
    contact: Contact | None = None
    error: MeshtalkError | None = None

    def finish(self, contact: Contact | None, error: MeshtalkError | None) -> None:
        """Record the outcome once and wake whoever waits."""
        if not self.done.is_set():
            self.contact, self.error = contact, error
            self.done.set()


def _stream(raw: Any) -> PrefixedStream[dict[str, Any]]:
    return PrefixedStream(raw, MAX_PAIR_MESSAGE, encode_pair_message, decode_pair_message)


async def _read(stream: PrefixedStream[dict[str, Any]]) -> dict[str, Any]:
    with trio.fail_after(_STEP_TIMEOUT):
        message = await stream.read()
    if message is None:
        raise ProtocolError("the other side closed the pairing stream")
    return message


async def _write(stream: PrefixedStream[dict[str, Any]], message: dict[str, Any]) -> None:
    with trio.fail_after(_STEP_TIMEOUT):
        await stream.write(message)


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
    ) -> None:
        """`own_name`: how this node introduces itself (config.name wins); `stores`: the
        running node's database (for saved invites) and address book."""
        self._own = own
        self._own_name = config.name or own_name
        self._config = config
        self._clock = clock
        self._db, self._book = stores
        self._discovery = discovery
        self._contacts = contacts
        self._dialer = dialer
        self._on_learned = on_learned
        self.random_bytes = random_bytes
        self.offers: dict[str, PairOffer] = {}

    def attach(self, host: Any) -> None:
        """Install the stream handler (before the host listens)."""
        host.set_stream_handler(PAIR_PROTOCOL, safe_handler("pairing", self._serve))

    # -- offering ----------------------------------------------------------------------------

    def offer(self, ttl: float = 600.0, name: str | None = None) -> PairOffer:
        """Make a new code, valid for `ttl` seconds and one attempt."""
        self._expire()
        for _ in range(20):
            code = new_code(self.random_bytes)
            if code.nameplate not in self.offers:
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
        """Wait until someone joins `offer` (advertising it at the rendezvous points meanwhile)."""
        timeout = max(0.0, (offer.expires_ms - self._clock()) / 1000)
        try:
            async with trio.open_nursery() as nursery:
                if offer.code is not None:
                    nursery.start_soon(self._advertise, offer)
                with trio.move_on_after(timeout):
                    await offer.done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.offers.pop(offer.nameplate, None)
        if offer.error is not None:
            raise offer.error
        if offer.contact is None:
            raise CodeExpired(f"nobody used the code {offer.code} in time; it has expired")
        return offer.contact

    def cancel(self, offer: PairOffer) -> None:
        """Withdraw an offer."""
        self.offers.pop(offer.nameplate, None)
        offer.finish(None, CodeExpired("the pairing was cancelled"))

    async def _advertise(self, offer: PairOffer) -> None:
        assert offer.code is not None
        namespace = pair_namespace(self._config.mesh, parse_code(offer.code).number)
        clients = [session.client for session in self._discovery.sessions]
        addresses = self._discovery.own_addresses()
        try:
            while True:
                for client in clients:
                    try:
                        await client.register(namespace, addresses, ttl=120)
                    except (*NETWORK_ERRORS, MeshtalkError, trio.TooSlowError) as exc:
                        logger.info("advertising the code at %s: %s", client.point, exc)
                await trio.sleep(60)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                for client in clients:
                    with contextlib.suppress(*NETWORK_ERRORS, MeshtalkError, trio.TooSlowError):
                        await client.unregister(namespace)

    # -- invites -----------------------------------------------------------------------------

    def _saved_invites(self) -> list[dict[str, Any]]:
        text = self._db().get_setting(_INVITES_SETTING)
        now = self._clock()
        return [i for i in json.loads(text or "[]") if i["expires_ms"] > now]

    def invite(self, ttl: float = 86400.0) -> tuple[str, int]:
        """A one-time invite token valid for `ttl` seconds; returns (token, expires_ms)."""
        expires = self._clock() + int(ttl * 1000)
        invite = new_invite(self._own, self._discovery.own_addresses(), expires, self.random_bytes)
        saved = self._saved_invites()
        saved.append(
            {"nameplate": invite.nameplate, "secret": invite.secret.hex(), "expires_ms": expires}
        )
        self._db().set_setting(_INVITES_SETTING, json.dumps(saved[-100:]))
        return encode_invite(invite), expires

    def _find_invite(self, nameplate: str) -> PairOffer | None:
        """A saved invite as an offer (still saved: `_drop_invite` spends it)."""
        found = [i for i in self._saved_invites() if i["nameplate"] == nameplate]
        if not found:
            return None
        item = found[0]
        return PairOffer(nameplate, bytes.fromhex(item["secret"]), item["expires_ms"])

    def _drop_invite(self, nameplate: str) -> None:
        """Forget a saved invite (one attempt each)."""
        saved = self._saved_invites()
        self._db().set_setting(
            _INVITES_SETTING, json.dumps([i for i in saved if i["nameplate"] != nameplate])
        )

    # -- the offering side of the handshake --------------------------------------------------

    def _expire(self) -> None:
        now = self._clock()
        for nameplate, offer in list(self.offers.items()):
            if offer.expires_ms <= now:
                del self.offers[nameplate]
                offer.finish(None, CodeExpired(f"the code {offer.code} expired"))

    async def _serve(self, raw: Any) -> None:
        stream, joiner = _stream(raw), remote_peer(raw)
        try:
            with trio.fail_after(_HANDSHAKE_TIMEOUT):  # each step has its own, shorter bound
                await self._answer(stream, joiner)
        except trio.TooSlowError:
            logger.info("pairing with %s timed out", joiner)

    async def _answer(self, stream: PrefixedStream[dict[str, Any]], joiner: PeerId) -> None:
        """One joiner's attempt: refused, or a guess that spends the offer.

        Nothing the joiner sends before a valid PAKE message touches the offer: silence (up
        to the step timeout), garbage, another nameplate or an invalid PAKE message each get
        an ERROR (or nothing) and leave the offer as it was. A valid PAKE message spends the
        offer before the REPLY goes out, because the REPLY's confirmation lets the joiner test
        one guess at the code offline.
        """
        try:
            first = await _read(stream)
            nameplate = OffererHandshake.nameplate_of(first)
        except trio.TooSlowError:
            silent = PairingError(f"no pairing message within {_STEP_TIMEOUT:g} s")
            logger.info("pairing: %s opened a stream and said nothing", joiner)
            await _try_write(stream, error_message(silent))
            return
        except MeshtalkError as exc:
            logger.info("pairing: %s sent no valid PAKE message: %s", joiner, exc)
            await _try_write(stream, error_message(exc))
            return
        self._expire()
        invite = nameplate.startswith("invite:")
        offer = self.offers.get(nameplate) or (self._find_invite(nameplate) if invite else None)
        if offer is None:
            error: PairingError = (
                CodeExpired("this invite was used or has expired")
                if invite
                else NoPairingOffer(f"no pairing offer {nameplate}")
            )
            await _try_write(stream, error_message(error))
            return
        if offer.used:
            await _try_write(stream, error_message(CodeExpired("this code was already used")))
            return
        handshake = OffererHandshake(offer.password, self._own, joiner, self.random_bytes)
        try:
            reply = handshake.receive_pake(first)
        except MeshtalkError as exc:
            logger.warning(
                "pairing: %s sent an invalid PAKE message for %s (the offer stands): %s",
                joiner,
                nameplate,
                exc,
            )
            await _try_write(stream, error_message(exc))
            return
        # A valid PAKE message is a guess at the code: one per offer, whatever happens next.
        # (No await since the checks above, so two joiners cannot both get here.)
        offer.used = True
        if invite:
            self._drop_invite(nameplate)
        try:
            contact = await self._offerer_handshake(stream, handshake, reply, offer, joiner)
        except MeshtalkError as exc:
            if isinstance(exc, WrongCode):
                await _try_write(stream, error_message(exc))
            logger.warning("pairing with %s failed: %s", joiner, exc)
            if not isinstance(exc, PairingError):
                exc = PairingError(
                    f"the pairing with {joiner} failed after it answered the code ({exc}); "
                    "the code is used up (start again with a new code)"
                )
            offer.finish(None, exc)
            return
        except trio.TooSlowError:
            offer.finish(
                None,
                PairingError(
                    f"{joiner} answered the code and then went silent; the code is used up "
                    "(start again with a new code)"
                ),
            )
            raise
        except BaseException as exc:
            offer.finish(None, PairingError(f"the pairing stream broke: {exc!r}"))
            raise
        offer.finish(contact, None)

    async def _offerer_handshake(
        self,
        stream: PrefixedStream[dict[str, Any]],
        handshake: OffererHandshake,
        reply: dict[str, Any],
        offer: PairOffer,
        joiner: PeerId,
    ) -> Contact:
        await _write(stream, reply)
        theirs, info = handshake.receive_confirm(await _read(stream), self._own_info())
        contact = self._add(joiner, theirs, offer.name)
        await _write(stream, info)
        return contact

    # -- joining -----------------------------------------------------------------------------

    async def join(self, code: str, timeout: float = 60.0, name: str | None = None) -> Contact:
        """Pair with the node that offered `code`: found at rendezvous points or on the LAN."""
        parsed = parse_code(code)
        tried: set[PeerId] = set()
        with trio.move_on_after(timeout):
            while True:
                for peer in await self._candidates(parsed.number):
                    if peer in tried:
                        continue
                    outcome = await self._try_join(peer, parsed.nameplate, parsed.password, name)
                    if isinstance(outcome, Contact):
                        return outcome
                    if outcome == "no offer":  # unreachable ones are asked again next round
                        tried.add(peer)
                await trio.sleep(0.5)
        raise NoPairingOffer(
            f"no node offering the code {parsed.text} was found within {timeout:g} s (asked "
            f"{len(tried)} peer(s)); check the code, and that both nodes share a rendezvous "
            "point or a LAN"
        )

    async def join_invite(
        self, token: str, timeout: float = 30.0, name: str | None = None
    ) -> Contact:
        """Pair with the node that made an invite token."""
        invite: Invite = parse_invite(token)
        if invite.expires_ms <= self._clock():
            raise CodeExpired("this invite has expired; ask for a new one")
        self._discovery.learn(invite.peer_id, list(invite.addresses), AddressSource.BOOTSTRAP)
        with trio.move_on_after(timeout):
            while True:
                outcome = await self._try_join(
                    invite.peer_id, invite.nameplate, invite.secret, name
                )
                if isinstance(outcome, Contact):
                    return outcome
                self._discovery.lookup(invite.peer_id)
                await trio.sleep(1.0)
        raise NoPairingOffer(
            f"could not reach {invite.peer_id} within {timeout:g} s; is its node running?"
        )

    async def _candidates(self, number: int) -> list[PeerId]:
        """Peers that may hold offer `number`: registered for it, or seen on the LAN lately."""
        found: list[PeerId] = []
        namespace = pair_namespace(self._config.mesh, number)
        for session in self._discovery.sessions:
            try:
                records, _, _ = await session.client.discover(namespace)
            except (*NETWORK_ERRORS, MeshtalkError, trio.TooSlowError) as exc:
                logger.info("looking up %s at %s: %s", namespace, session.client.point, exc)
                continue
            for record in records:
                self._discovery.found_record(record)
                found.append(record.peer_id)
        recent = self._clock() - _LAN_RECENT_MS
        for known in self._book().everything():
            if known.source is AddressSource.MDNS and known.last_seen_ms >= recent:
                found.append(known.peer_id)
        return [p for p in dict.fromkeys(found) if p != self._own]

    async def _try_join(
        self, peer: PeerId, nameplate: str, password: bytes, name: str | None
    ) -> Contact | Literal["no offer", "unreachable"]:
        """One attempt with one peer: the new contact, why not, or raises (wrong code...)."""
        try:
            if not self._dialer.is_connected(peer):
                await self._dialer.dial(peer)
            raw = await self._dialer.open_stream(peer, PAIR_PROTOCOL)
        except (*NETWORK_ERRORS, PeerUnreachable, trio.TooSlowError) as exc:
            logger.info("pairing: %s is not reachable: %s", peer, exc)
            return "unreachable"
        stream = _stream(raw)
        try:
            handshake = JoinerHandshake(nameplate, password, self._own, peer, self.random_bytes)
            await _write(stream, handshake.start())
            try:
                reply = await _read(stream)
                confirm = handshake.receive_reply(reply, self._own_info())
            except NoPairingOffer:
                return "no offer"
            except WrongCode as exc:
                await _try_write(stream, error_message(exc))
                raise
            await _write(stream, confirm)
            theirs = handshake.receive_info(await _read(stream))
            return self._add(peer, theirs, name)
        except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
            raise PairingError(f"the pairing stream with {peer} broke: {exc!r}") from None
        finally:
            await reset_quietly(raw)

    # -- both sides --------------------------------------------------------------------------

    def _own_info(self) -> PeerInfo:
        return PeerInfo(self._own_name[:64] or None, tuple(self._discovery.own_addresses()))

    def _add(self, peer: PeerId, info: PeerInfo, name: str | None) -> Contact:
        """Pin the paired peer as a trusted contact under a free name."""
        existing = self._contacts.find(peer)
        wanted = name or (existing.name if existing is not None else None) or info.name
        if wanted is not None:
            # The other side chose info.name: keep room for a suffix, drop what cannot be a name.
            wanted = wanted[: MAX_CONTACT_NAME - 4]
            try:
                check_contact_name(wanted)
            except ConfigError:
                wanted = None
        taken = {c.name for c in self._contacts.all() if c.peer_id != peer}
        chosen = wanted
        suffix = 2
        while chosen is not None and chosen in taken:
            chosen, suffix = f"{wanted}-{suffix}", suffix + 1
        addresses = [a for a in info.addresses if _parses(a)]
        contact = self._contacts.add(peer, chosen, addresses, Trust.TRUSTED)
        self._on_learned(peer)
        logger.info("paired with %s (%s)", chosen, peer)
        return contact


async def _try_write(stream: PrefixedStream[dict[str, Any]], message: dict[str, Any]) -> None:
    with trio.move_on_after(2), contextlib.suppress(*NETWORK_ERRORS):
        await stream.write(message)


def _parses(address: str) -> bool:
    try:
        parse_multiaddrs([address])
    except MeshtalkError:
        return False
    return True
