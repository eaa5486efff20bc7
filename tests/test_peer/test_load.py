"""Many messages at once, and a consumer that does not read."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.test_peer.helpers import every_incoming, running

pytestmark = pytest.mark.slow  # each over 10 s


async def test_three_nodes_each_send_1000_to_the_other_two(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    per_target = 1000
    async with running(tmp_path, *names) as nodes:

        async def blast(index: int) -> None:
            for i in range(per_target):
                for other in names:
                    if other != names[index]:
                        await nodes[index].send(other, f"{names[index]}:{i}")

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for index in range(3):
                    nursery.start_soon(blast, index)
            for node in nodes:
                assert await node.wait_flushed()
        for node, name in zip(nodes, names, strict=True):
            incoming = every_incoming(node)
            assert len(incoming) == 2 * per_target
            for other in names:
                if other == name:
                    continue
                from_other = [m.body for m in incoming if m.body.startswith(f"{other}:")]
                assert from_other == [f"{other}:{i}" for i in range(per_target)]  # once, in order


@pytest.mark.timeout(120)
async def test_a_consumer_that_reads_nothing_for_30_seconds(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        body = "x" * 2000  # about 2 KB sealed: 30 s of this is far beyond any yamux window
        sent = 0
        with trio.move_on_after(30):
            while True:
                await alice.send("bob", body + str(sent))
                sent += 1
                if sent % 50 == 0:
                    await trio.sleep(0.05)
        assert await alice.wait_flushed(timeout=60)
        link = alice.statistics().links[str(bob.peer_id)]
        assert link.state == "connected"
        assert alice.statistics_counter["delivery_interruptions"] == 0
        # Only now does the application look: everything is there, once.
        incoming = every_incoming(bob)
        assert [m.body for m in incoming] == [body + str(i) for i in range(sent)]
        assert sent > 1000
