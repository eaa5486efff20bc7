"""What the benchmark scripts share: a script's roles run as child processes, JSON lines between
them, RSS readings and percentiles."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from meshtalk.profile import save_settings

PROFILE = bool(os.environ.get("BENCH_PROFILE_CHILDREN"))
ROOT = Path(__file__).resolve().parents[1]


def cli(home: Path, *args: str) -> str:
    """Run the meshtalk CLI with MESHTALK_HOME=home and return what it printed."""
    env = {**os.environ, "MESHTALK_HOME": str(home)}
    result = subprocess.run([sys.executable, "-m", "meshtalk", *args], env=env, check=True,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    return result.stdout


def profile(home: Path, name: str, **settings: Any) -> Path:
    """A daemon's profile folder under home, on loopback port 0 without mDNS."""
    folder = home / "profiles" / name
    save_settings(folder, {"listen": ["/ip4/127.0.0.1/tcp/0"], "mdns": False, "name": name,
                           **settings})  # fmt: skip
    return folder


def emit(value: dict[str, Any]) -> None:
    """Report one JSON line to the parent."""
    print(json.dumps(value), flush=True)


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (this one by default), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return kb / 1024


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of durations in seconds, in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000


class Child:
    """`script` in a child process with `args`, talking JSON lines over stdin/stdout.

    BENCH_PROFILE_CHILDREN=1 runs it under cProfile (/tmp/child-<last arg>.prof).
    """

    def __init__(self, script: str, *args: str) -> None:
        profile = (
            ["-m", "cProfile", "-o", f"/tmp/child-{Path(args[-1]).name}.prof"] if PROFILE else []
        )
        self.proc = subprocess.Popen(
            [sys.executable, *profile, script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def read(self) -> dict[str, Any]:
        """The child's next JSON line."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child {self.proc.args} ended without output")
        return dict(json.loads(line))

    def write(self, value: dict[str, Any] | None = None) -> None:
        """Send a JSON line (an empty line asks the child to stop)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(value) if value else "") + "\n")
        self.proc.stdin.flush()

    def rss_mb(self) -> float:
        """The child's resident memory in MiB."""
        return rss_mb(self.proc.pid)

    def cpu_seconds(self) -> float:
        """The child's CPU time so far, in seconds."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        """Ask the child to stop and wait for it (killing it after 10 s)."""
        stop_all([self])


def stop_all(children: Iterable[Child]) -> None:
    """Ask every child to stop at once, then wait for each."""
    running = [c for c in children if c.proc.poll() is None]
    for child in running:
        child.write()
    for child in running:
        try:
            child.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
