"""The export route through its port (an `export` operation double) on the real ASGI server:
a transcript that fails part way ends without its last chunk, and one that is refused before
its first byte is a JSON error."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio
from starlette.applications import Starlette

from meshtalk.control.server import Emit
from meshtalk.http.asgi_server import AsgiServer
from meshtalk.http.exports import export_route
from meshtalk.http.labels import Labels
from meshtalk.protocol import StoreError, UnknownPeer

pytestmark = pytest.mark.timeout(20)

_SUMMARY = {"conversation": "ab" * 16, "kind": "room", "messages": 2, "unsigned": 0}


async def _get(operation: Any) -> bytes:
    """The raw bytes of GET /v1/export/team answered by `operation`, until the server closes."""
    labels = Labels("me", list, lambda conversation: True, lambda conversation: ())
    app = Starlette(routes=[export_route(operation, labels)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(AsgiServer(app).serve, sock)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /v1/export/team HTTP/1.1\r\nHost: localhost\r\n"
                              b"Connection: close\r\n\r\n")  # fmt: skip
        answer = b""
        with trio.fail_after(10):
            while data := await stream.receive_some(65536):
                answer += data
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return answer


async def test_a_transcript_cut_short_ends_without_its_last_chunk() -> None:
    async def export(args: dict[str, Any], emit: Emit) -> Any:
        assert args == {"conversation": "team"}
        await emit({"transcript": _SUMMARY})
        await emit({"chunk": b"HEAD"})
        await emit({"chunk": b"first page"})
        raise StoreError("2 message(s) of this conversation were pruned during the export")

    answer = await _get(export)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"x-meshtalk-messages: 2" in head.lower()
    assert b"first page" in body
    assert not body.endswith(b"0\r\n\r\n")  # the client knows the body is incomplete


async def test_a_whole_transcript_ends_with_its_last_chunk() -> None:
    async def export(args: dict[str, Any], emit: Emit) -> Any:
        await emit({"transcript": _SUMMARY})
        await emit({"chunk": b"HEAD"})
        return {**_SUMMARY, "bytes": 4}

    answer = await _get(export)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"4\r\nHEAD\r\n0\r\n\r\n")


async def test_an_export_refused_before_its_first_byte_is_a_json_error() -> None:
    async def export(args: dict[str, Any], emit: Emit) -> Any:
        raise UnknownPeer("no contact or room is named 'team'")

    answer = await _get(export)
    assert answer.startswith(b"HTTP/1.1 404")
    assert b'"code":' in answer
    assert b"no contact or room is named" in answer
