"""Discovery figures: how fast nodes find each other, and what a busy rendezvous point costs.

    python bench/discovery.py [--sizes 2,10,30] [--registrations 10000] [--requests 300]

(a) Time from start to "all peers known" through one rendezvous point for 2, 10 and 30 nodes,
    each node in its own process. Every process first imports everything and waits; then all
    are told to go at once, and each reports when its address book holds every other node.
    The figure is the slowest node's time from "go" (CLOCK_MONOTONIC is shared by processes).
(b) DISCOVER latency at a point holding 10,000 registrations (10,000 distinct peers with
    verified signed records, registered in the point's process through the same code path as
    REGISTER), from a client in another process: p50/p99 of one page of 100 records, with and
    without the client verifying each record; and a full walk over all 10,000 with cookies.
(c) The point's memory: RSS before and after the 10,000 registrations, and what tracemalloc
    counts for the registry itself.
(d) Two nodes on loopback finding each other by mDNS alone (in one process).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import trio
from children import Child, emit, percentiles, rss_mb, stop_all

LOCAL = "/ip4/127.0.0.1/tcp/0"
NS = "meshtalk/bench"


# -- child roles ------------------------------------------------------------------------------


async def point_child(records_file: str) -> None:
    import msgpack

    from meshtalk.discovery import open_rendezvous_point
    from meshtalk.protocol import NodeKey
    from meshtalk.protocol.rendezvous import Register

    async with open_rendezvous_point(NodeKey.generate()) as (point, addresses):
        before = rss_mb()
        traced = 0
        if records_file:
            pairs = msgpack.unpackb(Path(records_file).read_bytes())
            tracemalloc.start()
            for peer, record in pairs:
                registration = point._register(peer, Register(NS, record, None))
                assert registration.status == 0, registration
            traced, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del pairs
        emit(
            {
                "addresses": addresses,
                "rss_before": before,
                "rss_after": rss_mb(),
                "traced_mb": traced / 2**20,
                "registrations": point.statistics().registry.registrations,
            }
        )
        await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


def make_records(count: int, path: str) -> None:
    """Signed records of `count` fresh peers, written for the point child to register."""
    import msgpack

    from meshtalk.discovery import sign_peer_record
    from meshtalk.protocol import NodeKey

    pairs = []
    for _ in range(count):
        key = NodeKey.generate()
        pairs.append((key.peer_id.to_bytes(), sign_peer_record(key, ["/ip4/127.0.0.1/tcp/4001"])))
    with open(path, "wb") as file:
        file.write(msgpack.packb(pairs))


async def node_child(profile: str, point: str, total: int) -> None:
    from meshtalk.peer.node import NodeConfig, open_node

    config = NodeConfig(listen=[LOCAL], rendezvous=[point], mdns=False)
    emit({"loaded": True})
    await trio.to_thread.run_sync(sys.stdin.readline)
    go = time.monotonic()
    point_id = point.rsplit("/p2p/", 1)[1]
    async with open_node(profile, config) as node:
        while len([p for p in node.peers() if str(p.peer_id) != point_id]) < total - 1:
            await trio.sleep(0.01)
        emit({"known_at": time.monotonic(), "go": go})
        await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


async def discover_child(point: str, requests: int) -> None:
    from meshtalk.discovery import RendezvousClient
    from meshtalk.net.host import build_host, close_host, parse_multiaddrs, split_peer_address
    from meshtalk.protocol import NodeKey
    from meshtalk.protocol.rendezvous import Discover, DiscoverResponse

    key = NodeKey.generate()
    host = build_host(key)
    peer, address = split_peer_address(point)
    async with host.run(parse_multiaddrs([LOCAL])):
        client = RendezvousClient(host, key, peer, [address])
        await client.discover(NS, 100)  # connect and warm up
        raw, verified = [], []
        for _ in range(requests):
            started = time.perf_counter()
            response = await client._exchange(Discover(NS, 100))
            raw.append(time.perf_counter() - started)
            assert isinstance(response, DiscoverResponse)
            assert len(response.registrations) == 100
            started = time.perf_counter()
            records, _, _ = await client.discover(NS, 100)
            verified.append(time.perf_counter() - started)
            assert len(records) == 100
        started = time.perf_counter()
        cookie, seen = b"", 0
        while True:
            response = await client._exchange(Discover(NS, 1000, cookie))
            cookie = response.cookie
            seen += len(response.registrations)
            if len(response.registrations) < 1000:
                break
        walk = time.perf_counter() - started
        await client.close()
        emit({"raw": raw, "verified": verified, "walk": walk, "walked": seen})
    await close_host(host)


# -- parent -----------------------------------------------------------------------------------


def spawn(*args: str) -> Child:
    return Child(__file__, "--child", *args)


def time_to_all_known(size: int) -> float:
    point = spawn("point", "")
    info = point.read()
    with tempfile.TemporaryDirectory() as home:
        nodes = [
            spawn("node", f"{home}/n{i}", info["addresses"][0], str(size)) for i in range(size)
        ]
        for node in nodes:
            node.read()  # loaded
        for node in nodes:
            node.write({"go": True})
        reports = [node.read() for node in nodes]
        stop_all(nodes)
    point.stop()
    first_go = min(r["go"] for r in reports)
    return max(r["known_at"] for r in reports) - first_go


async def mdns_loopback() -> float:
    from meshtalk.peer.node import NodeConfig, open_node

    config = NodeConfig(listen=[LOCAL], mdns=True, mdns_interfaces=["127.0.0.1"])
    with tempfile.TemporaryDirectory() as home:
        started = trio.current_time()
        async with open_node(f"{home}/a", config) as a, open_node(f"{home}/b", config) as b:
            while not (a.addresses_of(b.peer_id) and b.addresses_of(a.peer_id)):
                await trio.sleep(0.01)
            return trio.current_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2,10,30")
    parser.add_argument("--registrations", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, *rest = args.child
        if role == "point":
            trio.run(point_child, rest[0] if rest else "")
        elif role == "node":
            trio.run(node_child, rest[0], rest[1], int(rest[2]))
        elif role == "discover":
            trio.run(discover_child, rest[0], int(rest[1]))
        return

    print(f"bench/discovery.py on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for size in map(int, args.sizes.split(",")):
        seconds = time_to_all_known(size)
        print(f"(a) {size:3d} nodes, one process each: all peers known {seconds:6.2f} s after go")

    with tempfile.NamedTemporaryFile(suffix=".msgpack") as records:
        make_records(args.registrations, records.name)
        point = spawn("point", records.name)
        info = point.read()
    client = spawn("discover", info["addresses"][0], str(args.requests))
    figures = client.read()
    client.proc.wait(timeout=30)
    point.stop()
    raw, verified = percentiles(figures["raw"]), percentiles(figures["verified"])
    print(
        f"(b) DISCOVER, 100 of {info['registrations']:,} registrations: p50 {raw[0]:.2f} ms"
        f"  p99 {raw[1]:.2f} ms  (with the client verifying all 100 records: p50 "
        f"{verified[0]:.2f} ms, p99 {verified[1]:.2f} ms)"
    )
    print(
        f"    walk over all {figures['walked']:,} with cookies, pages of 1000: "
        f"{figures['walk'] * 1000:.0f} ms"
    )
    print(
        f"(c) point process RSS {info['rss_before']:.1f} MB idle -> {info['rss_after']:.1f} MB "
        f"with {info['registrations']:,} registrations "
        f"(+{info['rss_after'] - info['rss_before']:.1f} MB); "
        f"registry allocations traced: {info['traced_mb']:.1f} MB"
    )
    seconds = trio.run(mdns_loopback)
    print(f"(d) two nodes on loopback, mDNS only: both know each other after {seconds:.2f} s")


if __name__ == "__main__":
    main()
