"""Two meshtalk nodes find each other through a rendezvous point, then talk directly.

    python examples/two_nodes.py

A rendezvous point and two nodes start on 127.0.0.1, each node with a temporary profile
(identity key + SQLite store). The nodes register signed peer records at the point and
discover each other there; they know each other only by peer ID. Their messages are signed,
encrypted, stored and acknowledged end to end: the point never sees one. Then the point goes
away, both nodes restart, and they still reach each other from their address books.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from meshtalk import NodeConfig, NodeKey, open_node, open_rendezvous_point


async def main() -> None:
    """Run the example."""
    with tempfile.TemporaryDirectory() as home, trio.fail_after(60):
        async with open_rendezvous_point(NodeKey.generate()) as (_, point_addresses):
            print(f"rendezvous point on {point_addresses[0]}")
            config = NodeConfig(rendezvous=point_addresses, mdns=False)
            async with (
                open_node(Path(home) / "alice", config) as alice,
                open_node(Path(home) / "bob", config) as bob,
            ):
                print(f"alice {alice.peer_id}")
                print(f"bob   {bob.peer_id}")
                found = await alice.wait_known(bob.peer_id)
                await bob.wait_known(alice.peer_id)
                print(f"alice found bob at {found[0]} via the point")
                # Trust is explicit: only contacts may deliver messages.
                alice.add_contact(bob.peer_id, "bob")
                bob.add_contact(alice.peer_id, "alice")

                await alice.send("bob", "hello bob, can you review PR 12?", wait=True)
                async for message in bob.messages():
                    print(f"bob got {message.body!r} from alice (cursor {message.cursor})")
                    break
                await bob.send("alice", {"review": "approved", "comments": 2}, wait=True)
        print("the rendezvous point is gone; alice and bob restart")

        config = NodeConfig(mdns=False)
        async with (
            open_node(Path(home) / "alice", config) as alice,
            open_node(Path(home) / "bob", config) as bob,
        ):
            await alice.send("bob", "still there without the point?", wait=True)
            print("bob acknowledged a message sent from alice's address book")
            for message in alice.history("bob"):
                arrow = "->" if message.direction == "out" else "<-"
                print(
                    f"alice {arrow} {message.body!r} [{message.status}, lamport {message.lamport}]"
                )


if __name__ == "__main__":
    trio.run(main)
