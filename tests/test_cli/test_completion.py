"""Shell completion (argcomplete): the script `meshtalk completion` prints, and the answers the
real command gives a shell that asks (issue 14, item 13)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli.helpers import TIMEOUT, Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def complete(cli: Cli, line: str) -> list[str]:
    """What `meshtalk` answers a shell completing `line` (cursor at its end): argcomplete's
    protocol, as its own tests drive it: the words on fd 8, separated by a vertical tab."""
    env = {**cli.env, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_SUPPRESS_SPACE": "1"}  # fmt: skip
    result = subprocess.run(
        ["bash", "-c", '"$@" 8>&1 9>/dev/null 1>/dev/null', "-", sys.executable, "-m", "meshtalk"],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return [word for word in result.stdout.split("\v") if word]


def test_completion_prints_a_script_for_each_shell(cli: Cli) -> None:
    bash = cli.ok(None, "completion", "bash")
    assert "complete -o nospace -o default -o bashdefault -F _python_argcomplete meshtalk" in bash
    assert "_ARGCOMPLETE=1" in bash
    assert "complete --command meshtalk" in cli.ok(None, "completion", "fish")
    assert "compdef" in cli.ok(None, "completion", "zsh")
    assert cli.json(None, "completion", "bash")["script"] == bash
    assert cli.run(None, "completion", "tcsh").returncode == 2


def test_commands_actions_options_and_choices_complete(cli: Cli) -> None:
    assert complete(cli, "meshtalk sen") == ["send"]
    assert "status" in complete(cli, "meshtalk ")
    assert "--json" not in complete(cli, "meshtalk ")  # options once a '-' is typed
    assert complete(cli, "meshtalk config s") == ["set"]
    assert complete(cli, "meshtalk contacts re") == ["remove", "rename"]
    assert complete(cli, "meshtalk send --no") == ["--no-wait"]
    assert complete(cli, "meshtalk --prof") == ["--profile"]
    assert complete(cli, "meshtalk completion ") == ["bash", "zsh", "fish"]


def test_a_contact_name_completes_to_nothing_when_no_node_runs(cli: Cli) -> None:
    cli.ok("alice", "init")
    started = time.monotonic()
    for line in (
        "meshtalk --profile alice send ",
        "meshtalk chat b",
        "meshtalk --profile ../x send ",
    ):
        assert complete(cli, line) == []
    assert time.monotonic() - started < 20  # no wait for a node that is not there


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_completes_in_bash(cli: Cli) -> None:
    """The printed script, eval'ed in a real bash, fills COMPREPLY by running meshtalk."""
    script = cli.ok(None, "completion", "bash")
    program = (
        'eval "$SCRIPT"; COMP_LINE="meshtalk invi"; COMP_POINT=${#COMP_LINE}; '
        "COMP_WORDS=(meshtalk invi); COMP_CWORD=1; _python_argcomplete meshtalk; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "meshtalk").exists(), "the meshtalk script is installed next to python"
    env = {**cli.env, "SCRIPT": script, "PATH": f"{bin_dir}:{cli.env.get('PATH', '')}"}
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True,
                            timeout=TIMEOUT, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["invite"]
