"""The joining side of a pairing: which peers may hold an offer, and one attempt with one.

Peers that may hold offer n: those registered under its namespace at this node's rendezvous
points, and those seen on the LAN (mDNS) lately. An attempt with a peer that has no such offer
ends in "no offer" and spends nothing there; a wrong code raises (docs/pairing.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

import trio

from ..net.host import NETWORK_ERRORS, reset_quietly
from ..protocol.errors import (
    MeshtalkError,
    NoPairingOffer,
    PairingError,
    PeerUnreachable,
    WrongCode,
)
from ..protocol.pairing import PAIR_PROTOCOL, JoinerHandshake, error_message
from .pair_common import open_pair_stream, pair_namespace, read_step, try_write, write_step
from .store import AddressSource

if TYPE_CHECKING:
    from ..protocol.keys import PeerId
    from .config import NodeConfig
    from .discovering import NodeDiscovery
    from .models import Contact
    from .pair_common import Introducer
    from .ports import Clock, Dialer
    from .store import AddressBook

__all__ = ["Joiner", "JoinOutcome"]

logger = logging.getLogger("meshtalk.pairing")
_LAN_RECENT_MS: Final = 10 * 60 * 1000

JoinOutcome = Literal["no offer", "unreachable"]
"""Why one attempt made no contact: that peer has no such offer, or it could not be reached."""


class Joiner:
    """Finds the peers that may hold an offer, and tries one."""

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

    async def candidates(self, number: int) -> list[PeerId]:
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

    async def attempt(
        self, peer: PeerId, nameplate: str, password: bytes, name: str | None
    ) -> Contact | JoinOutcome:
        """One attempt with one peer: the new contact, why not, or raises (wrong code...)."""
        try:
            if not self._dialer.is_connected(peer):
                await self._dialer.dial(peer)
            raw = await self._dialer.open_stream(peer, PAIR_PROTOCOL)
        except (*NETWORK_ERRORS, PeerUnreachable, trio.TooSlowError) as exc:
            logger.info("pairing: %s is not reachable: %s", peer, exc)
            return "unreachable"
        stream = open_pair_stream(raw)
        try:
            handshake = JoinerHandshake(nameplate, password, self._own, peer, self._random_bytes)
            await write_step(stream, handshake.start())
            try:
                reply = await read_step(stream)
                confirm = handshake.receive_reply(reply, self._introducer.own_info())
            except NoPairingOffer:
                return "no offer"
            except WrongCode as exc:
                await try_write(stream, error_message(exc))
                raise
            await write_step(stream, confirm)
            theirs = handshake.receive_info(await read_step(stream))
            return self._introducer.pin(peer, theirs, name)
        except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
            raise PairingError(f"the pairing stream with {peer} broke: {exc!r}") from None
        finally:
            await reset_quietly(raw)
