"""Which interfaces mDNS uses: those `mdns_interfaces` names, else those `listen` names, else
all. On the real path: a node listening on 127.0.0.1 is not heard on the LAN its namespace is
on (needs root and `ip`, like test_mdns_netns.py), while one listening there is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from meshtalk.discovery.mdns import choose_interfaces
from meshtalk.peer.node import open_node
from meshtalk.profile.identity import load_or_create_identity
from meshtalk.protocol import ConfigError
from tests.test_peer.helpers import fast_config

ROOT = Path(__file__).resolve().parents[2]


def test_mdns_follows_listen_when_it_names_addresses() -> None:
    assert choose_interfaces(None, ["/ip4/127.0.0.1/tcp/0"]) == ["127.0.0.1"]
    both = ["/ip4/10.0.0.5/tcp/4001", "/ip6/fd00::5/tcp/4001", "/ip4/10.0.0.5/tcp/4002"]
    assert choose_interfaces([], both) == ["10.0.0.5", "fd00::5"]
    assert choose_interfaces(None, ["/ip4/0.0.0.0/tcp/0"]) is None  # every interface
    assert choose_interfaces(None, ["/ip4/127.0.0.1/tcp/0", "/ip6/::/tcp/0"]) is None
    assert choose_interfaces(None, ["/dns4/example.org/tcp/1"]) is None


def test_mdns_interfaces_wins_over_listen_and_must_be_addresses() -> None:
    assert choose_interfaces(["192.0.2.2", "::1"], ["/ip4/0.0.0.0/tcp/0"]) == ["192.0.2.2", "::1"]
    with pytest.raises(ConfigError, match="mdns_interfaces: 'eth0' is not an IP address"):
        choose_interfaces(["eth0"], ["/ip4/0.0.0.0/tcp/0"])


async def test_a_node_refuses_an_interface_that_is_no_ip_address(tmp_path: Path) -> None:
    config = fast_config(mdns=True, mdns_interfaces=["eth0"])
    with pytest.raises(ConfigError, match="eth0"):
        async with open_node(tmp_path / "a", config):
            pass


async def test_an_address_this_machine_does_not_have_is_said_in_the_statistics(
    tmp_path: Path,
) -> None:
    config = fast_config(mdns=True, mdns_interfaces=["198.51.100.77"])
    async with open_node(tmp_path / "a", config) as node:
        with trio.fail_after(10):
            while (mdns := node.statistics().discovery.mdns) and mdns.state == "starting":
                await trio.sleep(0.02)
        assert mdns is not None
        assert mdns.state == "failed"
        assert "198.51.100.77 is no address of this machine" in (mdns.error or "")


def run_in(namespace: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    """tests.test_discovery.lan_watch in a network namespace."""
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            "-m",
            "tests.test_discovery.lan_watch",
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def heard_across(
    lan: tuple[str, str], tmp_path: Path, quiet_at: str, loud_at: str, watcher_at: str
) -> tuple[dict[str, str], list[str]]:
    """In namespace A, `quiet` listens on `quiet_at` and `loud` on `loud_at`; `watcher` in
    namespace B (on `watcher_at`) waits to hear `loud`. Their peer IDs, and whom it heard."""
    ns_a, ns_b = lan
    quiet, loud, watcher = (tmp_path / n for n in ("quiet", "loud", "watcher"))
    ids = {p.name: str(load_or_create_identity(p)[0].peer_id) for p in (quiet, loud, watcher)}
    side_a = run_in(ns_a, f"{quiet}={quiet_at}", f"{loud}={loud_at}", stdin=subprocess.PIPE)
    try:
        side_b = run_in(ns_b, f"{watcher}={watcher_at}", "--expect", ids["loud"])
        out, err = side_b.communicate(timeout=90)
        assert side_b.returncode == 0, err[-2000:]
    finally:
        _, err_a = side_a.communicate(input="", timeout=30)
    assert side_a.returncode == 0, err_a[-2000:]
    heard: list[str] = json.loads(out.strip().splitlines()[-1])[str(watcher)]
    return ids, heard


@pytest.mark.slow  # about 10 s
def test_a_node_listening_on_loopback_is_not_announced_on_the_lan(
    lan: tuple[str, str], tmp_path: Path
) -> None:
    """In namespace A, `quiet` listens on 127.0.0.1 and `loud` on A's LAN address; `watcher`
    in namespace B hears `loud` and never `quiet` (which, on every interface, it would)."""
    ids, heard = heard_across(
        lan, tmp_path, "/ip4/127.0.0.1/tcp/0", "/ip4/10.77.0.1/tcp/0", "/ip4/10.77.0.2/tcp/0"
    )
    assert ids["loud"] in heard  # mDNS works across the bridge
    assert ids["quiet"] not in heard


@pytest.mark.slow  # about 10 s
def test_mdns_on_ipv6_addresses_follows_listen_too(lan: tuple[str, str], tmp_path: Path) -> None:
    """The same over IPv6 alone (ff02::fb): `loud` on A's fd77::1 is heard, `quiet` on ::1 is
    not."""
    ns_a, ns_b = lan
    for ns, address in ((ns_a, "fd77::1/64"), (ns_b, "fd77::2/64")):
        subprocess.run(
            ["ip", "-n", ns, "addr", "add", address, "dev", "eth0", "nodad"],
            check=True,
            capture_output=True,
        )
    ids, heard = heard_across(
        lan, tmp_path, "/ip6/::1/tcp/0", "/ip6/fd77::1/tcp/0", "/ip6/fd77::2/tcp/0"
    )
    assert ids["loud"] in heard
    assert ids["quiet"] not in heard
