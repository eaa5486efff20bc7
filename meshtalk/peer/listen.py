"""Listening addresses: keep the same port across restarts, and fail loudly when none works.

Contacts remember a node's address; a node configured with port 0 that came back on a new port
after every restart would be unreachable to them until discovery finds it again. So a node
remembers the port it got and asks for it again next time, falling back to a fresh one when
it is taken. py-libp2p 0.8.1 does not raise when a listen address is busy (it logs and goes on
without it), so the addresses actually bound are checked here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import multiaddr

from ..protocol.errors import ConfigError
from .store import Store

if TYPE_CHECKING:
    from libp2p.abc import IHost

__all__ = ["preferred_listen_addrs", "ensure_listening"]


def _setting(original: str) -> str:
    return f"listen-port {original}"


def _ip_port(addr: Any) -> tuple[str | None, int]:
    text = str(addr)
    parts = text.split("/")
    ip = parts[2] if len(parts) > 2 else None
    port = int(parts[4]) if len(parts) > 4 and parts[3] == "tcp" else -1
    return ip, port


def preferred_listen_addrs(configured: list[str], store: Store) -> list[str]:
    """The configured addresses, with port 0 replaced by the port this node had last time."""
    preferred = []
    for original in configured:
        remembered = store.db.get_setting(_setting(original))
        if remembered is not None and original.endswith("/tcp/0"):
            preferred.append(original[: -len("0")] + remembered)
        else:
            preferred.append(original)
    return preferred


async def ensure_listening(
    host: IHost, configured: list[str], preferred: list[str], store: Store
) -> None:
    """Listen afresh where a remembered port was taken; refuse to run without any address."""
    bound = {_ip_port(a) for a in host.get_transport_addrs()}
    for original, wanted in zip(configured, preferred, strict=True):
        ip, port = _ip_port(wanted)
        if port == 0 and any(b[0] == ip for b in bound):
            continue
        if (ip, port) in bound:
            continue
        if original == wanted or not await host.get_network().listen(multiaddr.Multiaddr(original)):
            raise ConfigError(
                f"cannot listen on {original}: the port is taken or the address is not on this "
                "machine; choose another listen address"
            )
    bound = {_ip_port(a) for a in host.get_transport_addrs()}
    for original in configured:
        ip, _ = _ip_port(original)
        if original.endswith("/tcp/0"):
            ports = sorted(p for b_ip, p in bound if b_ip == ip)
            if ports:
                store.db.set_setting(_setting(original), str(ports[0]))
