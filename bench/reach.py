"""Reach across NATs, measured in network namespaces: relayed against hole-punched messaging.

    .venv/bin/python bench/reach.py      # as root: --messages 200 --burst 1000 --runs 5 --tries 20
    .venv/bin/python bench/reach.py --tries 5 --runs 2 --messages 50    # a quick run
    .venv/bin/python bench/reach.py --only punch --kinds preserving/reset

Builds tests/reach/topology.py's network (a public namespace with `meshtalk rendezvous --relay`
on 10.N.0.1:4001, two private hosts behind NAT routers of the chosen kinds) once per
measurement, and runs every node in a worker process of this script (`--worker`, started with
`ip netns exec`), driven over JSON lines on stdin/stdout. Prints:

1. send(wait=True) round trips (until the receiver's ack), p50/p99 over --messages: relayed
   (router b symmetric, so the hole punch fails and the link stays relayed), direct after a
   hole punch (both routers port-preserving), and two nodes on the public bridge without any
   NAT or relay; the connection kind on both ends is checked before and after each run.
2. Time from starting both node processes to the first delivered message (relayed first and
   punched later for preserving/preserving, relayed only with a symmetric router), over --runs
   runs of fresh processes and profiles: median and max, with where the time went.
3. Hole punch success for --tries fresh node pairs per pair of router kinds (the dialer
   behind router a, the accepting end, which punches, behind router b), --parallel pairs at
   once spread over --procs worker processes per side: successes/tries, the median time from
   the first send until the accepting end holds a direct connection, and how long failures
   took to be decided (py-libp2p's DCUtR and meshtalk's 3 tries give up after ~60 s).
4. The relay's CPU (/proc/<pid>/stat utime + stime) per relayed message: over the round trips
   of (1) and over a pipelined burst of --burst messages, with the relay's idle CPU over the
   same wall time shown and subtracted. A message counts its ack (both cross the relay).

Needs root, iproute2 and iptables (it exits with the reason when network namespaces are not
available). Every process is stopped and every namespace removed on exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
TEXT = "x" * 300
ANY = "/ip4/0.0.0.0/tcp/0"
RELAY_PORT = 4001
POLL = 0.02  # how often a worker looks at its connections (s)
PUNCH_WAIT = 90.0  # a punch is decided within ~60 s (net/relay.py); this bounds the wait
KIND_PAIRS = ("preserving/preserving", "preserving/reset", "reset/reset", "preserving/symmetric")

if TYPE_CHECKING:
    from meshtalk.peer.node import Node
    from meshtalk.protocol.keys import PeerId


class BenchError(RuntimeError):
    """A step of the benchmark failed or timed out."""


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds a process used so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_since(pid: int | None, before: tuple[float, float]) -> tuple[float, float]:
    """User and system CPU seconds since `before` (zeros without a pid)."""
    if not pid:
        return 0.0, 0.0
    user, system = cpu_times(pid)
    return user - before[0], system - before[1]


def emit(value: dict[str, Any]) -> None:
    """One JSON line to the parent."""
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


# -- worker: nodes inside one namespace ------------------------------------------------------


@dataclass
class Hosted:
    """One node of a worker, with what its monitor saw."""

    node: Node
    peers: dict[str, PeerId]  # contact name -> peer ID
    first: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> kind -> when
    closing: trio.Event = field(default_factory=trio.Event)
    closed: trio.Event = field(default_factory=trio.Event)


class Worker:
    """`--worker`: runs nodes on request ("open"), each under a tag, and answers commands."""

    def __init__(self) -> None:
        self.nodes: dict[str, Hosted] = {}

    async def run(self) -> None:
        import meshtalk.peer.node  # noqa: F401  (the imports, before "hello")

        emit({"ev": "hello", "t": time.monotonic(), "pid": os.getpid()})
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            while True:
                line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)  # type: ignore[call-arg]
                if not line or line.strip() == "quit":
                    break
                nursery.start_soon(self.handle, json.loads(line))
            nursery.cancel_scope.cancel()

    async def handle(self, request: dict[str, Any]) -> None:
        rid = request.pop("id")
        try:
            command = getattr(self, "cmd_" + request.pop("cmd"))
            result = await command(**request)
            emit({"id": rid, **result})
        except Exception as exc:
            emit({"id": rid, "error": f"{type(exc).__name__}: {exc}"})

    def hosted(self, tag: str) -> Hosted:
        return self.nodes[tag]

    async def cmd_open(
        self,
        tag: str,
        profile: str,
        contacts: list[dict[str, Any]],
        point: str | None = None,
        listen: str = ANY,
        send_to: str | None = None,
    ) -> dict[str, Any]:
        """Start a node on `profile` with `contacts` ([{peer, name, addrs}])."""
        spec = (tag, profile, contacts, point, listen, send_to)
        hosted: Hosted = await self.nursery.start(self._node, spec)
        return {"peer_id": str(hosted.node.peer_id), "addrs": hosted.node.listen_addrs}

    async def _node(
        self,
        spec: tuple[str, str, list[dict[str, Any]], str | None, str, str | None],
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        from meshtalk.peer.node import NodeConfig, open_node

        tag, profile, contacts, point, listen, send_to = spec
        config = NodeConfig(listen=[listen], rendezvous=[point] if point else [], mdns=False)
        async with open_node(profile, config) as node:
            peers = {}
            for contact in contacts:
                added = node.add_contact(contact["peer"], contact["name"], contact["addrs"])
                peers[contact["name"]] = added.peer_id
            hosted = self.nodes[tag] = Hosted(node, peers)
            emit({"ev": "running", "tag": tag, "t": time.monotonic()})
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._monitor, hosted)
                    if point:
                        nursery.start_soon(self._reserved, tag, node)
                    if send_to:
                        nursery.start_soon(self._first_send, tag, hosted, send_to)
                    task_status.started(hosted)
                    await hosted.closing.wait()
                    nursery.cancel_scope.cancel()
            finally:
                self.nodes.pop(tag, None)
                hosted.closed.set()

    async def _monitor(self, hosted: Hosted) -> None:
        """When each contact was first seen over each connection kind."""
        connector = hosted.node._connector
        while True:
            now = time.monotonic()
            for name, peer in hosted.peers.items():
                kind = connector.connection_kind(peer)
                if kind is not None:
                    hosted.first.setdefault(name, {}).setdefault(kind, now)
            await trio.sleep(POLL)

    async def _reserved(self, tag: str, node: Node) -> None:
        while not node.reach.circuit_addresses():
            await trio.sleep(0.05)
        circuit = node.reach.circuit_addresses()[0]
        emit({"ev": "reserved", "tag": tag, "t": time.monotonic(), "circuit": circuit})

    async def _first_send(self, tag: str, hosted: Hosted, to: str) -> None:
        start = time.monotonic()
        try:
            await hosted.node.send(to, TEXT, wait=True, timeout=120)
        except Exception as exc:
            emit({"ev": "delivered", "tag": tag, "error": f"{type(exc).__name__}: {exc}"})
            return
        kind = hosted.node._connector.connection_kind(hosted.peers[to])
        emit({"ev": "delivered", "tag": tag, "t_start": start, "t": time.monotonic(), "kind": kind})

    def _kind(self, hosted: Hosted, name: str) -> str | None:
        return hosted.node._connector.connection_kind(hosted.peers[name])

    async def cmd_send(self, tag: str, to: str, timeout: float = 120) -> dict[str, Any]:
        hosted = self.hosted(tag)
        known = hosted.node.addresses_of(hosted.peers[to])  # what the dial will try
        start = time.monotonic()
        await hosted.node.send(to, TEXT, wait=True, timeout=timeout)
        kind = self._kind(hosted, to)
        return {"t_start": start, "t": time.monotonic(), "kind": kind, "known": known}

    async def cmd_rtt(
        self, tag: str, to: str, n: int, warmup: int = 10, cpu_of: int | None = None
    ) -> dict[str, Any]:
        """`n` sends with wait=True after `warmup`: seconds each, the kinds seen after each,
        and the CPU seconds process `cpu_of` (the relay: /proc is the same in every network
        namespace) used over the `n`."""
        hosted = self.hosted(tag)
        kinds: Counter[str] = Counter()
        samples = []
        for _ in range(warmup):
            await hosted.node.send(to, TEXT, wait=True, timeout=30)
        cpu = cpu_times(cpu_of) if cpu_of else (0.0, 0.0)
        own = cpu_times(os.getpid())
        t_start = time.monotonic()
        for _ in range(n):
            start = time.perf_counter()
            await hosted.node.send(to, TEXT, wait=True, timeout=30)
            samples.append(time.perf_counter() - start)
            kinds[str(self._kind(hosted, to))] += 1
        t_end = time.monotonic()
        used, mine = cpu_since(cpu_of, cpu), sum(cpu_since(os.getpid(), own))
        return {"samples": samples, "kinds": dict(kinds), "wall": t_end - t_start, "cpu": used,
                "sender_cpu": mine}  # fmt: skip

    async def cmd_burst(
        self, tag: str, to: str, n: int, timeout: float = 300, cpu_of: int | None = None
    ) -> dict[str, Any]:
        """Queue `n` messages at once, then wait until all are acked (CPU as in `rtt`)."""
        node = self.hosted(tag).node
        cpu = cpu_times(cpu_of) if cpu_of else (0.0, 0.0)
        start = time.monotonic()
        for _ in range(n):
            await node.send(to, TEXT)
        queued = time.monotonic()
        flushed = await node.wait_flushed(timeout)
        t_end = time.monotonic()
        cpu = cpu_since(cpu_of, cpu)
        return {"queued": queued - start, "wall": t_end - start, "flushed": flushed, "cpu": cpu}

    async def cmd_watch(self, tag: str, peer: str, timeout: float = PUNCH_WAIT) -> dict[str, Any]:
        """Wait until this (accepting) node's hole punch is decided, or `timeout`."""
        hosted = self.hosted(tag)
        client = hosted.node.relay_client
        with trio.move_on_after(timeout):
            while sum(client.punches.values()) < 1:
                await trio.sleep(POLL)
        return await self.cmd_state(tag, peer)

    async def cmd_state(self, tag: str, peer: str) -> dict[str, Any]:
        hosted = self.hosted(tag)
        return {
            "t": time.monotonic(),
            "kind": self._kind(hosted, peer),
            "punches": dict(hosted.node.relay_client.punches),
            "first": hosted.first.get(peer, {}),
        }

    async def cmd_close(self, tag: str) -> dict[str, Any]:
        hosted = self.nodes.get(tag)
        if hosted is not None:
            hosted.closing.set()
            with trio.move_on_after(20):
                await hosted.closed.wait()
        return {}


def worker_main() -> None:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )  # fmt: skip
    logging.getLogger("meshtalk.relay").setLevel(logging.INFO)
    with suppress(KeyboardInterrupt):
        trio.run(Worker().run)


# -- parent: processes, namespaces -----------------------------------------------------------


class Proc:
    """A child process in a namespace; its stdout lines (JSON or text) gathered as they come."""

    def __init__(self, label: str, process: trio.Process, log: Path) -> None:
        self.label, self.process, self.log = label, process, log
        self.pid = process.pid
        self.replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.ended = False
        self._changed = trio.Event()
        self._write = trio.Lock()
        self._ids = 0

    async def pump(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        try:
            async for chunk in self.process.stdout:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._take(line.decode(errors="replace"))
        finally:
            self.ended = True
            self._wake()

    def _take(self, line: str) -> None:
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict) and "id" in value:
            self.replies[value["id"]] = value
        elif isinstance(value, dict) and "ev" in value:
            self.events.append(value)
        else:
            self.text.append(line)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def log_tail(self, chars: int = 1500) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]

    async def wait_for(
        self, pick: Callable[[], dict[str, Any] | None], what: str, timeout: float
    ) -> dict[str, Any]:
        with trio.move_on_after(timeout):
            while True:
                found = pick()
                if found is not None:
                    return found
                if self.ended:
                    raise BenchError(f"{self.label} ended before {what}:\n{self.log_tail()}")
                await self._changed.wait()
        raise BenchError(f"{self.label}: no {what} within {timeout:g} s\n{self.log_tail()}")

    async def event(self, ev: str, tag: str | None = None, timeout: float = 60) -> dict[str, Any]:
        """The next event `ev` (of node `tag`), taken off the list."""

        def pick() -> dict[str, Any] | None:
            for i, value in enumerate(self.events):
                if value["ev"] == ev and (tag is None or value.get("tag") == tag):
                    return self.events.pop(i)
            return None

        return await self.wait_for(pick, f"{ev!r} event", timeout)

    async def call(self, cmd: str, timeout: float = 60, **args: Any) -> dict[str, Any]:
        """Send a command and wait for its reply; BenchError if it failed."""
        self._ids += 1
        rid = self._ids
        await self.send_line(json.dumps({"id": rid, "cmd": cmd, **args}))
        reply = await self.wait_for(lambda: self.replies.pop(rid, None), f"reply to {cmd}", timeout)
        if "error" in reply:
            raise BenchError(f"{self.label}: {cmd} failed: {reply['error']}")
        return reply

    async def send_line(self, line: str) -> None:
        assert self.process.stdin is not None
        async with self._write:
            await self.process.stdin.send_all((line + "\n").encode())

    def cpu_times(self) -> tuple[float, float]:
        """User and system CPU the process used so far (all threads), from /proc."""
        return cpu_times(self.pid)


_LOG_NUMBERS = itertools.count(1)


class Lab:
    """Owns every child process of one network; stops them all when it ends."""

    def __init__(self, nursery: trio.Nursery, tmp: Path) -> None:
        self.nursery, self.tmp = nursery, tmp
        self.procs: list[Proc] = []

    async def spawn(self, label: str, namespace: str, argv: list[str], **env: str) -> Proc:
        log = self.tmp / "logs" / f"{next(_LOG_NUMBERS):03d}-{label}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as stderr:
            process = await trio.lowlevel.open_process(
                ["ip", "netns", "exec", namespace, *argv],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT,
                env={**os.environ, **env},
            )  # fmt: skip
        proc = Proc(label, process, log)
        self.procs.append(proc)
        self.nursery.start_soon(proc.pump)
        return proc

    async def worker(self, label: str, namespace: str) -> Proc:
        # DCUtR's own lines go to the worker's log (py-libp2p logs nothing otherwise)
        dcutr = {"MESHTALK_DEBUG": "libp2p.relay.circuit_v2.dcutr"}
        argv = [sys.executable, str(SCRIPT), "--worker"]
        return await self.spawn(label, namespace, argv, **dcutr)

    async def relay(self, namespace: str, ip: str) -> tuple[Proc, str]:
        """`meshtalk rendezvous --relay` on ip:4001 in `namespace`; its address."""
        home = self.tmp / f"relay-{next(_LOG_NUMBERS)}"
        env = {"MESHTALK_HOME": str(home)}
        listen = f"/ip4/{ip}/tcp/{RELAY_PORT}"
        argv = [sys.executable, "-m", "meshtalk", "rendezvous", "--relay", "--listen", listen]
        proc = await self.spawn("relay", namespace, argv, **env)
        await proc.wait_for(lambda: {} if any(t.startswith("ready") for t in proc.text) else None,
                            "'ready' from the relay", 60)  # fmt: skip
        address = next(t.strip() for t in proc.text if t.strip().startswith(f"/ip4/{ip}/"))
        return proc, address

    async def stop(self, proc: Proc, timeout: float = 10) -> None:
        """Close its stdin (a worker quits, closing its nodes) or SIGTERM it, then kill it."""
        process = proc.process
        if process.returncode is None:
            with suppress(Exception):
                if proc.label == "relay":
                    process.terminate()
                else:
                    assert process.stdin is not None
                    await process.stdin.aclose()
            with trio.move_on_after(timeout):
                await process.wait()
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5):
                await process.wait()

    async def stop_all(self) -> None:
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for proc in self.procs:
                    nursery.start_soon(self.stop, proc)


@asynccontextmanager
async def lab_in(tmp: Path) -> AsyncIterator[Lab]:
    async with trio.open_nursery() as nursery:
        lab = Lab(nursery, tmp)
        try:
            yield lab
        finally:
            try:
                await lab.stop_all()
            finally:
                for proc in lab.procs:  # whatever did not stop in time
                    if proc.process.returncode is None:
                        proc.process.kill()
                nursery.cancel_scope.cancel()


@contextmanager
def network(kind_a: str, kind_b: str) -> Iterator[Any]:
    from tests.reach.topology import nat_network

    with nat_network(kind_a, kind_b) as net:  # type: ignore[arg-type]
        yield net


class Profiles:
    """Fresh profile folders with their identities made beforehand (so peer IDs are known)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.count = 0

    def new(self) -> tuple[str, str]:
        from meshtalk.profile.identity import load_or_create_identity

        # several measurements share `tmp`: skip the numbers an earlier one took
        while True:
            self.count += 1
            path = self.tmp / "profiles" / f"p{self.count:04d}"
            if not path.exists():
                break
        path.mkdir(parents=True, mode=0o700)
        path.parent.chmod(0o700)
        key, _ = load_or_create_identity(path)
        return str(path), str(key.peer_id)


def contact(peer: str, name: str, *addrs: str) -> dict[str, Any]:
    return {"peer": peer, "name": name, "addrs": list(addrs)}


@dataclass
class Pair:
    """Node "a" on host a and node "b" on host b, each a contact of the other by circuit."""

    a: Proc
    b: Proc
    tag_a: str
    tag_b: str


async def open_pair(
    lab: Lab,
    profiles: Profiles,
    net: Any,
    point: str,
    procs: tuple[Proc, Proc] | None = None,
    tag: str = "n",
    send_first: bool = False,
) -> Pair:
    """Open a fresh pair (in `procs`, or in two new workers); returns once both run."""
    a_profile, a_id = profiles.new()
    b_profile, b_id = profiles.new()
    circuit = point + "/p2p-circuit"
    if procs is None:
        procs = (await lab.worker("a", net.a), await lab.worker("b", net.b))
    pa, pb = procs
    tag_a, tag_b = f"{tag}a", f"{tag}b"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial_call(pa, "open", tag=tag_a, profile=a_profile, point=point,
                           contacts=[contact(b_id, "b", circuit)],
                           send_to="b" if send_first else None))  # fmt: skip
        nursery.start_soon(partial_call(pb, "open", tag=tag_b, profile=b_profile, point=point,
                           contacts=[contact(a_id, "a", circuit)]))  # fmt: skip
    return Pair(pa, pb, tag_a, tag_b)


def partial_call(proc: Proc, cmd: str, **args: Any) -> Callable[[], Any]:
    async def call() -> None:
        await proc.call(cmd, timeout=90, **args)

    return call


async def both_reserved(pair: Pair, timeout: float = 60) -> None:
    await pair.a.event("reserved", pair.tag_a, timeout)
    await pair.b.event("reserved", pair.tag_b, timeout)


# -- measurements ----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def say(line: str = "") -> None:
    print(line, flush=True)


async def rtt_line(label: str, pair: Pair, n: int, cpu_of: int | None = None) -> dict[str, Any]:
    """Kinds on both ends, then n round trips from a to b; prints one line."""
    before = (await pair.a.call("state", tag=pair.tag_a, peer="b"))["kind"]
    before_b = (await pair.b.call("state", tag=pair.tag_b, peer="a"))["kind"]
    timeout = 30 + n * 2
    result = await pair.a.call("rtt", timeout=timeout, tag=pair.tag_a, to="b", n=n, cpu_of=cpu_of)
    p50, p99 = p50_p99(result["samples"])
    seen = ", ".join(f"{k} {v}" for k, v in sorted(result["kinds"].items()))
    sender = result["sender_cpu"] / n * 1000
    say(f"  {label:<34} p50 {ms(p50)}  p99 {ms(p99)}   (before: a {before}, b {before_b}; "
        f"during: {seen}; sender CPU {sender:.2f} ms/message)")  # fmt: skip
    return result


async def settle_punch(pair: Pair) -> dict[str, Any]:
    """One delivery from a to b (relayed at first), then until b's punch is decided."""
    await pair.a.call("send", timeout=130, tag=pair.tag_a, to="b")
    state = await pair.b.call("watch", timeout=PUNCH_WAIT + 10, tag=pair.tag_b, peer="a")
    with trio.move_on_after(10):  # a direct connection is taken up by the link when idle
        while state["punches"].get("direct") and (
            (await pair.a.call("state", tag=pair.tag_a, peer="b"))["kind"] != "direct"
        ):
            await trio.sleep(0.1)
    return state


async def idle_cpu(relay: Proc, seconds: float) -> float:
    """The relay's CPU seconds over `seconds` of no traffic."""
    before = relay.cpu_times()
    await trio.sleep(seconds)
    return sum(cpu_since(relay.pid, before))


def cpu_line(label: str, busy: list[float], idle: float, n: int, wall: float) -> None:
    user, system = busy
    per = (user + system - idle) / n * 1000
    say(f"  {label:<34} {per:6.3f} ms/message   (relay CPU {(user + system) * 1000:.0f} ms "
        f"= user {user * 1000:.0f} + sys {system * 1000:.0f}, over {wall:.2f} s; idle over "
        f"the same time {idle * 1000:.0f} ms; {n} messages, {n / wall:,.0f}/s)")  # fmt: skip


async def measure_rtt_and_cpu(args: argparse.Namespace, tmp: Path, rtt: bool, cpu: bool) -> None:
    n = args.messages
    say(f"(1) send(wait=True) round trips, {n} messages of 300 B after 10 warm-up"
        + ("; (4) relay CPU per relayed message" if cpu else ""))  # fmt: skip
    profiles = Profiles(tmp)
    with network("preserving", "symmetric") as net:
        async with lab_in(tmp) as lab:
            relay, point = await lab.relay(net.public, net.public_ip)
            pair = await open_pair(lab, profiles, net, point)
            await both_reserved(pair)
            state = await settle_punch(pair)
            say(f"  relayed pair (a preserving, b symmetric): b's hole punch {state['punches']}")
            result = await rtt_line("relayed", pair, n, relay.pid)
            if cpu:
                idle = await idle_cpu(relay, result["wall"])
                cpu_line("(4) relay CPU, round trips", result["cpu"], idle, n, result["wall"])
                m = args.burst
                burst = await pair.a.call(
                    "burst", timeout=60 + m, tag=pair.tag_a, to="b", n=m, cpu_of=relay.pid
                )
                idle = await idle_cpu(relay, burst["wall"])
                if not burst["flushed"]:
                    say("  burst: NOT flushed within its timeout")
                cpu_line("(4) relay CPU, pipelined burst", burst["cpu"], idle, m, burst["wall"])
                kind = (await pair.a.call("state", tag=pair.tag_a, peer="b"))["kind"]
                say(f"      (the burst went {kind}; all {m} queued in {burst['queued']:.2f} s)")
    if not rtt:
        return
    with network("preserving", "preserving") as net:
        async with lab_in(tmp) as lab:
            relay, point = await lab.relay(net.public, net.public_ip)
            pair = await open_pair(lab, profiles, net, point)
            await both_reserved(pair)
            state = await settle_punch(pair)
            punched = "direct" if state["punches"].get("direct") else "still relayed"
            say(f"  punched pair (both preserving): b's hole punch {state['punches']}")
            await rtt_line(f"after the hole punch ({punched})", pair, n)
            # no NAT, no relay: two nodes on the public bridge, by their direct addresses
            p1, id1 = profiles.new()
            p2, id2 = profiles.new()
            ip = net.public_ip
            x, y = await lab.worker("pub-a", net.public), await lab.worker("pub-b", net.public)
            addr1, addr2 = f"/ip4/{ip}/tcp/4101/p2p/{id1}", f"/ip4/{ip}/tcp/4102/p2p/{id2}"
            await x.call("open", tag="na", profile=p1, listen=f"/ip4/{ip}/tcp/4101",
                         contacts=[contact(id2, "b", addr2)])  # fmt: skip
            await y.call("open", tag="nb", profile=p2, listen=f"/ip4/{ip}/tcp/4102",
                         contacts=[contact(id1, "a", addr1)])  # fmt: skip
            await x.call("send", tag="na", to="b")
            await rtt_line("plain direct (no NAT, no relay)", Pair(x, y, "na", "nb"), n)


async def measure_first_message(args: argparse.Namespace, tmp: Path) -> None:
    say()
    say(f"(2) both node processes started -> first message delivered (ack back), "
        f"{args.runs} runs each")  # fmt: skip
    profiles = Profiles(tmp)
    for kinds in ("preserving/preserving", "preserving/symmetric"):
        kind_a, kind_b = kinds.split("/")
        with network(kind_a, kind_b) as net:
            async with lab_in(tmp) as lab:
                _, point = await lab.relay(net.public, net.public_ip)
                totals, parts, went = [], [], Counter[str]()
                for run in range(args.runs):
                    t0 = time.monotonic()
                    a, b = await lab.worker("a", net.a), await lab.worker("b", net.b)
                    hello = max((await a.event("hello"))["t"], (await b.event("hello"))["t"])
                    pair = await open_pair(lab, profiles, net, point, (a, b), f"r{run}",
                                           send_first=True)  # fmt: skip
                    reserved = max((await a.event("reserved", timeout=90))["t"],
                                   (await b.event("reserved", timeout=90))["t"])  # fmt: skip
                    done = await a.event("delivered", pair.tag_a, timeout=130)
                    if "error" in done:
                        raise BenchError(f"first message: {done['error']}")
                    totals.append(done["t"] - t0)
                    parts.append((hello - t0, reserved - t0, done["t"] - done["t_start"]))
                    went[str(done["kind"])] += 1
                    for proc in (a, b):
                        await lab.stop(proc)
                med = statistics.median
                say(
                    f"  {kinds:<22} median {med(totals):6.2f} s  max {max(totals):6.2f} s   "
                    f"(first delivery over: {', '.join(f'{k} {v}' for k, v in went.items())})"
                )
                say(f"  {'':<22} medians: imports done {med(p[0] for p in parts):.2f} s, both "
                    f"reserved {med(p[1] for p in parts):.2f} s, send -> ack "
                    f"{med(p[2] for p in parts):.2f} s")  # fmt: skip


@dataclass
class TryResult:
    direct: bool
    to_relayed: float | None  # first send -> b holds the relayed connection
    to_direct: float | None  # first send -> b holds a direct connection
    punch_time: float | None  # b first relayed -> direct
    decided: float  # first send -> the punch decided
    punches: dict[str, int]
    kinds: tuple[str | None, str | None]
    known: list[str]  # the addresses of b the dialer knew before its send


async def punch_try(
    lab: Lab, profiles: Profiles, net: Any, point: str, procs: tuple[Proc, Proc], tag: str
) -> TryResult:
    pair = await open_pair(lab, profiles, net, point, procs, tag)
    try:
        await both_reserved(pair, 90)
        sent = await pair.a.call("send", timeout=130, tag=pair.tag_a, to="b")
        state = await pair.b.call("watch", timeout=PUNCH_WAIT + 10, tag=pair.tag_b, peer="a")
        kind_a = (await pair.a.call("state", tag=pair.tag_a, peer="b"))["kind"]
        direct_at = state["first"].get("direct")
        relayed_at = state["first"].get("relayed")
        direct = bool(state["punches"].get("direct")) and state["kind"] == "direct"
        return TryResult(
            direct,
            relayed_at - sent["t_start"] if relayed_at is not None else None,
            direct_at - sent["t_start"] if direct_at is not None else None,
            direct_at - relayed_at if direct_at is not None and relayed_at is not None else None,
            state["t"] - sent["t_start"],
            state["punches"],
            (kind_a, state["kind"]),
            sent["known"],
        )
    finally:
        for proc, node_tag in ((pair.a, pair.tag_a), (pair.b, pair.tag_b)):
            with suppress(BenchError):
                await proc.call("close", timeout=30, tag=node_tag)


async def punch_tries(
    args: argparse.Namespace, tmp: Path, profiles: Profiles, kinds: str
) -> list[TryResult | str]:
    """--tries fresh pairs in a network of router kinds `kinds`; each result or its error."""
    kind_a, kind_b = kinds.split("/")
    results: list[TryResult | str] = []
    with network(kind_a, kind_b) as net:
        async with lab_in(tmp) as lab:
            _, point = await lab.relay(net.public, net.public_ip)
            count = min(args.procs, args.tries)
            a_procs = [await lab.worker(f"a{i}", net.a) for i in range(count)]
            b_procs = [await lab.worker(f"b{i}", net.b) for i in range(count)]
            for proc in (*a_procs, *b_procs):
                await proc.event("hello", timeout=60)
            limiter = trio.CapacityLimiter(args.parallel)

            async def one(i: int) -> None:
                await trio.sleep(i * args.stagger)
                async with limiter:
                    procs = (a_procs[i % count], b_procs[i % count])
                    try:
                        results.append(await punch_try(lab, profiles, net, point, procs, f"t{i}"))
                    except BenchError as exc:
                        results.append(str(exc).splitlines()[0])

            async with trio.open_nursery() as nursery:
                for i in range(args.tries):
                    nursery.start_soon(one, i)
    return results


async def measure_punches(args: argparse.Namespace, tmp: Path) -> None:
    say()
    say(
        f"(3) hole punch success, {args.tries} fresh pairs per router pair (a dials, b "
        f"accepts and punches), {args.parallel} at once over {args.procs} processes per side"
    )
    profiles = Profiles(tmp)
    for kinds in args.kinds:
        started = time.monotonic()
        results = await punch_tries(args, tmp, profiles, kinds)
        done = [r for r in results if isinstance(r, TryResult)]
        errors = [r for r in results if isinstance(r, str)]
        ok = [r for r in done if r.direct]
        to_direct = [r.to_direct for r in ok if r.to_direct is not None]
        punch = [r.punch_time for r in ok if r.punch_time is not None]
        failed = [r.decided for r in done if not r.direct]
        line = f"  {kinds:<22} direct {len(ok):>2}/{len(results)}"
        if to_direct:
            line += (f"   send -> direct median {statistics.median(to_direct):5.2f} s "
                     f"(max {max(to_direct):.2f}; relayed -> direct "
                     f"{statistics.median(punch):.2f} s)")  # fmt: skip
        if failed:
            line += f"   failures decided after median {statistics.median(failed):.1f} s"
        relayed = [r.to_relayed for r in done if r.to_relayed is not None]
        if relayed:
            line += f"   (send -> relayed median {statistics.median(relayed):.2f} s)"
        say(line + f"   [{time.monotonic() - started:.0f} s]")
        odd = Counter(
            f"{r.kinds} {r.punches}" for r in done if r.direct != (r.kinds[1] == "direct")
        )
        for what, n in odd.items():
            say(f"      {n} x kinds (a, b) and punches: {what}")
        known = Counter(", ".join(map(address_shape, r.known)) or "none" for r in done)
        for addresses, n in known.most_common(2):
            say(f"      {n} x the dialer knew b at: {addresses}")
        for error in Counter(errors).most_common(3):
            say(f"      error x{error[1]}: {error[0]}")


def address_shape(address: str) -> str:
    """An address without its peer IDs, and without its port unless it is a relay's."""
    address = re.sub(r"/p2p/\w+", "", address)
    return address if "p2p-circuit" in address else re.sub(r"/tcp/\d+", "/tcp/*", address)


def log_summary(tmp: Path) -> None:
    """What went wrong in the workers' and relays' logs (warnings, errors), most common first."""
    lines: Counter[str] = Counter()
    tracebacks = 0
    for log in sorted((tmp / "logs").glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                tracebacks += 1
            parts = line.split(" ", 5)
            if len(parts) == 6 and parts[4] in ("WARNING", "ERROR", "CRITICAL"):
                text = parts[5]
                text = re.sub(r"12D3KooW\w+", "<peer>", text)
                text = re.sub(r"/ip4/[\d.]+/tcp/\d+", "<addr>", text)
                lines[f"{parts[3]} {parts[4]} {' '.join(text.split()[:12])[:120]}"] += 1
    say()
    say(f"log lines at WARNING or above in every process: {sum(lines.values())}, "
        f"tracebacks: {tracebacks}")  # fmt: skip
    for text, n in lines.most_common(8):
        say(f"  {n:5d} x {text}")


class Terminated(Exception):
    """SIGTERM or SIGHUP arrived: stop like on Ctrl-C (every process, every namespace)."""


async def main(args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
                async for number in signals:
                    raise Terminated(signal.Signals(number).name)

        nursery.start_soon(on_signal)
        await measure(args)
        nursery.cancel_scope.cancel()


async def measure(args: argparse.Namespace) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="meshtalk-reach-") as name:
        tmp = Path(name)
        try:
            if "rtt" in args.only or "cpu" in args.only:
                await measure_rtt_and_cpu(args, tmp, "rtt" in args.only, "cpu" in args.only)
            if "first" in args.only:
                await measure_first_message(args, tmp)
            if "punch" in args.only:
                await measure_punches(args, tmp)
            log_summary(tmp)
        finally:
            if args.keep:
                kept = Path(tempfile.mkdtemp(prefix="meshtalk-reach-logs-"))
                shutil.copytree(tmp / "logs", kept / "logs")
                say(f"logs kept in {kept}/logs")
    say(f"\ntotal {time.monotonic() - started:.0f} s")


def leaf_exceptions(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaf_exceptions(inner)
    else:
        yield exc


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Relayed vs hole-punched messaging across NATs built from network "
        "namespaces (needs root).",
    )
    parser.add_argument("--messages", type=int, default=200, help="round trips (default 200)")
    parser.add_argument("--burst", type=int, default=1000, help="burst for relay CPU (1000)")
    parser.add_argument("--runs", type=int, default=5, help="first-message runs per case (5)")
    parser.add_argument("--tries", type=int, default=20, help="punch tries per router pair (20)")
    parser.add_argument("--parallel", type=int, default=20, help="tries at once (default 20)")
    parser.add_argument("--procs", type=int, default=4, help="worker processes per side (4)")
    parser.add_argument("--stagger", type=float, default=0.25, help="s between tries' starts")
    parser.add_argument(
        "--kinds", type=lambda s: s.split(","), default=list(KIND_PAIRS),
        help=f"router pairs for (3), comma-separated (default {','.join(KIND_PAIRS)})",
    )  # fmt: skip
    parser.add_argument(
        "--only", type=lambda s: set(s.split(",")), default={"rtt", "cpu", "first", "punch"},
        help="measurements to run: rtt,cpu,first,punch (default all)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for kinds in args.kinds:
        a, _, b = kinds.partition("/")
        if {a, b} - {"preserving", "symmetric", "reset"}:
            parser.error(f"--kinds: {kinds!r} is not KIND/KIND (preserving, symmetric, reset)")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker:
        worker_main()
        sys.exit(0)
    sys.path.insert(0, str(ROOT))
    from tests.reach.topology import netns_available

    reason = netns_available()
    if reason is not None:
        sys.exit(f"bench/reach.py: network namespaces unavailable: {reason}")
    try:
        trio.run(main, arguments)
    except BaseException as exc:  # trio wraps what its nurseries raise in groups
        leaves = list(leaf_exceptions(exc))
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            sys.exit("interrupted (every process stopped, every namespace removed)")
        ended = [leaf for leaf in leaves if isinstance(leaf, Terminated)]
        if ended:
            sys.exit(f"stopped by {ended[0]} (every process stopped, every namespace removed)")
        failed = [leaf for leaf in leaves if isinstance(leaf, BenchError)]
        if failed:
            sys.exit(f"bench/reach.py failed: {failed[0]}")
        raise
