"""The offering side of a pairing: answering a joiner's `/meshtalk/pair/1.0.0` stream.

A joiner's stream is one attempt. Its first message names an offer (the nameplate) and carries
a PAKE message. Nothing before a valid PAKE message touches the offer; a valid one is the
joiner's guess at the code and spends the offer, whatever happens next (docs/pairing.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import trio

from ..net.host import remote_peer
from ..protocol.errors import CodeExpired, MeshtalkError, NoPairingOffer, PairingError, WrongCode
from ..protocol.pairing import OffererHandshake, error_message
from . import pair_common
from .pair_common import PairStream, open_pair_stream, read_step, try_write, write_step

if TYPE_CHECKING:
    from libp2p.abc import INetStream

    from ..protocol.keys import PeerId
    from .models import Contact
    from .pair_common import Introducer

__all__ = ["Answerer", "PairOffer"]

logger = logging.getLogger("meshtalk.pairing")
_HANDSHAKE_TIMEOUT: Final = 40.0  # one whole attempt, as the offerer sees it


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
    paired: Callable[[Contact], None] | None = None
    """Told the new contact when the pairing succeeds (a room token invites it)."""

    def finish(self, contact: Contact | None, error: MeshtalkError | None) -> None:
        """Record the outcome once and wake whoever waits (and `paired`)."""
        if not self.done.is_set():
            self.contact, self.error = contact, error
            self.done.set()
            if contact is not None and self.paired is not None:
                self.paired(contact)


@dataclass
class _Guess:
    """A valid PAKE message for an offer: the offer (spent) and the REPLY to send."""

    offer: PairOffer
    handshake: OffererHandshake
    reply: dict[str, Any]


class Answerer:
    """Answers each joiner's pairing stream against this node's open offers."""

    def __init__(
        self,
        own: PeerId,
        introducer: Introducer,
        find_offer: Callable[[str], PairOffer | None],
        spend_offer: Callable[[PairOffer], None],
        random_bytes: Callable[[int], bytes],
    ) -> None:
        """`find_offer`: the live offer or saved invite with a nameplate (expired ones are
        gone); `spend_offer`: mark one used up (a saved invite is forgotten)."""
        self._own = own
        self._introducer = introducer
        self._find_offer = find_offer
        self._spend_offer = spend_offer
        self._random_bytes = random_bytes

    async def serve(self, raw: INetStream) -> None:
        """The stream handler: one joiner's attempt, within a bound for the whole of it."""
        stream, joiner = open_pair_stream(raw), remote_peer(raw)
        try:
            with trio.fail_after(_HANDSHAKE_TIMEOUT):  # each step has its own, shorter bound
                await self._answer(stream, joiner)
        except trio.TooSlowError:
            logger.info("pairing with %s timed out", joiner)

    async def _answer(self, stream: PairStream, joiner: PeerId) -> None:
        """One joiner's attempt: refused, or a guess that spends the offer.

        Nothing the joiner sends before a valid PAKE message touches the offer: silence (up
        to the step timeout), garbage, another nameplate or an invalid PAKE message each get
        an ERROR (or nothing) and leave the offer as it was. A valid PAKE message spends the
        offer before the REPLY goes out, because the REPLY's confirmation lets the joiner test
        one guess at the code offline.
        """
        opening = await self._first_message(stream, joiner)
        if opening is None:
            return
        guess = self._take_guess(*opening, joiner)
        if isinstance(guess, MeshtalkError):
            await try_write(stream, error_message(guess))
            return
        await self._complete(stream, guess, joiner)

    async def _first_message(
        self, stream: PairStream, joiner: PeerId
    ) -> tuple[dict[str, Any], str] | None:
        """The joiner's first message and the nameplate it names; else None, the joiner told
        why (spending nothing)."""
        try:
            first = await read_step(stream)
            nameplate = OffererHandshake.nameplate_of(first)
        except trio.TooSlowError:
            silent = PairingError(f"no pairing message within {pair_common.STEP_TIMEOUT:g} s")
            logger.info("pairing: %s opened a stream and said nothing", joiner)
            await try_write(stream, error_message(silent))
            return None
        except MeshtalkError as exc:
            logger.info("pairing: %s sent no valid PAKE message: %s", joiner, exc)
            await try_write(stream, error_message(exc))
            return None
        return first, nameplate

    def _take_guess(
        self, first: dict[str, Any], nameplate: str, joiner: PeerId
    ) -> _Guess | MeshtalkError:
        """The guess `first` makes at an open offer, which it spends; or why it is refused.

        Not async: nothing is awaited between the checks and the spending, so two joiners
        cannot both spend one offer.
        """
        offer = self._find_offer(nameplate)
        if offer is None:
            if nameplate.startswith("invite:"):
                return CodeExpired("this invite was used or has expired")
            return NoPairingOffer(f"no pairing offer {nameplate}")
        if offer.used:
            return CodeExpired("this code was already used")
        if offer.done.is_set():  # cancelled or expired: say which
            return (
                offer.error
                if isinstance(offer.error, CodeExpired)
                else CodeExpired("this code is no longer open")
            )
        handshake = OffererHandshake(offer.password, self._own, joiner, self._random_bytes)
        try:
            reply = handshake.receive_pake(first)
        except MeshtalkError as exc:
            logger.warning(
                "pairing: %s sent an invalid PAKE message for %s (the offer stands): %s",
                joiner,
                nameplate,
                exc,
            )
            return exc
        # A valid PAKE message is a guess at the code: one per offer, whatever happens next.
        self._spend_offer(offer)
        return _Guess(offer, handshake, reply)

    async def _complete(self, stream: PairStream, guess: _Guess, joiner: PeerId) -> None:
        """Finish a spent offer: with the new contact, or with why not."""
        offer = guess.offer
        try:
            contact = await self._exchange(stream, guess, joiner)
        except MeshtalkError as exc:
            if isinstance(exc, WrongCode):
                await try_write(stream, error_message(exc))
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

    async def _exchange(self, stream: PairStream, guess: _Guess, joiner: PeerId) -> Contact:
        """REPLY, the joiner's CONFIRM, then this node's INFO: the joiner is pinned."""
        await write_step(stream, guess.reply)
        confirm = await read_step(stream)
        theirs, info = guess.handshake.receive_confirm(confirm, self._introducer.own_info())
        contact = self._introducer.pin(joiner, theirs, guess.offer.name)
        await write_step(stream, info)
        return contact
