"""The reader "cli" across inbox, history and chat's ops, and `meshtalk prune`, on real daemons."""

from __future__ import annotations

import time

import pytest

from tests.test_cli.helpers import Cli, prepare

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def two_nodes(cli: Cli) -> None:
    """alice and bob up on loopback, each the other's contact."""
    ids = {name: prepare(cli, name, None) for name in ("alice", "bob")}
    addresses = {name: cli.json(name, "up", "--detach") and cli.json(name, "status")["listening"]
                 for name in ids}  # fmt: skip
    for me, other in (("alice", "bob"), ("bob", "alice")):
        extra = [arg for address in addresses[other] for arg in ("--address", address)]
        cli.ok(me, "contacts", "add", ids[other], other, *extra)


def texts(found: list[dict[str, object]]) -> list[object]:
    return [m["text"] for m in found]


def test_inbox_does_not_show_again_what_history_showed(cli: Cli) -> None:
    two_nodes(cli)
    for n in range(3):
        cli.ok("bob", "send", "alice", f"one {n}")
    assert texts(cli.json("alice", "history", "bob")) == ["one 0", "one 1", "one 2"]
    assert cli.json("alice", "inbox") == []  # history showed them: nothing new
    cli.ok("bob", "send", "alice", "two")
    assert texts(cli.json("alice", "inbox", "--peek")) == ["two"]
    assert texts(cli.json("alice", "inbox")) == ["two"]
    assert cli.ok("alice", "inbox").strip() == "no new messages"
    # A view that leaves a gap marks nothing: "three 0" was never shown, so both stay new.
    cli.ok("bob", "send", "alice", "three 0")
    cli.ok("bob", "send", "alice", "three 1")
    assert texts(cli.json("alice", "history", "bob", "--limit", "1")) == ["three 1"]
    assert texts(cli.json("alice", "inbox")) == ["three 0", "three 1"]


def test_inbox_does_not_show_again_what_chat_showed(cli: Cli) -> None:
    two_nodes(cli)
    cli.ok("bob", "send", "alice", "before the chat")
    shown = cli.ok("alice", "chat", "bob", stdin="/quit\n")
    assert "before the chat" in shown
    assert cli.json("alice", "inbox") == []  # chat displayed it: nothing new
    cli.ok("bob", "send", "alice", "after the chat")
    assert texts(cli.json("alice", "inbox")) == ["after the chat"]


def test_prune_forgets_read_and_delivered_messages_and_keeps_unread_ones(cli: Cli) -> None:
    two_nodes(cli)
    nothing = cli.ok("alice", "prune")
    assert nothing.startswith("nothing to prune")  # no limit given, none configured
    for n in range(5):
        cli.ok("bob", "send", "alice", f"old {n}")
    cli.ok("alice", "send", "bob", "my reply")  # delivered: may be forgotten
    assert len(cli.json("alice", "inbox")) == 5
    cli.ok("bob", "send", "alice", "unread")  # not read by the reader "cli"
    cli.ok("alice", "send", "bob", "newest")  # the newest row is never forgotten
    time.sleep(1.0)
    dry = cli.json("alice", "prune", "--older-than", "0.00001", "--dry-run")
    assert dry["deleted"] == 6
    assert texts(cli.json("alice", "inbox", "--peek")) == ["unread"]  # the dry run kept all
    done = cli.ok("alice", "prune", "--older-than", "0.00001")
    assert done.startswith("forgot 6 messages")
    assert "kept 1 not yet read (by: cli)" in done
    assert "on disk" in done
    assert texts(cli.json("alice", "inbox")) == ["unread"]
    assert texts(cli.json("alice", "history", "bob")) == ["unread", "newest"]
    # bob's node is unaffected, and alice still receives (the cursors went on)
    assert len(cli.json("bob", "history", "alice")) == 8
    cli.ok("bob", "send", "alice", "after the prune")
    assert texts(cli.json("alice", "inbox")) == ["after the prune"]
