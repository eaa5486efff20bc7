"""The conversation guards hold on the trio API too, not only on the control socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshtalk import GuardLimits, GuardTripped

from .helpers import collect, fast_config, running

AGENT = {"via": "agent"}


async def test_node_send_holds_an_agent_to_the_per_minute_limit(tmp_path: Path) -> None:
    config = fast_config(guards=GuardLimits(per_minute=2, agent_turns=100, max_bytes=1000))
    async with running(tmp_path, "alice", "bob", config=config) as (alice, bob):
        await alice.send("bob", "one", metadata=AGENT)
        await alice.send("bob", "two", metadata=AGENT)
        with pytest.raises(GuardTripped, match="guard_per_minute"):
            await alice.send("bob", "three", metadata=AGENT)
        # a person's message, and one that does not say who wrote it, are not an agent's
        await alice.send("bob", "a human word", metadata={"via": "human"})
        await alice.send("bob", "the program's own")
        got = [m.body for m in await collect(bob, 4)]
        assert got == ["one", "two", "a human word", "the program's own"]  # nothing of "three"


async def test_node_send_refuses_an_agent_message_over_the_size_limit(tmp_path: Path) -> None:
    config = fast_config(guards=GuardLimits(per_minute=100, agent_turns=100, max_bytes=10))
    async with running(tmp_path, "alice", "bob", config=config) as (alice, _bob):
        with pytest.raises(GuardTripped, match="guard_max_bytes"):
            await alice.send("bob", "x" * 11, metadata=AGENT)
        assert alice.history("bob") == []  # nothing was queued
        await alice.send("bob", "x" * 10, metadata=AGENT, wait=True, timeout=10)


async def test_two_agents_on_the_trio_api_stop_after_the_turn_limit(tmp_path: Path) -> None:
    config = fast_config(guards=GuardLimits(per_minute=100, agent_turns=3, max_bytes=1000))
    async with running(tmp_path, "alice", "bob", config=config) as (alice, bob):
        await alice.send("bob", "ping 1", metadata=AGENT, wait=True, timeout=10)
        await bob.send("alice", "pong 1", metadata=AGENT, wait=True, timeout=10)
        await alice.send("bob", "ping 2", metadata=AGENT, wait=True, timeout=10)
        await collect(bob, 2)
        with pytest.raises(GuardTripped, match="guard_agent_turns"):
            await bob.send("alice", "pong 2", metadata=AGENT)
        await bob.send("alice", "a person steps in", metadata={"via": "human"})
        await bob.send("alice", "pong 2", metadata=AGENT, wait=True, timeout=10)


async def test_guards_can_be_switched_off_for_a_program(tmp_path: Path) -> None:
    config = fast_config(guards=None)
    async with running(tmp_path, "alice", "bob", config=config) as (alice, bob):
        for i in range(5):
            await alice.send("bob", f"fast {i}", metadata=AGENT)
        assert len(await collect(bob, 5)) == 5


async def test_an_agent_body_that_is_not_text_counts_by_its_packed_size(tmp_path: Path) -> None:
    config = fast_config(guards=GuardLimits(per_minute=100, agent_turns=100, max_bytes=50))
    async with running(tmp_path, "alice", "bob", config=config) as (alice, bob):
        with pytest.raises(GuardTripped, match="guard_max_bytes"):
            await alice.send("bob", {"blob": "x" * 60}, kind="data", metadata=AGENT)
        await alice.send("bob", {"small": 1}, kind="data", metadata=AGENT)
        [message] = await collect(bob, 1)
        assert message.body == {"small": 1}
