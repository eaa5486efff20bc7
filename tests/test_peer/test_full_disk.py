"""A disk that fills up: send() raises StoreError, and nothing stored before is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshtalk.peer.store import Store

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, resource, signal, sys, trio
from meshtalk.peer.node import open_node
from meshtalk.protocol import NodeKey, StoreError
from tests.test_peer.helpers import fast_config

async def main(profile):
    async with open_node(profile, fast_config()) as node:
        peer = NodeKey.generate().peer_id  # never online: everything stays queued
        node.add_contact(peer, "offline", ["/ip4/127.0.0.1/tcp/9"])
        await node.send("offline", "before the limit")
        # Every file this process writes may now grow by 256 KiB at most, as on a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        wal = os.path.getsize(os.path.join(profile, "store.db-wal"))
        db = os.path.getsize(os.path.join(profile, "store.db"))
        limit = max(wal, db) + 256 * 1024
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        returned = 0
        try:
            for i in range(10_000):
                await node.send("offline", f"{i}:" + "x" * 4000)
                returned += 1
        except StoreError as exc:
            print("REFUSED", returned, exc, flush=True)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        await node.send("offline", "after the space came back")
        print("DONE", flush=True)

trio.run(main, sys.argv[1])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE stands in for a full disk")
def test_full_disk_refuses_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    profile = tmp_path / "alice"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(profile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    refused = next(line for line in lines if line.startswith("REFUSED"))
    assert "is the disk full?" in refused
    assert "nothing was changed" in refused
    returned = int(refused.split()[1])
    assert returned > 0
    assert lines[-1] == "DONE"
    store = Store(profile / "store.db")
    try:
        bodies = [
            m.body for m in store.messages.history(store.messages.conversations()[0].id, 0, 100_000)
        ]
    finally:
        store.close()
    assert bodies[0] == "before the limit"
    assert bodies[1 : returned + 1] == [f"{i}:" + "x" * 4000 for i in range(returned)]
    assert bodies[-1] == "after the space came back"
    assert len(bodies) == returned + 2  # the refused one was not half-stored
