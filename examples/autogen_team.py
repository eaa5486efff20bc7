"""Two AutoGen programs in two processes, talking over meshtalk: alice's local team includes
`RemotePeerAgent("reviewer")`, which is really an AutoGen agent run by another process on bob's
node. Nobody in between: the nodes talk peer to peer, signed and encrypted.

    pip install 'meshtalk[autogen]'
    python examples/autogen_team.py

One environment: the script starts both nodes with this environment's meshtalk
(`python -m meshtalk`; $MESHTALK_CLI names another `meshtalk` command to use instead) in a
temporary MESHTALK_HOME, pairs them with an invite, and stops them at the end. No API key: both
sides use AutoGen's ReplayChatCompletionClient (from autogen-ext, part of the extra). Whatever
fails is one line on stderr saying what to do, and a non-zero exit.
"""

# requires: autogen

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

try:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat
    from autogen_ext.models.replay import ReplayChatCompletionClient

    from meshtalk import Mesh, MeshtalkError
    from meshtalk.integrations.autogen import RemotePeerAgent, serve_agent
    from meshtalk.profile import save_settings
except ImportError as exc:
    sys.exit(f"autogen_team.py: {exc}; install AutoGen with: pip install 'meshtalk[autogen]'")

PROGRAM = "autogen_team.py"


def meshtalk_command() -> list[str]:
    """The `meshtalk` the nodes run from: $MESHTALK_CLI, or this environment's."""
    cli = os.environ.get("MESHTALK_CLI")
    return [cli] if cli else [sys.executable, "-m", "meshtalk"]


def meshtalk(home: Path, *args: str, check: bool = True) -> None:
    """Run one meshtalk command; a failure ends the script with one line (the node's reason)."""
    command = [*meshtalk_command(), *args]
    try:
        result = subprocess.run(
            command,
            env={**os.environ, "MESHTALK_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        if not check:
            return
        hint = "unset $MESHTALK_CLI" if os.environ.get("MESHTALK_CLI") else "reinstall meshtalk"
        sys.exit(f"{PROGRAM}: cannot run {command[0]}: {exc}; {hint}")
    if check and result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        reason = reason.removeprefix("meshtalk: error: ")  # the CLI's one line, passed on
        sys.exit(f"{PROGRAM}: `meshtalk {' '.join(args)}` failed: {reason}")


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


def run_team(home: Path) -> None:
    """Pair alice with bob, start bob's program, and run alice's team (the nodes are up)."""
    with Mesh(home / "profiles" / "alice", embedded=False) as alice:
        with Mesh(home / "profiles" / "bob", embedded=False) as bob:
            bob.join(alice.invite())
        print("alice and bob are paired; bob's reviewer runs in another process")
        server = subprocess.Popen([sys.executable, __file__, "--serve-bob", str(home)])
        try:
            asyncio.run(alice_team(alice))
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=10)
    if server.returncode != 0:
        sys.exit(f"{PROGRAM}: bob's program failed (exit status {server.returncode}); see above")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="meshtalk-autogen-") as tmp:
        home = Path(tmp)
        try:
            for name in ("alice", "bob"):
                settings = {"listen": ["/ip4/127.0.0.1/tcp/0"], "mdns": False, "name": name}
                save_settings(home / "profiles" / name, settings)
                meshtalk(home, "--profile", name, "up", "--detach")
            run_team(home)
        finally:
            for name in ("alice", "bob"):
                meshtalk(home, "--profile", name, "down", check=False)


def guarded(run: Callable[[], None]) -> None:
    """Run `run`, turning meshtalk's errors into one line on stderr and exit status 1."""
    try:
        run()
    except (MeshtalkError, TimeoutError) as exc:
        sys.exit(f"{PROGRAM}: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-bob"]:
        guarded(lambda: bob_serves(Path(sys.argv[2])))
    else:
        guarded(main)
