"""Messaging figures, side by side, in separate processes on loopback (300-byte text).

    python bench/messaging.py [--round-trips 1000] [--messages 10000]

(a) raw trio TCP echo RTT; (b) raw py-libp2p stream echo RTT and pipelined msgs/s with the
node's hardened host settings; (c) meshtalk send(wait=True) RTT p50/p99; (d) meshtalk pipelined
delivered msgs/s (sealed, stored and acked on both ends); (e) RSS of an idle node process.
The far side of each measurement runs in a child process started by this script.
BENCH_PROFILE_CHILDREN=1 runs each child under cProfile (/tmp/child-<name>.prof).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from children import Child, cpu_seconds, emit, percentiles

PAYLOAD = b"x" * 300
TEXT = "x" * 300
LOCAL = "/ip4/127.0.0.1/tcp/0"


# -- child roles ------------------------------------------------------------------------------


async def trio_echo_server() -> None:
    async def echo(stream: trio.SocketStream) -> None:
        async for data in stream:
            await stream.send_all(data)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    emit({"port": listeners[0].socket.getsockname()[1]})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, echo, listeners)
        await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()


async def libp2p_echo_server() -> None:
    import multiaddr

    from meshtalk.net.host import build_host, close_host, quiet_libp2p_logging
    from meshtalk.protocol import NodeKey

    quiet_libp2p_logging()
    host = build_host(NodeKey.generate())

    async def echo(stream: Any) -> None:
        try:
            while True:
                await stream.write(await stream.read(65536))
        except Exception:
            return

    host.set_stream_handler("/bench/echo/1.0.0", echo)
    async with host.run([multiaddr.Multiaddr(LOCAL)]):
        emit({"addr": str(host.get_addrs()[0])})
        await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        await close_host(host)


async def meshtalk_node(profile: str) -> None:
    from meshtalk.peer.node import NodeConfig, open_node

    async with open_node(profile, NodeConfig(listen=[LOCAL], mdns=False)) as node:
        emit({"peer_id": str(node.peer_id), "addrs": node.listen_addrs})
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if line.strip():
            contact = json.loads(line)
            node.add_contact(contact["peer_id"], "bench", contact["addrs"])
            emit({"ready": True})
            await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


# -- measuring side ---------------------------------------------------------------------------


async def echo_round_trips(
    send: Callable[[bytes], Awaitable[Any]],
    receive: Callable[[int], Awaitable[bytes]],
    round_trips: int,
) -> tuple[float, float]:
    """p50 and p99 (ms) of PAYLOAD echoed back, after 50 warm-up round trips."""
    samples = []
    for _ in range(round_trips + 50):
        start = time.perf_counter()
        await send(PAYLOAD)
        got = 0
        while got < len(PAYLOAD):
            got += len(await receive(65536))
        samples.append(time.perf_counter() - start)
    return percentiles(samples[50:])


async def measure_trio(round_trips: int) -> tuple[float, float]:
    child = Child(__file__, "--role", "trio-echo")
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", child.read()["port"])
        result = await echo_round_trips(stream.send_all, stream.receive_some, round_trips)
        await stream.aclose()
        return result
    finally:
        child.stop()


async def measure_libp2p(round_trips: int, messages: int) -> tuple[float, float, float]:
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    from meshtalk.net.host import build_host, close_host, quiet_libp2p_logging
    from meshtalk.protocol import NodeKey

    quiet_libp2p_logging()
    child = Child(__file__, "--role", "libp2p-echo")
    host = build_host(NodeKey.generate())
    try:
        info = info_from_p2p_addr(multiaddr.Multiaddr(child.read()["addr"]))
        async with host.run([multiaddr.Multiaddr(LOCAL)]):
            await host.connect(info)
            stream = await host.new_stream(info.peer_id, ["/bench/echo/1.0.0"])
            p50, p99 = await echo_round_trips(stream.write, stream.read, round_trips)
            # Pipelined: one write per message (as a naive app would), echoes drained alongside.
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:

                async def drain() -> None:
                    got = 0
                    while got < messages * len(PAYLOAD):
                        got += len(await stream.read(1 << 20))

                nursery.start_soon(drain)
                for _ in range(messages):
                    await stream.write(PAYLOAD)
            rate = messages / (time.perf_counter() - start)
            await close_host(host)
            return p50, p99, rate
    finally:
        child.stop()


async def measure_meshtalk(round_trips: int, messages: int) -> dict[str, float]:
    from meshtalk.peer.node import NodeConfig, open_node

    with tempfile.TemporaryDirectory() as home:
        child = Child(__file__, "--role", "node", "--profile", f"{home}/bob")
        try:
            bob = child.read()
            async with open_node(f"{home}/alice", NodeConfig(listen=[LOCAL], mdns=False)) as alice:
                alice.add_contact(bob["peer_id"], "bob", bob["addrs"])
                child.write({"peer_id": str(alice.peer_id), "addrs": alice.listen_addrs})
                assert child.read()["ready"]
                samples = []
                for _ in range(round_trips + 50):
                    start = time.perf_counter()
                    await alice.send("bob", TEXT, wait=True, timeout=30)
                    samples.append(time.perf_counter() - start)
                p50, p99 = percentiles(samples[50:])
                sequential = await pipelined(alice, messages, senders=1)
                cpu = (cpu_seconds(), child.cpu_seconds())
                concurrent = await pipelined(alice, messages, senders=16)
                sender_us = (cpu_seconds() - cpu[0]) / messages * 1e6
                receiver_us = (child.cpu_seconds() - cpu[1]) / messages * 1e6
        finally:
            child.stop()
        idle = Child(__file__, "--role", "node", "--profile", f"{home}/idle")
        try:
            idle.read()
            await trio.sleep(2)
            rss = idle.rss_mb()
        finally:
            idle.stop()
    return {"p50": p50, "p99": p99, "sequential": sequential, "concurrent": concurrent,
            "rss": rss, "sender_us": sender_us, "receiver_us": receiver_us,
            "crypto_us": crypto_floor_us()}  # fmt: skip


def crypto_floor_us(count: int = 2000) -> float:
    """CPU per message of seal + open_sealed alone (Ed25519 sign and verify, two boxes)."""
    from meshtalk.protocol import Envelope, NodeKey, new_message_id, open_sealed, seal

    alice, bob = NodeKey.generate(), NodeKey.generate()
    now = int(time.time() * 1000)
    envelopes = [
        Envelope(id=new_message_id(now), conversation=bytes(16), author=alice.peer_id,
                 recipients=(bob.peer_id,), timestamp_ms=now, lamport=i + 1, body=TEXT)
        for i in range(count)
    ]  # fmt: skip
    start = time.process_time()
    for envelope in envelopes:
        open_sealed(seal(envelope, alice, bob.peer_id), bob, now)
    return (time.process_time() - start) / count * 1e6


async def pipelined(node: Any, messages: int, senders: int) -> float:
    """Delivered msgs/s when `senders` tasks send without waiting, until all are acked."""
    start = time.perf_counter()

    async def sender(count: int) -> None:
        for _ in range(count):
            await node.send("bob", TEXT)

    async with trio.open_nursery() as nursery:
        for _ in range(senders):
            nursery.start_soon(sender, messages // senders)
    await node.wait_flushed()
    return (messages // senders) * senders / (time.perf_counter() - start)


async def measure(args: argparse.Namespace) -> None:
    trio_p50, trio_p99 = await measure_trio(args.round_trips)
    lp_p50, lp_p99, lp_rate = await measure_libp2p(args.round_trips, args.messages)
    mt = await measure_meshtalk(args.round_trips, args.messages)
    print(f"python {sys.version.split()[0]}, loopback, 300-byte payloads, separate processes")
    print(f"(a) trio TCP echo RTT            p50 {trio_p50:6.3f} ms   p99 {trio_p99:6.3f} ms")
    print(f"(b) py-libp2p stream echo RTT    p50 {lp_p50:6.3f} ms   p99 {lp_p99:6.3f} ms")
    print(f"    py-libp2p pipelined writes   {lp_rate:9,.0f} msgs/s (one write per message)")
    print(f"(c) meshtalk send(wait=True) RTT p50 {mt['p50']:6.3f} ms   p99 {mt['p99']:6.3f} ms"
          f"   ratio p50 to (b) {mt['p50'] / lp_p50:4.2f} (target <= 2)")  # fmt: skip
    print(f"(d) meshtalk pipelined delivered {mt['concurrent']:9,.0f} msgs/s, 16 sending tasks"
          " (target >= 8,000)")  # fmt: skip
    print(f"    same, one sending task       {mt['sequential']:9,.0f} msgs/s")
    total_us, cores = mt["sender_us"] + mt["receiver_us"], os.cpu_count() or 1
    print(f"    CPU per message (16 tasks)   sender {mt['sender_us']:.0f} us + receiver "
          f"{mt['receiver_us']:.0f} us = {total_us:.0f} us; {cores} cores allow "
          f"{cores * 1e6 / total_us:,.0f} msgs/s at most")  # fmt: skip
    print(f"    of which seal + open alone   {mt['crypto_us']:.0f} us (8,000 msgs/s on "
          f"{cores} cores needs <= {cores * 1e6 / 8000:.0f} us in all)")  # fmt: skip
    print(f"(e) idle node process RSS        {mt['rss']:9.1f} MB (target <= 120)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument(
        "--role", choices=["trio-echo", "libp2p-echo", "node"], help=argparse.SUPPRESS
    )
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "trio-echo":
        trio.run(trio_echo_server)
    elif args.role == "libp2p-echo":
        trio.run(libp2p_echo_server)
    elif args.role == "node":
        trio.run(meshtalk_node, args.profile)
    else:
        trio.run(measure, args)


if __name__ == "__main__":
    main()
