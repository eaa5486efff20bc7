"""A node that finds one peer by mDNS alone, swaps a message with it, and reports as JSON.

    python -m tests.test_discovery.lan_node PROFILE LISTEN OTHER_PEER_ID

Run inside a network namespace by test_mdns_netns.py. Prints one line:
{"found_after": seconds, "sources": [...], "received": text}
"""

from __future__ import annotations

import json
import sys

import trio

from meshtalk.peer.node import open_node
from tests.test_peer.helpers import fast_config


async def main(profile: str, listen: str, other: str) -> None:
    started = trio.current_time()
    config = fast_config(listen=[listen], mdns=True)
    with trio.fail_after(60):
        async with open_node(profile, config) as node:
            node.add_contact(other, "other")  # no address: mDNS has to find it

            def sources() -> tuple[str, ...]:
                return next((p.sources for p in node.peers() if str(p.peer_id) == other), ())

            # The other side may connect first (its identify record then arrives too): wait
            # for mDNS itself, which is what this measures.
            while "mdns" not in sources():
                await trio.sleep(0.02)
            found_after, found_sources = trio.current_time() - started, sources()
            await node.send("other", f"hello from {node.peer_id}", wait=True, timeout=30)
            async for message in node.messages():
                received = message.text
                break
            await trio.sleep(1.5)  # let the other side's ack and our last ack go out
    print(json.dumps({"found_after": found_after, "sources": found_sources, "received": received}))


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
