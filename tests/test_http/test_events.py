"""The event stream and the long poll on real daemons: a client that drops its connection and
comes back misses nothing and gets nothing twice; untrusted peers' messages never appear."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.test_cli.helpers import Cli
from tests.test_http.conftest import Api, befriend, http_node

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def sse(response: httpx.Response, within: float = 40.0) -> Iterator[tuple[str | None, str, Any]]:
    """(id, event, data) of each event of a text/event-stream response, for `within` s (the
    keepalive comments reset the client's read timeout: this is what ends a stuck test)."""
    event_id, event, data = None, "message", []
    deadline = time.monotonic() + within
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            raise AssertionError(f"no such event came within {within:g} s")
        if not line:
            if data:
                yield event_id, event, json.loads("\n".join(data))
            event_id, event, data = None, "message", []
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


def events_until(
    api: Api, count: int, headers: dict[str, str] | None = None, **params: Any
) -> list[tuple[str | None, str, Any]]:
    """The first `count` message events of a new stream (and what came between them)."""
    found: list[tuple[str | None, str, Any]] = []
    with (
        api.client(timeout=20) as client,
        client.stream("GET", "/v1/events", params=params, headers=headers or {}) as stream,
    ):
        assert stream.status_code == 200
        for item in sse(stream):
            found.append(item)
            if sum(1 for _, kind, _ in found if kind == "message") == count:
                return found
    raise AssertionError(f"the stream ended after {found}")


def send(api: Api, to: str, text: str, wait: bool = True) -> dict[str, Any]:
    with api.client() as client:
        response = client.post("/v1/messages", json={"to": to, "text": text, "wait": wait})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_events_resume_with_last_event_id(pair: tuple[Api, Api], cli: Cli) -> None:
    alice, bob = pair
    for n in range(3):
        send(bob, "alice", f"first {n}")
    first = events_until(alice, 3, after=0)
    texts = [(i, data["text"]) for i, kind, data in first if kind == "message"]
    assert [t for _, t in texts] == ["first 0", "first 1", "first 2"]
    assert all(data["content_from_peer"] for _, kind, data in first if kind == "message")
    last_id = texts[-1][0]
    assert last_id is not None
    for n in range(3):  # while nobody listens
        send(bob, "alice", f"second {n}")
    resumed = events_until(alice, 3, headers={"Last-Event-ID": last_id})
    again = [data["text"] for _, kind, data in resumed if kind == "message"]
    assert again == ["second 0", "second 1", "second 2"]  # none lost, none repeated
    ids = [int(i) for i, kind, _ in first + resumed if kind == "message" and i is not None]
    assert ids == sorted(set(ids))


def test_events_show_own_messages_their_status_and_peers(pair: tuple[Api, Api], cli: Cli) -> None:
    alice, bob = pair
    seen: list[tuple[str | None, str, Any]] = []
    with alice.client(timeout=20) as client, client.stream("GET", "/v1/events") as stream:
        sent = send(alice, "bob", "tracked", wait=False)
        items = sse(stream)
        delivered = online = False
        for item in items:  # delivered: a status event, or already in the message
            seen.append(item)
            kind, data = item[1], item[2]
            delivered |= kind in ("message", "status") and data["status"] == "delivered"
            online |= kind == "peer" and data["peer_id"] == bob.peer_id and data["online"]
            if delivered and online:
                break
        cli.ok("bob", "down")
        for item in items:
            seen.append(item)
            if item[1] == "peer" and not item[2]["online"]:
                break
    own = [data for _, kind, data in seen if kind == "message"]
    assert own[0]["id"] == sent["id"]
    assert own[0]["direction"] == "out"
    assert own[0]["content_from_peer"] is False
    statuses = [data for _, kind, data in seen if kind == "status"]
    if own[0]["status"] != "delivered":  # it was stored before it was delivered
        assert {"id": sent["id"], "status": "delivered", "error": None} in statuses
    gone = [data for _, kind, data in seen if kind == "peer"][-1]
    assert gone["peer_id"] == bob.peer_id
    assert gone["online"] is False


def test_long_poll_dropped_then_resumed_loses_nothing(pair: tuple[Api, Api]) -> None:
    alice, bob = pair
    poll = {"consumer": "agent", "wait": 30}
    with (
        bob.client(timeout=httpx.Timeout(60, read=1.0)) as client,
        pytest.raises(httpx.ReadTimeout),  # the client gives up; the node must notice
    ):
        client.get("/v1/messages", params=poll)
    send(alice, "bob", "while nobody polled")
    with bob.client() as client:
        got = client.get("/v1/messages", params=poll).json()
        assert [m["text"] for m in got["messages"]] == ["while nobody polled"]
        cursor = got["cursor"]
        # The exactly-once way: the consumer, and the cursor of the last answer.
        nothing = client.get("/v1/messages", params={**poll, "after": cursor, "wait": 0.5})
        assert nothing.json()["messages"] == []
        send(alice, "bob", "next")
        nxt = client.get("/v1/messages", params={**poll, "after": cursor}).json()
        assert [m["text"] for m in nxt["messages"]] == ["next"]
        assert client.get("/v1/messages", params={**poll, "wait": 0.5}).json()["messages"] == []


def test_messages_of_untrusted_peers_never_appear(cli: Cli) -> None:
    alice = http_node(cli, "alice", accept="anyone")
    bob, carol = http_node(cli, "bob"), http_node(cli, "carol")
    befriend(cli, alice, bob)
    listening = cli.json("alice", "status")["listening"]
    extra = [arg for address in listening for arg in ("--address", address)]
    cli.ok("carol", "contacts", "add", alice.peer_id, "alice", *extra)  # alice: no contact
    send(carol, "alice", "from a stranger")
    stored = cli.json("alice", "history")  # the control socket shows what the store holds
    assert [m["text"] for m in stored] == ["from a stranger"]
    with alice.client() as client:
        assert client.get("/v1/history").json() == []
        polled = client.get("/v1/messages", params={"after": 0, "wait": 0.5}).json()
        assert polled["messages"] == []
        assert client.get("/v1/inbox", params={"reader": "web"}).json() == []
        assert client.get("/v1/conversations").json() == []
        stranger = client.get(f"/v1/export/{stored[0]['conversation']}")
        assert stranger.status_code == 404
        assert "not a trusted contact" in stranger.text
    send(bob, "alice", "from a friend")
    shown = events_until(alice, 1, after=0)
    assert [d["text"] for _, kind, d in shown if kind == "message"] == ["from a friend"]
    with alice.client() as client:
        (listed,) = client.get("/v1/conversations").json()
        assert set(listed["members"]) == {alice.peer_id, bob.peer_id}
        exported = client.get(f"/v1/export/{listed['id']}")
        assert exported.headers["x-meshtalk-messages"] == "1"
