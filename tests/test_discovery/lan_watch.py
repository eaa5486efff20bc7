"""Nodes that run in one network namespace and report whom they found by mDNS, as JSON.

    python -m tests.test_discovery.lan_watch PROFILE=LISTEN [PROFILE=LISTEN...] [--expect ID]

Run inside a network namespace by test_mdns_interfaces.py. Each node listens on LISTEN with
mDNS on and no `mdns_interfaces` (so it follows `listen`). With `--expect ID`, the nodes stop
3 s after the first of them found ID by mDNS (at most 40 s); without, they run until stdin
closes. Prints one line: {"PROFILE": [peer IDs found by mDNS], ...}
"""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack

import trio

from meshtalk.peer.node import Node, open_node
from tests.test_peer.helpers import fast_config


def found_by_mdns(node: Node) -> list[str]:
    """The peers `node` heard of on the LAN."""
    return sorted(str(p.peer_id) for p in node.peers() if "mdns" in p.sources)


async def main(args: list[str]) -> None:
    expect = args[args.index("--expect") + 1] if "--expect" in args else None
    pairs = [a.split("=", 1) for a in args if "=" in a]
    async with AsyncExitStack() as stack:
        nodes = {
            profile: await stack.enter_async_context(
                open_node(profile, fast_config(listen=[listen], mdns=True))
            )
            for profile, listen in pairs
        }
        if expect is None:
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        else:
            with trio.move_on_after(40):
                while not any(expect in found_by_mdns(n) for n in nodes.values()):
                    await trio.sleep(0.05)
            await trio.sleep(3)  # browsers ask again after 1 s and 2 s: time to hear the rest
        print(json.dumps({profile: found_by_mdns(node) for profile, node in nodes.items()}))


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
