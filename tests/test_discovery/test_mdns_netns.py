"""Two nodes in two network namespaces joined by a bridge find each other by mDNS alone, then
exchange a message. Needs root and `ip` (iproute2); skipped with the reason otherwise (the
`lan` fixture is in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshtalk.profile.identity import load_or_create_identity

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # about 10 s


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
