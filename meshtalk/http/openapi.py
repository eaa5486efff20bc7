"""The OpenAPI 3.1 document of the local HTTP API (`GET /v1/openapi.json`), from the route
table, so it lists exactly what is served."""

from __future__ import annotations

import re
from typing import Any, Final

from .._version import __version__
from .routes import QUERY_TYPES, ROUTES, BodyField, Route

__all__ = ["openapi_document"]

_JSON_TYPES: Final = {str: "string", int: "integer", float: "number", bool: "boolean",
                      list: "array", dict: "object"}  # fmt: skip

_ERROR: Final = {
    "description": "a MeshtalkError: its code and type are the control socket's (docs/control.md)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

# Routes outside the operation table: (method, path, summary, query, body fields).
_OTHERS: Final[tuple[tuple[str, str, str, tuple[str, ...], tuple[BodyField, ...]], ...]] = (
    ("GET", "/v1/events", "Server-Sent Events: message (id = cursor), status, peer; resume "
     "with Last-Event-ID", ("after",), ()),
    ("POST", "/v1/pairing/offers", "offer pairing: answers with the code to give the other "
     "node", (), (BodyField("ttl", float), BodyField("name", str))),
    ("GET", "/v1/pairing/offers/{code}", "the offer's outcome: the new contact once paired "
     "(202 while it waits up to `wait` s)", ("wait",), ()),
    ("DELETE", "/v1/pairing/offers/{code}", "withdraw an offer", (), ()),
    ("GET", "/v1/openapi.json", "this document", (), ()),
    ("GET", "/v1/export/{conversation}", "the control operation `export`: a conversation's "
     "verifiable transcript as a file (application/octet-stream; `meshtalk verify` checks it); "
     "X-Meshtalk-Messages, -Kind, -Unsigned headers", (), ()),
    ("POST", "/agent/demo/room", "hosted-room shape: make a room, answers {roomId}", (),
     (BodyField("name", str, True),)),
    ("POST", "/agent/rooms/{room}/messages", "hosted-room shape: post; sender is a display "
     "label only", (), (BodyField("sender", str), BodyField("content", str, True))),
    ("GET", "/agent/rooms/{room}/history", "hosted-room shape: messages after `cursor`, and "
     "nextCursor", ("cursor", "limit"), ()),
)  # fmt: skip


def _operation(
    method: str,
    path: str,
    summary: str,
    query: tuple[str, ...],
    body: tuple[BodyField, ...],
    op: str | None = None,
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False,
         "schema": {"type": _JSON_TYPES[QUERY_TYPES.get(name, str)]}}
        for name in query
    ]  # fmt: skip
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "parameters": parameters,
        "responses": {"200": {"description": "the result, as JSON"}, "default": _ERROR},
    }
    if op is not None:
        operation["description"] = f"The control operation `{op}` (docs/control.md)."
    if body or method in ("POST", "PUT"):
        schema = {
            "type": "object",
            "properties": {f.name: {"type": _JSON_TYPES[f.kind], "description": f.description}
                           for f in body},
            "required": [f.name for f in body if f.required],
        }  # fmt: skip
        operation["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    return operation


def _route(route: Route) -> tuple[str, str, dict[str, Any]]:
    made = _operation(route.method, route.path, route.summary, route.query, route.body, route.op)
    return route.path, route.method.lower(), made


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    paths: dict[str, dict[str, Any]] = {}
    entries = [_route(r) for r in ROUTES]
    entries += [(path, method.lower(), _operation(method, path, summary, query, body))
                for method, path, summary, query, body in _OTHERS]  # fmt: skip
    for path, method, operation in entries:
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meshtalk local HTTP API",
            "version": __version__,
            "description": "The node's control operations over HTTP on loopback; see "
            "docs/http.md. Every request needs 'Authorization: Bearer <key>' "
            "(`meshtalk http-key` prints it).",
        },
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "integer"},
                                "type": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
    }
