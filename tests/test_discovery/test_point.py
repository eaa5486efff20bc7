"""A real rendezvous point on 127.0.0.1 and real clients: the spec's behaviour and refusals."""

from __future__ import annotations

from typing import Any

import multiaddr
import pytest
import trio
from libp2p.peer.envelope import seal_record
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord as Libp2pPeerRecord

from meshtalk.discovery import RegistryLimits, open_rendezvous_point, sign_peer_record
from meshtalk.discovery.rendezvous import RendezvousStream
from meshtalk.net.host import NETWORK_ERRORS
from meshtalk.profile.identity import libp2p_key_pair
from meshtalk.protocol import NodeKey, RendezvousError
from meshtalk.protocol.frames import encode_uvarint
from meshtalk.protocol.rendezvous import (
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    Status,
)
from tests.test_discovery.helpers import client_of, own_address, raw_stream
from tests.test_protocol.test_rendezvous import EDGES, pb_bytes, pb_uint

NS = "meshtalk/test"


def refused(status: Status) -> pytest.RaisesExc[RendezvousError]:
    return pytest.raises(RendezvousError, check=lambda e: e.status == status)


async def test_five_peers_find_each_other_through_one_point() -> None:
    async with open_rendezvous_point(NodeKey.generate()) as (point, addresses):
        async with (
            client_of(addresses[0]) as a,
            client_of(addresses[0]) as b,
            client_of(addresses[0]) as c,
            client_of(addresses[0]) as d,
            client_of(addresses[0]) as e,
        ):
            clients = [a, b, c, d, e]
            for client in clients:
                assert await client.register(NS, own_address(client)) == 7200
            for client in clients:
                records, _, _ = await client.discover(NS)
                found = {r.peer_id: r.addresses for r in records}
                assert set(found) == {other.key.peer_id for other in clients}
                assert found[client.key.peer_id] == tuple(own_address(client))
        assert point.statistics().registry.registrations == 5


async def test_cookies_page_through_and_then_return_only_news() -> None:
    limits = RegistryLimits(max_discover_limit=2)
    point = open_rendezvous_point(NodeKey.generate(), limits=limits)
    async with point as (_, addresses), client_of(addresses[0]) as a, client_of(addresses[0]) as b:
        await a.register(NS, own_address(a))
        await b.register(NS, own_address(b))
        await a.register("meshtalk/other", own_address(a))
        records, cookie, page = await a.discover(NS, limit=1)
        assert page == 1
        more, cookie, _ = await a.discover(NS, limit=1, cookie=cookie)
        assert {records[0].peer_id, more[0].peer_id} == {a.key.peer_id, b.key.peer_id}
        assert (await a.discover(NS, cookie=cookie))[0] == []
        await b.register(NS, own_address(b), ttl=600)  # a refresh shows up again
        news, _, _ = await a.discover(NS, cookie=cookie)
        assert [r.peer_id for r in news] == [b.key.peer_id]
        _, _, page = await a.discover("", limit=100)
        assert page == 2  # capped at the point's max_discover_limit
        await b.unregister(NS)
        # UNREGISTER has no answer; the point serves b's stream in order, so the answer to b's
        # next request means it was handled
        seen_by_b, _, _ = await b.discover(NS)
        assert [r.peer_id for r in seen_by_b] == [a.key.peer_id]
        left, _, _ = await a.discover(NS)
        assert [r.peer_id for r in left] == [a.key.peer_id]


async def test_bad_requests_get_the_specs_status_and_the_point_goes_on() -> None:
    async with open_rendezvous_point(NodeKey.generate()) as (point, addresses):
        async with client_of(addresses[0]) as bad, client_of(addresses[0]) as good:
            here = own_address(bad)
            with refused(Status.E_INVALID_TTL):
                await bad.register(NS, here, ttl=1)
            with refused(Status.E_INVALID_TTL):
                await bad.register(NS, here, ttl=10**12)
            with refused(Status.E_INVALID_NAMESPACE):
                await bad.register("n" * 256, here)
            with refused(Status.E_INVALID_NAMESPACE):
                await bad.register("", here)
            with refused(Status.E_INVALID_NAMESPACE):
                await bad.discover("n" * 256)
            with refused(Status.E_INVALID_COOKIE):
                await bad.discover(NS, cookie=b"not a cookie")

            async def send_record(record: bytes) -> RegisterResponse:
                stream = await raw_stream(bad)
                wire = RendezvousStream(stream)
                await wire.write(Register(NS, record, None))
                response = await wire.read()
                assert isinstance(response, RegisterResponse)
                return response

            unsigned = (await send_record(b"\x0a\x03not a signed envelope")).status
            assert unsigned == Status.E_INVALID_SIGNED_PEER_RECORD
            signed = bytearray(sign_peer_record(bad.key, here))
            signed[-1] ^= 1
            tampered = (await send_record(bytes(signed))).status
            assert tampered == Status.E_INVALID_SIGNED_PEER_RECORD
            # good's record, validly signed by good, sent by bad: not bad's to register
            other = (await send_record(sign_peer_record(good.key, own_address(good)))).status
            assert other == Status.E_NOT_AUTHORIZED
            # a record claiming to be good's but signed with bad's key
            forged_record = Libp2pPeerRecord(
                ID(good.key.peer_id.to_bytes()), [multiaddr.Multiaddr(here[0])], 1
            )
            forged = seal_record(forged_record, libp2p_key_pair(bad.key).private_key)
            status = (await send_record(forged.marshal_envelope())).status
            assert status == Status.E_INVALID_SIGNED_PEER_RECORD

            # garbage on the wire: that stream is reset, nothing else
            stream = await raw_stream(bad)
            await stream.write(encode_uvarint(5) + b"\xff\xff\xff\xff\xff")
            assert await _read_until_closed(stream) == b""  # no answer, just the end
            # a response type sent to the point is a protocol error too
            stream = await raw_stream(bad)
            await RendezvousStream(stream).write(DiscoverResponse(Status.OK))
            assert await _read_until_closed(stream) == b""  # no answer, just the end
            # a frame above the request cap is refused before it is read
            stream = await raw_stream(bad)
            await stream.write(encode_uvarint(10**9))
            assert await _read_until_closed(stream) == b""  # no answer, just the end

            assert await good.register(NS, own_address(good)) == 7200
            records, _, _ = await good.discover(NS)
            assert [r.peer_id for r in records] == [good.key.peer_id]
        stats = point.statistics()
        assert stats.malformed == 3
        assert stats.refused["E_INVALID_SIGNED_PEER_RECORD"] == 3
        assert stats.refused["E_NOT_AUTHORIZED"] == 1


async def _read_until_closed(stream: Any, within: float = 5) -> bytes:
    """What the point sent before it closed or reset the stream; TooSlowError if it is still
    open after `within` seconds."""
    received = b""
    with trio.fail_after(within):
        while True:
            try:
                data = await stream.read(1024)
            except NETWORK_ERRORS:  # reset
                return received
            if not data:  # closed
                return received
            received += data


async def test_limits_hold_under_a_flood() -> None:
    limits = RegistryLimits(max_registrations_per_peer=5, max_registrations=12)
    async with open_rendezvous_point(NodeKey.generate(), limits=limits) as (point, addresses):
        async with client_of(addresses[0]) as flooder:
            here = own_address(flooder)
            for n in range(5):
                await flooder.register(f"{NS}/{n}", here)
            for n in range(5, 50):
                with refused(Status.E_NOT_AUTHORIZED):
                    await flooder.register(f"{NS}/{n}", here)
            for _ in range(200):  # refreshing is fine and costs no memory
                await flooder.register(f"{NS}/0", here)
        async with client_of(addresses[0]) as b, client_of(addresses[0]) as c:
            for n in range(5):
                await b.register(f"{NS}/{n}", own_address(b))
            await c.register(NS, own_address(c))
            await c.register(f"{NS}/x", own_address(c))
            with refused(Status.E_UNAVAILABLE):
                await c.register(f"{NS}/y", own_address(c))
        stats = point.statistics()
        assert stats.registry.registrations == 12
        assert stats.registry.index_entries <= 4 * 12 + 4


async def test_a_discover_request_needs_no_registration() -> None:
    point = open_rendezvous_point(NodeKey.generate())
    async with point as (_, addresses), client_of(addresses[0]) as reader:
        wire = RendezvousStream(await raw_stream(reader))
        for _ in range(3):  # several requests on one stream, as go clients send them
            await wire.write(Discover(NS, 10))
            response = await wire.read()
            assert isinstance(response, DiscoverResponse)
            assert (response.status, response.registrations) == (Status.OK, ())


async def test_ttl_zero_means_the_default() -> None:
    point = open_rendezvous_point(NodeKey.generate())
    async with point as (_, addresses), client_of(addresses[0]) as client:
        assert await client.register(NS, own_address(client), ttl=0) == 7200


async def test_a_register_without_type_or_ttl_is_accepted() -> None:
    # the bytes a proto3-style encoder (js-libp2p's) sends: no type (REGISTER), no ttl
    async with open_rendezvous_point(NodeKey.generate()) as (point, addresses):
        async with client_of(addresses[0]) as client:
            record = sign_peer_record(client.key, own_address(client))
            body = b"\x0a" + encode_uvarint(len(NS)) + NS.encode()
            body += b"\x12" + encode_uvarint(len(record)) + record
            message = b"\x12" + encode_uvarint(len(body)) + body
            stream = await raw_stream(client)
            await stream.write(encode_uvarint(len(message)) + message)
            response = await RendezvousStream(stream).read()
            assert response == RegisterResponse(Status.OK, ttl=7200)
            records, _, _ = await client.discover(NS)
            assert [r.peer_id for r in records] == [client.key.peer_id]
        assert point.statistics().malformed == 0


async def test_a_connection_over_its_cap_is_refused_and_another_is_not() -> None:
    limits = RegistryLimits(max_registrations_per_connection=3, max_registrations_per_peer=64)
    async with open_rendezvous_point(NodeKey.generate(), limits=limits) as (point, addresses):
        async with client_of(addresses[0]) as greedy, client_of(addresses[0]) as other:
            here = own_address(greedy)
            for n in range(3):
                await greedy.register(f"{NS}/{n}", here)
            await greedy.register(f"{NS}/0", here)  # a refresh is no new registration
            for n in range(3, 6):
                with refused(Status.E_UNAVAILABLE):
                    await greedy.register(f"{NS}/{n}", here)
            # a refusal is an answer, not a reset: the same stream goes on
            stream = greedy._stream
            records, _, _ = await greedy.discover(f"{NS}/1")
            assert greedy._stream is stream
            assert [r.peer_id for r in records] == [greedy.key.peer_id]
            for n in range(3):
                await other.register(f"{NS}/{n}", own_address(other))
        stats = point.statistics()
        assert stats.registry.registrations == 6
        assert stats.refused["E_UNAVAILABLE"] == 3
        assert stats.registry.connections == 2
        assert stats.malformed == 0


async def test_a_source_address_over_its_cap_is_refused() -> None:
    # every client here comes from 127.0.0.1: separate peers and connections, one source
    limits = RegistryLimits(max_registrations_per_source=3, max_record_bytes_per_source=10**6)
    async with open_rendezvous_point(NodeKey.generate(), limits=limits) as (point, addresses):
        async with (
            client_of(addresses[0]) as a,
            client_of(addresses[0]) as b,
            client_of(addresses[0]) as c,
            client_of(addresses[0]) as d,
        ):
            await a.register(NS, own_address(a))
            await b.register(NS, own_address(b))
            await c.register(NS, own_address(c))
            with refused(Status.E_UNAVAILABLE):
                await d.register(NS, own_address(d))
            await a.unregister(NS)
            # UNREGISTER has no answer: an answer on the same stream after it means it was handled
            await a.discover(NS)
            await d.register(NS, own_address(d))  # the source has room again
        stats = point.statistics()
        assert (stats.registry.registrations, stats.registry.sources) == (3, 1)
        assert point.registry._per_source.keys() == {"127.0.0.1"}


async def test_the_live_handler_answers_integers_at_the_edges() -> None:
    async with open_rendezvous_point(NodeKey.generate()) as (point, addresses):
        async with client_of(addresses[0]) as client:
            record = sign_peer_record(client.key, own_address(client))
            stream = await raw_stream(client)
            wire = RendezvousStream(stream)
            for value in EDGES:  # one stream: no answer may be a reset
                register = pb_bytes(1, NS.encode()) + pb_bytes(2, record) + pb_uint(3, value)
                for message in (
                    pb_bytes(2, register),  # no type: REGISTER
                    pb_uint(1, 3) + pb_bytes(5, pb_bytes(1, NS.encode()) + pb_uint(2, value)),
                ):
                    await stream.write(encode_uvarint(len(message)) + message)
                    with trio.fail_after(5):
                        response = await wire.read()
                    if isinstance(response, RegisterResponse):
                        granted = value & (2**64 - 1)
                        if granted in (0, 1) or granted > 72 * 3600:
                            want = 7200 if granted == 0 else None
                            assert response.ttl == want, value
                            ok = Status.OK if granted == 0 else Status.E_INVALID_TTL
                            assert response.status == ok, value
                    else:
                        assert isinstance(response, DiscoverResponse)
                        assert response.status == Status.OK
                        assert len(response.registrations) == 1
        assert point.statistics().malformed == 0


async def test_the_client_bounds_the_ttl_a_point_grants(monkeypatch: pytest.MonkeyPatch) -> None:
    point = open_rendezvous_point(NodeKey.generate())
    async with point as (_, addresses), client_of(addresses[0]) as client:
        for granted, want in ((2**64 - 1, 72 * 3600), (None, 7200), (0, 7200), (600, 600)):

            async def answer(
                request: object, reply: bool = True, granted: int | None = granted
            ) -> RegisterResponse:
                return RegisterResponse(Status.OK, ttl=granted)

            monkeypatch.setattr(client, "_exchange", answer)
            assert await client.register(NS, own_address(client)) == want
