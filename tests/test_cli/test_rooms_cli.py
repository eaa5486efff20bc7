"""`meshtalk room ...` and posting to a room with `send`, `history` and `chat`: three real
background nodes driven by the real CLI."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.test_cli.helpers import Cli, one_line_error, prepare

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def _up_and_introduce(cli: Cli) -> dict[str, str]:
    """alice, bob and carol running; bob and carol are alice's contacts (and she theirs), not
    each other's. Returns their peer IDs."""
    ids = {name: prepare(cli, name, None) for name in ("alice", "bob", "carol")}
    addresses = {}
    for name in ids:
        cli.ok(name, "up", "--detach")
        addresses[name] = cli.json(name, "status")["listening"][0]
    for other in ("bob", "carol"):
        cli.ok("alice", "contacts", "add", ids[other], other, "--address", addresses[other])
        cli.ok(other, "contacts", "add", ids["alice"], "alice", "--address", addresses["alice"])
    return ids


def _room_texts(cli: Cli, profile: str, room: str, count: int) -> list[dict[str, Any]]:
    """The room's text messages in `profile`'s history, once there are `count` of them."""
    deadline = time.monotonic() + 30
    while True:
        found = [m for m in cli.json(profile, "history", room) if m["kind"] == "text"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_room_of_three_from_the_command_line(cli: Cli) -> None:
    ids = _up_and_introduce(cli)
    assert "no rooms yet" in cli.ok("alice", "room")
    created = cli.json("alice", "room", "create", "team")
    assert (created["name"], created["admin"], created["member_count"]) == ("team", True, 1)
    out = cli.ok("alice", "room", "invite", "team", "bob")
    assert "invited bob to team" in out
    cli.ok("alice", "room", "invite", "team", "carol")

    deadline = time.monotonic() + 30
    while not cli.json("bob", "room", "invites") and time.monotonic() < deadline:
        time.sleep(0.2)
    [invite] = cli.json("bob", "room", "invites")
    assert (invite["room"], invite["inviter"]) == ("team", ids["alice"])
    joined = cli.ok("bob", "room", "join", "team")
    assert "joined room team" in joined
    assert cli.json("carol", "room", "join", "team")["member"] is True

    members = cli.json("carol", "room", "members", "team")["members"]
    assert sorted(m["name"] for m in members) == ["alice", "bob", "carol"]
    assert [m["name"] for m in members if m["admin"]] == ["alice"]
    listed = cli.ok("bob", "room", "list")
    assert "team" in listed
    assert "member" in listed

    assert "delivered to team" in cli.ok("bob", "send", "team", "hello, room")
    for reader in ("alice", "carol"):
        [message] = _room_texts(cli, reader, "team", 1)
        assert (message["room"], message["author"], message["text"]) == (
            "team", ids["bob"], "hello, room",
        )  # fmt: skip
    # carol is not bob's contact, yet she sees his name as the room's log gives it
    assert _room_texts(cli, "carol", "team", 1)[0]["author_name"] == "bob"
    shown = cli.ok("carol", "history", "team")
    assert "bob → #team: hello, room" in shown

    # the chat command posts to the room too (piped input, no terminal)
    chat = cli.run("carol", "chat", "team", stdin="from carol's chat\n/quit\n")
    assert chat.returncode == 0, chat.stderr
    assert "chatting with #team" in chat.stdout
    texts = [m["text"] for m in _room_texts(cli, "bob", "team", 2)]
    assert texts == ["hello, room", "from carol's chat"]

    # a transcript anyone can check offline, and a tampered one that fails
    transcript = cli.home / "team.transcript"
    cli.ok("bob", "export", "team", "--output", str(transcript))
    checked = cli.ok(None, "verify", str(transcript))
    assert "room 'team'" in checked
    assert "2 of 2 message(s) verified, by 2 author(s)" in checked
    data = transcript.read_bytes()
    transcript.write_bytes(data.replace(b"hello, room", b"hello, ROOM"))
    tampered = cli.run(None, "verify", str(transcript))
    assert "FAILED #0" in tampered.stdout
    assert "BadSignature" in tampered.stdout
    assert "1 of 2 message(s)" in one_line_error(tampered)
    unknown = cli.run("bob", "export", "nosuch-room", "--output", str(transcript))
    assert "no contact or room is named" in one_line_error(unknown)

    # refusals are one clean line each
    assert "admin" in one_line_error(cli.run("bob", "room", "remove", "team", "carol"))
    assert "no room" in one_line_error(cli.run("bob", "room", "show", "nosuch")).lower()
    assert "neither" in one_line_error(cli.run("bob", "chat", "nosuch", stdin=""))

    # alice makes bob an admin; bob renames the room; alice stays an admin
    assert "made bob an admin of room team" in cli.ok("alice", "room", "promote", "team", "bob")
    assert "renamed room roadmap" in cli.ok("bob", "room", "rename", "team", "roadmap")
    deadline = time.monotonic() + 30
    while cli.json("carol", "room", "show", "roadmap")["name"] != "roadmap":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    admins = [m["name"] for m in cli.json("carol", "room", "members", "roadmap")["members"]
              if m["admin"]]  # fmt: skip
    assert sorted(admins) == ["alice", "bob"]
    demoted = cli.ok("bob", "room", "demote", "roadmap", "alice")
    assert "alice is no longer an admin of room roadmap" in demoted
    only = one_line_error(cli.run("bob", "room", "demote", "roadmap", "bob"))
    assert "only admin of room 'roadmap'; promote another" in only
    assert "admin" in one_line_error(cli.run("alice", "room", "rename", "roadmap", "x"))
    assert "the member's name in the room" in cli.ok(None, "room", "promote", "--help")
    cli.ok("bob", "room", "rename", "roadmap", "team")

    # a room token: erin, nobody's contact, joins with it; frank with `meshtalk join`
    made = cli.json("bob", "room", "token", "team", "--ttl", "600")
    assert made["token"].startswith("mtr1")
    assert made["room"] == "team"
    assert "admin" in one_line_error(cli.run("carol", "room", "token", "team"))
    assert "ttl" in one_line_error(cli.run("bob", "room", "token", "team", "--ttl", "0"))
    for name in ("erin", "frank"):
        prepare(cli, name, None)
        cli.ok(name, "up", "--detach")
    assert "joined room team" in cli.ok("erin", "room", "join", made["token"])
    assert "was used" in one_line_error(cli.run("frank", "join", made["token"]), progress=True)
    frank = cli.json("frank", "join", cli.json("bob", "room", "token", "team")["token"])
    assert (frank["name"], frank["room"]) == ("bob", "team")
    cli.ok("erin", "send", "team", "erin here, by token")
    # frank joined after the earlier posts: they were not sealed to him (docs/rooms.md)
    assert [m["text"] for m in _room_texts(cli, "frank", "team", 1)] == ["erin here, by token"]

    # carol leaves: her history stays, she can no longer post
    left = cli.json("carol", "room", "leave", "team")
    assert (left["member"], left["left_ms"] is not None) == (False, True)
    assert len(_room_texts(cli, "carol", "team", 3)) == 3  # erin's too
    assert "not a member" in one_line_error(cli.run("carol", "send", "team", "still here?"))
