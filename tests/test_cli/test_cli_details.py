"""Small CLI promises: `config path --json`, -v counted on both sides of the command, hints
that keep --profile, and a negative line count refused as a bad argument."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshtalk.cli.parser import build_parser

from .helpers import Cli

pytestmark = pytest.mark.timeout(60)


def test_config_path_under_json_is_a_json_object(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    found = cli.json("alice", "config", "path")
    assert found == {"path": str(cli.profile_dir("alice") / "config.toml")}


def test_verbose_before_and_after_the_command_add_up() -> None:
    parser = build_parser()
    assert parser.parse_args(["-v", "up", "-v"]).verbose == 1  # main() adds verbose_after
    from meshtalk.cli import _with_verbosity

    assert _with_verbosity(parser.parse_args(["-v", "up", "-v"])).verbose == 2
    assert _with_verbosity(parser.parse_args(["up", "-vv"])).verbose == 2
    assert _with_verbosity(parser.parse_args(["up"])).verbose == 0


def test_init_on_another_profile_names_it_in_the_next_step(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    out = cli.ok("bob", "init", "--name", "bob")
    assert "`meshtalk --profile bob up --detach`" in out
    assert "`meshtalk --profile bob pair`" in out
    assert "`meshtalk up --detach`" in Cli(tmp_path / "other").ok(None, "init")


def test_a_negative_line_count_is_a_bad_argument(tmp_path: Path) -> None:
    result = Cli(tmp_path).run("alice", "--json", "logs", "-n", "-3")
    assert result.returncode == 2
    error = json.loads(result.stderr)
    assert error["error"] == "UsageError"
    assert "0 or more" in error["message"]


def test_inbox_help_says_what_new_means(tmp_path: Path) -> None:
    text = " ".join(Cli(tmp_path).ok(None, "inbox", "--help").split())
    assert "no CLI view has shown yet" in text
    assert "one read position" in text
