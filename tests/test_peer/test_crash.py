"""kill -9 of either side loses nothing that `send` returned for, and doubles nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from meshtalk.peer.models import MessageStatus
from meshtalk.peer.node import open_node
from meshtalk.peer.store import Store
from tests.test_peer.helpers import fast_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # each over 6 s


class NodeProcess:
    """A node running in a child process (see node_process.py)."""

    def __init__(self, profile: Path, listen: str = "/ip4/127.0.0.1/tcp/0") -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.test_peer.node_process",
                str(profile),
                "--listen",
                listen,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.info = self.read()
        assert self.info.get("ready"), self.info

    async def aread(self) -> dict[str, Any]:
        with trio.fail_after(30):
            return await trio.to_thread.run_sync(self.read)

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"node process ended (exit {self.proc.poll()})")
        return dict(json.loads(line))

    def command(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.close_pipes()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.close_pipes()

    def close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


async def test_sender_killed_right_after_send_returned(tmp_path: Path) -> None:
    config = fast_config()
    async with open_node(tmp_path / "bob", config) as bob:
        sender = NodeProcess(tmp_path / "alice")
        try:
            bob.add_contact(sender.info["peer_id"], "alice", sender.info["addrs"])
            sender.command(op="contact", peer=str(bob.peer_id), name="bob", addrs=bob.listen_addrs)
            assert (await sender.aread()) == {"ok": True}
            sender.command(op="send", to="bob", count=400, prefix="m")
            for _ in range(150):
                last = await sender.aread()
            sender.kill9()  # right after send() returned for message last["sent"]
        finally:
            sender.stop()
        returned = last["sent"] + 1
        sender = NodeProcess(tmp_path / "alice")  # restarts with its outbox
        try:
            with trio.fail_after(30):
                while len(bob.store.messages.incoming(0, 10_000)) < returned:
                    await trio.sleep(0.05)
            # the restarted sender's outbox is empty, so everything it held was acked: what
            # bob has now is all it will ever get
            sender.command(op="flushed", timeout=20)
            assert (await sender.aread()) == {"flushed": True}
        finally:
            sender.stop()
        bodies = [m.body for m in bob.store.messages.incoming(0, 10_000)]
        assert len(bodies) == len(set(bodies))  # nothing doubled
        assert bodies[:returned] == [f"m{i}" for i in range(returned)]  # in the sender's order


async def test_receiver_killed_mid_stream(tmp_path: Path) -> None:
    total = 2000
    async with open_node(tmp_path / "alice", fast_config()) as alice:
        receiver = NodeProcess(tmp_path / "bob")
        port = port_of_process(receiver)
        try:
            alice.add_contact(receiver.info["peer_id"], "bob", receiver.info["addrs"])
            receiver.command(op="contact", peer=str(alice.peer_id), name="alice",
                             addrs=alice.listen_addrs)  # fmt: skip
            await receiver.aread()
            ids = [await alice.send("bob", f"n{i}") for i in range(total)]
            await alice.wait_delivered(ids[299], timeout=30)
            receiver.kill9()
        finally:
            receiver.stop()
        left = alice.statistics().outbox
        assert 0 < left < total, "kill came too late to be mid-stream"
        receiver = NodeProcess(tmp_path / "bob", f"/ip4/127.0.0.1/tcp/{port}")
        try:
            assert await alice.wait_flushed(timeout=60)
        finally:
            receiver.stop()
        statuses = {alice.store.messages.message(alice.peer_id, i).status for i in ids}  # type: ignore[union-attr]
        assert statuses == {MessageStatus.DELIVERED}
    store = Store(tmp_path / "bob" / "store.db")
    bodies = [m.body for m in store.messages.incoming(0, 10_000)]
    store.close()
    assert bodies == [f"n{i}" for i in range(total)]  # all, once each, in order


def port_of_process(process: NodeProcess) -> int:
    return int(process.info["addrs"][0].split("/tcp/")[1].split("/")[0])
