"""The control protocol's messages, sans-I/O."""

from __future__ import annotations

import pytest

from meshtalk.protocol.control import (
    CONTROL_VERSION,
    MAX_CONTROL_MESSAGE,
    decode_control,
    encode_control,
    make_error,
    make_event,
    make_reply,
    make_request,
    read_reply,
    read_request,
)
from meshtalk.protocol.errors import (
    MalformedFrame,
    MeshtalkError,
    NodeNotRunning,
    UnknownPeer,
    UnsupportedVersion,
)
from meshtalk.protocol.frames import FrameDecoder


def round_trip(message: dict[str, object]) -> dict[str, object]:
    decoder: FrameDecoder[dict[str, object]] = FrameDecoder(MAX_CONTROL_MESSAGE, decode_control)
    decoder.receive_data(encode_control(message))
    decoded = decoder.next_frame()
    assert isinstance(decoded, dict)
    return decoded


def test_request_round_trip() -> None:
    request = round_trip(make_request(7, "send", {"to": "bob", "text": "hi"}))
    assert request["v"] == CONTROL_VERSION
    assert read_request(request) == (7, "send", {"to": "bob", "text": "hi"})


def test_events_then_a_result() -> None:
    assert read_reply(round_trip(make_event(7, {"queued": "ab"}))) == (False, {"queued": "ab"})
    assert read_reply(round_trip(make_reply(7, [1, "x"]))) == (True, [1, "x"])


@pytest.mark.parametrize("error", [UnknownPeer("no contact 'bob'"), NodeNotRunning("down")])
def test_errors_come_back_as_the_same_type(error: MeshtalkError) -> None:
    with pytest.raises(type(error), match=str(error)):
        read_reply(round_trip(make_error(7, error)))


def test_a_request_from_another_version_is_refused_clearly() -> None:
    with pytest.raises(UnsupportedVersion, match="version 2 is not supported"):
        read_request({"v": 2, "id": 1, "op": "status", "args": {}})


@pytest.mark.parametrize(
    "message", [{}, {"v": 1, "id": "1", "op": "x"}, {"v": 1, "id": 1, "op": 3},
                {"v": 1, "id": 1, "op": "x", "args": []}],
)  # fmt: skip
def test_malformed_requests(message: dict[str, object]) -> None:
    with pytest.raises(MalformedFrame):
        read_request(message)


def test_malformed_replies_and_bodies() -> None:
    with pytest.raises(MalformedFrame):
        read_reply({"id": 1, "ok": False})
    with pytest.raises(MalformedFrame):
        decode_control(b"\x91\x01")  # a list, not a map
