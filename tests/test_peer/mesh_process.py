"""Several nodes in one child process, for the all-to-all burst test (test_mesh_burst.py).

    python -m tests.test_peer.mesh_process HOME COUNT PREFIX

Prints {"nodes": [{"peer_id", "addrs"}...]}; reads {"peers": [{"peer_id", "addrs"}...]} (every
node of the mesh, its own included), adds each as a contact, prints {"ready": true}; on
{"go": true} every node queues one message to every other node at once and waits until its
outbox is flushed and it holds one message from every other node, then prints
{"received": {peer_id: [bodies...]}, "interruptions": n, "multi": pairs held over >1 connection}.
"""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack
from typing import Any

import trio

from meshtalk.peer.node import Node, open_node
from tests.test_peer.helpers import fast_config


def emit(value: dict[str, Any]) -> None:
    print(json.dumps(value), flush=True)


async def read_line() -> dict[str, Any]:
    line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    if not line:
        raise SystemExit(0)
    return dict(json.loads(line))


async def burst(node: Node, others: list[str], received: list[str]) -> None:
    async def read() -> None:
        async for message in node.messages():
            received.append(str(message.body))
            if len(received) == len(others):
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        for peer in others:
            await node.send(peer, f"{node.peer_id}>{peer}")
        assert await node.wait_flushed(300)


async def main() -> None:
    home, count, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(open_node(f"{home}/{prefix}{i}", fast_config()))
            for i in range(count)
        ]
        emit({"nodes": [{"peer_id": str(n.peer_id), "addrs": n.listen_addrs} for n in nodes]})
        peers = (await read_line())["peers"]
        for node in nodes:
            for peer in peers:
                if peer["peer_id"] != str(node.peer_id):
                    node.add_contact(peer["peer_id"], None, peer["addrs"])
        emit({"ready": True})
        await read_line()
        received: dict[str, list[str]] = {str(n.peer_id): [] for n in nodes}
        async with trio.open_nursery() as nursery:
            for node in nodes:
                others = [p["peer_id"] for p in peers if p["peer_id"] != str(node.peer_id)]
                nursery.start_soon(burst, node, others, received[str(node.peer_id)])
        multi = sum(
            1
            for node in nodes
            for conns in node.host.get_network().connections.values()
            if len([c for c in conns if not c.is_closed]) > 1
        )
        interruptions = sum(n.statistics().counters.get("delivery_interruptions", 0) for n in nodes)
        emit({"received": received, "interruptions": interruptions, "multi": multi})
        await read_line()


if __name__ == "__main__":
    trio.run(main)
