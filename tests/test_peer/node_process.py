"""A node in its own process, driven by JSON lines on stdin, for tests that kill -9 a node.

    python -m tests.test_peer.node_process PROFILE [--listen MULTIADDR]

Prints {"ready": ..., "peer_id": ..., "addrs": [...]} once listening, then runs commands:
  {"op": "contact", "peer": ID, "name": NAME, "addrs": [...]}   -> {"ok": true}
  {"op": "send", "to": NAME, "count": N, "prefix": P}           -> {"sent": i} after each send
  {"op": "outbox"}                                              -> {"outbox": n}
  {"op": "flushed", "timeout": T}                               -> {"flushed": bool}
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from meshtalk.peer.node import Node, open_node
from tests.test_peer.helpers import fast_config


def emit(value: dict[str, Any]) -> None:
    print(json.dumps(value), flush=True)


async def run_command(node: Node, command: dict[str, Any]) -> None:
    op = command["op"]
    if op == "contact":
        node.add_contact(command["peer"], command["name"], command["addrs"])
        emit({"ok": True})
    elif op == "send":
        for i in range(command["count"]):
            await node.send(command["to"], f"{command['prefix']}{i}")
            emit({"sent": i})
    elif op == "outbox":
        emit({"outbox": node.statistics().outbox})
    elif op == "flushed":  # the outbox is empty: everything acked (or failed)
        emit({"flushed": await node.wait_flushed(command.get("timeout"))})
    else:
        emit({"error": f"unknown op {op}"})


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    args = parser.parse_args()
    async with open_node(args.profile, fast_config(listen=[args.listen])) as node:
        emit({"ready": True, "peer_id": str(node.peer_id), "addrs": node.listen_addrs})
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return
            await run_command(node, json.loads(line))


if __name__ == "__main__":
    trio.run(main)
