"""How a `MeshtalkError` looks over HTTP: a status code, and `{"error": {code, type, message}}`.

The code and type are the control socket's (protocol/errors.py), so a client handles a refusal
the same way whichever way it talks to the node; the HTTP status only says what kind it is.
"""

from __future__ import annotations

from typing import Final

from starlette.responses import JSONResponse

from ..protocol.errors import (
    AccessDenied,
    CodeExpired,
    ConfigError,
    ControlTimeout,
    DeliveryFailed,
    DeliveryTimeout,
    GuardTripped,
    InvalidCode,
    MeshtalkError,
    NodeClosed,
    NoPairingOffer,
    NotAMember,
    NotRoomAdmin,
    PairingError,
    PeerUnreachable,
    RoomError,
    UnknownPeer,
    UnknownRoom,
)

__all__ = ["error_response", "http_status"]

# The first class an error is an instance of gives its status; anything else is a 500.
_STATUSES: Final[tuple[tuple[type[MeshtalkError], int], ...]] = (
    (AccessDenied, 401),
    (UnknownPeer, 404),
    (UnknownRoom, 404),
    (NoPairingOffer, 404),
    (ConfigError, 400),
    (InvalidCode, 400),
    (CodeExpired, 410),
    (PairingError, 409),
    (NotRoomAdmin, 403),
    (NotAMember, 403),
    (GuardTripped, 429),
    (DeliveryTimeout, 504),
    (ControlTimeout, 504),
    (DeliveryFailed, 502),
    (PeerUnreachable, 502),
    (NodeClosed, 503),
    (RoomError, 409),
)


def http_status(error: MeshtalkError) -> int:
    """The HTTP status that says what kind of error `error` is."""
    for kind, status in _STATUSES:
        if isinstance(error, kind):
            return status
    return 500


def error_response(
    error: MeshtalkError, status: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error response for `error`."""
    body = {"error": {"code": error.code, "type": type(error).__name__, "message": str(error)}}
    return JSONResponse(body, status_code=status or http_status(error), headers=headers)
