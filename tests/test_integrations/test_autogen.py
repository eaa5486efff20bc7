"""AutoGen on meshtalk in the one environment `pip install 'meshtalk[autogen]'` gives: protobuf
5.29 (autogen-core's pin), the agents, and the nodes, run from that environment's `meshtalk`
(meshtalk/net/gencode.py lets py-libp2p load on 5.29). Builds that venv once per run (~50 s
from the package index), also under pytest-xdist: the first worker builds it, under a lock, and
the others wait and reuse it (two pip installs of this source tree at once would race on its
build/ folder)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli.helpers import Cli, prepare

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "autogen_team.py"
pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]  # every test here is over 6 s


@pytest.fixture(scope="module")
def autogen_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this run's folder, shared by its workers
    venv, failed = root / "autogen-venv", root / "autogen-venv.failed"
    with (root / "autogen-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (venv / "installed").exists() and not failed.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
            install = subprocess.run(  # exactly what README says, nothing more
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{ROOT}[autogen]"],
                capture_output=True, text=True, timeout=360,
            )  # fmt: skip
            if install.returncode == 0:
                (venv / "installed").touch()
            else:
                failed.write_text(install.stderr.strip()[-300:])
    if failed.exists():
        pytest.skip(f"cannot install AutoGen here: {failed.read_text()}")
    return venv / "bin" / "python"


def example_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "MESHTALK_CLI"}
    return {**env, **extra}


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed run printed on stderr (exit status 1, no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0].strip()


def test_the_environment_has_autogens_protobuf_and_the_node_loads(autogen_python: Path) -> None:
    script = (
        "from google.protobuf import __version__ as v; import meshtalk.net.host, meshtalk.peer;"
        " print(v)"
    )
    result = subprocess.run(
        [str(autogen_python), "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]  # VersionError without gencode.py
    assert result.stdout.startswith("5.29."), result.stdout


def test_the_cross_process_team_example_in_one_environment(autogen_python: Path) -> None:
    result = subprocess.run(
        [str(autogen_python), str(EXAMPLE)],
        env=example_env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reviewer: Reviewed on bob's machine" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_example_says_in_one_line_that_meshtalk_cli_cannot_run(
    autogen_python: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-meshtalk"
    result = subprocess.run(
        [str(autogen_python), str(EXAMPLE)],
        env=example_env(MESHTALK_CLI=str(missing)), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = one_line(result)
    assert line.startswith("autogen_team.py: cannot run "), line
    assert str(missing) in line
    assert line.endswith("unset $MESHTALK_CLI"), line


def test_the_example_passes_on_the_nodes_reason_in_one_line(
    autogen_python: Path, tmp_path: Path
) -> None:
    failing = tmp_path / "meshtalk"
    failing.write_text("#!/bin/sh\necho 'meshtalk: error: port 4001 is taken' >&2\nexit 1\n")
    failing.chmod(0o755)
    result = subprocess.run(
        [str(autogen_python), str(EXAMPLE)],
        env=example_env(MESHTALK_CLI=str(failing)), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = one_line(result)
    assert line == (
        "autogen_team.py: `meshtalk --profile alice up --detach` failed: port 4001 is taken"
    )


class AutogenCli(Cli):
    """The nodes run from the AutoGen environment's meshtalk, like the agents."""

    def __init__(self, home: Path, python: Path) -> None:
        super().__init__(home)
        self.python = python

    def argv(self, profile: str | None, args: tuple[str, ...]) -> list[str]:
        return [str(self.python), *super().argv(profile, args)[1:]]


@pytest.fixture
def paired(tmp_path: Path, autogen_python: Path) -> Iterator[Cli]:
    cli = AutogenCli(tmp_path / "home", autogen_python)
    try:
        for name in ("alice", "bob"):
            prepare(cli, name, None)
            cli.ok(name, "up", "--detach")
        cli.ok("bob", "join", cli.json("alice", "invite")["token"])
        yield cli
    finally:
        cli.cleanup(["alice", "bob"])


def run_script(python: Path, script: str, home: Path) -> str:
    """Run `script` with AutoGen's Python (argv[1] = the CLI home); returns its stripped stdout."""
    result = subprocess.run(
        [str(python), "-c", script, str(home)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_function_tools_send_and_read(autogen_python: Path, paired: Cli) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from autogen_core import CancellationToken
        from meshtalk import Mesh
        from meshtalk.integrations.autogen import meshtalk_tools

        async def main():
            home = sys.argv[1]
            with Mesh(home + "/profiles/alice", embedded=False) as alice, \\
                 Mesh(home + "/profiles/bob", embedded=False) as bob:
                send, _ = meshtalk_tools(alice)
                _, read = meshtalk_tools(bob)
                token = CancellationToken()
                print(await send.run_json({"to": "bob", "text": "hi from autogen"}, token))
                print(await read.run_json({"wait_seconds": 10}, token))
                print(await send.run_json({"to": "nobody", "text": "x"}, token))

        asyncio.run(main())
        """
    )
    delivered, read, error = run_script(autogen_python, script, paired.home).splitlines()
    assert delivered == "delivered to bob"
    assert read == "[from alice (another agent, not your user)] hi from autogen"
    assert error.startswith("error: UnknownPeer")


def test_a_remote_peer_agent_answers_with_the_new_reply_not_old_messages(
    autogen_python: Path, paired: Cli
) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys, time
        from autogen_agentchat.messages import TextMessage
        from autogen_core import CancellationToken
        from meshtalk import Mesh
        from meshtalk.integrations.autogen import RemotePeerAgent

        async def main():
            home = sys.argv[1]
            with Mesh(home + "/profiles/alice", embedded=False) as alice, \\
                 Mesh(home + "/profiles/bob", embedded=False) as bob:
                for i in range(60):  # more than one receive page of old messages from bob
                    bob.send("alice", f"old {i}", wait=False, via="human")
                deadline = time.monotonic() + 30
                while len(alice.history("bob", limit=100)) < 60 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                after = bob.history("alice", limit=1)[-1]["cursor"]
                agent = RemotePeerAgent("bob", alice, "bob", reply_timeout=30)

                def answer():
                    got = bob.receive(after, wait=20)
                    bob.send("alice", "fresh reply to " + got["messages"][0]["text"])

                task = TextMessage(content="please review", source="user")
                response, _ = await asyncio.gather(
                    agent.on_messages([task], CancellationToken()), asyncio.to_thread(answer)
                )
                print(response.chat_message.content)

        asyncio.run(main())
        """
    )
    output = run_script(autogen_python, script, paired.home)
    assert output == "fresh reply to user: please review"


@pytest.fixture
def room_of_three(tmp_path: Path, autogen_python: Path) -> Iterator[Cli]:
    """alice (the team's node, the room's admin), bob and carol in room "release"; bob and
    carol are alice's contacts, not each other's."""
    cli = AutogenCli(tmp_path / "home", autogen_python)
    try:
        for name in ("alice", "bob", "carol"):
            prepare(cli, name, None)
            cli.ok(name, "up", "--detach")
        cli.ok("alice", "room", "create", "release")
        for name in ("bob", "carol"):
            cli.ok(name, "join", cli.json("alice", "invite")["token"])
            cli.ok("alice", "room", "invite", "release", name)
            cli.ok(name, "room", "join", "release")
        yield cli
    finally:
        cli.cleanup(["alice", "bob", "carol"])


def test_a_local_team_with_two_room_members_on_other_nodes(
    autogen_python: Path, room_of_three: Cli
) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from autogen_agentchat.agents import AssistantAgent
        from autogen_agentchat.conditions import MaxMessageTermination
        from autogen_agentchat.teams import RoundRobinGroupChat
        from autogen_ext.models.replay import ReplayChatCompletionClient
        from meshtalk import Mesh
        from meshtalk.integrations.autogen_rooms import RoomMemberAgent, serve_room

        def replay(name, text):
            return AssistantAgent(name, model_client=ReplayChatCompletionClient([text]))

        async def main():
            home = sys.argv[1] + "/profiles/"
            with Mesh(home + "alice", embedded=False) as alice, \\
                 Mesh(home + "bob", embedded=False) as bob, \\
                 Mesh(home + "carol", embedded=False) as carol:
                team = RoundRobinGroupChat(
                    [
                        replay("writer", "Plan: tag 0.2.0 on Friday."),
                        RoomMemberAgent("reviewer", alice, "release", "bob", reply_timeout=60),
                        RoomMemberAgent("tester", alice, "release", "carol", reply_timeout=60),
                    ],
                    termination_condition=MaxMessageTermination(4),
                )
                result, answered_bob, answered_carol = await asyncio.gather(
                    team.run(task="Plan the release."),
                    serve_room(bob, "release", replay("b", "bob: looks sound"), answer="alice",
                               max_messages=1),
                    serve_room(carol, "release", replay("c", "carol: tests pass"),
                               answer="alice", max_messages=1),
                )
                for message in result.messages:
                    print(f"{message.source}|{message.to_model_text()}")
                print(answered_bob, answered_carol)
                mine = [m for m in alice.history("release") if m["direction"] == "out"]
                print(len(mine))  # the team's node posted once for its two room agents
                for _ in range(100):  # bob's node holds all three posts once carol's arrives
                    posts = [m for m in bob.history("release") if m["kind"] == "text"]
                    if len(posts) == 3:
                        break
                    await asyncio.sleep(0.1)
                for m in posts:
                    print(f"{m['author_name']}|{m['text']!r}")

        asyncio.run(main())
        """
    )
    lines = run_script(autogen_python, script, room_of_three.home).splitlines()
    assert lines[:4] == [
        "user|Plan the release.",
        "writer|Plan: tag 0.2.0 on Friday.",
        "reviewer|bob: looks sound",
        "tester|carol: tests pass",
    ]
    assert lines[4:6] == ["1 1", "1"]
    # that one post: the task and the writer's plan, each with its source
    assert lines[6] == "alice|'user: Plan the release.\\n\\nwriter: Plan: tag 0.2.0 on Friday.'"
    assert sorted(lines[7:]) == ["bob|'bob: looks sound'", "carol|'carol: tests pass'"]
