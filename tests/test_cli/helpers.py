"""The real `meshtalk` command as subprocesses, on profiles under a temporary MESHTALK_HOME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

TIMEOUT = 60


class Cli:
    """Runs `meshtalk` with MESHTALK_HOME set to one folder; remembers what it started."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "MESHTALK_HOME": str(home)}
        self.env.pop("MESHTALK_PROFILE", None)
        self.started: list[subprocess.Popen[str]] = []

    def argv(self, profile: str | None, args: tuple[str, ...]) -> list[str]:
        prefix = ["--profile", profile] if profile else []
        return [sys.executable, "-m", "meshtalk", *prefix, *args]

    def run(self, profile: str | None, *args: str, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run one command to the end."""
        return subprocess.run(self.argv(profile, args), capture_output=True, text=True,
                              timeout=TIMEOUT, env=self.env, input=stdin)  # fmt: skip

    def ok(self, profile: str | None, *args: str, stdin: str | None = None) -> str:
        """Run one command that must succeed; returns its stdout."""
        result = self.run(profile, *args, stdin=stdin)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result.stdout

    def json(self, profile: str | None, *args: str) -> Any:
        """Run one command with --json and decode what it printed."""
        return json.loads(self.ok(profile, *args, "--json"))

    def start(self, profile: str | None, *args: str) -> subprocess.Popen[str]:
        """Start a command that keeps running (killed at the end of the test)."""
        process = subprocess.Popen(self.argv(profile, args), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
                                   env=self.env)  # fmt: skip
        self.started.append(process)
        return process

    def profile_dir(self, profile: str) -> Path:
        return self.home / "profiles" / profile

    def node_pid(self, profile: str) -> int | None:
        with suppress(Exception):
            return int(self.json(profile, "status")["pid"])
        return None

    def cleanup(self, profiles: list[str]) -> None:
        """Stop every node and process this Cli started, whatever state they are in."""
        for profile in profiles:
            pid = self.node_pid(profile)
            self.run(profile, "down")
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)


def one_line_error(
    result: subprocess.CompletedProcess[str], code: int = 1, progress: bool = False
) -> str:
    """Check the result is a clean failure: exit code, one error line, no traceback.

    With `progress`, status lines the command printed while it waited may come before.
    """
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if progress:
        lines = lines[-1:]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("meshtalk: error: ")
    return lines[0]


@contextmanager
def rendezvous_point(cli: Cli) -> Iterator[str]:
    """A standalone point (`meshtalk rendezvous`) on 127.0.0.1; yields its address."""
    point = cli.start("point", "rendezvous", "--listen", "/ip4/127.0.0.1/tcp/0", "--json")
    assert point.stdout is not None
    line = point.stdout.readline()
    assert line, point.stderr.read() if point.stderr else ""
    try:
        yield json.loads(line)["addresses"][0]
    finally:
        point.send_signal(signal.SIGTERM)
        point.communicate(timeout=20)


def prepare(cli: Cli, profile: str, point: str | None, *, http: str | None = "127.0.0.1:0") -> str:
    """init a profile for loopback-only tests (no mDNS, the HTTP API on an OS port rather than
    the default 7747; `http=None` leaves the setting alone); returns its peer ID."""
    peer_id: str = cli.json(profile, "init", "--name", profile)["peer_id"]
    cli.ok(profile, "config", "set", "listen", "/ip4/127.0.0.1/tcp/0")
    cli.ok(profile, "config", "set", "mdns", "false")
    if http is not None:
        cli.ok(profile, "config", "set", "http", http)
    if point is not None:
        cli.ok(profile, "config", "set", "rendezvous", point)
    return peer_id


def wait_for_line(log: Path, needle: str, timeout: float = 30) -> str:
    """The first line of the log that holds `needle`, waiting for it to be written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if needle in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} never reached {log}:\n{log.read_text()}")
