"""What both roles of a pairing share: where an offer is found, the stream, and the outcome.

An offer with number n registers under `pair_namespace(mesh, n)` at the rendezvous points. On
the `/meshtalk/pair/1.0.0` stream each side reads and writes one length-prefixed message per
step, each within `STEP_TIMEOUT`. Either role ends the same way: `Introducer.pin` keeps the
paired peer as a trusted contact (`Introducer.own_info` is what this node told it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import trio

from ..net.host import NETWORK_ERRORS, PrefixedStream, parse_multiaddrs
from ..protocol.errors import ConfigError, MeshtalkError, ProtocolError
from ..protocol.pairing import MAX_PAIR_MESSAGE, PeerInfo, decode_pair_message, encode_pair_message
from .models import MAX_CONTACT_NAME, Contact, Trust, check_contact_name

if TYPE_CHECKING:
    from ..net.framed import StreamLike
    from ..protocol.keys import PeerId
    from .contacts import Contacts

__all__ = [
    "Introducer",
    "PairStream",
    "STEP_TIMEOUT",
    "open_pair_stream",
    "pair_namespace",
    "read_step",
    "try_write",
    "write_step",
]

logger = logging.getLogger("meshtalk.pairing")

STEP_TIMEOUT: Final = 15.0
"""Each read or write of one pairing message (read at each step: tests may lower it)."""

PairStream = PrefixedStream[dict[str, Any]]


def pair_namespace(mesh: str, number: int) -> str:
    """The rendezvous namespace an offer with this number registers under."""
    return f"meshtalk-pair/{mesh}/{number}"


def open_pair_stream(raw: StreamLike) -> PairStream:
    """Pairing messages over a raw `/meshtalk/pair/1.0.0` stream."""
    return PrefixedStream(raw, MAX_PAIR_MESSAGE, encode_pair_message, decode_pair_message)


async def read_step(stream: PairStream) -> dict[str, Any]:
    """The next message within STEP_TIMEOUT (else trio.TooSlowError); a closed stream raises."""
    with trio.fail_after(STEP_TIMEOUT):
        message = await stream.read()
    if message is None:
        raise ProtocolError("the other side closed the pairing stream")
    return message


async def write_step(stream: PairStream, message: dict[str, Any]) -> None:
    """Send one message within STEP_TIMEOUT (else trio.TooSlowError)."""
    with trio.fail_after(STEP_TIMEOUT):
        await stream.write(message)


async def try_write(stream: PairStream, message: dict[str, Any]) -> None:
    """Send one message (an ERROR, mostly) if the stream takes it within 2 s; else nothing."""
    with trio.move_on_after(2), contextlib.suppress(*NETWORK_ERRORS):
        await stream.write(message)


class Introducer:
    """This node as either side of a pairing sees it: what it says, and whom it then trusts."""

    def __init__(
        self,
        own_name: str,
        own_addresses: Callable[[], list[str]],
        contacts: Contacts,
        on_learned: Callable[[PeerId], None],
    ) -> None:
        """`own_name`: how this node introduces itself; `on_learned`: a contact was pinned."""
        self._own_name = own_name
        self._own_addresses = own_addresses
        self._contacts = contacts
        self._on_learned = on_learned

    def own_info(self) -> PeerInfo:
        """What this node tells the other side: its name and its addresses now."""
        return PeerInfo(self._own_name[:64] or None, tuple(self._own_addresses()))

    def pin(self, peer: PeerId, info: PeerInfo, name: str | None) -> Contact:
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


def _parses(address: str) -> bool:
    try:
        parse_multiaddrs([address])
    except MeshtalkError:
        return False
    return True
