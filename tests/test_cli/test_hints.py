"""With real background nodes: hints name the profile, `send -` drops stdin's final newline,
and shell completion offers the running node's contacts (issue 14, items 11 and 13)."""

from __future__ import annotations

import pytest

from tests.test_cli.helpers import Cli, prepare
from tests.test_cli.test_completion import complete

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # two daemons: over 6 s


def test_hints_stdin_and_contact_completion_on_running_nodes(cli: Cli) -> None:
    prepare(cli, "alice", None)
    prepare(cli, "bob", None)
    cli.ok("alice", "up", "--detach")
    cli.ok("bob", "up", "--detach")
    # every hint that prints a command carries --profile: it would go to 'default' without
    assert "(meshtalk --profile alice pair, or" in cli.ok("alice", "contacts")
    assert "meshtalk --profile alice pair)" in cli.ok("alice", "peers")
    assert "(meshtalk --profile alice config set rendezvous <address>)" in cli.ok("alice", "status")
    token = cli.json("alice", "invite")["token"]
    joined = cli.ok("bob", "join", token, "--timeout", "30")
    assert "send it a message: meshtalk --profile bob send alice 'hello'" in joined

    # a message from stdin loses the newline that ended it (echo, a file), and only that one
    cli.ok("bob", "send", "alice", "-", stdin="built, all green\n")
    cli.ok("bob", "send", "alice", "-", stdin="two lines\nand a blank one after\n\n")
    texts = [m["text"] for m in cli.json("alice", "history", "bob")]
    assert texts == ["built, all green", "two lines\nand a blank one after\n"]

    # Tab completes a TO argument with the node's contacts (before or after the command)
    assert complete(cli, "meshtalk --profile bob send a") == ["alice"]
    assert complete(cli, "meshtalk history --profile bob ") == ["alice"]
    assert complete(cli, "meshtalk --profile alice contacts block ") == ["bob"]
    assert complete(cli, "meshtalk --profile alice chat x") == []
