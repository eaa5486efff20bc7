"""AutoGen on meshtalk, in an environment of its own (autogen-core pins protobuf 5.29, which
py-libp2p refuses): the nodes run from this environment's `meshtalk`, the agents from a venv
with `meshtalk[autogen]`. Builds that venv once per run (~40 s from the package index), also
under pytest-xdist: the first worker builds it, under a lock, and the others wait and reuse it
(two pip installs of this source tree at once would race on its build/ folder)."""

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
CLI = str(Path(sys.executable).parent / "meshtalk")
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
            install = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{ROOT}[autogen]",
                 "autogen-ext>=0.7,<0.8"],
                capture_output=True, text=True, timeout=360,
            )  # fmt: skip
            if install.returncode == 0:
                (venv / "installed").touch()
            else:
                failed.write_text(install.stderr.strip()[-300:])
    if failed.exists():
        pytest.skip(f"cannot install AutoGen here: {failed.read_text()}")
    return venv / "bin" / "python"


def test_the_cross_process_team_example(autogen_python: Path) -> None:
    result = subprocess.run(
        [str(autogen_python), str(ROOT / "examples" / "autogen_team.py")],
        env={**os.environ, "MESHTALK_CLI": CLI}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reviewer: Reviewed on bob's machine" in result.stdout


@pytest.fixture
def paired(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path / "home")
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
