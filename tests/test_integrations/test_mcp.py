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
import trio

pytest.importorskip("mcp")

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from meshtalk import Mesh, __version__
from tests.test_cli.helpers import Cli, rendezvous_point
from tests.test_facade.helpers import loopback_profile

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]  # every test here is over 6 s

TOOLS = {"whoami", "list_peers", "send_message", "read_messages", "list_conversations",
         "list_rooms", "read_room", "pair_start", "pair_status", "pair_join"}  # fmt: skip


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


@pytest.fixture
def paired_profiles(tmp_path: Path) -> None:
    """alice and bob, contacts of each other (paired by invite), neither running now."""
    with (
        Mesh(loopback_profile(tmp_path, "alice")) as alice,
        Mesh(loopback_profile(tmp_path, "bob")) as bob,
    ):
        bob.join(alice.invite())


def _schema_properties(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Every property schema in `schema`, its $defs' included."""
    models = [schema, *schema.get("$defs", {}).values()]
    return [prop for model in models for prop in model.get("properties", {}).values()]


async def test_the_tool_list_alone_says_how_to_use_every_tool(
    tmp_path: Path, paired_profiles: None
) -> None:
    async with mcp_session(tmp_path, "alice") as alice:
        info = alice.server_info
        assert info is not None
        assert info.version == __version__
        init = alice.initialize_result
        assert init is not None
        assert "pair_start" in (init.instructions or "")
        assert "conversation" in (init.instructions or "")
        tools = {tool.name: tool for tool in (await alice.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            description = tool.description or ""
            assert len(description) > 40, tool.name
            assert not any(line != line.lstrip() for line in description.splitlines()), tool.name
            parameters = tool.input_schema.get("properties", {})
            for name, prop in parameters.items():
                assert len(prop.get("description", "")) > 20, (tool.name, name)
            output = tool.output_schema or {}
            assert output.get("properties"), tool.name  # not just additionalProperties: true
        conversation = tools["send_message"].input_schema["properties"]["conversation"]
        assert "list_conversations" in conversation["description"]
        message = tools["read_messages"].output_schema["$defs"]["Message"]  # type: ignore[index]
        assert {"from", "conversation", "text", "notice"} <= set(message["properties"])
        assert all("description" in p for p in _schema_properties(tools["whoami"].output_schema))


async def test_an_empty_message_is_refused_and_nothing_is_queued(
    tmp_path: Path, paired_profiles: None
) -> None:
    async with mcp_session(tmp_path, "alice") as alice:
        for text in ("", "  \n\t "):
            refused = await alice.call_tool("send_message", {"to": "bob", "text": text})
            assert refused.is_error
            assert "empty" in refused.content[0].text  # type: ignore[union-attr]
        assert (await call(alice, "list_conversations"))["conversations"] == []

    def stored() -> tuple[list[dict[str, Any]], int]:
        with Mesh(tmp_path / "profiles" / "alice") as mesh:
            return mesh.history(), mesh.call("status")["outbox"]

    assert await trio.to_thread.run_sync(stored) == ([], 0)  # nothing stored, nothing to send


async def test_wrong_arguments_get_one_plain_sentence(
    tmp_path: Path, paired_profiles: None
) -> None:
    async with mcp_session(tmp_path, "alice") as alice:
        wrong = await alice.call_tool("read_messages", {"wait_seconds": "soon"})
        missing = await alice.call_tool("send_message", {"to": "bob"})
        negative = await alice.call_tool("read_messages", {"after": -1})
    for result, name in ((wrong, "wait_seconds"), (missing, "text"), (negative, "after")):
        assert result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        assert f"argument {name!r}" in text
        assert "http" not in text
        assert "pydantic" not in text.lower()
        assert "\n" not in text
    assert "is required" in missing.content[0].text  # type: ignore[union-attr]
