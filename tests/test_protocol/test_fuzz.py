"""Hypothesis: hostile input only ever raises MeshtalkError, and never allocates past the cap."""

from __future__ import annotations

import contextlib
import tracemalloc
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meshtalk.protocol import (
    NEED_DATA,
    Envelope,
    FrameDecoder,
    MeshtalkError,
    decode_frame_body,
    encode_frame,
    encode_uvarint,
    open_sealed,
    packb,
    seal,
)
from meshtalk.protocol.frames import MessageFrame
from tests.conftest import NOW_MS, fixed_key, make_envelope

ALICE, BOB = fixed_key("alice"), fixed_key("bob")
SEALED = seal(make_envelope(ALICE, BOB, body="fuzz target " * 20), ALICE, BOB.peer_id)

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def drain(decoder: FrameDecoder) -> None:
    while decoder.next_frame() is not NEED_DATA:
        pass


@given(st.lists(st.binary(max_size=300), max_size=20))
@example([encode_uvarint(10**9)])
@example([encode_frame(MessageFrame(b"ok")), b"\x05\x91"])
def test_frame_decoder_raises_only_meshtalk_errors(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame_size=512)
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            drain(decoder)
        decoder.end_of_stream()
    except MeshtalkError:
        pass


@given(st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=30))
def test_frame_decoder_memory_stays_under_the_cap(chunks: list[bytes]) -> None:
    cap = 4096
    decoder = FrameDecoder(max_frame_size=cap)
    # Prefix every input with a header declaring a huge frame half the time, a small one else.
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for chunk in chunks:
            decoder.receive_data(chunk)
            drain(decoder)
    except MeshtalkError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # The decoder holds at most one frame under the cap plus one unread chunk.
    assert peak < cap + 200 + 16 * 1024


def test_huge_declared_frame_allocates_nothing_big() -> None:
    decoder = FrameDecoder()
    tracemalloc.start()
    try:
        decoder.receive_data(encode_uvarint(2**40))
        with pytest.raises(MeshtalkError):
            decoder.next_frame()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@given(st.binary(max_size=600))
def test_decode_frame_body_raises_only_meshtalk_errors(data: bytes) -> None:
    with contextlib.suppress(MeshtalkError):
        decode_frame_body(data)


@pytest.mark.slow  # over 6 s
@given(msgpack_values)
def test_structured_frame_bodies(value: Any) -> None:
    with contextlib.suppress(MeshtalkError):
        decode_frame_body(packb(value))


@given(st.binary(max_size=800))
def test_open_sealed_raises_only_meshtalk_errors(data: bytes) -> None:
    try:
        open_sealed(data, BOB, NOW_MS)
    except MeshtalkError:
        pass
    else:
        raise AssertionError("random bytes opened as a valid message")


@given(st.lists(msgpack_values, max_size=5))
def test_open_sealed_on_msgpack_arrays(items: list[Any]) -> None:
    with pytest.raises(MeshtalkError):
        open_sealed(packb([1, *items]), BOB, NOW_MS)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(SEALED) - 1), st.binary(max_size=3)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_sealed_messages_never_open(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(SEALED)
    for position, replacement in edits:
        data[position : position + max(len(replacement), 1)] = replacement  # b"" deletes
    if bytes(data) == SEALED:
        return
    with pytest.raises(MeshtalkError):
        open_sealed(bytes(data), BOB, NOW_MS)


@given(st.binary(max_size=600))
def test_envelope_unpack_raises_only_meshtalk_errors(data: bytes) -> None:
    with contextlib.suppress(MeshtalkError):
        Envelope.unpack(data)


@given(msgpack_values, st.dictionaries(st.text(max_size=8), msgpack_values, max_size=3))
def test_any_body_round_trips_through_seal(body: Any, metadata: dict[str, Any]) -> None:
    envelope = make_envelope(ALICE, BOB, body=body, metadata=metadata)
    opened = open_sealed(seal(envelope, ALICE, BOB.peer_id), BOB, NOW_MS)
    assert opened.body == (list(body) if isinstance(body, tuple) else body)
    assert opened.metadata == metadata
