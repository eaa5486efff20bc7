"""Running one control operation for one HTTP request: its arguments, its end, its answer.

The JSON body is read with a size cap before it is parsed. An operation that waits (a long
poll, a send that waits for delivery, pairing) is cancelled when the client hangs up, so a
`receive` whose client went away does not move a read position it never showed.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, Final

import trio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..control.server import Operation
from ..protocol.errors import ConfigError, MeshtalkError, NodeError, unwrap_group
from .errors import error_response

__all__ = [
    "MAX_BODY", "AsgiEndpoint", "ClientGone", "answer", "json_body", "jsonable", "run_operation",
]  # fmt: skip

MAX_BODY: Final = 4 * 1024 * 1024  # a 1 MiB message JSON-escaped, with room to spare
logger = logging.getLogger("meshtalk.http")


class AsgiEndpoint:
    """An ASGI function as a route's endpoint, for an answer written as it goes (Starlette
    takes a plain function as one that gets a Request and returns a Response)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class ClientGone(Exception):
    """The client hung up before its operation finished."""


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is {}); ConfigError when it is not one."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ConfigError(f"the request body is over {MAX_BODY // 1024 // 1024} MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ConfigError(f"the request body is over {MAX_BODY // 1024 // 1024} MiB")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        return {}
    try:
        value = json.loads(data, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise ConfigError("the request body is not JSON (send a JSON object)") from None
    if not isinstance(value, dict):
        raise ConfigError("the request body must be a JSON object of the operation's arguments")
    return value


def _not_json(constant: str) -> Any:
    """NaN and Infinity are not JSON, though Python's parser takes them."""
    raise ValueError(f"{constant} is not JSON")


async def _ignore(event: dict[str, Any]) -> None:
    """Progress events have no place in a plain HTTP answer."""


async def run_operation(
    request: Request, operation: Operation, args: dict[str, Any], *, watch: bool = True
) -> Any:
    """The operation's result; ClientGone if the client hung up first (the operation is then
    cancelled, as the control socket cancels a request whose client went away). `watch=False`
    for one that cannot wait long: it skips the watching task (about 0.2 ms a request)."""
    if not watch:
        return await operation(args, _ignore)
    result: Any = None
    gone = False

    async def watch_for_hang_up(cancel: trio.CancelScope) -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        cancel.cancel()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_for_hang_up, nursery.cancel_scope)
            result = await operation(args, _ignore)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise unwrap_group(group) from None
    if gone:
        raise ClientGone
    return result


def jsonable(value: Any) -> Any:
    """A result as JSON values: bytes become base64 text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


async def answer(work: Any) -> Response:
    """Await `work` (a coroutine giving a JSON value or a Response) as the HTTP answer: a
    MeshtalkError is a JSON error, anything else is logged and a 500; never raised on."""
    try:
        result = await work
    except ClientGone:
        return Response(status_code=499)  # nobody reads it
    except (OSError, ClientDisconnect):
        raise  # the connection is gone or broken: nothing to answer
    except MeshtalkError as exc:
        return error_response(exc)
    except Exception as exc:
        logger.exception("HTTP request failed; the node goes on")
        return error_response(NodeError(f"internal error: {exc!r}"))
    if isinstance(result, Response):
        return result
    return JSONResponse(jsonable(result))
