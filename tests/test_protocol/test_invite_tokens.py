"""Invite and room tokens: round trips, and every damaged or hostile token is InvalidCode."""

from __future__ import annotations

import base64

import pytest

from meshtalk.protocol.codec import packb
from meshtalk.protocol.errors import InvalidCode
from meshtalk.protocol.invite_tokens import (
    Invite,
    RoomToken,
    encode_invite,
    encode_room_token,
    parse_invite,
    parse_room_token,
)
from tests.conftest import fixed_key

INVITE = Invite(
    fixed_key("alice").peer_id, ("/ip4/127.0.0.1/tcp/4001",), b"i" * 8, b"s" * 16, 1_700_000_000_000
)
ROOM = b"r" * 16


def _token(prefix: str, fields: list[object]) -> str:
    return prefix + base64.urlsafe_b64encode(packb(fields)).decode().rstrip("=")


def _fields(**changes: object) -> list[object]:
    fields = {
        "peer": INVITE.peer_id.to_bytes(), "addresses": list(INVITE.addresses),
        "id": INVITE.invite_id, "secret": INVITE.secret, "expires": INVITE.expires_ms,
        "room": ROOM,
    }  # fmt: skip
    fields.update(changes)
    return list(fields.values())


def test_invite_and_room_tokens_round_trip() -> None:
    assert parse_invite(encode_invite(INVITE)) == INVITE
    token = encode_room_token(RoomToken(INVITE, ROOM))
    assert token.startswith("mtr1")
    assert parse_room_token(token) == RoomToken(INVITE, ROOM)
    assert parse_room_token(f"  {token}\n") == RoomToken(INVITE, ROOM)
    assert parse_invite(token) == INVITE  # a room token pairs like an invite


@pytest.mark.parametrize(
    "token",
    [
        encode_invite(INVITE),  # an invite names no room
        "mtr1",
        "mtr1!!!",
        "mtr1" + "A" * 5000,
        _token("mtr1", _fields(room=b"short")),
        _token("mtr1", _fields(room="r" * 16)),
        _token("mtr1", _fields()[:5]),
        _token("mtr1", [*_fields(), b"extra"]),
        _token("mtr1", _fields(expires=-1)),
        _token("mtr1", _fields(expires=True)),
        _token("mtr1", _fields(secret=b"short")),
        _token("mtr1", _fields(addresses=["/ip4/1.2.3.4/tcp/1"] * 33)),
        _token("mtr1", _fields(addresses=[1])),
        _token("mtr1", _fields(peer=b"not a peer id")),
        _token("mtr1", {"a": 1}),  # type: ignore[arg-type]
    ],
)
def test_a_damaged_room_token_is_invalid_code(token: str) -> None:
    with pytest.raises(InvalidCode, match="room token is damaged"):
        parse_room_token(token)


def test_a_damaged_invite_is_invalid_code() -> None:
    for token in ("mt1", "mt1%%", _token("mt1", _fields()), _token("mt1", _fields()[:4])):
        with pytest.raises(InvalidCode, match="invite token is damaged"):
            parse_invite(token)
