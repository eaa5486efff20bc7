"""The `/v1/` routes of the local HTTP API: each is one control operation (docs/control.md).

A route names its operation, where its arguments come from (the path, typed query parameters,
the JSON body) and which arguments it fixes. The handlers behind the routes are the control
socket's own (`control/operations.py`), so both speak the same operations and errors; the
OpenAPI document (`openapi.py`) is written from this table too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ..protocol.errors import ConfigError

__all__ = [
    "QUERY_TYPES", "ROUTES", "BodyField", "Route", "may_wait", "query_arguments", "whole_number",
]  # fmt: skip

QUERY_TYPES: Final[dict[str, type]] = {
    "after": int,
    "limit": int,
    "wait": float,
    "peek": bool,
    "conversation": str,
    "consumer": str,
    "reader": str,
}
"""Every query parameter a route takes, with the type its text is read as."""

_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


@dataclass(frozen=True)
class BodyField:
    """A field of a route's JSON body (for the OpenAPI document; the handler checks it)."""

    name: str
    kind: type
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Route:
    """One endpoint: `path` params become the op arguments `path_args` names."""

    method: str
    path: str
    op: str
    summary: str
    query: tuple[str, ...] = ()
    body: tuple[BodyField, ...] = ()
    path_args: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    # what the result holds that a client may only partly see (labels.py): "messages" (stored
    # messages, labelled for agents) or "conversations"; "" for anything else
    shown: str = ""


_WAITING: Final[dict[str, Any]] = {
    "receive": lambda args: bool(args.get("wait")),
    "send": lambda args: args.get("wait", True) is not False,
    "pair.join": None,
    "invite.join": None,
    "room.join": None,
    "room.invite": None,
}


def whole_number(text: str) -> int | None:
    """`text` as a cursor or count: ASCII digits, below 2**63 (SQLite's integers); else None."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def may_wait(op: str, args: dict[str, Any]) -> bool:
    """Whether an operation with these arguments may wait long (for a peer, a message): then
    it is cancelled when its client hangs up."""
    if op not in _WAITING:
        return False
    check = _WAITING[op]
    return check is None or bool(check(args))


def query_arguments(route: Route, query: list[tuple[str, str]]) -> dict[str, Any]:
    """A route's query parameters as typed op arguments; ConfigError names a bad one."""
    found: dict[str, Any] = {}
    for name, text in query:
        if name not in route.query:
            takes = ", ".join(route.query) or "none"
            raise ConfigError(f"unknown query parameter {name!r} (this route takes: {takes})")
        kind = QUERY_TYPES[name]
        try:
            if kind is bool:
                if text.lower() not in _TRUE | _FALSE:
                    raise ValueError(text)
                found[name] = text.lower() in _TRUE
            elif kind is str:
                found[name] = text
            else:
                value = kind(text)
                if value != value or not -(2**63) < value < 2**63:  # NaN, infinity, too big
                    raise ValueError(text)
                found[name] = value
        except ValueError:
            wanted = "true or false" if kind is bool else "a number"
            raise ConfigError(
                f"query parameter {name!r} must be {wanted}, not {text[:40]!r}"
            ) from None
    return found


def _body(*fields: tuple[Any, ...] | BodyField) -> tuple[BodyField, ...]:
    """Body fields from (name, type[, required[, description]]) tuples."""
    return tuple(f if isinstance(f, BodyField) else BodyField(*f) for f in fields)


_SEND = _body(
    ("text", str, True),
    ("wait", bool, False, "wait until delivered (default true)"),
    ("timeout", float, False, "seconds to wait; the message stays queued after"),
    ("id", str, False, "32 hex digits you chose, so that a retry is not sent twice"),
)
_HISTORY = ("after", "limit", "reader")
_WAIT = ("timeout", float, False, "seconds to wait")

ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/v1/whoami", "whoami", "this node: peer ID, name, addresses"),
    Route("GET", "/v1/status", "status", "the running node: addresses, reach, outbox"),
    Route("GET", "/v1/peers", "peers", "contacts and discovered peers, online or not"),
    Route("GET", "/v1/contacts", "contacts.list", "every contact"),
    Route("POST", "/v1/contacts", "contacts.add", "add a trusted contact by peer ID",
          body=_body(("peer", str, True), ("name", str), ("addresses", list))),
    Route("DELETE", "/v1/contacts/{ref}", "contacts.remove", "forget a contact",
          path_args={"ref": "ref"}),
    Route("PUT", "/v1/contacts/{ref}/name", "contacts.rename", "rename a contact",
          body=_body(("name", str, True)), path_args={"ref": "ref"}),
    Route("PUT", "/v1/contacts/{ref}/trust", "contacts.trust", "trust or block a contact",
          body=_body(("trust", str, True, "trusted or blocked")), path_args={"ref": "ref"}),
    Route("POST", "/v1/messages", "send", "send a message to a contact or room",
          body=_body(("to", str, True, "contact name, peer ID or room name"), *_SEND,
                     ("conversation", str, False, "a conversation id (32 hex digits)"))),
    Route("GET", "/v1/messages", "receive",
          "received messages after a cursor; waits up to `wait` s for one (a long poll)",
          query=("after", "consumer", "conversation", "wait", "limit")),
    Route("GET", "/v1/inbox", "inbox", "messages a reader has not seen (marks them read)",
          query=("reader", "peek", "limit"), shown="messages"),
    Route("GET", "/v1/history", "history", "messages of every conversation",
          query=("conversation", *_HISTORY), shown="messages"),
    Route("GET", "/v1/conversations", "conversations", "every conversation",
          shown="conversations"),
    Route("GET", "/v1/conversations/{conversation}/messages", "history",
          "messages of one conversation (contact, room or id)", query=_HISTORY,
          path_args={"conversation": "conversation"}, shown="messages"),
    Route("GET", "/v1/rooms", "room.list", "every room held here"),
    Route("POST", "/v1/rooms", "room.create", "a new room with this node as its admin",
          body=_body(("name", str, True))),
    Route("POST", "/v1/rooms/join", "room.join", "accept a room invite, or join by token",
          body=_body(("room", str, True, "the room's name or a room token"), _WAIT)),
    Route("GET", "/v1/room-invites", "room.invites", "room invites contacts sent"),
    Route("GET", "/v1/rooms/{room}", "room.show", "one room and its members",
          path_args={"room": "room"}),
    Route("GET", "/v1/rooms/{room}/members", "room.members", "a room's members",
          path_args={"room": "room"}),
    Route("POST", "/v1/rooms/{room}/members", "room.invite", "invite a contact (admins)",
          body=_body(("contact", str, True), _WAIT), path_args={"room": "room"}),
    Route("DELETE", "/v1/rooms/{room}/members/{member}", "room.remove",
          "remove a member (admins)", path_args={"room": "room", "member": "member"}),
    Route("POST", "/v1/rooms/{room}/admins", "room.promote", "make a member an admin",
          body=_body(("member", str, True)), path_args={"room": "room"}),
    Route("DELETE", "/v1/rooms/{room}/admins/{member}", "room.demote", "an admin no more",
          path_args={"room": "room", "member": "member"}),
    Route("PUT", "/v1/rooms/{room}/name", "room.rename", "rename a room (admins)",
          body=_body(("name", str, True)), path_args={"room": "room"}),
    Route("POST", "/v1/rooms/{room}/leave", "room.leave", "leave a room (its history stays)",
          path_args={"room": "room"}),
    Route("POST", "/v1/rooms/{room}/tokens", "room.token",
          "a token that pairs its holder and joins the room",
          body=_body(("ttl", float, False, "seconds it is valid (default 1 day)")),
          path_args={"room": "room"}),
    Route("GET", "/v1/rooms/{room}/messages", "history", "a room's messages",
          query=_HISTORY, path_args={"room": "conversation"}, shown="messages"),
    Route("POST", "/v1/rooms/{room}/messages", "send", "post to a room",
          body=_SEND, path_args={"room": "to"}),
    Route("POST", "/v1/pairing/join", "pair.join", "pair with the code another node offers",
          body=_body(("code", str, True), ("name", str), _WAIT)),
    Route("POST", "/v1/invites", "invite.create", "a one-use invite token",
          body=_body(("ttl", float, False, "seconds it is valid"))),
    Route("POST", "/v1/invites/join", "invite.join", "pair (and join a room) with a token",
          body=_body(("token", str, True), ("name", str), _WAIT)),
    Route("POST", "/v1/prune", "prune", "forget old delivered and read messages",
          body=_body(("older_than_days", float), ("max_mib", float), ("dry_run", bool))),
    Route("POST", "/v1/shutdown", "shutdown", "stop the node"),
)  # fmt: skip
