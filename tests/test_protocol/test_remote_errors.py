"""Refusals by the peer keep their class but say whose they are; the error tree is as drawn."""

from __future__ import annotations

import re

import pytest

import meshtalk
from meshtalk.protocol import (
    REMOTE_PREFIX,
    ClockSkew,
    ErrorFrame,
    MeshtalkError,
    MessageRejected,
    NotAuthorized,
    ProtocolError,
    RendezvousError,
    StreamRefused,
    WrongCode,
    error_classes,
    error_from_code,
    open_sealed,
    room_errors,
)
from meshtalk.protocol import errors as errors_module
from meshtalk.protocol.codec import packb
from meshtalk.protocol.errors import _all_subclasses
from meshtalk.protocol.frames import decode_frame_body
from meshtalk.protocol.pairing import (
    JoinerHandshake,
    PeerInfo,
    decode_pair_message,
    encode_pair_message,
)
from tests.conftest import NOW_MS, fixed_key

REF = b"r" * 16


@pytest.mark.parametrize("cls", _all_subclasses(MeshtalkError))
def test_an_error_rebuilt_from_the_peer_keeps_its_class_and_says_so(
    cls: type[MeshtalkError],
) -> None:
    local = cls("details")
    assert local.remote is False
    assert str(local) == "details"
    remote = error_from_code(cls.code, "details", remote=True)
    assert type(remote) is cls
    assert remote.remote is True
    assert str(remote) == REMOTE_PREFIX + "details" == "peer refused: details"
    assert remote.detail == "details"
    assert local.detail == "details"
    quiet = error_from_code(cls.code, "details")  # the control socket: this node's own errors
    assert type(quiet) is cls
    assert quiet.remote is False
    assert str(quiet) == "details"


def test_except_clauses_still_catch_the_peers_refusals() -> None:
    frame = ErrorFrame(NotAuthorized.code, "not a contact", REF)
    with pytest.raises(MessageRejected) as caught:
        raise frame.to_exception()
    assert isinstance(caught.value, NotAuthorized)
    assert caught.value.remote
    assert caught.value.message_id == REF
    assert str(caught.value) == "peer refused: not a contact"
    with pytest.raises(ProtocolError, match="peer refused: busy"):
        raise ErrorFrame(StreamRefused.code, "busy").to_exception()


def test_unknown_codes_from_the_peer_are_the_generic_error() -> None:
    error = ErrorFrame(999, "something new").to_exception()
    assert type(error) is MeshtalkError
    assert error.remote
    assert str(error) == "peer refused: error 999: something new"
    assert error.message_id is None
    assert str(error_from_code(999, "x")) == "error 999: x"


def test_errors_this_node_raises_are_local() -> None:
    me = fixed_key("bob")
    with pytest.raises(MeshtalkError) as caught:
        open_sealed(b"\x94\x01", me, NOW_MS)
    assert caught.value.remote is False
    assert not str(caught.value).startswith(REMOTE_PREFIX)
    assert ClockSkew("x").about(REF).remote is False
    assert RendezvousError("refused", 200).remote is False


def test_reporting_a_local_error_sends_its_own_words() -> None:
    frame = ErrorFrame.from_exception(ClockSkew("too old"), REF)
    assert frame.text == "too old"
    assert (frame.code, frame.ref) == (206, REF)


def parse_tree(doc: str) -> set[tuple[str, int, str | None]]:
    """(class, code, parent) for every line of the tree drawn in a docstring."""
    found: set[tuple[str, int, str | None]] = set()
    parents: list[str] = []
    for line in doc.splitlines():
        match = re.fullmatch(r" {4}(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+) (?P<code>\d+)", line)
        if match is None:
            continue
        depth = len(match["lead"]) // 4
        del parents[depth:]
        found.add((match["name"], int(match["code"]), parents[-1] if parents else None))
        parents.append(match["name"])
    return found


def test_the_error_tree_in_the_docstring_is_the_one_in_the_code() -> None:
    drawn = parse_tree(errors_module.__doc__ or "")
    defined = {
        (cls.__name__, cls.code, None if cls is MeshtalkError else cls.__bases__[0].__name__)
        for cls in _all_subclasses(MeshtalkError)
        if cls.__module__ in (error_classes.__name__, room_errors.__name__)
    }
    assert drawn == defined
    exported = {n for n in errors_module.__all__ if isinstance(getattr(errors_module, n), type)}
    assert {name for name, _, _ in drawn} == exported


def test_errors_exports_every_class_of_error_classes() -> None:
    helpers = ["error_from_code", "shown_safely", "unwrap_group"]
    classes = [*error_classes.__all__, *room_errors.__all__]
    assert errors_module.__all__ == [*classes, *helpers]
    for name in classes:
        source = error_classes if name in error_classes.__all__ else room_errors
        assert getattr(errors_module, name) is getattr(source, name)
        assert name in meshtalk.__all__
        assert getattr(meshtalk, name) is getattr(source, name)


HOSTILE = "no\x1b[2J\x1b]0;owned\x07\r\nmeshtalk: error: fake\u202etxt.exe\x85 \u00e9\U0001f600"
SHOWN = (
    "no\\x1b[2J\\x1b]0;owned\\x07\\r\\nmeshtalk: error: fake\\u202etxt.exe\\x85 \u00e9\U0001f600"
)


def test_a_peers_error_text_cannot_drive_a_terminal() -> None:
    """ERROR text is the peer's: control characters and bidi overrides come out as escapes,
    everything else (accents, emoji) as it was; this node's own errors are left alone."""
    frame = decode_frame_body(packb([3, 207, HOSTILE, None]))  # as it comes off the wire
    assert isinstance(frame, ErrorFrame)
    error = frame.to_exception()
    assert type(error) is NotAuthorized
    assert str(error) == REMOTE_PREFIX + SHOWN
    assert error_from_code(9999, HOSTILE, remote=True).detail == f"error 9999: {SHOWN}"
    assert str(error_from_code(207, HOSTILE)) == HOSTILE  # the control socket: our own words


def test_a_pairing_error_from_the_peer_is_shown_safely() -> None:
    bob, alice = fixed_key("bob").peer_id, fixed_key("alice").peer_id
    joiner = JoinerHandshake("code:7", b"7-a-b", bob, alice, lambda n: bytes(n))
    joiner.start()
    reply = decode_pair_message(
        encode_pair_message({"t": "error", "code": WrongCode.code, "message": HOSTILE})
    )
    with pytest.raises(WrongCode) as caught:
        joiner.receive_reply(reply, PeerInfo(None, ()))
    assert caught.value.detail == SHOWN
