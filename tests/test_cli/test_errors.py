"""Every way the CLI can be used wrongly ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meshtalk.profile import create_identity
from tests.test_cli.helpers import Cli, one_line_error

NODE_COMMANDS = [
    ["status"],
    ["peers"],
    ["contacts"],
    ["contacts", "add", "12D3KooWHWQ36rAA7CvxSkJdhkhsGvMctTWqNiYNAW1QZrPbT48u", "x"],
    ["send", "bob", "hi"],
    ["inbox"],
    ["history"],
    ["chat", "bob"],
    ["pair"],
    ["pair", "7-amber-falcon"],
    ["invite"],
    ["join", "mt1abc"],
]
EVERY_COMMAND = ["demo", "init", "id", "up", "down", "status", "peers", "contacts", "send",
                 "inbox", "history", "chat", "pair", "invite", "join", "rendezvous", "config",
                 "mcp", "selfcheck"]  # fmt: skip


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


@pytest.mark.parametrize("command", NODE_COMMANDS, ids=" ".join)
def test_commands_that_need_a_node_say_how_to_start_one(cli: Cli, command: list[str]) -> None:
    create_identity(cli.profile_dir("alice"))  # in-process: quicker than `meshtalk init`
    line = one_line_error(cli.run("alice", *command), code=3)
    assert "no node is running for profile 'alice'" in line
    assert "meshtalk --profile alice up" in line


def test_a_mistyped_profile_is_not_told_to_start_a_node(cli: Cli) -> None:
    """`up` would create a new identity under the wrong name: say the profile does not exist,
    which ones do, and how to create it (issue 14, item 11)."""
    assert "there is no profile yet" in one_line_error(cli.run("alise", "status"), code=3)
    for name in ("alice", "bob"):
        create_identity(cli.profile_dir(name))
    for command in (["status"], ["send", "bob", "hi"], ["history"]):
        line = one_line_error(cli.run("alise", *command), code=3)
        assert "there is no such profile (the profiles here are: alice, bob)" in line
        assert "`meshtalk --profile alise init`" in line
        assert " up" not in line
    assert not cli.profile_dir("alise").exists()


def json_error(result: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    """The one JSON object a failed --json command printed on stderr (stdout stays empty)."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    error: dict[str, Any] = json.loads(lines[0])
    assert set(error) >= {"error", "code", "message", "remote", "exit"}
    assert error["exit"] == code
    return error


def test_json_errors_are_one_json_object_on_stderr(cli: Cli) -> None:
    """Under --json (before or after the command) an error is JSON with the same exit code."""
    cli.ok("alice", "init")
    for args in (["status", "--json"], ["--json", "status"], ["send", "bob", "x", "--json"]):
        error = json_error(cli.run("alice", *args), 3)
        assert error["error"] == "NodeNotRunning"
        assert error["code"] == 801
        assert error["remote"] is False
        assert "meshtalk --profile alice up --detach" in error["message"]
    missing = json_error(cli.run("nobody", "id", "--json"), 1)
    assert (missing["error"], missing["code"]) == ("KeyFileMissing", 305)
    bad = json_error(cli.run("alice", "config", "set", "mdns", "maybe", "--json"), 1)
    assert (bad["error"], bad["code"]) == ("ConfigError", 400)
    assert "'mdns'" in bad["message"]
    plain = cli.run(None, "send", "bob")  # without --json: argparse's usage and error line
    assert plain.stderr.startswith("usage: meshtalk send")
    assert plain.stderr.splitlines()[-1] == (
        "meshtalk send: error: the following arguments are required: TEXT"
    )


@pytest.mark.parametrize(
    "args", [["send", "--json"], ["--json", "send", "bob"], ["--json", "nonsense"], ["--json"],
             ["history", "--after", "x", "--json"], ["--js", "up", "--nope"]],
    ids=" ".join,
)  # fmt: skip
def test_bad_arguments_under_json(cli: Cli, args: list[str]) -> None:
    error = json_error(cli.run(None, *args), 2)
    assert (error["error"], error["code"]) == ("UsageError", None)
    assert error["usage"].startswith("usage: meshtalk")
    assert error["message"]


@pytest.mark.slow  # over 6 s
def test_help_for_every_command(cli: Cli) -> None:
    for command in EVERY_COMMAND:
        result = cli.run(None, command, "--help")
        assert result.returncode == 0, command
        assert f"usage: meshtalk {command}" in result.stdout
    for action in ("list", "add", "remove", "rename", "trust", "block"):
        assert cli.run(None, "contacts", action, "--help").returncode == 0
    for action in ("get", "set", "unset", "path"):
        assert cli.run(None, "config", action, "--help").returncode == 0


@pytest.mark.parametrize(
    "args", [["send"], ["send", "bob"], ["pair", "a", "b"], ["history", "--after", "x"],
             ["contacts", "rename", "x"], ["up", "--nope"], ["config", "set", "mdns"]],
    ids=" ".join,
)  # fmt: skip
def test_bad_arguments(cli: Cli, args: list[str]) -> None:
    result = cli.run(None, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr.splitlines()[-1]


def test_init_is_idempotent_and_never_replaces_the_key(cli: Cli) -> None:
    first = cli.json("alice", "init")
    again = cli.json("alice", "init", "--name", "Alice")
    assert first["created"] is True
    assert again["created"] is False
    assert again["peer_id"] == first["peer_id"] == cli.ok("alice", "id").strip()
    assert "already had profile 'alice'" in cli.ok("alice", "init")
    assert cli.json("alice", "config", "get", "name") == {"name": "Alice"}


def test_id_without_a_profile(cli: Cli) -> None:
    assert "meshtalk init" in one_line_error(cli.run("nobody", "id"))


@pytest.mark.slow  # over 6 s
def test_a_corrupt_key_is_refused_by_every_command(cli: Cli) -> None:
    cli.ok("alice", "init")
    key = cli.profile_dir("alice") / "identity.key"
    key.write_text("meshtalk-identity: 1\npeer-id: nonsense\nseed: AAAA\n")
    for command in (["id"], ["init"], ["up"], ["up", "--detach"]):
        line = one_line_error(cli.run("alice", *command))
        assert "damaged" in line, command
    assert not (cli.profile_dir("alice") / "control.sock").exists()


def test_bad_settings_name_the_key(cli: Cli) -> None:
    assert "'mdns'" in one_line_error(cli.run("alice", "config", "set", "mdns", "maybe"))
    assert "'listen'" in one_line_error(cli.run("alice", "config", "set", "listen", "nowhere"))
    line = one_line_error(cli.run("alice", "config", "set", "colour", "blue"))
    assert "unknown setting 'colour'" in line
    assert "mdns" in line  # lists the real ones
    assert "'accept'" in one_line_error(cli.run("alice", "config", "set", "accept", "all"))
    assert cli.json("alice", "config", "get", "mdns") == {"mdns": True}  # nothing was written


def test_a_broken_config_file_stops_up_with_one_line(cli: Cli) -> None:
    cli.ok("alice", "init")
    config = cli.profile_dir("alice") / "config.toml"
    config.write_text("mdns = 'yes'\n")
    for command in (["up"], ["up", "--detach"], ["config", "get"]):
        line = one_line_error(cli.run("alice", *command))
        assert "'mdns'" in line
        assert str(config) in line
    config.write_text("mdns = [\n")
    assert "not valid TOML" in one_line_error(cli.run("alice", "config", "get"))


def test_config_set_get_unset(cli: Cli) -> None:
    cli.ok("alice", "config", "set", "listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/5001")
    assert cli.json("alice", "config", "get", "listen")["listen"] == [
        "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/5001",
    ]  # fmt: skip
    cli.ok("alice", "config", "set", "pair_timeout", "120")
    cli.ok("alice", "config", "set", "mesh", "lab")
    settings = cli.json("alice", "config", "get")
    assert settings["pair_timeout"] == 120
    assert settings["mesh"] == "lab"
    cli.ok("alice", "config", "unset", "mesh")
    assert cli.json("alice", "config", "get", "mesh") == {"mesh": "default"}
    assert "listen = " in cli.ok("alice", "config")
    assert cli.ok("alice", "config", "path").strip().endswith("profiles/alice/config.toml")


def test_a_point_or_bootstrap_peer_without_its_peer_id_is_refused_by_set(cli: Cli) -> None:
    """One validator for `config set` and for start: `up` never finds a bad value first."""
    for key in ("rendezvous", "bootstrap"):
        line = one_line_error(cli.run("alice", "config", "set", key, "/ip4/1.2.3.4/tcp/1"))
        assert f"'{key}'" in line
        assert "must end with /p2p/<peer ID>" in line
        bad_id = one_line_error(
            cli.run("alice", "config", "set", key, "/ip4/1.2.3.4/tcp/1/p2p/nonsense")
        )
        assert "invalid peer ID" in bad_id
    assert cli.json("alice", "config", "get", "rendezvous") == {"rendezvous": []}
    good = "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWBbErutYY2oKUzCyCvR6pW4Ad4aS9VaQRq6JN91ZYijcu"
    cli.ok("alice", "config", "set", "rendezvous", good)
    assert cli.json("alice", "config", "get", "rendezvous") == {"rendezvous": [good]}


def test_down_without_a_node_is_not_an_error(cli: Cli) -> None:
    assert "no node was running" in cli.ok("alice", "down")


def test_a_bad_profile_name(cli: Cli) -> None:
    assert "profile name" in one_line_error(cli.run("../etc", "id"))


def test_an_unwritable_home_is_one_line(tmp_path: Path) -> None:
    cli = Cli(Path("/proc/meshtalk-nowhere"))
    for command in (["init"], ["config", "set", "mdns", "false"], ["up", "--detach"]):
        line = one_line_error(cli.run("alice", *command))
        assert "/proc/meshtalk-nowhere" in line, command
