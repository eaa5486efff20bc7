"""What the sync facade costs: `Mesh.send(wait=True)` round trips through an embedded node and
through a daemon's control socket, against the trio API in the same run.

    python bench/facade.py [--count 300]

The receiver (bob) is a `meshtalk up --detach` daemon in every case; the sender (alice) is
1. a trio node in this process (`node.send(wait=True)`): the baseline,
2. `Mesh(alice, embedded=True)`: the node in a trio thread of this process,
3. `Mesh(alice)` talking to alice's daemon over its Unix socket.
Each prints p50/p99 of the send-to-ack round trip; the overhead is p50 minus the baseline's.
Sends say via="human" so that all three do the same work; the conversation guards that agent
sends pass through are timed on their own at the end (default limits, on alice's real store).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from children import cli, percentiles, profile

from meshtalk import Mesh
from meshtalk.facade.daemon import node_config
from meshtalk.peer.guards import AgentGuard, GuardLimits
from meshtalk.peer.node import open_node
from meshtalk.peer.store import STORE_FILE_NAME, Store
from meshtalk.profile import default_settings, load_settings


async def trio_round_trips(alice: Path, count: int) -> list[float]:
    samples = []
    async with open_node(alice, node_config(load_settings(alice))) as node:
        for n in range(count + 20):
            started = time.perf_counter()
            await node.send("bob", f"trio {n}", wait=True, timeout=30)
            samples.append(time.perf_counter() - started)
    return samples[20:]  # the first ones include dialing


def mesh_round_trips(mesh: Mesh, count: int) -> list[float]:
    samples = []
    for n in range(count + 20):
        started = time.perf_counter()
        mesh.send("bob", f"mesh {n}", wait=True, timeout=30, via="human")
        samples.append(time.perf_counter() - started)
    return samples[20:]


def time_guard_check(alice: Path) -> float:
    """Microseconds per check_agent_send at default limits on alice's conversation with bob."""
    store = Store(alice / STORE_FILE_NAME)
    try:
        [conversation] = [c.id for c in store.messages.conversations()]
        history = functools.partial(store.messages.recent_authorship, conversation)
        limits = GuardLimits.from_settings(default_settings())
        guard, now = AgentGuard(limits), int(time.time() * 1000)
        started = time.perf_counter()
        for _ in range(1000):
            guard.check(conversation, "a short message", history, now)
        return (time.perf_counter() - started) * 1000
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    count = parser.parse_args().count
    home = Path(tempfile.mkdtemp(prefix="meshtalk-bench-facade-"))
    alice, _ = profile(home, "alice", http="off"), profile(home, "bob", http="off")
    cli(home, "--profile", "bob", "up", "--detach")
    try:
        token = cli(home, "--profile", "bob", "invite").strip()
        with Mesh(alice, embedded=True) as mesh:  # pair once, through the facade
            mesh.join(token)
        results = {"trio API (baseline)": trio.run(trio_round_trips, alice, count)}
        with Mesh(alice, embedded=True) as mesh:
            results["Mesh, embedded node"] = mesh_round_trips(mesh, count)
        cli(home, "--profile", "alice", "up", "--detach")
        try:
            with Mesh(alice) as mesh:
                assert not mesh.embedded
                results["Mesh, daemon socket"] = mesh_round_trips(mesh, count)
        finally:
            cli(home, "--profile", "alice", "down")
    finally:
        cli(home, "--profile", "bob", "down")
    guard_us = time_guard_check(alice)
    base, _ = percentiles(results["trio API (baseline)"])
    print(f"send(wait=True) round trip to a daemon on 127.0.0.1, {count} sends each")
    for name, samples in results.items():
        p50, p99 = percentiles(samples)
        print(
            f"  {name:<22} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  overhead p50 {p50 - base:+.2f} ms"
        )
    print(f"  guard check for an agent send (default limits): {guard_us:.0f} us")


if __name__ == "__main__":
    main()
