"""How the local HTTP API is reached: the `http` setting's address, and the profile's API key.

The `http` setting is "on" (the default: 127.0.0.1 at DEFAULT_HTTP_PORT, or one of the next
ports when that one is taken, or any free port), "off", a port ("7747": on 127.0.0.1), or
"HOST:PORT" ("[::1]:7747" for IPv6; port 0 picks a free one). A host that is not loopback is
allowed only when written out like that, and the node warns about it when it starts.

The API key is 32 random bytes (URL-safe base64) in `http.key`, mode 0600, created with the
profile's first use of the API; `meshtalk http-key` prints it. A key file that others can read
is refused, as the identity key would be.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..protocol.errors import KeyFileCorrupt, KeyFileInsecure
from .paths import FILE_MODE, private_profile_dir

__all__ = [
    "API_KEY_FILE",
    "DEFAULT_HTTP_PORT",
    "HTTP_URL_FILE",
    "HttpBind",
    "check_http_setting",
    "http_bind",
    "load_or_create_api_key",
]

API_KEY_FILE: Final = "http.key"
HTTP_URL_FILE: Final = "http.url"  # the running node's base URL; removed when it stops
DEFAULT_HTTP_PORT: Final = 7747
FALLBACK_PORTS: Final = 9  # 7748 to 7756, then any free port
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True)
class HttpBind:
    """Where the API listens: `fallback` (the "on" default) tries the next ports, then any."""

    host: str
    port: int
    fallback: bool = False

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect."""
        if self.host == "localhost":
            return True
        return ipaddress.ip_address(self.host).is_loopback

    def candidates(self) -> list[int]:
        """The ports to try, in order (0: any free port)."""
        if not self.fallback:
            return [self.port]
        return [*range(self.port, self.port + FALLBACK_PORTS + 1), 0]


def http_bind(value: str) -> HttpBind | None:
    """The address an `http` setting names (None: "off"); ValueError says what is wrong."""
    text = value.strip().lower()
    if text == "off":
        return None
    if text == "on":
        return HttpBind("127.0.0.1", DEFAULT_HTTP_PORT, fallback=True)
    host, colon, port_text = text.rpartition(":")
    if not colon:
        host, port_text = "127.0.0.1", text
    host = host.removeprefix("[").removesuffix("]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r}: expected on, off, PORT or HOST:PORT (port 0 to 65535)")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{value!r}: the host must be an IP address or localhost") from None
    return HttpBind(host, int(port_text))


def check_http_setting(value: Any) -> str:
    """The `http` setting's check: a port number may be given as a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("expected on, off, PORT or HOST:PORT")
    http_bind(value)
    return value


def load_or_create_api_key(profile: Path) -> str:
    """The profile's API key, created (0600, never through a link) on first use."""
    path = profile / API_KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    private_profile_dir(profile)
    key = secrets.token_urlsafe(32)
    # Written whole to a private file first, then linked into place: a reader never sees a
    # half-written key, and of two processes making one at once, the first link wins.
    draft = profile / f".{API_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        with os.fdopen(os.open(draft, flags, FILE_MODE), "w", encoding="ascii") as file:
            file.write(key + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(draft, path)
    except FileExistsError:  # another process made it first: use that one
        return _read_key(path)
    finally:
        draft.unlink(missing_ok=True)
    return key


def _read_key(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as file:
        if stat.S_IMODE(os.fstat(file.fileno()).st_mode) & 0o077:
            raise KeyFileInsecure(
                f"{path} can be read by other users; run `chmod 600 {path}` "
                "(or delete it: the node makes a new key)"
            )
        data = file.read(256)
    key = data.decode("ascii", "replace").strip()
    if not 20 <= len(key) <= 128 or not key.isprintable() or " " in key:
        raise KeyFileCorrupt(f"{path} does not hold an API key; delete it and a new one is made")
    return key
