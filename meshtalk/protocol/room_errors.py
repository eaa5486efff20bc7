"""The errors of rooms (codes 900-999): their operations, membership logs and transcripts."""

from __future__ import annotations

from .error_classes import MeshtalkError

__all__ = [
    "RoomError",
    "InvalidRoomEntry",
    "NotAMember",
    "NotRoomAdmin",
    "UnknownRoom",
    "RoomFull",
    "InvalidTranscript",
]


class RoomError(MeshtalkError):
    """A room operation or a room's signed data was refused."""

    code = 900


class InvalidRoomEntry(RoomError):
    """A membership log entry is malformed, badly signed, or not for this room."""

    code = 901


class NotAMember(RoomError):
    """The peer is not a member of the room (or was not when it wrote the message)."""

    code = 902


class NotRoomAdmin(RoomError):
    """Only an admin of the room may change its membership or name."""

    code = 903


class UnknownRoom(RoomError):
    """No room with this id or name is held here; see `meshtalk room list`."""

    code = 904


class RoomFull(RoomError):
    """The room already has the most members it may have (64)."""

    code = 905


class InvalidTranscript(RoomError):
    """An exported transcript failed verification; the message says which entry and why."""

    code = 906
