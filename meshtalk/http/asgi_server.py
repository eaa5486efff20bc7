"""A small ASGI server for one app on trio: HTTP/1.1 parsed by h11, keep-alive, streaming.

Why not Hypercorn's trio worker: it costs about 0.9 ms of CPU per request on a 2-core machine
(a bare ASGI app answered in 1.15 ms over a raw socket under Hypercorn, 0.21 ms under a plain
h11 loop), which alone misses the API's target (HTTP adds at most 1 ms over the control
socket). The HTTP parsing here is h11's, the library Hypercorn itself uses; this module only
moves its events to and from the ASGI app, with the limits a hostile local client needs: the
request head within HEAD_TIMEOUT once it starts (and at most MAX_HEAD bytes), a body chunk and a
write each within IO_TIMEOUT, at most MAX_CONNECTIONS at once. No error of one connection ends
the server. Lifespan events are not sent (the app has no startup or shutdown work).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import MutableMapping
from typing import Any, Final
from urllib.parse import unquote

import h11
import trio
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp

__all__ = ["AsgiServer"]

MAX_HEAD: Final = 64 * 1024
MAX_CONNECTIONS: Final = 256
MAX_DRAIN: Final = 1024 * 1024
IDLE_TIMEOUT: Final = 120.0  # a keep-alive connection with no request coming
HEAD_TIMEOUT: Final = 10.0  # from the first byte of a request to the end of its head
IO_TIMEOUT: Final = 30.0  # each body chunk read, each write
BODY_TIMEOUT: Final = 60.0  # a whole request body
_READ: Final = 64 * 1024
logger = logging.getLogger("meshtalk.http")


class _Closed(OSError):
    """The connection is over (the client left, broke the protocol, or was too slow); an
    OSError, as ASGI asks of a send on a closed connection."""


class AsgiServer:
    """Serves `app` on listening sockets until cancelled."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.connections = 0

    async def serve(self, sock: socket.socket) -> None:
        """Accept on `sock` (bound and listening) until cancelled."""
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        await trio.serve_listeners(self._connection, [listener])

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            async with stream:
                if self.connections > MAX_CONNECTIONS:
                    await _refuse(stream)
                    return
                await _Connection(self._app, stream).run()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # _Closed is an OSError too
        except Exception:
            logger.exception("an HTTP connection failed; the API goes on")
        finally:
            self.connections -= 1


async def _refuse(stream: trio.SocketStream) -> None:
    body = b'{"error": {"code": 500, "type": "NodeError", "message": "too many connections"}}'
    head = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    head += b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
    with trio.move_on_after(IO_TIMEOUT):
        await stream.send_all(head + body)


def _address(sock: Any) -> tuple[str, int] | None:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return None
    return str(host), int(port)


class _Connection:
    """One client connection: requests one after another (keep-alive)."""

    def __init__(self, app: ASGIApp, stream: trio.SocketStream) -> None:
        self._app = app
        self._stream = stream
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._client = _address(stream.socket)
        local = stream.socket.getsockname()
        self._server = (str(local[0]), int(local[1]))
        self.served = 0  # requests so far: the first one must start within HEAD_TIMEOUT
        self.no_drain = False  # answered a client waiting for 100-continue: it sends no body

    async def run(self) -> None:
        while True:
            try:
                event = await self._request_head()
            except h11.RemoteProtocolError as exc:
                await self._error(exc.error_status_hint, "the request is not valid HTTP/1.1")
                return
            if not isinstance(event, h11.Request):
                return  # the client closed between requests
            await _Exchange(self, event).run()
            self.served += 1
            if self._h11.their_state is h11.SEND_BODY and not self.no_drain:
                await self._drain()
            if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
                return  # a body left unread, an answer cut short, or Connection: close
            self._h11.start_next_cycle()

    async def _drain(self) -> None:
        """Read past a body the app did not read (a GET's empty one, or a refused upload),
        up to MAX_DRAIN bytes, so that the connection can serve the next request."""
        left = MAX_DRAIN
        while left > 0:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError:
                raise _Closed from None
            if event is h11.NEED_DATA:
                await self.read(trio.current_time() + IO_TIMEOUT)
            elif isinstance(event, h11.Data):
                left -= len(event.data)
            else:
                return

    async def _request_head(self) -> h11.Request | None:
        """The next request's head (None when the client closes first)."""
        deadline = trio.current_time() + (IDLE_TIMEOUT if self.served else HEAD_TIMEOUT)
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                if self._h11.their_state is h11.IDLE and not self._h11.trailing_data[0]:
                    timeout = deadline  # nothing of the next request yet: idle keep-alive
                else:
                    timeout = min(deadline, trio.current_time() + HEAD_TIMEOUT)
                    deadline = timeout
                await self.read(timeout)
                continue
            if isinstance(event, h11.Request):
                return event
            return None  # ConnectionClosed, or PAUSED at a close

    async def read(self, deadline: float) -> None:
        """Feed h11 the next bytes; _Closed when the deadline passes first."""
        with trio.move_on_at(deadline):
            data = await self._stream.receive_some(_READ)
            self._h11.receive_data(data)  # b"": the client closed its side
            return
        raise _Closed

    async def write(self, *events: Any) -> None:
        data = b"".join(self._h11.send(e) or b"" for e in events)
        with trio.move_on_after(IO_TIMEOUT):
            await self._stream.send_all(data)
            return
        raise _Closed

    async def _error(self, status: int, message: str) -> None:
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        error = {"code": 400, "type": "ConfigError", "message": message}
        data = json.dumps({"error": error}).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(data))),
                   ("connection", "close")]  # fmt: skip
        with contextlib.suppress(h11.LocalProtocolError):
            await self.write(h11.Response(status_code=status, headers=headers), h11.Data(data=data),
                             h11.EndOfMessage())  # fmt: skip


class _Exchange:
    """One request and its response, as ASGI's receive and send."""

    def __init__(self, connection: _Connection, request: h11.Request) -> None:
        self._connection = connection
        self._request = request
        self._body_done = False
        self._disconnected = False
        self._head: h11.Response | None = None
        self._finished = False
        self._body_deadline = trio.current_time() + BODY_TIMEOUT

    def _scope(self) -> dict[str, Any]:
        request, connection = self._request, self._connection
        raw_path, _, query = request.target.partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": request.http_version.decode("ascii"),
            "method": request.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": list(request.headers),  # h11 gives the names in lower case
            "client": connection._client,
            "server": connection._server,
        }

    async def run(self) -> None:
        try:
            await self._connection._app(self._scope(), self.receive, self.send)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ClientDisconnect):
            raise _Closed from None  # our send's "the client disconnected", as Starlette says it
        except Exception:
            logger.exception("the HTTP app failed on %s", self._request.target[:200])
            if self._head is None:
                await self._connection._error(500, "internal error")
            raise _Closed from None
        if not self._finished:
            raise _Closed  # the app ended without a whole answer: the client sees a cut

    def _drainable(self) -> bool:
        """Whether the unread rest of the body is small enough to read past afterwards."""
        if self._connection.no_drain:
            return False
        for name, value in self._request.headers:
            if name == b"content-length":
                return int(value) <= MAX_DRAIN  # h11 checked it is a number
            if name == b"transfer-encoding":
                return False  # chunked: no length known in advance
        return True  # no body

    async def receive(self) -> dict[str, Any]:
        """The body in chunks, then (once the client goes away) a disconnect."""
        connection = self._connection
        while not self._body_done:
            if connection._h11.client_is_waiting_for_100_continue:
                await connection.write(h11.InformationalResponse(status_code=100, headers=[]))
            try:
                event = connection._h11.next_event()
            except h11.RemoteProtocolError:
                self._disconnected = True
                raise _Closed from None
            if event is h11.NEED_DATA:
                try:
                    await connection.read(
                        min(self._body_deadline, trio.current_time() + IO_TIMEOUT)
                    )
                except _Closed:
                    self._disconnected = True  # nothing more goes out on this connection
                    raise
            elif isinstance(event, h11.Data):
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            else:
                raise _Closed
        if not self._disconnected:
            await self._wait_for_hang_up()
        return {"type": "http.disconnect"}

    async def _wait_for_hang_up(self) -> None:
        """Return once the client closed the connection (or broke it)."""
        try:
            data = await self._connection._stream.receive_some(_READ)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            data = b""
        if data:  # a pipelined next request: keep it, and the client is still there
            self._connection._h11.receive_data(data)
            await trio.sleep_forever()
        self._disconnected = True

    async def send(self, message: MutableMapping[str, Any]) -> None:
        """ASGI's send: the response head is held until its first body part, so that a small
        answer is one write."""
        if self._disconnected:
            raise OSError("the client disconnected")
        kind = message["type"]
        if kind == "http.response.start":
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self._head = h11.Response(status_code=int(message["status"]), headers=headers)
            return
        if self._finished and self._request.method == b"HEAD":
            raise _Closed("the answer to HEAD is complete")  # ends a streaming body
        if kind != "http.response.body" or self._head is None or self._finished:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        events: list[Any] = []
        h11_state = self._connection._h11
        if self._head is not None and h11_state.our_state is h11.SEND_RESPONSE:
            if h11_state.client_is_waiting_for_100_continue:
                self._connection.no_drain = True  # it will not send the body now: close after
            if not self._body_done and not self._drainable():
                headers = [*self._head.headers.raw_items(), (b"connection", b"close")]
                self._head = h11.Response(status_code=self._head.status_code, headers=headers)
            events.append(self._head)  # with close, the client sends its next request anew
        body = message.get("body", b"")
        head_only = self._request.method == b"HEAD"  # the head, then the end: nothing streams
        if body and not head_only:
            events.append(h11.Data(data=body))
        if head_only or not message.get("more_body", False):
            events.append(h11.EndOfMessage())
            self._finished = True
        try:
            await self._connection.write(*events)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._disconnected = True
            raise OSError("the client disconnected") from exc
