"""The control protocol between local tools and a running node (sans-I/O).

Over the profile's Unix socket, each message is an unsigned-varint length and a msgpack map
(the same framing as the peer protocol, capped at `MAX_CONTROL_MESSAGE`). The client sends one
request at a time on a connection and reads until the final reply:

    request  {"v": 1, "id": 7, "op": "send", "args": {"to": "bob", "text": "hi"}}
    event    {"id": 7, "event": {...}}                       (zero or more, for waiting ops)
    reply    {"id": 7, "ok": true, "result": ...}
    error    {"id": 7, "ok": false, "error": {"code": 502, "type": "UnknownPeer",
                                              "message": "no contact is named 'bob'..."}}

Values are plain (str, int, float, bool, None, lists, str-keyed maps) so that `--json` can
print them as they are. Errors carry `MeshtalkError` codes and come back as the same types.
docs/control.md lists every operation.
"""

from __future__ import annotations

from typing import Any, Final

from .codec import packb, unpackb_strict
from .errors import MalformedFrame, MeshtalkError, UnsupportedVersion, error_from_code
from .frames import encode_uvarint

__all__ = [
    "CONTROL_VERSION",
    "CONTROL_SOCKET_NAME",
    "MAX_CONTROL_MESSAGE",
    "encode_control",
    "decode_control",
    "make_request",
    "read_request",
    "make_reply",
    "make_error",
    "make_event",
    "read_reply",
]

CONTROL_VERSION: Final = 1
CONTROL_SOCKET_NAME: Final = "control.sock"
MAX_CONTROL_MESSAGE: Final = 8 * 1024 * 1024


def encode_control(message: dict[str, Any]) -> bytes:
    """One framed control message."""
    body = packb(message)
    return encode_uvarint(len(body)) + body


def decode_control(body: bytes) -> dict[str, Any]:
    """Decode one control message body; it must be a map."""
    message = unpackb_strict(body, MalformedFrame, "control message")
    if not isinstance(message, dict):
        raise MalformedFrame("a control message must be a map")
    return message


def make_request(request_id: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """A request for operation `op`."""
    return {"v": CONTROL_VERSION, "id": request_id, "op": op, "args": args}


def read_request(message: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """Check a request: returns (id, op, args)."""
    request_id, op, args = message.get("id"), message.get("op"), message.get("args", {})
    if type(request_id) is not int or not isinstance(op, str) or not isinstance(args, dict):
        raise MalformedFrame("a control request needs an integer id, an op and an args map")
    if type(message.get("v")) is not int or message.get("v") != CONTROL_VERSION:  # not 1.0, True
        raise UnsupportedVersion(
            f"control protocol version {message.get('v')!r} is not supported; this node speaks "
            f"version {CONTROL_VERSION} (is the meshtalk command from another release?)"
        )
    return request_id, op, args


def make_reply(request_id: int, result: Any) -> dict[str, Any]:
    """The final, successful answer."""
    return {"id": request_id, "ok": True, "result": result}


def make_error(request_id: int, error: MeshtalkError) -> dict[str, Any]:
    """The final answer for a failed request."""
    detail = {"code": error.code, "type": type(error).__name__, "message": str(error)}
    return {"id": request_id, "ok": False, "error": detail}


def make_event(request_id: int, event: dict[str, Any]) -> dict[str, Any]:
    """A progress event before the final answer."""
    return {"id": request_id, "event": event}


def read_reply(message: dict[str, Any]) -> tuple[bool, Any]:
    """(final, value): an event's data, a reply's result; an error reply is raised."""
    if "event" in message:
        return False, message["event"]
    if message.get("ok") is True:
        return True, message.get("result")
    error = message.get("error")
    if not isinstance(error, dict):
        raise MalformedFrame("a control reply must hold a result, an event or an error")
    code, text = error.get("code"), error.get("message")
    raise error_from_code(code if isinstance(code, int) else 1, str(text))
