"""Invite tokens (sans-I/O): what a node hands over so that another can pair with it, and
room tokens, which also name a room the holder joins once paired (docs/rooms.md).

    mt1<base64url(msgpack [peer_id, addresses, invite_id, secret, expires_ms])>
    mtr1<base64url(msgpack [peer_id, addresses, invite_id, secret, expires_ms, room_id])>

Both are one-time secrets: whoever holds one pairs with the node that made it (SPAKE2 with the
secret, protocol/pairing.py). Redeeming a room token is also the holder's consent to join the
room; the admin that made it invites the new contact as soon as the pairing ends.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Final

from .codec import packb, unpackb_strict
from .errors import InvalidCode, MalformedFrame, MeshtalkError
from .keys import PeerId, RandomBytes

__all__ = [
    "INVITE_PREFIX",
    "ROOM_TOKEN_PREFIX",
    "MAX_EXPIRES_MS",
    "MAX_INFO_ADDRESSES",
    "Invite",
    "RoomToken",
    "new_invite",
    "encode_invite",
    "parse_invite",
    "encode_room_token",
    "parse_room_token",
]

INVITE_PREFIX: Final = "mt1"
ROOM_TOKEN_PREFIX: Final = "mtr1"
MAX_EXPIRES_MS: Final = 2**63 - 1  # an invite's expiry, ms since the epoch: a signed 64-bit int
MAX_INFO_ADDRESSES: Final = 32
_MAX_TOKEN: Final = 4096
_ROOM_ID_LENGTH: Final = 16
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Invite:
    """A one-time invite: who to dial, and the secret to pair with."""

    peer_id: PeerId
    addresses: tuple[str, ...]
    invite_id: bytes
    secret: bytes
    expires_ms: int

    @property
    def nameplate(self) -> str:
        """Which invite the joiner answers (sent in the clear)."""
        return f"invite:{self.invite_id.hex()}"


@dataclass(frozen=True, slots=True)
class RoomToken:
    """An invite that also names the room its holder joins once paired."""

    invite: Invite
    room: bytes


def new_invite(
    peer_id: PeerId, addresses: list[str], expires_ms: int, random_bytes: RandomBytes
) -> Invite:
    """A fresh invite for this node's addresses, valid until `expires_ms`."""
    return Invite(
        peer_id,
        tuple(addresses[:MAX_INFO_ADDRESSES]),
        random_bytes(8),
        random_bytes(16),
        expires_ms,
    )


def _fields(invite: Invite) -> list[Any]:
    return [
        invite.peer_id.to_bytes(),
        list(invite.addresses),
        invite.invite_id,
        invite.secret,
        invite.expires_ms,
    ]


def _encode(prefix: str, fields: list[Any]) -> str:
    return prefix + base64.urlsafe_b64encode(packb(fields)).decode().rstrip("=")


def encode_invite(invite: Invite) -> str:
    """The token to hand over: `mt1` + base64url of a msgpack list (no spaces, copy-safe)."""
    return _encode(INVITE_PREFIX, _fields(invite))


def encode_room_token(token: RoomToken) -> str:
    """A room token: `mtr1` + base64url of the invite's fields and the room's id."""
    return _encode(ROOM_TOKEN_PREFIX, [*_fields(token.invite), token.room])


def _decode(token: str, prefix: str, length: int, bad: InvalidCode) -> list[Any]:
    token = token.strip()
    data = token[len(prefix) :]
    if not token.startswith(prefix) or len(token) > _MAX_TOKEN or not _TOKEN_RE.fullmatch(data):
        raise bad
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        fields = unpackb_strict(raw, MalformedFrame, "invite")
    except (binascii.Error, ValueError, TypeError, MeshtalkError):
        raise bad from None
    if not isinstance(fields, list) or len(fields) != length:
        raise bad
    return fields


def _invite(fields: list[Any], bad: InvalidCode) -> Invite:
    peer, addresses, invite_id, secret, expires = fields
    try:
        invite = Invite(PeerId(peer), tuple(addresses), invite_id, secret, expires)
    except (ValueError, TypeError, MeshtalkError):
        raise bad from None
    if not (
        isinstance(addresses, list)
        and len(addresses) <= MAX_INFO_ADDRESSES
        and all(isinstance(a, str) for a in invite.addresses)
        and isinstance(invite.invite_id, bytes)
        and isinstance(invite.secret, bytes)
        and len(invite.secret) >= 16
        and type(invite.expires_ms) is int  # not a bool
        and 0 <= invite.expires_ms <= MAX_EXPIRES_MS
    ):
        raise bad
    return invite


def parse_invite(token: str) -> Invite:
    """Read a token made by `encode_invite`; raises InvalidCode if it is damaged."""
    bad = InvalidCode("this invite token is damaged or incomplete; copy the whole token again")
    if token.strip().startswith(ROOM_TOKEN_PREFIX):
        return parse_room_token(token).invite
    return _invite(_decode(token, INVITE_PREFIX, 5, bad), bad)


def parse_room_token(token: str) -> RoomToken:
    """Read a token made by `encode_room_token`; raises InvalidCode if it is damaged."""
    bad = InvalidCode("this room token is damaged or incomplete; copy the whole token again")
    fields = _decode(token, ROOM_TOKEN_PREFIX, 6, bad)
    room = fields[5]
    if not isinstance(room, bytes) or len(room) != _ROOM_ID_LENGTH:
        raise bad
    return RoomToken(_invite(fields[:5], bad), room)
