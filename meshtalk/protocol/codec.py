"""Strict msgpack: one packing convention and a decoder that trusts nothing it is given.

Decoding refuses extension types, duplicate map keys, non-string map keys, invalid UTF-8,
trailing bytes and nesting deeper than `MAX_DEPTH`; sizes are bounded by the input length,
which callers cap before decoding.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

import msgpack

from .errors import ProtocolError

__all__ = ["MAX_DEPTH", "packb", "unpackb_strict", "check_value"]

MAX_DEPTH: Final = 16
"""How deeply lists and maps may nest inside a body or metadata value."""

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


def packb(value: Any) -> bytes:
    """Pack with the wire convention: str as msgpack str, bytes as msgpack bin."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _pairs_to_dict(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a map has the same key twice")
    return result


def _refuse_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def unpackb_strict(data: bytes, error: type[ProtocolError], what: str) -> Any:
    """Decode one msgpack value, raising `error` (naming `what`) on anything unexpected."""
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            object_pairs_hook=_pairs_to_dict,
            ext_hook=_refuse_ext,
        )
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise error(f"{what} is not valid msgpack: {exc}") from exc


def check_value(value: Any, error: type[ProtocolError], what: str, depth: int = 0) -> None:
    """Check that `value` is plain msgpack data (str-keyed maps, bounded nesting)."""
    if value is None or isinstance(value, str | bytes | bool | float):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise error(f"{what} holds an integer outside msgpack's 64-bit range")
        return
    if depth >= MAX_DEPTH:
        raise error(f"{what} nests lists and maps deeper than {MAX_DEPTH} levels")
    if isinstance(value, list | tuple):
        for item in value:
            check_value(item, error, what, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(f"{what} has a map key that is not a string: {key!r}")
            check_value(item, error, what, depth + 1)
        return
    raise error(f"{what} holds a {type(value).__name__}, which msgpack data cannot carry")
