"""PairingOffers through its port (the `pair.offer` operation as a callable), on a MockClock:
open offers are capped, finished ones are kept for a while and only so many."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing

from meshtalk.http.pairing import MAX_OFFERS, PairingOffers
from meshtalk.protocol.errors import ConfigError, NoPairingOffer

pytestmark = pytest.mark.timeout(10)


def fake_pair_offer(*, paired: bool) -> Any:
    """An operation that emits a fresh code, then pairs at once or waits to be cancelled."""
    codes = itertools.count(1)

    async def pair_offer(args: dict[str, Any], emit: Any) -> Any:
        await emit({"code": f"{next(codes)}-fake-code", "expires_ms": 0})
        if not paired:
            await trio.sleep_forever()
        return {"name": "bob"}

    return pair_offer


async def test_open_offers_are_capped_and_withdrawn(autojump_clock: trio.testing.MockClock) -> None:
    offers = PairingOffers(fake_pair_offer(paired=False))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(offers.run)
        await trio.testing.wait_all_tasks_blocked()
        made = [await offers.offer({}) for _ in range(MAX_OFFERS)]
        with pytest.raises(ConfigError, match="open already"):
            await offers.offer({})
        withdrawn = offers.withdraw(made[0].code)
        await withdrawn.done.wait()
        assert isinstance(withdrawn.error, NoPairingOffer)
        assert (await offers.offer({})).code  # room for one more
        nursery.cancel_scope.cancel()


async def test_finished_offers_are_kept_ten_minutes_and_64_at_most(
    autojump_clock: trio.testing.MockClock,
) -> None:
    offers = PairingOffers(fake_pair_offer(paired=True))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(offers.run)
        await trio.testing.wait_all_tasks_blocked()
        made = []
        for _ in range(100):  # each pairs at once: an offer, then another, as a loop would
            offer = await offers.offer({})
            await offer.done.wait()
            made.append(offer)
            await trio.sleep(1)
        assert offers.find(made[-1].code).contact == {"name": "bob"}
        with pytest.raises(NoPairingOffer):  # the oldest made room for the newest 64
            offers.find(made[100 - 65].code)
        assert offers.find(made[100 - 64].code).contact == {"name": "bob"}
        await trio.sleep(601)
        with pytest.raises(NoPairingOffer):
            offers.find(made[-1].code)
        nursery.cancel_scope.cancel()
