"""Pages of large messages: a contact that sent many messages near the 1 MiB limit cannot make
a history, receive or inbox reply too large to answer (the control socket's 8 MiB frame),
paging by cursor still reads every message once, and a transcript over 8 MiB is exported a
page at a time, over the control socket and over HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.test_cli.helpers import Cli
from tests.test_http.conftest import befriend, http_node
from tests.test_http.test_events import events_until

pytestmark = pytest.mark.timeout(120)

_COUNT = 13
_SIZE = 700_000  # characters: 13 are over 8 MiB, and twice that as text and body views


def _bodies() -> list[str]:
    return [f"{n}:" + "x" * _SIZE for n in range(_COUNT)]


def _pages(client: httpx.Client, path: str, params: dict[str, object]) -> list[list[str]]:
    """Every page of `path` from cursor 0, as the leading numbers of its texts."""
    pages, after = [], 0
    while True:
        reply = client.get(path, params={**params, "after": after})
        assert reply.status_code == 200, reply.text
        found = reply.json()
        messages = found["messages"] if isinstance(found, dict) else found
        if not messages:
            return pages
        pages.append([m["text"].split(":")[0] for m in messages])
        after = messages[-1]["cursor"]


def test_pages_of_large_messages_fit_and_lose_nothing(cli: Cli) -> None:
    alice = http_node(cli, "alice", guard_max_bytes="1000000")  # bob's guards are his own
    bob = http_node(cli, "bob")
    befriend(cli, alice, bob)
    with alice.client() as client:
        for body in _bodies():
            sent = client.post("/v1/messages", json={"to": "bob", "text": body, "wait": True})
            assert sent.status_code == 200, sent.text

    # The control socket: the newest messages that fit in one reply, not an error.
    shown = json.loads(cli.ok("bob", "history", "alice", "--json", "--limit", "100"))
    texts = [m["text"] for m in shown]
    assert 1 <= len(texts) < _COUNT
    assert texts == _bodies()[-len(texts) :]  # the newest, in order, whole

    with bob.client() as client:
        history = _pages(client, "/v1/history", {"conversation": "alice", "limit": 1000})
        received = _pages(client, "/v1/messages", {"limit": 1000})
    expected = [str(n) for n in range(_COUNT)]
    for pages in (history, received):
        assert len(pages) > 1  # cut by size, not by count
        assert [n for page in pages for n in page] == expected  # none lost, none repeated

    streamed = events_until(bob, _COUNT, after=0)  # the stream reads the same pages
    numbers = [data["text"].split(":")[0] for _, kind, data in streamed if kind == "message"]
    assert numbers == expected

    inbox = json.loads(cli.ok("bob", "inbox", "--json"))  # marks what it shows as read
    assert 1 <= len(inbox) < _COUNT
    rest = json.loads(cli.ok("bob", "inbox", "--json"))
    assert [m["text"] for m in inbox + rest] == _bodies()[: len(inbox) + len(rest)]

    transcript = cli.home / "alice.transcript"
    cli.ok("bob", "export", "alice", "--output", str(transcript))
    assert transcript.stat().st_size > 8 * 1024 * 1024  # more than one control frame holds
    assert f"{_COUNT} of {_COUNT} message(s) verified" in cli.ok(None, "verify", str(transcript))
    assert [p.name for p in cli.home.iterdir() if "partial" in p.name] == []
    with bob.client() as client:
        exported = client.get("/v1/export/alice")
    assert exported.status_code == 200, exported.text
    assert exported.headers["x-meshtalk-messages"] == str(_COUNT)
    assert exported.content == transcript.read_bytes()
