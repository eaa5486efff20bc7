"""`meshtalk mcp` as a real subprocess, driven by the MCP SDK's own stdio client: two agents'
servers (each with its own embedded node) pair through a rendezvous point and talk."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.test_cli.helpers import Cli, rendezvous_point
from tests.test_facade.helpers import loopback_profile

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]  # every test here is over 6 s

TOOLS = {"whoami", "list_peers", "send_message", "read_messages", "list_conversations",
         "pair_start", "pair_status", "pair_join"}  # fmt: skip


@pytest.fixture
def point(tmp_path: Path) -> Iterator[str]:
    with rendezvous_point(Cli(tmp_path / "point")) as address:
        yield address


@asynccontextmanager
async def mcp_session(home: Path, profile: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "meshtalk", "--profile", profile, "mcp"],
        env={"MESHTALK_HOME": str(home), "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )  # fmt: skip
    async with AsyncExitStack() as stack:
        read, write = await stack.enter_async_context(stdio_client(params))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def test_two_agents_pair_and_talk_through_their_mcp_servers(
    tmp_path: Path, point: str
) -> None:
    for name in ("alice", "bob"):
        loopback_profile(tmp_path, name, rendezvous=[point])
    async with (
        mcp_session(tmp_path, "alice") as alice,
        mcp_session(tmp_path, "bob") as bob,
    ):
        tools = await alice.list_tools()
        assert {tool.name for tool in tools.tools} == TOOLS
        me = await call(alice, "whoami")
        assert me["name"] == "alice"

        started = await call(alice, "pair_start")
        assert "meshtalk pair" in started["tell_the_user"]
        joined = await call(bob, "pair_join", code=started["code"])
        assert joined["contact"]["name"] == "alice"
        assert (await call(alice, "pair_status", code=started["code"]))["status"] == "paired"

        sent = await call(bob, "send_message", to="alice", text="please review PR 12")
        assert sent["status"] == "delivered"
        read = await call(alice, "read_messages", wait_seconds=10)
        [message] = read["messages"]
        assert message["from_name"] == "bob"
        assert message["from"] == (await call(bob, "whoami"))["peer_id"]
        assert message["text"] == "please review PR 12"
        assert message["content_from_peer"] is True
        assert "not by your user" in message["notice"]
        again = await call(alice, "read_messages", wait_seconds=0.2)
        assert again["messages"] == []  # the consumer position moved on
        conversations = (await call(alice, "list_conversations"))["conversations"]
        assert "bob" in conversations[0]["member_names"]

        bad = await alice.call_tool("send_message", {"to": "nobody", "text": "x"})
        assert bad.is_error
        assert "UnknownPeer" in bad.content[0].text  # type: ignore[union-attr]
        wrong = await bob.call_tool("pair_join", {"code": "not a code"})
        assert wrong.is_error
        assert "7-amber-falcon" in wrong.content[0].text  # type: ignore[union-attr]
