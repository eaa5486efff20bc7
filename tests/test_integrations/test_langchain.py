"""LangChain tools against real embedded nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from meshtalk import Mesh
from meshtalk.integrations.langchain import meshtalk_tools
from tests.test_facade.helpers import loopback_profile

pytestmark = pytest.mark.timeout(60)


def test_tools_send_read_and_report_errors(tmp_path: Path) -> None:
    with (
        Mesh(loopback_profile(tmp_path, "alice")) as alice,
        Mesh(loopback_profile(tmp_path, "bob")) as bob,
    ):
        bob.join(alice.invite())
        tools = {t.name: t for t in meshtalk_tools(alice)}
        assert set(tools) == {"meshtalk_send", "meshtalk_read", "meshtalk_list_peers",
                              "meshtalk_list_rooms", "meshtalk_read_room"}  # fmt: skip
        assert set(tools["meshtalk_send"].args) == {"to", "text"}
        sent = json.loads(tools["meshtalk_send"].invoke({"to": "bob", "text": "hi bob"}))
        assert sent["status"] == "delivered"
        peers = json.loads(tools["meshtalk_list_peers"].invoke({}))["peers"]
        assert [p["name"] for p in peers if p["contact"]] == ["bob"]
        bob_read = {t.name: t for t in meshtalk_tools(bob)}["meshtalk_read"]
        read = json.loads(bob_read.invoke({"wait_seconds": 10}))
        assert [m["text"] for m in read["messages"]] == ["hi bob"]
        assert read["messages"][0]["content_from_peer"] is True
        assert json.loads(bob_read.invoke({"wait_seconds": 0.1}))["messages"] == []
        error = tools["meshtalk_send"].invoke({"to": "nobody", "text": "x"})
        assert error.startswith("UnknownPeer:")


def test_room_tools_post_list_and_read_with_a_cursor(tmp_path: Path) -> None:
    with (
        Mesh(loopback_profile(tmp_path, "alice")) as alice,
        Mesh(loopback_profile(tmp_path, "bob")) as bob,
    ):
        bob.join(alice.invite())
        alice.create_room("team")
        alice.room_invite("team", "bob")
        bob.join_room("team")
        tools = {t.name: t for t in meshtalk_tools(bob)}
        [room] = json.loads(tools["meshtalk_list_rooms"].invoke({}))["rooms"]
        assert sorted(m["name"] for m in room["members"]) == ["alice", "bob"]
        sent = json.loads(tools["meshtalk_send"].invoke({"to": "team", "text": "posted"}))
        assert sent["status"] == "delivered"
        read = json.loads(tools["meshtalk_read_room"].invoke({"room": "team"}))
        assert [(p["from_name"], p["mine"], p["text"]) for p in read["messages"]] == [
            ("bob", True, "posted")
        ]
        again = json.loads(
            tools["meshtalk_read_room"].invoke({"room": "team", "after": read["cursor"]})
        )
        assert again["messages"] == []
        error = tools["meshtalk_read_room"].invoke({"room": "nosuch"})
        assert "nosuch" in error
