"""GET /v1/export/{conversation}: a conversation's verifiable transcript, as a file.

The `export` operation emits the transcript's summary, then the file a page at a time
(peer/transcripts.py); this route writes the pages as they come, so neither the node nor the
client holds the whole conversation. The summary is checked first: a conversation with a peer
that is not a trusted contact is a 404 (labels.py), before any byte. A transcript that fails
part way (messages pruned meanwhile) ends the connection without the last chunk, so the client
sees an incomplete body, never a short file that looks whole.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..control.server import Operation
from ..protocol.errors import ConfigError, MeshtalkError, NodeError, unwrap_group
from .calls import AsgiEndpoint
from .errors import error_response
from .labels import Labels

__all__ = ["export_route"]

logger = logging.getLogger("meshtalk.http")

_Events = trio.MemoryReceiveChannel[dict[str, Any]]


async def _run(operation: Operation, ref: str, events: trio.MemorySendChannel[Any]) -> None:
    """The operation, its events into `events`, then its error (if any) as the last one."""
    async with events:
        try:
            await operation({"conversation": ref}, events.send)
        except MeshtalkError as exc:
            await events.send({"error": exc})
        except Exception as exc:  # the node goes on; the client sees a cut or a 500
            logger.exception("exporting a transcript failed; the node goes on")
            await events.send({"error": NodeError(f"internal error: {exc!r}")})


async def _answer(events: _Events, labels: Labels, scope: Scope, receive: Receive,
                  send: Send) -> None:  # fmt: skip
    """The summary's checks, then the file's chunks as the answer's body."""
    try:
        first = await events.receive()
    except trio.EndOfChannel:  # cannot happen: the operation emits or fails first
        first = {"error": NodeError("the export ended before it began")}
    error = first.get("error")
    if error is None:
        try:
            summary = labels.transcript(first["transcript"])
        except MeshtalkError as exc:
            error = exc
    if error is not None:
        await error_response(error)(scope, receive, send)
        return
    name = f"{summary['conversation'][:12]}.transcript"
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/octet-stream"),
        (b"content-disposition", f'attachment; filename="{name}"'.encode()),
        (b"x-meshtalk-kind", str(summary["kind"]).encode()),
        (b"x-meshtalk-messages", str(summary["messages"]).encode()),
        (b"x-meshtalk-unsigned", str(summary["unsigned"]).encode()),
    ]})  # fmt: skip
    async for event in events:
        if "error" in event:
            return  # no last chunk: the client sees the body cut, not a whole short file
        await send({"type": "http.response.body", "body": event["chunk"], "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def export_route(operation: Operation, labels: Labels) -> Route:
    """The route, running `operation` (the control socket's `export`)."""

    async def export(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method == "HEAD":  # the summary comes from a whole export
            refused = ConfigError("GET the transcript, not HEAD")
            await error_response(refused, 405)(scope, receive, send)
            return
        to_answer, events = trio.open_memory_channel[dict[str, Any]](0)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_run, operation, request.path_params["conversation"],
                                   to_answer)  # fmt: skip
                try:
                    await _answer(events, labels, scope, receive, send)
                finally:  # the answer ended (or the client left): the export stops with it
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None

    return Route("/v1/export/{conversation}", AsgiEndpoint(export), methods=["GET"])
