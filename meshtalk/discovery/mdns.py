"""LAN discovery with mDNS, as the libp2p mDNS specification describes it, via python-zeroconf.

Each node announces a service of type `_p2p._udp.local.` under a random instance name, with
one TXT string `dnsaddr=<address>/p2p/<peer ID>` per listening address, and browses for the
same type. py-libp2p's own mDNS wraps the same zeroconf library but offers no way to hear
about a peer without also adopting its peerstore handling, so meshtalk drives zeroconf itself.

zeroconf runs its own threads; callbacks cross into trio with `trio.from_thread.run_sync`.
Questions are sent as QM (multicast answers): with several nodes on one machine sharing port
5353, unicast answers would reach only one of them. Registration skips the probing phase
(`cooperating_responders=True`, about a second saved): instance names are random, so they do
not collide. An mDNS address proves nothing by itself; the Noise handshake checks the peer ID
when the address is dialed.

Interfaces (`choose_interfaces`): those `mdns_interfaces` names, else those the node's `listen`
addresses name (a node on 127.0.0.1 announces itself on loopback only), else every interface
(IPv4) when it listens on 0.0.0.0 or ::. IPv6 addresses work too (zeroconf joins ff02::fb there).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import multiaddr
import trio

from ..protocol.errors import ConfigError, MeshtalkError
from ..protocol.keys import PeerId
from .stats import MdnsState, MdnsStatistics

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # py-libp2p's trio-typing stubs stand in for trio's

__all__ = ["MdnsService", "SERVICE_TYPE", "choose_interfaces", "decode_txt", "encode_txt"]

logger = logging.getLogger("meshtalk.mdns")
SERVICE_TYPE: Final = "_p2p._udp.local."
_MAX_TXT_STRING: Final = 255


def encode_txt(peer: PeerId, addresses: list[str]) -> bytes:
    """The raw TXT record: one `dnsaddr=<address>/p2p/<peer>` string per address that fits."""
    out = bytearray()
    for address in addresses:
        entry = f"dnsaddr={address}/p2p/{peer}".encode()
        if len(entry) <= _MAX_TXT_STRING:
            out += bytes([len(entry)]) + entry
    return bytes(out)


def decode_txt(raw: bytes) -> tuple[PeerId, list[str]] | None:
    """The peer and addresses in a TXT record, or None if it holds no usable dnsaddr."""
    peer: PeerId | None = None
    addresses: list[str] = []
    index = 0
    while index < len(raw):
        length = raw[index]
        entry = raw[index + 1 : index + 1 + length]
        index += 1 + length
        if not entry.startswith(b"dnsaddr="):
            continue
        try:
            text = entry[len(b"dnsaddr=") :].decode()
            address, _, peer_text = text.rpartition("/p2p/")
            multiaddr.Multiaddr(address)
            this_peer = PeerId.from_string(peer_text)
        except (UnicodeDecodeError, ValueError, MeshtalkError):
            continue
        if peer is not None and this_peer != peer:
            return None  # one service, one peer: a record naming two is not to be trusted
        peer = this_peer
        addresses.append(address)
    return (peer, addresses) if peer is not None else None


def choose_interfaces(configured: Sequence[str] | None, listen: Sequence[str]) -> list[str] | None:
    """The IP addresses of the interfaces mDNS uses; None: every interface.

    `configured` (the `mdns_interfaces` setting) wins when given; each must be an IP address
    (ConfigError otherwise). Else, when every `listen` address names one IP address (not
    0.0.0.0 or ::), those: mDNS then stays where the node can be reached.
    """
    if configured:
        for address in configured:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError(
                    f"mdns_interfaces: {address!r} is not an IP address; give the addresses of "
                    'the interfaces mDNS should use, e.g. ["192.168.1.20"]'
                ) from None
        return list(dict.fromkeys(configured))
    chosen = []
    for address in listen:
        parts = address.split("/")
        if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
            return None  # a name, not an address: every interface
        try:
            ip = ipaddress.ip_address(parts[2])
        except ValueError:
            return None
        if ip.is_unspecified:
            return None
        chosen.append(str(ip))
    return list(dict.fromkeys(chosen)) or None


def _missing_interfaces(interfaces: list[str]) -> list[str]:
    """Those of `interfaces` no interface of this machine has (zeroconf would skip them)."""
    import ifaddr  # a dependency of zeroconf

    present = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            present.add(ipaddress.ip_address(text.split("%")[0]))
    return [a for a in interfaces if ipaddress.ip_address(a) not in present]


def _ips_and_port(addresses: list[str]) -> tuple[list[bytes], int]:
    ips, port = [], 0
    for address in addresses:
        parts = address.split("/")
        if len(parts) >= 5 and parts[1] in ("ip4", "ip6") and parts[3] == "tcp":
            family = socket.AF_INET if parts[1] == "ip4" else socket.AF_INET6
            ips.append(socket.inet_pton(family, parts[2]))
            port = port or int(parts[4])
    return ips, port


class MdnsService:
    """Announce this node on the LAN and report peers that announce themselves."""

    def __init__(
        self,
        peer: PeerId,
        own_addresses: Callable[[], list[str]],
        on_found: Callable[[PeerId, list[str]], None],
        interfaces: list[str] | None = None,
    ) -> None:
        """`interfaces`: IP addresses of the interfaces to use (see `choose_interfaces`);
        None: every interface (IPv4)."""
        self.peer = peer
        self.own_addresses = own_addresses
        self.on_found = on_found
        self.interfaces = interfaces
        self.name = f"{secrets.token_hex(16)}.{SERVICE_TYPE}"
        self.found = 0
        self.state: MdnsState = "starting"
        self.error: str | None = None  # why it could not start
        self._token: Any = None

    def statistics(self) -> MdnsStatistics:
        """State and how many announcements were heard."""
        return MdnsStatistics(state=self.state, found=self.found, error=self.error)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Announce and browse until cancelled; reports started once both run."""
        from zeroconf import DNSQuestionType, ServiceBrowser, ServiceInfo

        self._token = trio.lowlevel.current_trio_token()
        addresses = self.own_addresses()
        ips, port = _ips_and_port(addresses)
        try:
            zc = await trio.to_thread.run_sync(self._open_zeroconf)
        except (OSError, RuntimeError) as exc:  # RuntimeError: zeroconf found no interface
            # No LAN discovery is no reason to stop a node: rendezvous and contacts still work.
            self.state, self.error = "failed", str(exc)
            logger.warning("mDNS cannot start (%s); the node runs without LAN discovery", exc)
            task_status.started()
            return
        browser = None
        try:
            info = ServiceInfo(
                SERVICE_TYPE,
                self.name,
                port=port,
                addresses=ips,
                properties=encode_txt(self.peer, addresses),
                server=self.name.replace(SERVICE_TYPE, "local."),
            )
            browser = ServiceBrowser(
                zc, SERVICE_TYPE, handlers=[self._on_change], question_type=DNSQuestionType.QM
            )
            await trio.to_thread.run_sync(
                lambda: zc.register_service(info, cooperating_responders=True)
            )
            self.state = "running"
            task_status.started()
            await trio.sleep_forever()
        finally:
            self.state = "stopped"
            with trio.CancelScope(shield=True):
                if browser is not None:
                    browser.cancel()
                await trio.to_thread.run_sync(zc.close)  # says goodbye on the LAN

    def _open_zeroconf(self) -> Any:
        """zeroconf on the chosen interfaces (in a thread: it binds sockets and starts one)."""
        from zeroconf import InterfaceChoice, IPVersion, Zeroconf  # starts threads; ~40 ms

        if self.interfaces is None:
            return Zeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
        missing = _missing_interfaces(self.interfaces)
        if missing:  # zeroconf would skip them quietly and announce nowhere
            raise OSError(
                f"mdns_interfaces: {', '.join(missing)} is no address of this machine's "
                "interfaces (see `ip addr`)"
            )
        versions = {ipaddress.ip_address(a).version for a in self.interfaces}
        version = {4: IPVersion.V4Only, 6: IPVersion.V6Only}.get(
            versions.pop() if len(versions) == 1 else 0, IPVersion.All
        )
        return Zeroconf(interfaces=list(self.interfaces), ip_version=version)

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        # Runs in zeroconf's browser thread: it may block here, but must not touch trio state.
        if name == self.name or state_change.name == "Removed":
            return
        try:
            info = zeroconf.get_service_info(service_type, name, timeout=1500)
            decoded = decode_txt(info.text) if info is not None and info.text else None
        except Exception:
            logger.debug("unreadable mDNS announcement %s", name, exc_info=True)
            return
        if decoded is None or decoded[0] == self.peer:
            return
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(self._found, *decoded, trio_token=self._token)

    def _found(self, peer: PeerId, addresses: list[str]) -> None:
        self.found += 1
        self.on_found(peer, addresses)
