"""Room routes in the shape agent code written for hosted REST rooms already uses.

    POST /agent/demo/room               {"name": ...}                  -> {"roomId": ...}
    POST /agent/rooms/{room}/messages   {"sender": ..., "content": ...} -> the message
    GET  /agent/rooms/{room}/history?cursor=C  -> {"messages": [...], "nextCursor": C2}

Such code runs against a node with only its base URL and key changed. What differs is who
vouches for a message: here it is signed by the node that posted it, so `sender` in a post is
a display label only (kept as `label`). In history, `sender` is the verified author's name (as
the room's membership log or the contacts give it), `from` its peer ID, and `label` what the
poster's client called itself; only this node's own messages show their label as `sender`
(this node's clients chose it), so two agents on one node, and code that skips its own posts
by name, tell their posts apart. The cursor is the store cursor: each history page returns the
messages after it, in the order this node stored them, and `nextCursor` to ask for the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..control.arguments import MAX_LABEL
from ..control.server import Operation
from ..protocol.errors import ConfigError
from .calls import answer, json_body, run_operation
from .labels import Labels
from .routes import whole_number

__all__ = ["agent_room_routes"]

_PAGE: Final = 100


def _text_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"the body needs {name!r}: non-empty text")
    return value


def _cursor(request: Request) -> int:
    text = request.query_params.get("cursor", "").strip()
    if text in ("", "null", "None"):
        return 0
    cursor = whole_number(text)
    if cursor is None:
        raise ConfigError(f"cursor must be the nextCursor a history page gave, not {text[:40]!r}")
    return cursor


def _limit(request: Request) -> int:
    text = request.query_params.get("limit", "").strip()
    if not text:
        return _PAGE
    limit = whole_number(text)
    if limit is None or not 1 <= limit <= 1000:
        raise ConfigError("limit must be from 1 to 1000")
    return limit


def _sender(view: dict[str, Any]) -> str:
    """Who wrote it: the verified author's name, or for this node's own post its label."""
    own_label = None if view["content_from_peer"] else view.get("label")
    return str(own_label or view["author_name"] or view["author"])


def agent_message(view: dict[str, Any]) -> dict[str, Any]:
    """A labelled message view in the hosted-room shape, with the verified fields beside it."""
    shaped = {
        "sender": _sender(view),
        "content": view["text"],
        "id": view["id"],
        "cursor": view["cursor"],
        "timestamp": view["timestamp_ms"],
        "from": view["author"],
        "label": view.get("label"),
        "verified": True,
        "room": view["room"],
        "status": view["status"],
        "content_from_peer": view["content_from_peer"],
    }
    if "notice" in view:
        shaped["notice"] = view["notice"]
    return shaped


def agent_room_routes(operations: dict[str, Operation], labels: Labels) -> list[Route]:
    """The /agent/ routes, served by the control operations."""

    async def room_id(request: Request, ref: str) -> str:
        shown = await run_operation(request, operations["room.show"], {"room": ref})
        return str(shown["id"])

    async def create(request: Request) -> Any:
        name = _text_field(await json_body(request), "name")
        room = await run_operation(request, operations["room.create"], {"name": name})
        return {"roomId": room["id"], "name": room["name"]}

    async def post(request: Request) -> Any:
        body = await json_body(request)
        content = _text_field(body, "content")
        label = _text_field(body, "sender", required=False)
        if label is not None and len(label) > MAX_LABEL:
            raise ConfigError(f"sender is a label of at most {MAX_LABEL} characters")
        room = await room_id(request, request.path_params["room"])
        args = {"to": room, "text": content, "wait": False, "label": label, "via": "agent"}
        sent = await run_operation(request, operations["send"], args)
        return {"id": sent["id"], "roomId": room, "sender": label, "content": content,
                "queued": True}  # fmt: skip

    async def history(request: Request) -> Any:
        after, limit = _cursor(request), _limit(request)
        room = await room_id(request, request.path_params["room"])
        args = {"conversation": room, "after": after, "limit": limit}
        views = await run_operation(request, operations["history"], args)
        next_cursor = views[-1]["cursor"] if views else after  # past hidden ones too
        return {"messages": [agent_message(v) for v in labels.messages(views)],
                "nextCursor": next_cursor, "roomId": room}  # fmt: skip

    def endpoint(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def serve(request: Request) -> Response:
            return await answer(handler(request))

        return serve

    return [
        Route("/agent/demo/room", endpoint(create), methods=["POST"]),
        Route("/agent/rooms/{room}/messages", endpoint(post), methods=["POST"]),
        Route("/agent/rooms/{room}/history", endpoint(history), methods=["GET"]),
    ]
