"""Pairing offers over HTTP: the `pair.offer` operation, in two requests.

Over the control socket `pair.offer` sends the code as an event and answers once the other
node joined. An HTTP client needs the code first: `POST /v1/pairing/offers` runs the same
operation in the background and answers with its code; `GET /v1/pairing/offers/{code}?wait=S`
answers with the new contact once paired (202 while it still waits); `DELETE` withdraws it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from ..control.server import Operation
from ..protocol.errors import ConfigError, MeshtalkError, NodeError, NoPairingOffer, unwrap_group

__all__ = ["Offer", "PairingOffers"]

MAX_OFFERS: Final = 16
_KEEP_DONE: Final = 600.0  # a finished offer's outcome stays readable this long
_MAX_DONE: Final = 64  # and at most this many of them (the newest)
_CODE_WITHIN: Final = 30.0  # the operation makes its code at once; this only bounds the wait


@dataclass
class Offer:
    """One offer: its code, and once done, the contact or the error."""

    code: str
    expires_ms: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    contact: dict[str, Any] | None = None
    error: MeshtalkError | None = None
    done_at: float | None = None


class PairingOffers:
    """The offers made over HTTP; `run` (in a long-lived nursery) is where they wait."""

    def __init__(self, pair_offer: Operation) -> None:
        self._pair_offer = pair_offer
        self._offers: dict[str, Offer] = {}
        self._nursery: trio.Nursery | None = None
        self._starting = 0  # offers asked for whose code is not known yet

    async def run(self) -> None:
        """Hold the offers' tasks until cancelled (the offers end with it)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await trio.sleep_forever()

    async def offer(self, args: dict[str, Any]) -> Offer:
        """Start an offer with `args` (ttl, name); returns once its code is known."""
        self._forget_old()
        if self._nursery is None:
            raise NodeError("the HTTP API is still starting; try again in a moment")
        open_now = sum(1 for o in self._offers.values() if not o.done.is_set())
        if open_now + self._starting >= MAX_OFFERS:
            raise ConfigError(f"{MAX_OFFERS} pairing offers are open already; withdraw one first")
        send_code, coded = trio.open_memory_channel[Offer | MeshtalkError](1)
        self._starting += 1
        try:
            self._nursery.start_soon(self._wait, args, send_code)
            async with coded:
                with trio.fail_after(_CODE_WITHIN):
                    first: Offer | MeshtalkError = await coded.receive()
        except (trio.EndOfChannel, trio.TooSlowError):
            raise NodeError("the pairing offer ended before it had a code; try again") from None
        finally:
            self._starting -= 1
        if isinstance(first, MeshtalkError):
            raise first
        return first

    async def _wait(
        self, args: dict[str, Any], send_code: trio.MemorySendChannel[Offer | MeshtalkError]
    ) -> None:
        offer: Offer | None = None
        scope = trio.CancelScope()

        async def emit(event: dict[str, Any]) -> None:
            nonlocal offer
            if offer is None and isinstance(event.get("code"), str):
                offer = Offer(event["code"], int(event.get("expires_ms", 0)), scope)
                self._offers[offer.code] = offer
                _tell(send_code, offer)

        async with send_code:
            try:
                with scope:
                    contact = await self._pair_offer(args, emit)
                    if offer is not None:
                        offer.contact = contact
                if scope.cancelled_caught and offer is not None:
                    offer.error = NoPairingOffer(f"the offer {offer.code} was withdrawn")
            except Exception as exc:
                error = unwrap_group(exc)
                if not isinstance(error, MeshtalkError):
                    error = NodeError(f"internal error: {error!r}")
                if offer is None:
                    _tell(send_code, error)
                else:
                    offer.error = error
            finally:
                if offer is not None:
                    offer.done_at = trio.current_time()
                    offer.done.set()

    def find(self, code: str) -> Offer:
        """The offer with this code; NoPairingOffer if there is none (or it was long done)."""
        self._forget_old()
        offer = self._offers.get(code)
        if offer is None:
            raise NoPairingOffer(f"no pairing offer with code {code!r} was made over HTTP")
        return offer

    def withdraw(self, code: str) -> Offer:
        """Stop waiting for the other node; the code stops working."""
        offer = self.find(code)
        offer.scope.cancel()
        return offer

    def _forget_old(self) -> None:
        now = trio.current_time()
        done = sorted((o.done_at, c) for c, o in self._offers.items() if o.done_at is not None)
        for position, (done_at, code) in enumerate(done):
            if now - done_at > _KEEP_DONE or position < len(done) - _MAX_DONE:
                del self._offers[code]


def _tell(
    channel: trio.MemorySendChannel[Offer | MeshtalkError], value: Offer | MeshtalkError
) -> None:
    """Give the requester the code (or the error); it may have gone already."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
        channel.send_nowait(value)
