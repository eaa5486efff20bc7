"""Rooms through `Mesh` and through `meshtalk mcp`: three nodes in one room; carol's agent lists
the room, reads bob's post with its verified author and the room, reads the room's history with
a cursor and posts to it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import trio

pytest.importorskip("mcp")

from meshtalk import Mesh
from tests.test_facade.helpers import loopback_profile
from tests.test_integrations.test_mcp import call, mcp_session

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


@pytest.fixture
def team(tmp_path: Path) -> Iterator[dict[str, Mesh]]:
    """alice, bob and carol running (embedded nodes), all in room "team" that alice made;
    bob and carol are alice's contacts, not each other's."""
    with ExitStack() as stack:
        meshes = {
            name: stack.enter_context(Mesh(loopback_profile(tmp_path, name)))
            for name in ("alice", "bob", "carol")
        }
        alice = meshes["alice"]
        for name in ("bob", "carol"):
            meshes[name].join(alice.invite())
        created = alice.create_room("team")
        assert created["admin"] is True
        for name in ("bob", "carol"):
            alice.room_invite("team", name)
            assert meshes[name].join_room("team")["member"] is True
        yield meshes


async def test_an_agent_reads_and_posts_in_a_room(tmp_path: Path, team: dict[str, Mesh]) -> None:
    bob, carol = team["bob"], team["carol"]
    bob_id = (await trio.to_thread.run_sync(bob.whoami))["peer_id"]
    members = await trio.to_thread.run_sync(carol.members, "team")
    assert [m["name"] for m in members if m["admin"]] == ["alice"]
    await trio.to_thread.run_sync(lambda: bob.send("team", "hello team", wait=True))
    async with mcp_session(tmp_path, "carol") as agent:
        [room] = (await call(agent, "list_rooms"))["rooms"]
        assert (room["name"], room["member"], room["member_count"]) == ("team", True, 3)
        read = await call(agent, "read_messages", wait_seconds=10)
        invite, message = read["messages"]  # alice's invite came first
        assert (invite["kind"], invite["from_name"]) == ("room-invite", "alice")
        assert "invitation to room 'team'" in invite["text"]
        assert (message["room"], message["from"], message["from_name"]) == ("team", bob_id, "bob")
        assert message["trust"] == "room member"  # bob is not carol's contact
        sent = await call(agent, "send_message", to="team", text="carol's agent agrees")
        assert sent["status"] == "delivered"
        history = await call(agent, "read_room", room="team")
        posts = [(p["from_name"], p["mine"], p["text"]) for p in history["messages"]]
        assert posts == [("bob", False, "hello team"), ("carol", True, "carol's agent agrees")]
        later = await call(agent, "read_room", room="team", after=history["cursor"])
        assert later["messages"] == []
        assert later["cursor"] == history["cursor"]
        wrong = await agent.call_tool("read_room", {"room": "nosuch"})
        assert wrong.is_error

    def bob_sees_it() -> list[str]:
        for _ in range(100):
            texts = [m["text"] for m in bob.history("team") if m["direction"] == "in"]
            if texts:
                return texts
            time.sleep(0.1)
        return []

    assert await trio.to_thread.run_sync(bob_sees_it) == ["carol's agent agrees"]
