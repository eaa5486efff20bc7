"""Real daemons (the `meshtalk` CLI as subprocesses) with their HTTP API on 127.0.0.1, port 0,
and httpx clients for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.test_cli.conftest import cli  # the fixture, for these tests too
from tests.test_cli.helpers import Cli, prepare

__all__ = ["Api", "befriend", "cli", "http_node"]


@dataclass
class Api:
    """One node's HTTP API: where, with which key, and who the node is."""

    name: str
    url: str
    key: str
    peer_id: str

    def client(self, key: str | None = None, **options: object) -> httpx.Client:
        """An httpx client with the key (another `key`, or "" for none)."""
        key = self.key if key is None else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        settings: dict[str, Any] = {"timeout": 60, **options}
        return httpx.Client(base_url=self.url, headers=headers, **settings)


def http_node(cli: Cli, name: str, **settings: str) -> Api:
    """A node on loopback (no mDNS), HTTP on 127.0.0.1 port 0, started in the background."""
    peer_id = prepare(cli, name, None)
    for key, value in {"http": "127.0.0.1:0", **settings}.items():
        cli.ok(name, "config", "set", key, value)
    cli.ok(name, "up", "--detach")  # returns once the HTTP API listens
    url = cli.ok(name, "http-url").strip()
    assert (cli.profile_dir(name) / "http.url").read_text().strip() == url
    key = cli.ok(name, "http-key").strip()
    return Api(name, url, key, peer_id)


def befriend(cli: Cli, one: Api, other: Api) -> None:
    """Make each the other's trusted contact, with its addresses."""
    for me, them in ((one, other), (other, one)):
        listening = cli.json(them.name, "status")["listening"]
        extra = [arg for address in listening for arg in ("--address", address)]
        cli.ok(me.name, "contacts", "add", them.peer_id, them.name, *extra)


@pytest.fixture
def pair(cli: Cli) -> tuple[Api, Api]:
    """alice and bob, each the other's contact."""
    alice, bob = http_node(cli, "alice"), http_node(cli, "bob")
    befriend(cli, alice, bob)
    return alice, bob
