"""Serving the local HTTP API inside the node's own trio loop.

Why Starlette: the node runs on trio, and the API must run in that same loop (it calls the
node directly, as the control socket does). Starlette is an ASGI toolkit on anyio, so it runs
on trio as it is, and it is small (no data-model layer: the operations check their own
arguments). It is served by `asgi_server.py` (h11 on trio); see there why not Hypercorn.

This module binds the socket itself, so that the default ("on") can fall back to the next
ports, writes the base URL to `http.url` in the profile for `meshtalk http-url`, and reports
its state for `meshtalk status`.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ..profile.http_access import HTTP_URL_FILE, HttpBind, load_or_create_api_key
from ..profile.paths import FILE_MODE
from ..protocol.errors import MeshtalkError
from .app import LOOPBACK_HOSTS, build_app
from .asgi_server import AsgiServer
from .events import EventFeed, FeedPorts
from .labels import Labels
from .pairing import PairingOffers

if TYPE_CHECKING:
    from ..control.server import Operation
    from ..peer.node import Node

__all__ = ["HttpApi", "bind_socket"]

logger = logging.getLogger("meshtalk.http")


def bind_socket(bind: HttpBind) -> socket.socket:
    """A listening socket at `bind`: with `fallback`, the first of its ports that is free.
    OSError when none is (or the address is not this machine's)."""
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    last: OSError | None = None
    for port in bind.candidates():
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart after a crash
            sock.bind((bind.host, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
    assert last is not None
    raise last


def _names_of(bind: HttpBind) -> frozenset[str]:
    """The host names a client may send besides the loopback names: the bound address, or
    for 0.0.0.0 and :: every address of this machine's interfaces."""
    if bind.host not in ("0.0.0.0", "::"):
        return frozenset({bind.host})
    import ifaddr

    found = {bind.host}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            found.add(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
    return frozenset(found)


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class HttpApi:
    """One node's HTTP API: `serve` it in the node's nursery; `status()` says where it is."""

    def __init__(
        self, node: Node, operations: dict[str, Operation], profile: Path, bind: HttpBind
    ) -> None:
        self._node = node
        self._operations = operations
        self._profile = profile
        self._bind = bind
        self.url: str | None = None
        self.error: str | None = None
        self.settled = trio.Event()  # set once it listens or has failed

    def status(self) -> dict[str, Any]:
        """Where the API listens (url), or why it does not (error)."""
        state = "serving" if self.url else "failed" if self.error else "starting"
        return {"url": self.url, "state": state, "error": self.error,
                "loopback_only": self._bind.loopback}  # fmt: skip

    def _feed(self, labels: Labels) -> EventFeed:
        node, ops = self._node, self._operations
        messages = node.store.messages

        async def messages_after(cursor: int, limit: int) -> list[dict[str, Any]]:
            views: list[dict[str, Any]] = await ops["history"]({"after": cursor, "limit": limit},
                                                               _ignore)  # fmt: skip
            return views

        async def peers() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = await ops["peers"]({}, _ignore)
            return found

        def statuses(ids: list[str]) -> dict[str, tuple[str, str | None]]:
            found = messages.statuses(node.peer_id, [bytes.fromhex(i) for i in ids])
            return {message_id.hex(): status for message_id, status in found.items()}

        ports = FeedPorts(messages_after, statuses, peers, lambda: node.incoming_changed,
                          messages.last_cursor)  # fmt: skip
        return EventFeed(ports, labels)

    async def serve(self) -> None:
        """Bind, then serve until cancelled; a bind that fails is logged and left off (the
        node goes on without its HTTP API)."""
        try:
            key = load_or_create_api_key(self._profile)
            sock = bind_socket(self._bind)
        except (MeshtalkError, OSError) as exc:
            where = f"{self._bind.host}:{self._bind.port}"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.error = f"cannot listen on {where}: {reason}"
            logger.error("the HTTP API is off: %s (setting `http`)", self.error)
            self.settled.set()
            return
        url_file = self._profile / HTTP_URL_FILE
        try:
            hosts = LOOPBACK_HOSTS | _names_of(self._bind)  # 127.0.0.2 is loopback too
            store = self._node.store
            labels = Labels(str(self._node.peer_id), self._node.contacts,
                            store.rooms.is_held, store.messages.members)  # fmt: skip
            offers = PairingOffers(self._operations["pair.offer"])
            app = build_app(
                self._operations, labels, self._feed(labels), offers, key=key, hosts=hosts
            )
            self.url = _url(sock)
            _write_private(url_file, self.url + "\n")
            port = sock.getsockname()[1]
            if self._bind.fallback and port != self._bind.port:
                logger.warning("port %d was taken: the HTTP API is on %s (clients should ask "
                               "`meshtalk http-url`)", self._bind.port, self.url)  # fmt: skip
            if not self._bind.loopback:
                logger.warning("the HTTP API listens on %s: other machines can reach it "
                               "(each request still needs the API key)", self.url)  # fmt: skip
            self.settled.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(offers.run)
                await AsgiServer(app).serve(sock)
        except Exception as exc:  # the node goes on without its HTTP API
            self.error = f"the HTTP API stopped: {exc!r}"
            logger.exception("the HTTP API stopped; the node goes on")
            self.settled.set()
        finally:
            sock.close()
            url_file.unlink(missing_ok=True)
            self.url = None


async def _ignore(event: dict[str, Any]) -> None:
    """The feed's operations emit nothing it needs."""


def _write_private(path: Path, text: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, FILE_MODE), "w", encoding="utf-8") as file:
        file.write(text)
