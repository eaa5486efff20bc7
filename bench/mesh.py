"""Connections at scale (issue 15): a burst full mesh of N nodes through one rendezvous point.

    python bench/mesh.py [--sizes 25,50,100] [--processes 10] [--timeout 120]

For each N, one rendezvous point runs in its own process and N nodes are spread over P child
processes (N/P nodes each, the remainder spread; every node of a process runs in the same
trio.run), all on 127.0.0.1 with port 0 and mDNS off. Each child reports its peer IDs; the
parent sends every child the full list; each node adds every other node as a trusted contact
and waits (bounded by --timeout) until it knows an address of each through the point. Then all
children are told to go at once: every node queues one message to every other node
(`send(wait=False)`, the body carries the CLOCK_MONOTONIC send time, which processes share),
then waits for its outbox to flush, while reading its incoming messages. A child stops when
each of its nodes has received N-1 messages and flushed its outbox, or --timeout after go.

Printed per N: messages delivered in how long (last arrival - go), p50/p99 latency (arrival -
send time), messages seen twice by one node (must be 0), the nodes' counters (delivery
interruptions and every dial/connect/accept/merge counter), peers held over more than one
connection, connections, file descriptors (at the end and the most seen, sampled every 0.5 s)
and RSS per process, and how long discovery took before go.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

import trio
from children import Child, emit, percentiles, rss_mb, stop_all

LOCAL = "/ip4/127.0.0.1/tcp/0"
WATCHED = ("dial", "connect", "accept", "merge")


# -- child: the nodes of one process ----------------------------------------------------------


class LogTally(logging.Handler):
    """Counts warning and error records by logger and message start, and those saying a
    descriptor could not be opened (EMFILE)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.kinds: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + repr(record.exc_info[1] if record.exc_info else "")
        self.kinds[f"{record.name}: {text[:60]}"] += 1
        if "Too many open files" in text or "EMFILE" in text:
            self.count += 1


def fd_count() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


async def read_parent() -> dict[str, Any]:
    """The parent's next JSON line ({} when it asks to stop)."""
    line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    return dict(json.loads(line)) if line.strip() else {}


async def sample_fds(peak: list[int]) -> None:
    """Keep the most descriptors seen in peak[0], sampling every 0.5 s."""
    while True:
        peak[0] = max(peak[0], fd_count())
        await trio.sleep(0.5)


async def wait_addresses(nodes: list[Any], peers: list[str], timeout: float) -> dict[str, Any]:
    """Add every other node as a contact, then wait until each node knows an address of each."""
    started = time.monotonic()
    wanted = []
    for node in nodes:
        own = str(node.peer_id)
        others = [node.add_contact(p, f"n{i}").peer_id for i, p in enumerate(peers) if p != own]
        wanted.append((node, others))
    with trio.move_on_after(timeout):
        for node, others in wanted:
            while any(not node.addresses_of(p) for p in others):
                await trio.sleep(0.05)
    missing = sum(1 for node, others in wanted for p in others if not node.addresses_of(p))
    return {"discovery_s": time.monotonic() - started, "unknown_pairs": missing}


class Tally:
    """What one node received: message ids, duplicates, latencies, the last arrival."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: set[tuple[str, bytes]] = set()
        self.duplicates = 0
        self.latencies: list[float] = []
        self.last_arrival = 0.0
        self.complete = trio.Event()
        self.flushed = False
        self.queued_at = 0.0

    def record(self, author: str, message_id: bytes, body: Any) -> None:
        arrival = time.monotonic()
        key = (author, message_id)
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.last_arrival = max(self.last_arrival, arrival)
        if isinstance(body, str) and body.startswith("t="):
            self.latencies.append(arrival - float(body[2:]))
        if len(self.seen) >= self.expected:
            self.complete.set()


async def receive_all(node: Any, tally: Tally) -> None:
    """Record every incoming message until the node has all it expects (duplicates counted
    until the end: the reader keeps going while other nodes still send)."""
    async for message in node.messages():
        tally.record(str(message.author), message.id, message.body)


async def send_all(node: Any, peers: list[str], tally: Tally, deadline: float) -> None:
    """Queue one message to every other node (starting after itself, so that not every node
    begins with the same peer), then wait for the outbox to flush."""
    own = peers.index(str(node.peer_id))
    for peer in peers[own + 1 :] + peers[:own]:
        await node.send(peer, f"t={time.monotonic()!r}", wait=False)
    tally.queued_at = time.monotonic()
    tally.flushed = await node.wait_flushed(max(0.0, deadline - trio.current_time()))


async def burst(nodes: list[Any], peers: list[str], timeout: float) -> list[Tally]:
    """Every node sends to every other and reads its own; ends when all is in, or at timeout."""
    tallies = [Tally(len(peers) - 1) for _ in nodes]
    deadline = trio.current_time() + timeout
    with trio.move_on_at(deadline):
        async with trio.open_nursery() as readers:
            for node, tally in zip(nodes, tallies, strict=True):
                readers.start_soon(receive_all, node, tally)
            async with trio.open_nursery() as senders:
                for node, tally in zip(nodes, tallies, strict=True):
                    senders.start_soon(send_all, node, peers, tally, deadline)
            for tally in tallies:
                await tally.complete.wait()
            readers.cancel_scope.cancel()
    return tallies


def connection_figures(nodes: list[Any]) -> dict[str, int]:
    """Connections held by the nodes of this process, and peers held over more than one."""
    total = multiple = 0
    for node in nodes:
        for conns in node.host.get_network().connections.values():
            held = len(conns) if isinstance(conns, list | tuple | set | dict) else 1
            total += held
            multiple += held > 1
    return {"connections": total, "multi_connection_peers": multiple}


def report(nodes: list[Any], tallies: list[Tally], peak: list[int]) -> dict[str, Any]:
    """The child's figures after the burst."""
    counters: Counter[str] = Counter()
    errors: Counter[str] = Counter()  # the links' last errors, their numbers cut off
    for node in nodes:
        stats = node.statistics()
        counters.update(stats.counters)
        errors.update(link.last_error[:70] for link in stats.links.values() if link.last_error)
    return {
        "link_errors": dict(errors.most_common(3)),
        "received": sum(len(t.seen) for t in tallies),
        "expected": sum(t.expected for t in tallies),
        "complete_nodes": sum(len(t.seen) >= t.expected for t in tallies),
        "flushed_nodes": sum(t.flushed for t in tallies),
        "duplicates": sum(t.duplicates for t in tallies),
        "latencies": [x for t in tallies for x in t.latencies],
        "last_arrival": max(t.last_arrival for t in tallies),
        "queued_at": max(t.queued_at for t in tallies),
        "counters": dict(counters),
        **connection_figures(nodes),
        "fds": fd_count(),
        "fds_max": max(peak[0], fd_count()),
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "rss_mb": rss_mb(),
    }


async def phases(nodes: list[Any], timeout: float, peak: list[int], emfile: LogTally) -> None:
    """Peers to the parent, contacts and discovery, then the burst on "go", then the report."""
    emit({"peers": [str(node.peer_id) for node in nodes]})
    peers = (await read_parent())["peers"]
    emit(await wait_addresses(nodes, peers, timeout))
    if await read_parent():
        tallies = await burst(nodes, peers, timeout)
        logs = dict(emfile.kinds.most_common(3))
        emit({**report(nodes, tallies, peak), "emfile_logs": emfile.count, "logs": logs})
        await read_parent()


async def nodes_child(home: str, first: int, count: int, point: str, timeout: float) -> None:
    """Run `count` nodes through the phases the parent calls: peers, ready, go, report."""
    from meshtalk.peer.node import NodeConfig, open_node

    emfile = LogTally()
    logging.getLogger().addHandler(emfile)
    peak = [0]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_fds, peak)
            try:
                async with contextlib.AsyncExitStack() as stack:
                    nodes = []
                    for i in range(first, first + count):
                        config = NodeConfig(listen=[LOCAL], rendezvous=[point], mdns=False)
                        node = open_node(f"{home}/n{i}", config)
                        nodes.append(await stack.enter_async_context(node))
                    await phases(nodes, timeout, peak, emfile)
            finally:
                nursery.cancel_scope.cancel()
    except Exception as exc:  # reported to the parent instead of hanging it
        emit({"error": describe(exc), "emfile_logs": emfile.count,
              "fds_max": max(peak[0], fd_count())})  # fmt: skip


def describe(exc: BaseException) -> str:
    """An error as one line, with the leaves of an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(leaf) for leaf in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


# -- parent -----------------------------------------------------------------------------------


class ChildFailed(RuntimeError):
    """A child reported an error, ended, or said nothing in time."""


def read_within(child: Child, seconds: float) -> dict[str, Any]:
    """The child's next JSON line; ChildFailed if it reports an error or is silent too long."""
    box: list[dict[str, Any] | BaseException] = []

    def read() -> None:
        try:
            box.append(child.read())
        except BaseException as exc:  # handed to the caller's thread
            box.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    if not box:
        raise ChildFailed(f"child {child.proc.pid} said nothing for {seconds:.0f} s")
    value = box[0]
    if isinstance(value, BaseException):
        raise ChildFailed(str(value)) from value
    if "error" in value:
        raise ChildFailed(f"child {child.proc.pid}: {value}")
    return value


def spawn(*args: str) -> Child:
    return Child(__file__, "--child", *args)


def spread(size: int, processes: int) -> list[int]:
    """How many nodes each process runs: size/processes, the remainder spread."""
    processes = min(processes, size)
    return [size // processes + (i < size % processes) for i in range(processes)]


def run_mesh(size: int, processes: int, timeout: float) -> dict[str, Any]:
    """One burst of `size` nodes; the children's reports with the go time and discovery time."""
    point = spawn("point")
    children = [point]
    try:
        address = read_within(point, 60)["addresses"][0]
        with tempfile.TemporaryDirectory() as home:
            first = 0
            for count in spread(size, processes):
                children.append(spawn("nodes", home, str(first), str(count), address,
                                      str(timeout)))  # fmt: skip
                first += count
            nodes = children[1:]
            peers = [p for c in nodes for p in read_within(c, 120)["peers"]]
            started = time.monotonic()
            for child in nodes:
                child.write({"peers": peers})
            ready = [read_within(child, timeout + 60) for child in nodes]
            discovery = time.monotonic() - started
            go = time.monotonic()
            for child in nodes:
                child.write({"go": True})
            reports = [read_within(child, timeout + 60) for child in nodes]
            stop_all(children)
    finally:
        stop_all(children)
    return {"go": go, "discovery": discovery, "ready": ready, "reports": reports}


def print_mesh(size: int, counts: list[int], timeout: float, run: dict[str, Any]) -> None:
    """One block of figures for one N."""
    reports = run["reports"]

    def total(key: str) -> int:
        return int(sum(r[key] for r in reports))

    def most(key: str) -> float:
        return float(max(r[key] for r in reports))

    received, expected = total("received"), total("expected")
    took = max(0.0, most("last_arrival") - run["go"])
    latencies = [x for r in reports for x in r["latencies"]]
    p50, p99 = percentiles(latencies) if latencies else (float("nan"), float("nan"))
    counters: Counter[str] = Counter()
    for r in reports:
        counters.update(r["counters"])
    watched = {k: v for k, v in sorted(counters.items()) if any(w in k for w in WATCHED)}
    unknown = sum(r["unknown_pairs"] for r in run["ready"])
    print(f"N={size}: {len(counts)} processes of {min(counts)}-{max(counts)} nodes")
    print(f"  discovery before go {run['discovery']:6.2f} s (slowest process "
          f"{max(r['discovery_s'] for r in run['ready']):.2f} s), "
          f"pairs without an address {unknown}")  # fmt: skip
    print(f"  delivered {received:,}/{expected:,} in {took:.2f} s   p50 {p50:.1f} ms  "
          f"p99 {p99:.1f} ms   duplicates {total('duplicates')} "
          f"(node counter {counters.get('duplicates', 0)})")  # fmt: skip
    if most("queued_at"):
        print(f"  every send queued {most('queued_at') - run['go']:.2f} s after go")
    print(f"  delivery_interruptions {counters.get('delivery_interruptions', 0)}   "
          f"peers with >1 connection {total('multi_connection_peers')}   " +
          ("  ".join(f"{k} {v}" for k, v in watched.items()) or
           "(no dial/connect/accept/merge counters)"))  # fmt: skip
    print(f"  per process (max): connections {most('connections'):.0f}  fds {most('fds'):.0f} "
          f"at end, {most('fds_max'):.0f} peak (limit {most('fd_limit'):.0f})  "
          f"RSS {most('rss_mb'):.0f} MB   EMFILE log records {total('emfile_logs')}")  # fmt: skip
    logs: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for r in reports:
        logs.update(r["logs"])
        errors.update(r["link_errors"])
    for text, n in errors.most_common(3):
        print(f"  last error of {n} links: {text}")
    for text, n in logs.most_common(3):
        print(f"  log x{n}: {text}")
    if received < expected:
        print(f"  TIMEOUT: after --timeout {timeout:.0f} s, {expected - received:,} messages "
              f"missing; complete nodes {total('complete_nodes')}/{size}, flushed outboxes "
              f"{total('flushed_nodes')}/{size}")  # fmt: skip


def child_main(role: str, rest: list[str]) -> None:
    if role == "point":
        from discovery import point_child

        trio.run(point_child, "")
    elif role == "nodes":
        home, first, count, point, timeout = rest
        trio.run(nodes_child, home, int(first), int(count), point, float(timeout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25,50,100")
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], args.child[1:])
        return
    print(f"bench/mesh.py on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"--processes {args.processes} --timeout {args.timeout:.0f}")  # fmt: skip
    for size in map(int, args.sizes.split(",")):
        counts = spread(size, args.processes)
        try:
            run = run_mesh(size, args.processes, args.timeout)
        except ChildFailed as exc:
            print(f"N={size}: FAILED: {exc}")
            continue
        print_mesh(size, counts, args.timeout, run)


if __name__ == "__main__":
    main()
