"""How quick the `meshtalk` command feels: start-up, control-socket round trips, daemon start,
pairing and sending, each measured with the real CLI as a subprocess.

    python bench/cli.py [--runs N]

Baseline in the same run: `python -c pass` (interpreter start), so figures can be compared
across machines as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{args} failed: {result.stderr}")
    return took


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    home = Path(tempfile.mkdtemp(prefix="meshtalk-bench-cli-"))
    env = {**os.environ, "MESHTALK_HOME": str(home)}
    cli = [sys.executable, "-m", "meshtalk"]

    def mt(profile: str, *args: str) -> list[str]:
        return [*cli, "--profile", profile, *args]

    point = subprocess.Popen(
        mt("point", "rendezvous", "--listen", "/ip4/127.0.0.1/tcp/0", "--json"),
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert point.stdout is not None
        address = json.loads(point.stdout.readline())["addresses"][0]
        for profile in ("alice", "bob"):
            timed(env, *mt(profile, "init", "--name", profile))
            for key, value in (("listen", "/ip4/127.0.0.1/tcp/0"), ("mdns", "false"),
                               ("rendezvous", address)):  # fmt: skip
                timed(env, *mt(profile, "config", "set", key, value))
        figures: dict[str, float] = {}
        figures["python -c pass"] = median_ms(
            [timed(env, sys.executable, "-c", "pass") for _ in range(runs)]
        )
        figures["meshtalk --version"] = median_ms(
            [timed(env, *cli, "--version") for _ in range(runs)]
        )
        figures["meshtalk id"] = median_ms([timed(env, *mt("alice", "id")) for _ in range(runs)])
        starts = []
        for _ in range(max(3, runs // 3)):
            starts.append(timed(env, *mt("alice", "up", "--detach")))
            timed(env, *mt("alice", "down"))
        figures["up --detach (to ready)"] = median_ms(starts)
        timed(env, *mt("alice", "up", "--detach"))
        timed(env, *mt("bob", "up", "--detach"))
        figures["status (control round trip)"] = median_ms(
            [timed(env, *mt("alice", "status")) for _ in range(runs)]
        )
        pairs = []
        for _ in range(max(3, runs // 3)):
            offer = subprocess.Popen(mt("alice", "pair"), env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)  # fmt: skip
            assert offer.stdout is not None
            code = offer.stdout.readline().split(": ", 1)[1].strip()
            pairs.append(timed(env, *mt("bob", "pair", code)))
            offer.wait(timeout=30)
        figures["pair CODE (joiner, to paired)"] = median_ms(pairs)
        figures["send (wait for delivery)"] = median_ms(
            [timed(env, *mt("bob", "send", "alice", f"m{n}")) for n in range(runs)]
        )
        figures["send --no-wait"] = median_ms(
            [timed(env, *mt("bob", "send", "alice", f"q{n}", "--no-wait")) for n in range(runs)]
        )
        for profile in ("alice", "bob"):
            timed(env, *mt(profile, "down"))
    finally:
        point.send_signal(signal.SIGTERM)
        point.wait(timeout=20)
    base = figures["python -c pass"]
    print(f"meshtalk CLI, median of {runs} runs (ms; x = times `python -c pass`)")
    for name, value in figures.items():
        print(f"  {name:<32} {value:8.1f} ms  {value / base:5.1f}x")


if __name__ == "__main__":
    main()
