"""Clients of the local HTTP API as people write them, on real daemons: README's Python
(`requests`) and Node.js (`fetch`) agents, and an agent written for hosted REST rooms that runs
unchanged against two nodes in one room (examples/http/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli.helpers import Cli
from tests.test_http.conftest import Api
from tests.test_http.test_routes import call

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "http"
NODE = shutil.which("node")


def start(command: list[str], api: Api, **env: str) -> subprocess.Popen[str]:
    variables = {**os.environ, "MESHTALK_URL": api.url, "MESHTALK_KEY": api.key, **env}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=variables)  # fmt: skip


def finish(process: subprocess.Popen[str], timeout: float = 150) -> str:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return out


def test_python_agents_talk(pair: tuple[Api, Api]) -> None:
    alice, bob = pair
    agents = [start([sys.executable, str(EXAMPLES / "agent.py"), other.name, "2"], api)
              for api, other in ((alice, bob), (bob, alice))]  # fmt: skip
    said = [finish(agent).splitlines() for agent in agents]
    assert said[0][0] == "bob: hello! shall we talk?"
    assert said[1][0] == "alice: hello! shall we talk?"
    assert said[0][1] == "bob: thanks for 'hello! shall we talk?'"


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (.ci/run installs it)")
def test_python_agent_and_node_agent_talk(pair: tuple[Api, Api]) -> None:
    alice, bob = pair
    assert NODE is not None
    echo = start([NODE, str(EXAMPLES / "agent.mjs"), "2"], bob)
    agent = start([sys.executable, str(EXAMPLES / "agent.py"), "bob", "2"], alice)
    heard = finish(agent).splitlines()
    echoed = finish(echo).splitlines()
    assert echoed == ["alice: hello! shall we talk?",
                      "alice: thanks for 'echo: hello! shall we talk?'"]  # fmt: skip
    assert heard == ["bob: echo: hello! shall we talk?",
                     "bob: echo: thanks for 'echo: hello! shall we talk?'"]  # fmt: skip


def room_of_two(alice: Api, bob: Api, name: str) -> str:
    """A room made with the hosted-room route, with bob invited and joined; its id."""
    room: str = call(alice, "POST", "/agent/demo/room", json={"name": name})["roomId"]
    call(alice, "POST", "/v1/rooms/{room}/members", path={"room": room}, json={"contact": "bob"})
    call(bob, "POST", "/v1/rooms/join", json={"room": name, "timeout": 30})
    return room


def test_a_hosted_room_agent_runs_unchanged(pair: tuple[Api, Api]) -> None:
    alice, bob = pair
    room = room_of_two(alice, bob, "standup")
    # Agents named otherwise than their nodes: a post's sender is a label, and what others
    # see as its sender is the node that signed it; an agent sees its own posts by its name.
    names = {"alice": "planner", "bob": "reviewer"}
    agents = [start([sys.executable, str(EXAMPLES / "room_agent.py"), room, names[api.name]],
                    api, ROOM_API=api.url, ROOM_KEY=api.key) for api in (alice, bob)]  # fmt: skip
    transcripts = [finish(agent) for agent in agents]
    for me, other, transcript in (
        ("alice", "bob", transcripts[0]),
        ("bob", "alice", transcripts[1]),
    ):
        agent, peer_agent = names[me], names[other]
        assert f"[{agent}] hello from {agent}" in transcript
        assert f"[{other}] hello from {peer_agent}" in transcript
        assert f"[{other}] {peer_agent} heard: hello from {agent}" in transcript
    history = call(alice, "GET", "/agent/rooms/{room}/history", path={"room": room})
    assert len(history["messages"]) == 4  # two greetings, two answers, each once


def test_sender_is_a_label_and_the_cursor_pages(pair: tuple[Api, Api], cli: Cli) -> None:
    alice, bob = pair
    room = room_of_two(alice, bob, "labels")
    posted = call(bob, "POST", "/agent/rooms/{room}/messages", path={"room": room},
                  json={"sender": "alice", "content": "I am alice, honest"})  # fmt: skip
    assert posted["queued"] is True
    assert posted["roomId"] == room
    for n in range(4):
        call(alice, "POST", "/agent/rooms/{room}/messages", path={"room": "labels"},
             json={"content": f"page {n}"})  # fmt: skip
    seen: list[dict[str, Any]] = []
    cursor: Any = None
    for _ in range(100):
        params = {"limit": 2, **({"cursor": cursor} if cursor is not None else {})}
        page = call(alice, "GET", "/agent/rooms/{room}/history", path={"room": room},
                    params=params)  # fmt: skip
        seen += page["messages"]
        if not page["messages"] and len(seen) >= 5:
            break
        cursor = page["nextCursor"]
    spoof = next(m for m in seen if m["content"] == "I am alice, honest")
    assert spoof["sender"] == "bob"
    assert spoof["from"] == bob.peer_id
    assert spoof["label"] == "alice"
    assert spoof["content_from_peer"] is True
    own = call(alice, "POST", "/agent/rooms/{room}/messages", path={"room": room},
               json={"sender": "planner", "content": "mine"})  # fmt: skip
    after = call(alice, "GET", "/agent/rooms/{room}/history", path={"room": room},
                 params={"cursor": cursor})["messages"]  # fmt: skip
    (shown,) = [m for m in after if m["id"] == own["id"]]
    assert shown["sender"] == "planner"  # its own: the label its client gave
    assert shown["from"] == alice.peer_id
    mine = [m["content"] for m in seen if m["from"] == alice.peer_id]
    assert mine == [f"page {n}" for n in range(4)]  # each once, in order
    assert all(m["content_from_peer"] is False for m in seen if m["from"] == alice.peer_id)
    with alice.client() as client:
        bad = client.get(f"/agent/rooms/{room}/history", params={"cursor": "abc"})
        assert bad.status_code == 400
        missing = client.post("/agent/rooms/nowhere/messages", json={"content": "x"})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == 904
        empty = client.post(f"/agent/rooms/{room}/messages", json={"sender": "x"})
        assert empty.status_code == 400
