"""The live message stream handler, fed integers at the edges in every integer field (issue 12).

A trusted rogue, on raw streams of one libp2p connection, sends HELLO versions, frame types and
ERROR codes at 0, 1, 2^31, 2^32, 2^53 - 1, 2^53, 2^63 - 1, 2^63, 2^64 - 1, -1 and -2^63 (and a
bool, a float, a str), then signed envelopes with those values in `v`, `t`, `b` and `m`. Each
gets the documented answer (HELLO, ERROR with the right code, ACK, ERROR with `ref` = the signed
message id) or loses only its stream; nothing is logged as a handler bug, and the node keeps
serving alice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from meshtalk.net.framed import FramedStream
from meshtalk.net.host import (
    MSG_PROTOCOL,
    NETWORK_ERRORS,
    build_host,
    close_host,
    peer_info,
    to_libp2p_id,
)
from meshtalk.peer.node import Node
from meshtalk.protocol import (
    AckFrame,
    ErrorFrame,
    Frame,
    HelloFrame,
    MessageFrame,
    NodeKey,
    encode_uvarint,
    packb,
)
from tests.test_peer.helpers import running
from tests.test_peer.test_hostile import LOCAL, still_serving
from tests.test_peer.test_hostile_lamport import INTEGER_EDGES, seal_wire, wire_from

WRONG_TYPES: list[Any] = [True, False, 1.0, 0.5, "1"]
VALUES: list[Any] = [*INTEGER_EDGES, 0xFFFF, 0x10000, *WRONG_TYPES]
INT64_MAX = 2**63 - 1

Opener = Callable[..., Awaitable[FramedStream]]


def is_int(value: object) -> bool:
    return type(value) is int


def raw_frame(*items: Any) -> bytes:
    """A frame of any array, valid or not, as a buggy or hostile implementation could write."""
    body = packb(list(items))
    return encode_uvarint(len(body)) + body


@asynccontextmanager
async def rogue_connection(key: NodeKey, target: Node) -> AsyncIterator[Opener]:
    """One libp2p connection from `key` to `target`; yields `open(hello=True)` for new
    /meshtalk/msg streams on it (a stream per case that ends in a reset, not a connection)."""
    host = build_host(key)
    async with host.run([LOCAL]):
        try:
            with trio.fail_after(10):
                await host.connect(peer_info(target.peer_id, target.listen_addrs))

            async def open_stream(hello: bool = True) -> FramedStream:
                with trio.fail_after(10):
                    stream = await host.new_stream(to_libp2p_id(target.peer_id), [MSG_PROTOCOL])
                    framed = FramedStream(stream)
                    if hello:
                        await framed.hello((1,), "rogue", 5)
                return framed

            yield open_stream
        finally:
            await close_host(host)


async def until_the_end(framed: FramedStream) -> list[Frame]:
    """Every frame the node sends until it ends the stream (which it must, within 10 s)."""
    frames: list[Frame] = []
    with trio.fail_after(10):
        while True:
            try:
                frames.extend(await framed.read_frames())
            except NETWORK_ERRORS:
                return frames


async def one_frame(framed: FramedStream) -> Frame:
    with trio.fail_after(10):
        return await framed.read_frame()


def codes(frames: list[Frame]) -> list[int]:
    return [f.code if isinstance(f, ErrorFrame) else -1 for f in frames]


@pytest.fixture
def no_handler_bugs(caplog: pytest.LogCaptureFixture) -> Any:
    """Fail the test if a stream handler logged an unexpected (non-Meshtalk) exception."""
    caplog.set_level(logging.INFO, logger="meshtalk")
    yield
    bugs = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bugs, [r.getMessage() for r in bugs]


@pytest.mark.usefixtures("no_handler_bugs")
async def test_hello_versions_at_the_edges(tmp_path: Path) -> None:
    """HELLO [value]: version 1 is the handshake; another version from 1 to 65535 is ERROR 105;
    anything else is no HELLO at all, ERROR 102. Only the stream ends."""
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        async with rogue_connection(rogue, bob) as open_stream:
            for value in VALUES:
                framed = await open_stream(hello=False)
                await framed.stream.write(raw_frame(0, [value], "rogue"))
                hello = await one_frame(framed)
                assert isinstance(hello, HelloFrame), value
                if is_int(value) and value == 1:
                    _, sealed = signed(rogue, bob)
                    await framed.write_frames([MessageFrame(sealed)])
                    assert isinstance(await one_frame(framed), AckFrame), value
                    await framed.stream.close()
                    continue
                expected = 105 if is_int(value) and 1 <= value <= 0xFFFF else 102
                assert codes(await until_the_end(framed)) == [expected], value
        await still_serving(alice, bob, "after the hello edges")


def signed(author: NodeKey, to: Node, **fields: Any) -> tuple[bytes, bytes]:
    wire = wire_from(author, to, **fields)
    return wire["id"], seal_wire(wire, author, to)


@pytest.mark.usefixtures("no_handler_bugs")
async def test_frame_types_at_the_edges(tmp_path: Path) -> None:
    """[value, b"x"] after the handshake: as type 1 a MESSAGE that does not open (ERROR 103,
    no ref, the stream goes on); as any other value a malformed frame (ERROR 102, reset)."""
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        async with rogue_connection(rogue, bob) as open_stream:
            survivor = await open_stream()
            for value in VALUES:
                if is_int(value) and value == 1:
                    await survivor.stream.write(raw_frame(value, b"x"))
                    refusal = await one_frame(survivor)
                    assert isinstance(refusal, ErrorFrame), value
                    assert (refusal.code, refusal.ref) == (103, None)
                    continue
                framed = await open_stream()
                await framed.stream.write(raw_frame(value, b"x"))
                assert codes(await until_the_end(framed)) == [102], value
            # Well-formed frames of the listener's types (HELLO again, ACK) are not the
            # dialer's to send: the stream ends (ERROR 100 per docs/protocol.md 5a, or a reset).
            for unexpected in ([0, [1], "again"], [2, [bytes(16)]]):
                framed = await open_stream()
                await framed.stream.write(raw_frame(*unexpected))
                assert codes(await until_the_end(framed)) in ([], [100]), unexpected
            _, sealed = signed(rogue, bob)  # the stream that got type 1 still delivers
            await survivor.write_frames([MessageFrame(sealed)])
            assert isinstance(await one_frame(survivor), AckFrame)
        await still_serving(alice, bob, "after the type edges")


@pytest.mark.usefixtures("no_handler_bugs")
async def test_error_codes_from_the_dialer_at_the_edges(tmp_path: Path) -> None:
    """ERROR [code] from the dialer, in place of its HELLO and after it. A code outside 0-65535
    is a malformed frame (ERROR 102); a well-formed ERROR is not the dialer's to send, so the
    stream ends (docs/protocol.md 5a says with an ERROR frame; the node may also just reset)."""
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        async with rogue_connection(rogue, bob) as open_stream:
            for value in VALUES:
                for after_hello in (False, True):
                    case = (value, "after hello" if after_hello else "instead of hello")
                    framed = await open_stream(hello=after_hello)
                    await framed.stream.write(raw_frame(3, value, "edge", None))
                    frames = await until_the_end(framed)
                    if not after_hello:
                        assert isinstance(frames[0], HelloFrame), case
                        frames = frames[1:]
                    if is_int(value) and 0 <= value <= 0xFFFF:
                        assert codes(frames) in ([], [100]), case
                    else:
                        assert codes(frames) == [102], case
        await still_serving(alice, bob, "after the error edges")


@pytest.mark.usefixtures("no_handler_bugs")
async def test_signed_envelopes_at_the_edges(tmp_path: Path) -> None:
    """Signed envelopes with each value in v, t, b and m, all on one stream: each is ACKed or
    refused alone with ref = its id (v: 1 only; t: ClockSkew in 0..2^63-1, else malformed;
    b and m: any msgpack data is stored, and read back as it was)."""
    rogue = NodeKey.generate()
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        bob.add_contact(rogue.peer_id, "rogue")
        stored: list[Any] = []
        async with rogue_connection(rogue, bob) as open_stream:
            framed = await open_stream()
            for field in ("v", "t", "b", "m"):
                for value in VALUES:
                    case = (field, value)
                    content = {"n": value, "deep": [{"x": [value]}]} if field == "m" else value
                    message_id, sealed = signed(rogue, bob, **{field: content})
                    await framed.write_frames([MessageFrame(sealed)])
                    answer = await one_frame(framed)
                    if field in ("b", "m") or (field == "v" and is_int(value) and value == 1):
                        assert answer == AckFrame((message_id,)), case
                        stored.append(content if field == "b" else "hi")
                        continue
                    assert isinstance(answer, ErrorFrame), case
                    assert answer.ref == message_id, case
                    if field == "t" and is_int(value) and 0 <= value <= INT64_MAX:
                        assert answer.code == 206, case
                    else:
                        assert answer.code == 103, case
        messages = bob.store.messages.incoming(0, 1000)
        assert [m.body for m in messages] == stored
        assert [type(m.body) for m in messages] == [type(b) for b in stored]
        await still_serving(alice, bob, "after the envelope edges")
