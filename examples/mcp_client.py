"""What an MCP client sees: start `meshtalk mcp` over stdio with the MCP SDK's client, list its
tools, and call `whoami` (the client config below is what a coding agent uses).

    python examples/mcp_client.py        # needs: pip install 'meshtalk[mcp]'

MCP client configuration (Claude Code: `claude mcp add meshtalk -- meshtalk mcp`):

    {"mcpServers": {"meshtalk": {"command": "meshtalk", "args": ["mcp"]}}}

Here the server runs on a temporary profile (its own embedded node on 127.0.0.1).
"""

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from meshtalk.profile import save_settings


async def main(home: Path) -> None:
    save_settings(home / "profiles" / "agent", {"listen": ["/ip4/127.0.0.1/tcp/0"], "mdns": False})
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "meshtalk", "--profile", "agent", "mcp"],
        env={"MESHTALK_HOME": str(home), "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        print("tools:", ", ".join(sorted(tool.name for tool in tools.tools)))
        me = await session.call_tool("whoami", {})
        print("whoami:", me.structured_content)


with tempfile.TemporaryDirectory() as tmp:
    asyncio.run(main(Path(tmp)))
