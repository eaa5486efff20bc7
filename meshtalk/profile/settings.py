"""The profile's settings file, `config.toml`: read, checked, changed one key at a time.

Every key has a type and a check, so a bad value is reported with its key name whether it
comes from the file or from `meshtalk config set`. Unknown keys are refused (a typo should not
be silently ignored). Writing goes through a temporary file and a rename, so a crash never
leaves half a file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import tomli_w

from ..protocol.errors import ConfigError, MeshtalkError
from ..protocol.keys import PeerId
from .http_access import check_http_setting
from .paths import FILE_MODE, private_profile_dir

__all__ = [
    "CONFIG_FILE_NAME",
    "SETTINGS",
    "Setting",
    "load_settings",
    "default_settings",
    "save_setting",
    "save_settings",
    "parse_value",
    "config_path",
    "check_key",
]

CONFIG_FILE_NAME: Final = "config.toml"


def _multiaddrs(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of multiaddresses")
    for address in value:
        if not address.startswith("/"):
            raise ValueError(
                f"{address!r} is not a multiaddress (they look like /ip4/1.2.3.4/tcp/4001)"
            )
    return value


def _peer_multiaddrs(value: Any) -> list[str]:
    """Multiaddresses that end with /p2p/<peer ID>: the node checks who answers there."""
    for address in _multiaddrs(value):
        head, _, peer = address.rpartition("/p2p/")
        if not head or not peer or "/" in peer:
            raise ValueError(
                f"{address!r} must end with /p2p/<peer ID> so the peer can be checked "
                "(like /ip4/1.2.3.4/tcp/4001/p2p/12D3KooW...)"
            )
        try:
            PeerId.from_string(peer)
        except MeshtalkError as exc:
            raise ValueError(f"{address!r} names an invalid peer ID: {exc}") from None
    return list(value)


def _text(limit: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise ValueError(f"expected text of 1 to {limit} characters")
        return value

    return check


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return str(value)

    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _count(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return value

    return check


def _interface_addresses(value: Any) -> list[str]:
    """IP addresses of local interfaces (mDNS binds the interfaces that hold them)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of IP addresses such as 192.168.1.20")
    for address in value:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{address!r} is not an IP address (like 192.168.1.20)") from None
    return list(value)


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 7 * 86400:
        raise ValueError("expected a whole number of seconds from 10 to 604800")
    return value


@dataclass(frozen=True)
class Setting:
    """One key of config.toml."""

    key: str
    default: Any
    check: Callable[[Any], Any]
    help: str


SETTINGS: Final = {
    s.key: s
    for s in (
        Setting("name", None, _text(64), "how this node introduces itself when pairing"),
        Setting("mesh", "default", _text(64), "mesh name: nodes meet only nodes of the same mesh"),
        Setting(
            "listen",
            ["/ip4/0.0.0.0/tcp/0"],
            _multiaddrs,
            "addresses to listen on (/ip4/0.0.0.0/tcp/0: every interface, any free port)",
        ),
        Setting(
            "rendezvous",
            [],
            _peer_multiaddrs,
            "rendezvous points to register and discover at (/ip4/../tcp/../p2p/<id>)",
        ),
        Setting(
            "bootstrap", [], _peer_multiaddrs, "peers to dial at start (/ip4/../tcp/../p2p/<id>)"
        ),
        Setting(
            "relays",
            [],
            _peer_multiaddrs,
            "relays to reserve at when behind a NAT (/ip4/../tcp/../p2p/<id>; "
            "rendezvous points are tried as relays too)",
        ),
        Setting("serve_relay", False, _boolean, "also relay for nodes behind NAT (docs/reach.md)"),
        Setting("mdns", True, _boolean, "find and announce peers on the LAN with mDNS"),
        Setting(
            "mdns_interfaces",
            [],
            _interface_addresses,
            "IP addresses of the interfaces mDNS uses (empty: those `listen` names, "
            "or every interface when it listens on 0.0.0.0)",
        ),
        Setting(
            "accept",
            "contacts",
            _choice("contacts", "anyone"),
            "who may deliver messages: trusted contacts only, or anyone not blocked",
        ),
        Setting("serve_rendezvous", False, _boolean, "also act as a rendezvous point for others"),
        Setting(
            "http",
            "on",
            check_http_setting,
            "the local HTTP API (docs/http.md): on (127.0.0.1:7747, or the next free port), "
            "off, PORT or HOST:PORT",
        ),
        Setting(
            "durability",
            "normal",
            _choice("normal", "full"),
            "normal: survives a crash of meshtalk; full: also a power cut (slower)",
        ),
        Setting("pair_timeout", 600, _seconds, "how long a pairing code stays valid, in seconds"),
        Setting("invite_timeout", 86400, _seconds, "how long an invite stays valid, in seconds"),
        Setting(
            "guard_per_minute",
            20,
            _count(1, 10_000),
            "agents may send at most this many messages per conversation per minute",
        ),
        Setting(
            "guard_agent_turns",
            50,
            _count(1, 100_000),
            "agent messages in a row in one conversation before a human must step in",
        ),
        Setting(
            "guard_max_bytes",
            32 * 1024,
            _count(1, 1024 * 1024),
            "largest message an agent may send, in bytes",
        ),
        Setting(
            "log_bodies",
            False,
            _boolean,
            "write the text of incoming messages to node.log (off: cursor, sender and size)",
        ),
        Setting(
            "log_max_mib",
            10,
            _count(1, 1024),
            "node.log is rotated at this size in MiB (3 older files are kept)",
        ),
        Setting(
            "retain_days",
            0,
            _count(0, 36500),
            "forget delivered and read messages older than this many days (0: keep all)",
        ),
        Setting(
            "retain_mib",
            0,
            _count(0, 1_000_000),
            "forget the oldest delivered and read messages beyond this many MiB (0: no limit)",
        ),
    )
}


def config_path(profile: Path) -> Path:
    """Where a profile's settings live."""
    return profile / CONFIG_FILE_NAME


def _read(profile: Path) -> dict[str, Any]:
    path = config_path(profile)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or delete the file") from None


def check_key(key: str, where: str = "") -> Setting:
    """The setting called `key`; raises ConfigError listing the real ones if there is none."""
    setting = SETTINGS.get(key)
    if setting is None:
        known = ", ".join(SETTINGS)
        raise ConfigError(f"unknown setting {key!r}{where}; the settings are: {known}")
    return setting


def _checked(key: str, value: Any, where: str) -> Any:
    setting = check_key(key, f" {where}")
    try:
        return setting.check(value)
    except ValueError as exc:
        raise ConfigError(f"bad value for {key!r} {where}: {exc}") from None


def default_settings() -> dict[str, Any]:
    """Every setting at its default value."""
    return {key: setting.default for key, setting in SETTINGS.items()}


def load_settings(profile: Path) -> dict[str, Any]:
    """Every setting of a profile: the file's values over the defaults, all checked."""
    path = config_path(profile)
    values = default_settings()
    for key, value in _read(profile).items():
        values[key] = _checked(key, value, f"in {path}")
    return values


def parse_value(key: str, text: str) -> Any:
    """A value typed on the command line: TOML syntax, or plain text for text settings."""
    default = check_key(key).default
    if isinstance(default, list) and not text.lstrip().startswith("["):
        value: Any = [part.strip() for part in text.split(",") if part.strip()]
    else:
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # bare text for name, mesh, accept, ...
    return _checked(key, value, "given")


def save_setting(profile: Path, key: str, value: Any) -> None:
    """Set one key in config.toml (None removes it, back to the default)."""
    save_settings(profile, {key: value})


def save_settings(profile: Path, values: Mapping[str, Any]) -> None:
    """Set several keys in one write (None removes a key); all are checked before anything is
    written."""
    data = _read(profile)
    for key, value in values.items():
        if value is None:
            check_key(key)
            data.pop(key, None)
        else:
            data[key] = _checked(key, value, "given")
    path = config_path(profile)
    temporary = path.with_suffix(".tmp")
    try:
        private_profile_dir(profile)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)  # left by a crash, perhaps with another mode
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(temporary, flags, FILE_MODE), "w", encoding="utf-8") as file:
            file.write(tomli_w.dumps(data))
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}; nothing was changed"
        ) from None
