"""What the local HTTP API costs, against the control socket and the trio API in the same run.
(Not named http.py: run as a script, its folder comes first on sys.path and would shadow the
standard library's http package.)

    python bench/http_api.py [--count 300] [--clients 100] [--messages 100]

bob is a `meshtalk up --detach` daemon (the receiver) in every case. Four figures:
1. send(wait=True) round trip, alice -> bob, p50/p99: alice as a trio node in this process
   (the baseline), then alice's daemon over its control socket and over HTTP (`POST
   /v1/messages`, one keep-alive connection) with requests and with httpx, the three
   alternating send by send.
2. Delivery latency from alice's send (control socket, no wait) until bob's client has the
   message: bob's SSE stream (`GET /v1/events`), bob's HTTP long poll, bob's control `receive`.
3. `--clients` HTTP long polls held open on bob (`GET /v1/messages?after=C&wait=30`, each
   client polling again at once): alice sends `--messages` messages; completed polls per
   second, the time until every client has a message (p50/p99), and bob's CPU per message.
Sends say via="human" so that the conversation guards stay out of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import requests
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from children import cli, cpu_seconds, percentiles, profile

from meshtalk.control.client import connect_control
from meshtalk.facade.daemon import node_config
from meshtalk.peer.node import open_node
from meshtalk.profile import load_settings

_WARM = 20


def http_client(home: Path, name: str, **options: Any) -> httpx.Client:
    url = cli(home, "--profile", name, "http-url").strip()
    key = cli(home, "--profile", name, "http-key").strip()
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, **options)


async def trio_round_trips(alice: Path, count: int) -> list[float]:
    samples = []
    async with open_node(alice, node_config(load_settings(alice))) as node:
        for n in range(count + _WARM):
            started = time.perf_counter()
            await node.send("bob", f"trio {n}", wait=True, timeout=30)
            samples.append(time.perf_counter() - started)
    return samples[_WARM:]  # the first ones include dialing


def socket_and_http_round_trips(home: Path, count: int) -> dict[str, list[float]]:
    """Control socket and HTTP, alternating send by send on the same daemon."""
    found: dict[str, list[float]] = {"control socket": [], "HTTP (raw socket)": [],
                                     "HTTP (requests)": [], "HTTP (httpx)": []}  # fmt: skip
    alice = home / "profiles" / "alice"
    session = requests.Session()  # urllib3 sets TCP_NODELAY; httpx leaves Nagle on
    with connect_control(alice, timeout=60) as control, http_client(home, "alice") as http:
        url, session.headers["Authorization"] = str(http.base_url), http.headers["authorization"]
        host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        raw = socket.create_connection((host, int(port)))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for n in range(count + _WARM):
            args = {"to": "bob", "text": f"rt {n}", "wait": True, "timeout": 30, "via": "human"}
            started = time.perf_counter()
            control.call("send", **args)
            first = time.perf_counter()
            raw_post(raw, url, http.headers["authorization"], args)
            second = time.perf_counter()
            answered = session.post(f"{url.rstrip('/')}/v1/messages", json=args, timeout=60)
            third = time.perf_counter()
            response = http.post("/v1/messages", json=args)
            done = time.perf_counter()
            assert response.status_code == answered.status_code == 200, response.text
            if n >= _WARM:
                found["control socket"].append(first - started)
                found["HTTP (raw socket)"].append(second - first)
                found["HTTP (requests)"].append(third - second)
                found["HTTP (httpx)"].append(done - third)
    return found


def raw_post(sock: socket.socket, url: str, authorization: str, args: dict[str, Any]) -> None:
    """POST /v1/messages in one write on a keep-alive socket, and read the whole answer: an
    HTTP client that costs next to nothing, so the figure is what the node adds."""
    body = json.dumps(args).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nAuthorization: {authorization}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 200"), head_bytes
    length = int(next(line.split(b":")[1] for line in head_bytes.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))  # fmt: skip
    while len(rest) < length:
        rest += sock.recv(65536)


def delivery_latency(home: Path, count: int) -> dict[str, list[float]]:
    """Send (alice's control socket) -> bob's client has it, for three kinds of bob client."""
    alice, bob = home / "profiles" / "alice", home / "profiles" / "bob"
    arrived: dict[str, float] = {}
    stop = threading.Event()

    def sse() -> None:
        with (
            http_client(home, "bob", timeout=None) as client,
            client.stream("GET", "/v1/events") as stream,
        ):
            for line in stream.iter_lines():
                if line.startswith("data: ") and '"direction": "in"' in line:
                    arrived.setdefault(json.loads(line[6:])["text"], time.perf_counter())
                if stop.is_set():
                    return

    def long_poll() -> None:
        with http_client(home, "bob", timeout=None) as client:
            cursor = client.get("/v1/messages", params={"after": 0, "limit": 1000}).json()
            after = cursor["cursor"]
            while not stop.is_set():
                got = client.get("/v1/messages", params={"after": after, "wait": 2}).json()
                for message in got["messages"]:
                    arrived.setdefault(message["text"], time.perf_counter())
                after = got["cursor"]

    def control_receive() -> None:
        with connect_control(bob, timeout=60) as control:
            after = control.call("receive", after=0, limit=1000)["cursor"]
            while not stop.is_set():
                got = control.call("receive", after=after, wait=2)
                for message in got["messages"]:
                    arrived.setdefault(message["text"], time.perf_counter())
                after = got["cursor"]

    found: dict[str, list[float]] = {}
    for name, reader in (("SSE /v1/events", sse), ("HTTP long poll", long_poll),
                         ("control receive", control_receive)):  # fmt: skip
        stop.clear()
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        time.sleep(1.0)  # the reader is waiting
        samples = []
        with connect_control(alice, timeout=60) as control:
            for n in range(count + _WARM):
                text = f"{name} {n}"
                started = time.perf_counter()
                control.call("send", to="bob", text=text, wait=False, via="human")
                while text not in arrived:
                    time.sleep(0.0002)
                if n >= _WARM:
                    samples.append(arrived[text] - started)
        stop.set()
        control_send(alice, "wake the reader")  # it notices `stop` after its next message
        thread.join(10)
        found[name] = samples
    return found


def control_send(profile: Path, text: str) -> None:
    with connect_control(profile, timeout=60) as control:
        control.call("send", to="bob", text=text, wait=True, via="human")


async def _get(stream: trio.SocketStream, request: bytes, buffer: bytearray) -> Any:
    """One keep-alive GET on a raw socket (the bench's client must cost less than httpx's
    async client, which needed more CPU than the node for 100 polls)."""
    await stream.send_all(request)
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive_some(65536)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))  # fmt: skip
    while len(rest) < length:
        rest += await stream.receive_some(65536)
    buffer[:] = rest[length:]
    return json.loads(rest[:length])


async def many_long_polls(home: Path, clients: int, messages: int) -> dict[str, Any]:
    url = cli(home, "--profile", "bob", "http-url").strip()
    key = cli(home, "--profile", "bob", "http-key").strip()
    bob_pid = int(json.loads(cli(home, "--profile", "bob", "status", "--json"))["pid"])
    host, port = url.removeprefix("http://").rsplit(":", 1)
    seen: dict[int, list[float]] = {}  # message number -> when each client had it
    polls = 0

    def request(after: int, wait: int) -> bytes:
        return (f"GET /v1/messages?after={after}&wait={wait}&limit=1000 HTTP/1.1\r\n"
                f"Host: localhost\r\nAuthorization: Bearer {key}\r\n\r\n").encode()  # fmt: skip

    with connect_control(home / "profiles" / "bob", timeout=60) as control:
        start = 0
        while got := control.call("receive", after=start, limit=1000)["messages"]:
            start = got[-1]["cursor"]
    ready = 0

    async def poller(done: trio.Event) -> None:
        nonlocal polls, ready
        buffer = bytearray()
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            after = (await _get(stream, request(start, 0), buffer))["cursor"]
            ready += 1
            while not done.is_set():
                got = await _get(stream, request(after, 30), buffer)
                polls += 1
                now = time.perf_counter()
                for message in got["messages"]:
                    if message["text"].startswith("fan "):
                        seen.setdefault(int(message["text"][4:]), []).append(now)
                after = got["cursor"]

    done = trio.Event()
    sent_at: dict[int, float] = {}
    alice = home / "profiles" / "alice"
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(poller, done)
        while ready < clients:
            await trio.sleep(0.05)
        await trio.sleep(1.0)  # every poll is open
        polls, began, cpu_before = 0, time.perf_counter(), cpu_seconds(bob_pid)
        for n in range(messages):
            sent_at[n] = time.perf_counter()
            await trio.to_thread.run_sync(lambda n=n: control_send_text(alice, f"fan {n}"))
            while len(seen.get(n, [])) < clients:
                await trio.sleep(0.001)
        elapsed, cpu = time.perf_counter() - began, cpu_seconds(bob_pid) - cpu_before
        done.set()
        nursery.cancel_scope.cancel()
    fan_out = [max(seen[n]) - sent_at[n] for n in range(messages)]
    stored = {n: round((min(seen[n]) - sent_at[n]) * 1000) for n in range(messages)}
    return {"polls_per_s": polls / elapsed, "fan_out": fan_out, "stored": stored,
            "bob_cpu_ms_per_message": cpu / messages * 1000}  # fmt: skip


def control_send_text(profile: Path, text: str) -> None:
    with connect_control(profile, timeout=60) as control:
        control.call("send", to="bob", text=text, wait=False, via="human")


def report(title: str, results: dict[str, list[float]], base: Callable[[], float]) -> None:
    print(title)
    zero = base()
    for name, samples in results.items():
        p50, p99 = percentiles(samples)
        print(f"  {name:<22} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  vs first {p50 - zero:+.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=100)
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="meshtalk-bench-http-"))
    alice, _ = profile(home, "alice", http="127.0.0.1:0"), profile(home, "bob", http="127.0.0.1:0")
    cli(home, "--profile", "bob", "up", "--detach")
    try:
        token = cli(home, "--profile", "bob", "invite").strip()
        cli(home, "--profile", "alice", "up", "--detach")
        cli(home, "--profile", "alice", "join", token)
        cli(home, "--profile", "alice", "down")
        round_trips = {"trio API (baseline)": trio.run(trio_round_trips, alice, options.count)}
        cli(home, "--profile", "alice", "up", "--detach")
        time.sleep(2.0)  # the HTTP API starts just after the control socket
        try:
            round_trips.update(socket_and_http_round_trips(home, options.count))
            latency = delivery_latency(home, options.count)
            fan = trio.run(many_long_polls, home, options.clients, options.messages)
        finally:
            cli(home, "--profile", "alice", "down")
    finally:
        cli(home, "--profile", "bob", "down")
    as_ms = {name: samples for name, samples in round_trips.items()}
    socket_p50 = percentiles(as_ms["control socket"])[0]
    report(f"send(wait=True) round trip alice -> bob, {options.count} sends each", as_ms,
           lambda: percentiles(as_ms["trio API (baseline)"])[0])  # fmt: skip
    for client in ("raw socket", "requests", "httpx"):
        http_p50 = percentiles(as_ms[f"HTTP ({client})"])[0]
        print(f"  HTTP with {client} adds {http_p50 - socket_p50:+.2f} ms p50 over the control "
              "socket (target <= 1 ms)")  # fmt: skip
    report("delivery: alice's send -> bob's client has it", latency,
           lambda: percentiles(latency["control receive"])[0])  # fmt: skip
    p50, p99 = percentiles(fan["fan_out"])
    if os.environ.get("BENCH_SHOW_SLOWEST"):
        slowest = sorted(enumerate(fan["fan_out"]), key=lambda item: item[1])[-5:]
        print("slowest fan-outs (message, ms):", [(n, round(f * 1000)) for n, f in slowest])
        print("their delivery to bob's store (ms):", [fan["stored"].get(n) for n, _ in slowest])
    print(f"{options.clients} HTTP long polls held open on bob, {options.messages} messages")
    print(f"  {fan['polls_per_s']:,.0f} completed polls/s; every client has a message "
          f"p50 {p50:.1f} ms p99 {p99:.1f} ms; bob CPU {fan['bob_cpu_ms_per_message']:.1f} ms"
          " per message")  # fmt: skip


if __name__ == "__main__":
    main()
