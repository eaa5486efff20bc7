"""All to all at once: 24 nodes in 3 processes, every node sends one message to every other
node at the same moment, and every message arrives exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, PER_PROCESS = 3, 8
pytestmark = pytest.mark.slow


class MeshProcess:
    """PER_PROCESS nodes in a child process (see mesh_process.py)."""

    def __init__(self, home: Path, prefix: str) -> None:
        args = ["-m", "tests.test_peer.mesh_process", str(home), str(PER_PROCESS), prefix]
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with trio.fail_after(timeout):
            line = await trio.to_thread.run_sync(self.proc.stdout.readline)
        if not line:
            raise AssertionError(f"mesh process ended (exit {self.proc.poll()})")
        return dict(json.loads(line))

    def write(self, value: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(value) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.mark.timeout(240)
async def test_every_node_sending_to_every_other_at_once_delivers_each_message_once(
    tmp_path: Path,
) -> None:
    children = [MeshProcess(tmp_path, f"p{i}n") for i in range(PROCESSES)]
    try:
        nodes = [node for child in children for node in (await child.read(60))["nodes"]]
        for child in children:
            child.write({"peers": nodes})
        for child in children:
            assert (await child.read(60))["ready"]
        for child in children:
            child.write({"go": True})
        reports = [await child.read(180) for child in children]
    finally:
        for child in children:
            child.stop()
    ids = [node["peer_id"] for node in nodes]
    received: dict[str, list[str]] = {}
    for report in reports:
        received.update(report["received"])
    for peer in ids:  # exactly once: one message from every other node, none twice
        expected = sorted(f"{other}>{peer}" for other in ids if other != peer)
        assert sorted(received[peer]) == expected
    assert sum(r["multi"] for r in reports) == 0  # one connection per pair, on both ends
