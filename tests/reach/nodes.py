"""The real `meshtalk` CLI in the namespaces of a `topology.Network`: a point-and-relay in the
public namespace, one node on each private host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

TIMEOUT = 90
RELAY_PORT = 4001  # the public namespace is the test's own: a fixed port survives a restart


class Box:
    """The meshtalk CLI run inside one network namespace, with its own MESHTALK_HOME."""

    def __init__(self, namespace: str, home: Path) -> None:
        self.namespace = namespace
        self.home = home
        self.env = {**os.environ, "MESHTALK_HOME": str(home)}
        self.env.pop("MESHTALK_PROFILE", None)

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "meshtalk", *args]

    def run(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def ok(self, *args: str, timeout: float = TIMEOUT) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"{self.namespace} {args}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip

    def node_pid(self) -> int | None:
        with suppress(Exception):
            return int(self.json("status")["pid"])
        return None

    def kill_node(self) -> None:
        """kill -9 of this box's node."""
        pid = self.node_pid()
        assert pid is not None, f"{self.namespace}: no node runs"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self.node_pid()
        self.run("down", timeout=60)
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def log(self) -> str:
        path = self.home / "profiles" / "default" / "node.log"
        return path.read_text(errors="replace") if path.exists() else "(no node.log)"


class RelayPoint:
    """`meshtalk rendezvous --relay` in the public namespace, on a fixed port."""

    def __init__(self, box: Box, public_ip: str, *extra: str) -> None:
        self.box, self.public_ip, self.extra = box, public_ip, extra
        self.process: subprocess.Popen[str] | None = None
        self.address = ""
        self.stopped_line = ""

    def start(self) -> str:
        """Start it; its address on the public network."""
        listen = f"/ip4/{self.public_ip}/tcp/{RELAY_PORT}"
        self.process = self.box.start("rendezvous", "--relay", "--listen", listen, *self.extra)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip().startswith(f"/ip4/{self.public_ip}/"):
                self.address = line.strip()
            if line.startswith("ready"):
                return self.address
        raise AssertionError(self.process.stderr.read() if self.process.stderr else "no output")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (its summary line is kept in `stopped_line`) or kill -9."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        out, _ = self.process.communicate(timeout=20)
        self.stopped_line = out.strip().splitlines()[-1] if out.strip() else ""


def node(box: Box, name: str, point: str) -> None:
    """init and start a node that uses `point` (as rendezvous point and so as a relay)."""
    box.ok("init", "--name", name)
    box.ok("config", "set", "rendezvous", point)
    box.ok("config", "set", "mdns", "false")
    box.ok("up", "--detach")


def pair(offerer: Box, joiner: Box, timeout: int = 60) -> None:
    """Pair two nodes with a code, through their shared point."""
    offer = offerer.start("pair")
    try:
        assert offer.stdout is not None
        code = offer.stdout.readline().split(": ", 1)[1].strip()
        joiner.ok("pair", code, "--timeout", str(timeout), timeout=timeout + 30)
        offer.communicate(timeout=timeout)
        assert offer.returncode == 0
    finally:
        if offer.poll() is None:
            offer.kill()
            offer.communicate(timeout=10)


def pair_by_invite(inviter: Box, joiner: Box, timeout: int = 60) -> None:
    """Pair two nodes with a one-time invite token (it carries the inviter's circuit address)."""
    token = inviter.json("invite")["token"]
    joiner.ok("join", token, "--timeout", str(timeout), timeout=timeout + 30)


def connection_to(box: Box, name: str) -> str | None:
    """ "direct", "relayed" or None: how `box`'s node is connected to its contact `name`."""
    for peer in box.json("peers"):
        if peer["name"] == name:
            value: str | None = peer.get("connection")
            return value
    return None


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def bodies_from(box: Box, name: str) -> list[str]:
    """Every message body `box` received from its contact `name`, in order."""
    history = box.json("history", name, "--limit", "1000")
    return [m["text"] for m in history if m["direction"] == "in" and m["author_name"] == name]
