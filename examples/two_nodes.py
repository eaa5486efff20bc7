"""Two meshtalk nodes on this machine talk directly: signed, encrypted, stored, acknowledged.

    python examples/two_nodes.py

Each node gets a temporary profile (identity key + SQLite store) and listens on 127.0.0.1.
They add each other as contacts by peer ID and address (discovery comes in a later release),
exchange a few messages, and show their conversation history.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from meshtalk import open_node


async def main() -> None:
    """Run the example."""
    with tempfile.TemporaryDirectory() as home:
        async with open_node(Path(home) / "alice") as alice, open_node(Path(home) / "bob") as bob:
            print(f"alice {alice.peer_id} on {alice.listen_addrs[0]}")
            print(f"bob   {bob.peer_id} on {bob.listen_addrs[0]}")
            alice.add_contact(bob.peer_id, "bob", bob.listen_addrs)
            bob.add_contact(alice.peer_id, "alice", alice.listen_addrs)

            with trio.fail_after(30):
                await alice.send("bob", "hello bob, can you review PR 12?", wait=True)
                async for message in bob.messages():
                    print(
                        f"bob got {message.body!r} from {message.author} (cursor {message.cursor})"
                    )
                    break
                await bob.send("alice", {"review": "approved", "comments": 2}, wait=True)

            for message in alice.history("bob"):
                arrow = "->" if message.direction == "out" else "<-"
                print(
                    f"alice {arrow} {message.body!r} [{message.status}, lamport {message.lamport}]"
                )


if __name__ == "__main__":
    trio.run(main)
