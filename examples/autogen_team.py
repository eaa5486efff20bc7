"""Two AutoGen programs in two processes, talking over meshtalk: alice's local team includes
`RemotePeerAgent("reviewer")`, which is really an AutoGen agent run by another process on bob's
node. Nobody in between: the nodes talk peer to peer, signed and encrypted.

    pip install 'meshtalk[autogen]'     # where the agents run
    python examples/autogen_team.py

AutoGen pins protobuf 5.29, which py-libp2p refuses, so the nodes run from the `meshtalk`
command of another environment (`pipx install meshtalk`; or set $MESHTALK_CLI to it). The
script starts both nodes in a temporary MESHTALK_HOME, pairs them with an invite, and stops
them at the end. No API key: both sides use AutoGen's ReplayChatCompletionClient.
"""

# requires: autogen

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.replay import ReplayChatCompletionClient

from meshtalk import Mesh
from meshtalk.integrations.autogen import RemotePeerAgent, serve_agent
from meshtalk.profile import save_settings


def meshtalk(home: Path, *args: str) -> None:
    cli = os.environ.get("MESHTALK_CLI") or shutil.which("meshtalk") or "meshtalk"
    env = {**os.environ, "MESHTALK_HOME": str(home)}
    subprocess.run([cli, *args], env=env, check=True, capture_output=True, timeout=120)


def bob_serves(home: Path) -> None:
    """The second program: bob's reviewer agent answers what arrives over meshtalk."""
    reviewer = AssistantAgent(
        "reviewer",
        model_client=ReplayChatCompletionClient(
            ["Reviewed on bob's machine: the plan is sound; ship after the tests pass."]
        ),
    )
    with Mesh(home / "profiles" / "bob", embedded=False) as mesh:
        asyncio.run(serve_agent(mesh, reviewer, max_messages=1))


async def alice_team(mesh: Mesh) -> None:
    writer = AssistantAgent(
        "writer",
        model_client=ReplayChatCompletionClient(
            ["Plan: freeze main on Friday, tag 0.2.0, publish to PyPI on Monday."]
        ),
    )
    reviewer = RemotePeerAgent("reviewer", mesh, "bob", reply_timeout=60)
    team = RoundRobinGroupChat([writer, reviewer], termination_condition=MaxMessageTermination(3))
    result = await team.run(task="Plan the 0.2.0 release.")
    for message in result.messages:
        print(f"{message.source:>8}: {message.to_model_text()}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="meshtalk-autogen-") as tmp:
        home = Path(tmp)
        for name in ("alice", "bob"):
            settings = {"listen": ["/ip4/127.0.0.1/tcp/0"], "mdns": False, "name": name}
            save_settings(home / "profiles" / name, settings)
            meshtalk(home, "--profile", name, "up", "--detach")
        try:
            with Mesh(home / "profiles" / "alice", embedded=False) as alice:
                with Mesh(home / "profiles" / "bob", embedded=False) as bob:
                    bob.join(alice.invite())
                print("alice and bob are paired; bob's reviewer runs in another process")
                server = subprocess.Popen([sys.executable, __file__, "--serve-bob", str(home)])
                try:
                    asyncio.run(alice_team(alice))
                finally:
                    server.wait(timeout=60)
        finally:
            for name in ("alice", "bob"):
                meshtalk(home, "--profile", name, "down")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-bob"]:
        bob_serves(Path(sys.argv[2]))
    else:
        main()
