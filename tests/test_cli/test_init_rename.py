"""`init --name` on a profile that exists renames its node, and says so (issue 14, item 11)."""

from __future__ import annotations

import pytest

from tests.test_cli.helpers import Cli

pytestmark = pytest.mark.timeout(60)


def test_init_with_another_name_renames_and_says_so(cli: Cli) -> None:
    created = cli.json("alice", "init", "--name", "alice")
    assert created["created"] is True
    assert created["renamed"] is False
    out = cli.ok("alice", "init", "--name", "Alice Smith")
    assert "renamed this node from 'alice' to 'Alice Smith'" in out
    assert cli.json("alice", "config", "get", "name") == {"name": "Alice Smith"}
    assert "renamed" not in cli.ok("alice", "init", "--name", "Alice Smith")  # no change
    assert "renamed" not in cli.ok("alice", "init")
    assert cli.json("alice", "init", "--name", "al")["renamed"] is True


def test_naming_a_profile_that_had_no_name_says_so(cli: Cli) -> None:
    cli.ok("bob", "init")
    assert "renamed this node to 'bob'" in cli.ok("bob", "init", "--name", "bob")
