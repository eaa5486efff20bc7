"""The local HTTP API as an ASGI application (Starlette), served by `server.py`.

Every request passes the `Guard` first: its Host header must name this machine's loopback (a
web page that rebinds its own domain to 127.0.0.1 still sends its own name), and it must carry
the profile's API key as `Authorization: Bearer <key>`. No CORS headers are ever sent, so a
browser never lets another origin read an answer. Then each `/v1/` route runs its control
operation (`routes.py`); errors are JSON (`errors.py`), unknown routes too.
"""

from __future__ import annotations

import copy
import hmac
from typing import Any, Final

import trio
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..control.server import Operation
from ..protocol.errors import AccessDenied, ConfigError, NodeError
from . import routes as v1
from .agent_rooms import agent_room_routes
from .calls import AsgiEndpoint, answer, json_body, run_operation
from .errors import error_response
from .events import EventFeed
from .exports import export_route
from .labels import Labels
from .openapi import openapi_document
from .pairing import PairingOffers
from .routes import whole_number

__all__ = ["LOOPBACK_HOSTS", "Guard", "build_app"]

LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_EVENT_STREAMS: Final = 256
_MAX_WAIT: Final = 300.0


def host_name(header: str) -> str:
    """The host a Host header names, without its port ("[::1]:7747" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: the Host check, then the API key, before any route runs."""

    def __init__(self, app: ASGIApp, key: str, hosts: frozenset[str]) -> None:
        self.app = app
        self._expected = key.encode()
        self._hosts = hosts

    def _has_key(self, authorization: str) -> bool:
        scheme, _, token = authorization.strip().partition(" ")
        given = token.strip().encode("utf-8", "replace")  # the scheme is case-insensitive
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if host_name(headers.get("host", "")) not in self._hosts:
            refused = error_response(AccessDenied(
                "the Host header must name this machine's loopback (localhost or 127.0.0.1); "
                "the local API answers nothing else"), 403)  # fmt: skip
        elif not self._has_key(headers.get("authorization", "")):
            refused = error_response(
                AccessDenied("send the API key as 'Authorization: Bearer <key>'; "
                             "`meshtalk http-key` prints it"),
                401, {"WWW-Authenticate": 'Bearer realm="meshtalk"'},
            )  # fmt: skip
        else:
            await self.app(scope, receive, send)
            return
        await refused(scope, receive, send)


def _v1_endpoint(route: v1.Route, operation: Operation, labels: Labels) -> Any:
    async def work(request: Request) -> Any:
        args: dict[str, Any] = {}
        if route.method in ("POST", "PUT"):
            args.update(await json_body(request))
        args.update(v1.query_arguments(route, request.query_params.multi_items()))
        args.update({arg: request.path_params[name] for name, arg in route.path_args.items()})
        args.update(route.fixed)
        result = await run_operation(request, operation, args, watch=v1.may_wait(route.op, args))
        return labels.shown(route.shown, result)

    async def endpoint(request: Request) -> Response:
        return await answer(work(request))

    return endpoint


def build_app(
    operations: dict[str, Operation],
    labels: Labels,
    feed: EventFeed,
    offers: PairingOffers,
    *,
    key: str,
    hosts: frozenset[str] = LOOPBACK_HOSTS,
) -> Starlette:
    """The ASGI app: /v1/ routes, events, pairing offers, /agent/ room routes, OpenAPI."""
    document = openapi_document()

    async def openapi(request: Request) -> Any:
        return document

    routes: list[BaseRoute] = [
        Route(r.path, _v1_endpoint(r, operations[r.op], labels), methods=[r.method])
        for r in v1.ROUTES
    ]
    routes += [
        _events_route(feed),
        export_route(operations["export"], labels),
        *_offer_routes(offers),
        Route("/v1/openapi.json", plain(openapi), methods=["GET"]),
        *agent_room_routes(operations, labels),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard, key=key, hosts=hosts)],
        exception_handlers={404: _no_route, 405: _no_route},
    )


_WAIT_ONLY: Final = v1.Route("GET", "", "", "", query=("wait",))


def plain(handler: Any) -> Any:
    """An endpoint that answers with what `handler(request)` gives (calls.answer)."""

    async def endpoint(request: Request) -> Response:
        return await answer(handler(request))

    return endpoint


def _events_route(feed: EventFeed) -> Route:
    """GET /v1/events (events.py), at most MAX_EVENT_STREAMS at once."""
    streams = 0

    async def events(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal streams
        request = Request(scope, receive)
        given = request.query_params.get("after")
        after = whole_number(given) if given is not None else None
        if given is not None and after is None:
            refused = error_response(ConfigError("after must be a cursor (a whole number)"))
        elif request.method == "HEAD":  # a stream with no body would never end
            refused = error_response(ConfigError("GET the event stream, not HEAD"), 405)
        elif streams >= MAX_EVENT_STREAMS:
            refused = error_response(NodeError(f"{MAX_EVENT_STREAMS} event streams are open"), 503)
        else:
            cursor = feed.start_cursor(request.headers.get("last-event-id"), after)
            stream = StreamingResponse(feed.stream(cursor), media_type="text/event-stream",
                                       headers={"Cache-Control": "no-cache"})  # fmt: skip
            streams += 1
            try:  # counted around the whole response: the stream's end frees its place
                await stream(scope, receive, send)
            finally:
                streams -= 1
            return
        await refused(scope, receive, send)

    return Route("/v1/events", AsgiEndpoint(events), methods=["GET"])


def _offer_routes(offers: PairingOffers) -> list[Route]:
    """Pairing offers in two requests (pairing.py)."""

    async def offer(request: Request) -> Any:
        made = await offers.offer(await json_body(request))
        return {"code": made.code, "expires_ms": made.expires_ms}

    async def outcome(request: Request) -> Any:
        made = offers.find(request.path_params["code"])
        args = v1.query_arguments(_WAIT_ONLY, request.query_params.multi_items())

        async def wait(args: dict[str, Any], emit: Any) -> None:
            with trio.move_on_after(min(max(args.get("wait", 0.0), 0.0), _MAX_WAIT)):
                await made.done.wait()

        await run_operation(request, wait, args)
        if made.error is not None:
            raise copy.copy(made.error)  # not the same object each time: its traceback grows
        if not made.done.is_set():
            return JSONResponse({"paired": False, "code": made.code,
                                 "expires_ms": made.expires_ms}, status_code=202)  # fmt: skip
        return {"paired": True, "contact": made.contact}

    async def withdraw(request: Request) -> Any:
        made = offers.withdraw(request.path_params["code"])
        return {"withdrawn": True, "code": made.code}

    return [
        Route("/v1/pairing/offers", plain(offer), methods=["POST"]),
        Route("/v1/pairing/offers/{code}", plain(outcome), methods=["GET"]),
        Route("/v1/pairing/offers/{code}", plain(withdraw), methods=["DELETE"]),
    ]


async def _no_route(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    what = "no such route" if status == 404 else "this route does not take that method"
    message = f"{what}: {request.method} {request.url.path}; the routes are in /v1/openapi.json"
    return error_response(ConfigError(message), status)
