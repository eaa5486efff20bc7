"""Rooms (issue 16): fan-out latency, room throughput and catch-up, members in separate processes.

    python bench/rooms.py [--sizes 5,20,50] [--processes 5] [--messages 50] [--gap 0.02]
                          [--burst 300]
                          [--catch-up 1000] [--timeout 120]

For each room size N, N nodes m0..m(N-1) are spread over P child processes (each process runs
its nodes in one trio.run), on 127.0.0.1 with port 0, no rendezvous point and mDNS off. m0 is
the admin: every other node is its contact (and it theirs), and nobody else's. m0 creates room
"bench" and invites everyone; each node joins when its invite arrives. Then, with m1 the author:

- **latency**: m1 posts --messages messages one at a time, --gap s apart (default 20 ms,
  `send(wait=False)`);
  per message, the time from the send call to the last other member storing it (each child
  records when its nodes' `messages()` yield it, on CLOCK_MONOTONIC, which processes share);
  p50 and p99 over the messages;
- **throughput**: m1 posts --burst messages as fast as `send` returns; room messages per
  second = burst / (last member's last arrival - first send), and deliveries per second;
- **catch-up**: m2 stops; m1 posts --catch-up messages and waits until every other member holds
  them; then m1 stops too, so m2 can only catch up from the others. m2 restarts; the time from
  its start to holding all of them. (Every member m2 reaches answers its summary, so it is sent
  up to N-2 copies of each message; the duplicates it dropped in the second after are shown.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import trio
from children import Child, emit, percentiles, stop_all

LOCAL = "/ip4/127.0.0.1/tcp/0"
ROOM = "bench"

# -- child ------------------------------------------------------------------------------------


class Members:
    """The nodes of one child process, by name, each started and stopped on its own."""

    def __init__(self, home: str, names: list[str], nursery: trio.Nursery) -> None:
        self.home, self.names, self.nursery = home, names, nursery
        self.nodes: dict[str, Any] = {}
        self.tags: dict[str, dict[str, dict[int, float]]] = {}  # tag -> node -> k -> arrival
        self.duplicates = 0

    async def start(self, name: str) -> Any:
        from meshtalk.peer.node import Node, NodeConfig

        config = NodeConfig(listen=[LOCAL], mdns=False, name=name, retry_max=1.0)
        node = Node(f"{self.home}/{name}", config)
        await self.nursery.start(node.serve)
        self.nodes[name] = node
        return node

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "peer": str(node.peer_id), "addrs": node.listen_addrs}
            for n, node in self.nodes.items()
        ]

    def arm(self, tag: str, names: list[str], count: int) -> None:
        """Record when each of `names` stores messages "<tag> <k>", from now on."""
        self.tags[tag] = {name: {} for name in names}
        for name in names:
            node = self.nodes[name]
            after = node.store.messages.last_cursor()
            self.nursery.start_soon(self._record, node, name, tag, count, after)

    async def _record(self, node: Any, name: str, tag: str, count: int, after: int) -> None:
        got = self.tags[tag][name]
        async for message in node.messages(after=after):
            text = message.body if isinstance(message.body, str) else ""
            label, _, k = text.partition(" ")
            if label == tag and k.isdigit():
                if int(k) in got:
                    self.duplicates += 1
                got.setdefault(int(k), time.monotonic())
                if len(got) >= count:
                    return

    async def collect(self, tag: str, count: int, timeout: float) -> dict[str, Any]:
        """Per message k, the last arrival among this child's recording nodes."""
        with trio.move_on_after(timeout):
            while any(len(got) < count for got in self.tags[tag].values()):
                await trio.sleep(0.01)
        last: dict[int, float] = {}
        for got in self.tags[tag].values():
            for k, arrival in got.items():
                last[k] = max(last.get(k, 0.0), arrival)
        complete = sum(len(got) >= count for got in self.tags[tag].values())
        return {"last": last, "complete": complete, "nodes": len(self.tags[tag])}


async def form(members: Members, command: dict[str, Any]) -> dict[str, Any]:
    """Join room "bench": the admin (if here) invites every other node; each node here joins
    once its invite arrives; done when every node here sees the whole room."""
    size, admin = command["size"], command["admin"]

    async def invite_all() -> None:
        node = members.nodes[admin]
        for peer in command["peers"]:
            if peer != str(node.peer_id):
                await node.room_invite(ROOM, peer, wait=True, timeout=60)

    async def join(node: Any) -> None:
        while not any(invite.name == ROOM for _, invite in node.room_invites()):
            await trio.sleep(0.02)
        await node.join_room(ROOM, timeout=120)

    with trio.fail_after(command["timeout"]):
        async with trio.open_nursery() as nursery:
            if admin in members.nodes:
                nursery.start_soon(invite_all)
            for name, node in members.nodes.items():
                if name != admin:
                    nursery.start_soon(join, node)
        for node in members.nodes.values():
            while len(node.members(ROOM)) < size:
                await trio.sleep(0.02)
    return {"formed": True}


async def post(node: Any, tag: str, count: int, gap: float) -> dict[str, Any]:
    """Post "<tag> <k>" for k < count, `gap` s apart (0: as fast as send returns)."""
    sent: dict[int, float] = {}
    for k in range(count):
        sent[k] = time.monotonic()
        await node.send(ROOM, f"{tag} {k}", wait=False)
        if gap:
            await trio.sleep(gap)
    return {"sent": sent, "returned": time.monotonic()}


async def restart_and_catch_up(
    members: Members, name: str, tag: str, count: int, timeout: float
) -> Any:
    """Restart `name` and time it until it holds `count` messages of `tag`."""
    started = time.monotonic()
    node = await members.start(name)
    with trio.fail_after(timeout):
        while True:
            changed = node.incoming_changed
            held = [m for m in node.history(ROOM, limit=100_000) if m.text.startswith(tag + " ")]
            if len({m.text for m in held}) >= count:
                took = time.monotonic() - started
                await trio.sleep(1.0)  # the other members' copies still arriving
                counters = node.statistics().counters
                return {"catch_up_s": took, "held": len(held),
                        "duplicates": counters.get("duplicates", 0)}  # fmt: skip
            await changed.wait()


async def handle(members: Members, command: dict[str, Any]) -> dict[str, Any]:
    nodes, what = members.nodes, command["cmd"]
    if what == "contacts":
        for entry in command["add"]:
            for name in command["to"]:
                if name in nodes:
                    nodes[name].add_contact(entry["peer"], entry["name"], entry["addrs"])
        return {"ok": True}
    if what == "create":
        return {"room": nodes[command["node"]].create_room(ROOM).id.hex()}
    if what == "form":
        return await form(members, command)
    if what == "arm":
        members.arm(command["tag"], [n for n in command["nodes"] if n in nodes], command["count"])
        return {"ok": True}
    if what == "post":
        return await post(nodes[command["node"]], command["tag"], command["count"], command["gap"])
    if what == "collect":
        return await members.collect(command["tag"], command["count"], command["timeout"])
    if what == "flushed":
        return {"flushed": await nodes[command["node"]].wait_flushed(command["timeout"])}
    if what == "stop":
        await nodes.pop(command["node"]).aclose()
        return {"ok": True}
    if what == "catch_up":
        return await restart_and_catch_up(
            members, command["node"], command["tag"], command["count"], command["timeout"]
        )
    raise ValueError(f"unknown command {what!r}")


async def child(home: str, names: list[str]) -> None:
    async with trio.open_nursery() as nursery:
        members = Members(home, names, nursery)
        for name in names:
            await members.start(name)
        emit({"members": members.describe()})
        while line := await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
            if not line.strip():
                break
            try:
                emit(await handle(members, json.loads(line)))
            except Exception as exc:
                emit({"error": f"{type(exc).__name__}: {exc}"})
        for node in list(members.nodes.values()):
            await node.aclose()
        nursery.cancel_scope.cancel()


# -- parent -----------------------------------------------------------------------------------


class Room:
    """The children of one room, and which child holds which node."""

    def __init__(self, size: int, processes: int, home: str) -> None:
        names = [f"m{i}" for i in range(size)]
        groups = [names[i::processes] for i in range(min(processes, size))]
        self.children = [Child(__file__, "--child", home, ",".join(g)) for g in groups]
        self.where: dict[str, Child] = {}
        self.members: dict[str, dict[str, Any]] = {}
        for child_process in self.children:
            for member in self.ask(child_process)["members"]:
                self.members[member["name"]] = member
                self.where[member["name"]] = child_process

    def ask(self, child_process: Child, command: dict[str, Any] | None = None) -> Any:
        if command is not None:
            child_process.write(command)
        reply = child_process.read()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def all(self, command: dict[str, Any]) -> list[Any]:
        for child_process in self.children:
            child_process.write(command)
        return [self.ask(child_process) for child_process in self.children]

    def one(self, name: str, command: dict[str, Any]) -> Any:
        return self.ask(self.where[name], {**command, "node": name})

    def form(self, timeout: float) -> None:
        admin = self.members["m0"]
        others = [m for n, m in self.members.items() if n != "m0"]
        self.one("m0", {"cmd": "contacts", "add": others, "to": ["m0"]})
        self.all({"cmd": "contacts", "add": [admin], "to": [m["name"] for m in others]})
        self.one("m0", {"cmd": "create"})
        peers = [m["peer"] for m in self.members.values()]
        self.all({"cmd": "form", "size": len(peers), "admin": "m0", "peers": peers,
                  "timeout": timeout})  # fmt: skip

    def phase(self, tag: str, count: int, gap: float, readers: list[str], timeout: float) -> Any:
        """m1 posts; the last arrival per message over `readers`; the send times."""
        self.all({"cmd": "arm", "tag": tag, "nodes": readers, "count": count})
        posted = self.one("m1", {"cmd": "post", "tag": tag, "count": count, "gap": gap})
        replies = self.all({"cmd": "collect", "tag": tag, "count": count, "timeout": timeout})
        last: dict[int, float] = {}
        for reply in replies:
            for k, arrival in reply["last"].items():
                last[int(k)] = max(last.get(int(k), 0.0), arrival)
        complete = sum(r["complete"] for r in replies)
        sent = {int(k): t for k, t in posted["sent"].items()}
        return sent, last, complete

    def close(self) -> None:
        stop_all(self.children)


def run_room(size: int, args: argparse.Namespace) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as home:
        room = Room(size, args.processes, home)
        try:
            room.form(args.timeout)
            formed = time.monotonic() - started
            readers = [n for n in room.members if n != "m1"]
            sent, last, complete = room.phase("lat", args.messages, args.gap, readers, args.timeout)
            delays = [last[k] - sent[k] for k in sent if k in last]
            p50, p99 = percentiles(delays) if delays else (float("nan"),) * 2
            print(f"N={size:<3} formed in {formed:5.1f} s; latency send -> last member stored: "
                  f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({len(delays)}/{args.messages} "
                  f"messages, {complete}/{len(readers)} members complete)")  # fmt: skip
            sent, last, complete = room.phase("burst", args.burst, 0.0, readers, args.timeout)
            if last:
                took = max(last.values()) - min(sent.values())
                rate = args.burst / took
                print(f"       burst of {args.burst}: {rate:7.0f} room msgs/s, "
                      f"{rate * (size - 1):8.0f} deliveries/s ({took:.2f} s, {complete}/"
                      f"{len(readers)} members complete)")  # fmt: skip
            if args.catch_up and size >= 4:
                catch_up(room, size, args)
        finally:
            room.close()


def catch_up(room: Room, size: int, args: argparse.Namespace) -> None:
    room.one("m2", {"cmd": "stop"})
    others = [n for n in room.members if n not in ("m1", "m2")]
    count = args.catch_up
    _, _, complete = room.phase("cu", count, 0.0, others, args.timeout)
    if complete < len(others):
        print(f"       catch-up: only {complete}/{len(others)} members got the messages; skipped")
        return
    room.one("m1", {"cmd": "flushed", "timeout": 5.0})  # m2's copies stay queued: m2 is away
    room.one("m1", {"cmd": "stop"})
    found = room.one("m2", {"cmd": "catch_up", "tag": "cu", "count": count,
                            "timeout": args.timeout})  # fmt: skip
    print(
        f"       catch-up of {count} messages from the {size - 2} others (author offline): "
        f"{found['catch_up_s']:.2f} s; {found['duplicates']} duplicate copies dropped "
        "within 1 s after"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5,20,50")
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.02, help="s between latency posts")
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--catch-up", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        home, names = args.child
        trio.run(child, home, names.split(","))
        return
    print(f"bench/rooms.py on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"--processes {args.processes}")  # fmt: skip
    for size in map(int, args.sizes.split(",")):
        run_room(size, args)


if __name__ == "__main__":
    main()
