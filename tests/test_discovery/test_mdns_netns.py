"""Two nodes in two network namespaces joined by a bridge find each other by mDNS alone, then
exchange a message. Needs root and `ip` (iproute2); skipped with the reason otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshtalk.identity import load_or_create_identity

ROOT = Path(__file__).resolve().parents[2]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def lan() -> Iterator[tuple[str, str]]:
    """Namespaces A and B with 10.77.0.1 and 10.77.0.2, bridged in a third namespace."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip) to create network namespaces")
    tag = f"mt{os.getpid()}"
    a, b, bridge = f"{tag}a", f"{tag}b", f"{tag}br"
    try:
        ip("netns", "add", a)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.decode().strip()}")
    try:
        ip("netns", "add", b)
        ip("netns", "add", bridge)
        ip("-n", bridge, "link", "add", "br0", "type", "bridge")
        for name, ns in (("a", a), ("b", b)):
            ip("link", "add", f"veth{name}", "netns", bridge, "type", "veth",
               "peer", "name", "eth0", "netns", ns)  # fmt: skip
            ip("-n", bridge, "link", "set", f"veth{name}", "master", "br0")
            ip("-n", bridge, "link", "set", f"veth{name}", "up")
        ip("-n", bridge, "link", "set", "br0", "up")
        for number, ns in ((1, a), (2, b)):
            ip("-n", ns, "addr", "add", f"10.77.0.{number}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
        yield a, b
    finally:
        for ns in (a, b, bridge):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_nodes_in_two_namespaces_find_each_other_by_mdns(
    lan: tuple[str, str], tmp_path: Path
) -> None:
    ns_a, ns_b = lan
    ids = [str(load_or_create_identity(tmp_path / n)[0].peer_id) for n in ("a", "b")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-m",
                "tests.test_discovery.lan_node",
                str(tmp_path / name),
                f"/ip4/10.77.0.{number}/tcp/0",
                other,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ns, name, number, other in ((ns_a, "a", 1, ids[1]), (ns_b, "b", 2, ids[0]))
    ]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=90)
        assert run.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    for result, other in zip(results, reversed(ids), strict=True):
        assert result["received"] == f"hello from {other}"
        assert "mdns" in result["sources"]
        assert result["found_after"] < 10  # the target is ~2 s; bench/discovery.py measures it
