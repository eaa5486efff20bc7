"""Two private hosts behind two NAT routers on one machine, built from network namespaces.

Every box below is a network namespace (``ip netns``); every line is a veth pair. All the
interfaces are created inside the namespaces (never in the root namespace), so several
networks can exist at once; each one still gets its own random name suffix and its own
public subnet 10.N.0.0/24.

::

                          public  (br0: 10.N.0.1/24)
                         /                         \\
            10.N.0.11 pub0                          pub0 10.N.0.12
              router a  (NAT kind_a)                router b  (NAT kind_b)
          192.168.1.1 lan0                          lan0 192.168.2.1
                 |                                          |
          192.168.1.2 eth0                          eth0 192.168.2.2
                host a                                     host b

The hosts' default route is their router; the routers know only their two subnets (no
default route), and the public namespace knows only 10.N.0.0/24: a private address is not
routable from the public side, so the only way in is through a router's public address.
IPv6 is off in every namespace (no ip6tables rules to keep it filtered).

Each router masquerades what leaves by ``pub0`` and filters what comes in by it, in FORWARD
(policy DROP) and in INPUT (so the router's own address is closed too): only packets that
conntrack links to a connection opened from inside (ESTABLISHED, RELATED) pass. The NAT kinds:

``"preserving"``
    MASQUERADE, which keeps the source port when that mapping is free (endpoint-independent
    mapping, port-restricted filtering, like most home routers); unsolicited inbound packets
    are dropped (a peer's connect times out).
``"symmetric"``
    ``MASQUERADE --random-fully``: a random public port for every connection, so a port learnt
    from one peer is useless to another; unsolicited inbound is dropped.
``"reset"``
    like ``"preserving"``, but unsolicited inbound TCP is answered with a TCP reset (a peer's
    connect is refused at once).

TCP simultaneous open (what DCUtR hole punching does) goes through two ``"preserving"``
routers: host a's SYN from port X to b's public address and port Y makes a conntrack entry in
router a whose reply direction is exactly the SYN that host b sends from Y to a's public X, and
the other way round, so each router sees the other side's SYN as a reply.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["NatKind", "Network", "TopologyError", "nat_network", "netns_available"]

NatKind = Literal["preserving", "symmetric", "reset"]
"""How a router maps and filters: see the module docstring."""

NAT_KINDS: tuple[NatKind, ...] = get_args(NatKind)

COMMAND_TIMEOUT = 10.0
"""Seconds any one ``ip``, ``iptables`` or ``sysctl`` call may take."""

# IPv4 only: ip6tables rules would be needed to keep IPv6 (even link-local) filtered too.
_NO_IPV6 = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")

_SBIN_PATH = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])


class TopologyError(RuntimeError):
    """A command that builds or removes the test network failed or timed out."""


@dataclass(frozen=True)
class Network:
    """A built network: namespace names and addresses (see the module docstring)."""

    public: str
    """The public namespace, holding the bridge."""
    public_ip: str
    """The bridge's address in the public namespace, 10.N.0.1."""
    a: str
    """Host a's namespace (private host behind router a)."""
    b: str
    """Host b's namespace (private host behind router b)."""
    a_public_ip: str
    """Router a's public address, 10.N.0.11: what the public side sees host a as."""
    b_public_ip: str
    """Router b's public address, 10.N.0.12."""
    a_ip: str
    """Host a's private address, 192.168.1.2."""
    b_ip: str
    """Host b's private address, 192.168.2.2."""
    a_router: str = ""
    """Router a's namespace (to inspect its rules or conntrack table)."""
    b_router: str = ""
    """Router b's namespace."""

    def exec_argv(self, namespace: str, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside ``namespace``."""
        return ["ip", "netns", "exec", namespace, *argv]


def _tool(name: str) -> str | None:
    """The path of a system tool, also looking in the sbin folders a test's PATH may lack."""
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=os.pathsep.join([path, _SBIN_PATH]) if path else _SBIN_PATH)


def _run(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a command and return its stdout; raise TopologyError with its stderr on failure."""
    command = " ".join(argv)
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TopologyError(f"`{command}` timed out after {timeout:g} s") from exc
    except OSError as exc:
        raise TopologyError(f"`{command}` could not start: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.strip() or done.stdout.strip() or "no output"
        raise TopologyError(f"`{command}` exited with {done.returncode}: {reason}")
    return done.stdout


def _tools() -> tuple[str, str, str]:
    """The paths of ip, iptables and sysctl; TopologyError when one is missing."""
    names = ("ip", "iptables", "sysctl")
    found = {name: _tool(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise TopologyError(f"missing tools: {', '.join(missing)}")
    ip, iptables, sysctl = (found[name] or name for name in names)
    return ip, iptables, sysctl


def netns_available() -> str | None:
    """None if this machine can build the network, else a one-line reason (to skip with)."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    try:
        ip, iptables, _ = _tools()
    except TopologyError as exc:
        return str(exc)
    probe = f"rchk{secrets.token_hex(3)}"
    try:
        _run([ip, "netns", "add", probe])
    except TopologyError as exc:
        return f"cannot create a network namespace: {exc}"
    try:
        _run([ip, "-n", probe, "link", "add", "br0", "type", "bridge"])
        _run([ip, "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", "v0", "-j", "MASQUERADE"]
        _run([ip, "netns", "exec", probe, iptables, *masquerade, "--random-fully"])
    except TopologyError as exc:
        return f"cannot build the test network: {exc}"
    finally:
        with suppress(TopologyError):
            _run([ip, "netns", "del", probe])
    return None


def _router_rules(kind: NatKind) -> list[list[str]]:
    """The iptables argument lists (one per rule) for a router of this kind."""
    masquerade = ["-j", "MASQUERADE", *(["--random-fully"] if kind == "symmetric" else [])]
    replies = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]
    if kind == "reset":
        refuse = [["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"], ["-j", "DROP"]]
    else:
        refuse = [["-j", "DROP"]]
    rules = [
        ["-t", "nat", "-A", "POSTROUTING", "-o", "pub0", *masquerade],
        ["-P", "FORWARD", "DROP"],
        ["-A", "FORWARD", *replies],
        ["-A", "FORWARD", "-i", "lan0", "-o", "pub0", "-j", "ACCEPT"],
        *(["-A", "FORWARD", "-i", "pub0", *r] for r in refuse),
        ["-A", "INPUT", "-i", "pub0", *replies],
        *(["-A", "INPUT", "-i", "pub0", *r] for r in refuse),
    ]
    return rules


def _build(net: Network, kinds: tuple[NatKind, NatKind]) -> None:
    """Create the namespaces, links, addresses, routes and rules of ``net``."""
    ip, iptables, sysctl = _tools()
    routers = (net.a_router, net.b_router)
    hosts = (net.a, net.b)
    for ns in (net.public, *routers, *hosts):
        _run([ip, "netns", "add", ns])
        _run([ip, "netns", "exec", ns, sysctl, "-eqw", *_NO_IPV6])
        _run([ip, "-n", ns, "link", "set", "lo", "up"])
    _run([ip, "-n", net.public, "link", "add", "br0", "type", "bridge"])
    _run([ip, "-n", net.public, "addr", "add", f"{net.public_ip}/24", "dev", "br0"])
    _run([ip, "-n", net.public, "link", "set", "br0", "up"])
    for index, (router, host, kind) in enumerate(zip(routers, hosts, kinds, strict=True)):
        side, lan = "ab"[index], index + 1
        port = f"r{side}"  # the router's port on the bridge
        public_ip = (net.a_public_ip, net.b_public_ip)[index]
        host_ip = (net.a_ip, net.b_ip)[index]
        _run([ip, "-n", router, "link", "add", "pub0", "type", "veth",
              "peer", "name", port, "netns", net.public])  # fmt: skip
        _run([ip, "-n", net.public, "link", "set", port, "master", "br0"])
        _run([ip, "-n", net.public, "link", "set", port, "up"])
        _run([ip, "-n", router, "addr", "add", f"{public_ip}/24", "dev", "pub0"])
        _run([ip, "-n", router, "link", "set", "pub0", "up"])
        _run([ip, "-n", router, "link", "add", "lan0", "type", "veth",
              "peer", "name", "eth0", "netns", host])  # fmt: skip
        _run([ip, "-n", router, "addr", "add", f"192.168.{lan}.1/24", "dev", "lan0"])
        _run([ip, "-n", router, "link", "set", "lan0", "up"])
        _run([ip, "-n", host, "addr", "add", f"{host_ip}/24", "dev", "eth0"])
        _run([ip, "-n", host, "link", "set", "eth0", "up"])
        _run([ip, "-n", host, "route", "add", "default", "via", f"192.168.{lan}.1"])
        _run([ip, "netns", "exec", router, sysctl, "-qw", "net.ipv4.ip_forward=1"])
        for rule in _router_rules(kind):
            _run([ip, "netns", "exec", router, iptables, "-w", "5", *rule])


def _remove(namespaces: Sequence[str]) -> list[str]:
    """Delete the namespaces that exist (with their veths); the errors, one line each."""
    ip = _tool("ip") or "ip"
    try:
        existing = set(_run([ip, "netns", "list"]).split())
    except TopologyError as exc:
        return [str(exc)]
    errors = []
    for ns in namespaces:
        if ns in existing:
            try:
                _run([ip, "netns", "del", ns])
            except TopologyError as exc:
                errors.append(str(exc))
    return errors


@contextmanager
def nat_network(kind_a: NatKind, kind_b: NatKind) -> Iterator[Network]:
    """Build the network with router a of ``kind_a`` and router b of ``kind_b``; remove it
    (every namespace, also after a failure halfway through the setup) on exit."""
    for kind in (kind_a, kind_b):
        if kind not in NAT_KINDS:
            raise ValueError(f"unknown NAT kind {kind!r}; expected one of {NAT_KINDS}")
    tag = f"rch{secrets.token_hex(3)}"
    subnet = 16 + secrets.randbelow(224)  # 10.16.0.0/24 .. 10.239.0.0/24
    net = Network(
        public=f"{tag}-pub",
        public_ip=f"10.{subnet}.0.1",
        a=f"{tag}-a",
        b=f"{tag}-b",
        a_public_ip=f"10.{subnet}.0.11",
        b_public_ip=f"10.{subnet}.0.12",
        a_ip="192.168.1.2",
        b_ip="192.168.2.2",
        a_router=f"{tag}-ra",
        b_router=f"{tag}-rb",
    )
    names = [net.public, net.a_router, net.b_router, net.a, net.b]
    clean_exit = False
    try:
        _build(net, (kind_a, kind_b))
        yield net
        clean_exit = True
    finally:
        errors = _remove(names)
        if errors and clean_exit:
            raise TopologyError("could not remove the test network: " + "; ".join(errors))
