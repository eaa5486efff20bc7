"""Checked arguments of control requests: types, bounds, and the forms ids and names take.

Every handler reads its arguments through these, so a wrong type or an out-of-range value is a
`ConfigError` naming the argument (code and message reach the client), never a crash.
"""

from __future__ import annotations

from typing import Any

from ..protocol.errors import ConfigError

__all__ = [
    "MAX_LABEL", "MAX_SECONDS", "arg", "label_arg", "limit_arg", "message_id_arg", "reader_arg",
    "seconds_arg",
]  # fmt: skip

MAX_LABEL = 64
MAX_SECONDS = 30 * 86400.0  # the longest wait, timeout or ttl a request may ask for


def arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """Argument `name` of a request, checked against `kind`; required when there is no default."""
    value = args.get(name, default)
    if value is ...:
        raise ConfigError(f"the control request needs {name!r}")
    if value is not None and value is not default and not isinstance(value, kind):
        raise ConfigError(f"control argument {name!r} has the wrong type")
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"control argument {name!r} has the wrong type")
    return value


def seconds_arg(
    args: dict[str, Any], name: str, default: float | None, most: float = MAX_SECONDS
) -> float | None:
    """A duration argument (a wait, timeout or ttl) in seconds, from 0 to `most`: a negative,
    NaN or endless one is a ConfigError here, not a crash where it is used."""
    value = arg(args, name, (int, float), default)
    if value is None:
        return None
    if not 0 <= value <= most:  # NaN fails too
        raise ConfigError(f"control argument {name!r} must be from 0 to {most:g} seconds")
    return float(value)


def limit_arg(args: dict[str, Any], default: int) -> int:
    """The `limit` argument: how many messages, from 1 to 1000 (a negative LIMIT is none)."""
    limit: int = arg(args, "limit", int, default)
    if not 1 <= limit <= 1000:
        raise ConfigError("control argument 'limit' must be from 1 to 1000")
    return limit


def message_id_arg(given: str | None) -> bytes | None:
    """The `id` a client chose for its message (32 hex digits), so that a retry is idempotent."""
    if given is None:
        return None
    try:
        chosen = bytes.fromhex(given) if len(given) == 32 else b""
    except ValueError:
        chosen = b""
    if not chosen:
        raise ConfigError("control argument 'id' must be 32 hex digits (a UUIDv7 message id)")
    return chosen


def reader_arg(args: dict[str, Any], default: str | None, name: str = "reader") -> str | None:
    """The `reader` argument (or `name`): a short name whose read position the node keeps."""
    reader: str | None = arg(args, name, str, default)
    if reader is not None and not 0 < len(reader) <= 64:
        raise ConfigError(f"control argument {name!r} must be a name of 1 to 64 characters")
    return reader


def label_arg(args: dict[str, Any]) -> dict[str, str]:
    """The `label` a client gives itself in a message's metadata (a display name only: the
    signature says who wrote it), as metadata to add: {} when there is none."""
    label: str | None = arg(args, "label", str, None)
    if label is None:
        return {}
    if not 0 < len(label) <= MAX_LABEL or not label.isprintable():
        raise ConfigError(f"control argument 'label' must be 1 to {MAX_LABEL} printable characters")
    return {"label": label}
