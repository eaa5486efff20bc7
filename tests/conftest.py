"""Shared fixtures: fixed keys, a fixed clock, and envelopes between them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from meshtalk.protocol import Envelope, NodeKey, direct_conversation_id

# Deterministic runs: the same examples every time, no timing-based flakiness on slow CI.
settings.register_profile(
    "meshtalk",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=int(os.environ.get("MESHTALK_HYPOTHESIS_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("meshtalk")

NOW_MS = 1_790_000_000_000


def fixed_key(name: str) -> NodeKey:
    """A key derived from a name, the same in every run."""
    return NodeKey.from_seed(name.encode().ljust(32, b"."))


@pytest.fixture
def alice() -> NodeKey:
    return fixed_key("alice")


@pytest.fixture
def bob() -> NodeKey:
    return fixed_key("bob")


@pytest.fixture
def carol() -> NodeKey:
    return fixed_key("carol")


def make_envelope(sender: NodeKey, *recipients: NodeKey, **fields: Any) -> Envelope:
    """An envelope from `sender` to `recipients` at NOW_MS; `fields` override the defaults."""
    defaults: dict[str, Any] = {
        "id": bytes(range(16)),
        "conversation": direct_conversation_id(sender.peer_id, recipients[0].peer_id),
        "author": sender.peer_id,
        "recipients": tuple(r.peer_id for r in recipients),
        "timestamp_ms": NOW_MS,
        "lamport": 1,
        "body": "hello",
    }
    defaults.update(fields)
    return Envelope(**defaults)


@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest's tmp_path without the test's name in it: a profile's control socket
    (<home>/profiles/<name>/control.sock) must stay under 100 bytes, also under pytest-xdist,
    which puts each worker's folders one level deeper (popen-gw0/)."""
    return tmp_path_factory.mktemp("t")


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
