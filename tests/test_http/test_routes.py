"""Every route of the local HTTP API, on real daemons, with a real HTTP client (httpx).

Each route is asked without the key (401), with a wrong one (401), with a Host header that is
not loopback (403), and with the key (through `call`, which the last test looks for in every
test module here, so that a new route without a test fails).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshtalk.http.openapi import openapi_document
from meshtalk.http.routes import ROUTES
from meshtalk.protocol.transcript import verify_transcript
from tests.test_cli.helpers import Cli, rendezvous_point
from tests.test_http.conftest import Api, befriend, http_node

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

# Every (method, path) the API serves, from its OpenAPI document.
SERVED = sorted(
    (method.upper(), path)
    for path, methods in openapi_document()["paths"].items()
    for method in methods
)


class Mesh:
    """alice and bob (contacts), carol (a stranger to both), all at one rendezvous point."""

    def __init__(self, cli: Cli, point: str) -> None:
        self.cli = cli
        self.alice, self.bob, self.carol = (
            http_node(cli, name, rendezvous=point) for name in ("alice", "bob", "carol")
        )
        befriend(cli, self.alice, self.bob)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    cli = Cli(tmp_path_factory.mktemp("http") / "home")
    with ExitStack() as stack:
        stack.callback(lambda: cli.cleanup(["alice", "bob", "carol"]))
        point = stack.enter_context(rendezvous_point(cli))
        yield Mesh(cli, point)


def call(api: Api, method: str, template: str, *, ok: int = 200, **options: Any) -> Any:
    """Call a route with the key (path parameters from `path=`), check the status, record it."""
    path = template.format(**options.pop("path", {}))
    with api.client() as client:
        response = client.request(method, path, **options)
    assert response.status_code == ok, (method, path, response.status_code, response.text)
    if response.headers.get("content-type") == "application/octet-stream":
        return response.content  # a transcript
    return response.json()


def error_of(response: httpx.Response, status: int, code: int) -> str:
    """Check a JSON error's HTTP status and MeshtalkError code; returns its message."""
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["type"]
    return str(error["message"])


def concrete(path: str) -> str:
    return re.sub(r"{\w+}", "x", path)


@pytest.mark.parametrize(("method", "path"), SERVED)
def test_every_route_needs_the_key_and_a_loopback_host(mesh: Mesh, method: str, path: str) -> None:
    url = concrete(path)
    with mesh.alice.client(key="") as client:
        response = client.request(method, url)
        error_of(response, 401, 804)
        assert response.headers["www-authenticate"].startswith("Bearer")
    with mesh.alice.client(key="not-the-key") as client:
        error_of(client.request(method, url), 401, 804)
    with mesh.alice.client() as client:
        error_of(client.request(method, url, headers={"Host": "evil.example:7747"}), 403, 804)
        error_of(client.request(method, url, headers={"Host": "127.0.0.1.evil.example"}), 403, 804)


def test_the_key_goes_in_a_bearer_header(mesh: Mesh) -> None:
    key = mesh.alice.key
    with mesh.alice.client(key="") as client:
        for good in (f"Bearer {key}", f"bearer {key}", f"BEARER  {key}"):  # RFC 9110
            assert client.get("/v1/whoami", headers={"Authorization": good}).status_code == 200
        for bad in (f"Basic {key}", f"Bearer {key}x", "Bearer", key, f"Bearer{key}"):
            refused = client.get("/v1/whoami", headers={"Authorization": bad})
            error_of(refused, 401, 804)


def test_no_cors_for_other_origins(mesh: Mesh) -> None:
    with mesh.alice.client() as client:
        preflight = client.options("/v1/whoami", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})  # fmt: skip
        answered = client.get("/v1/whoami", headers={"Origin": "http://evil.example"})
    assert preflight.status_code >= 400
    assert answered.status_code == 200
    for response in (preflight, answered):
        assert not any(h.startswith("access-control-") for h in response.headers)


def test_node_contacts_and_messages(mesh: Mesh) -> None:
    alice, bob, carol = mesh.alice, mesh.bob, mesh.carol
    assert call(alice, "GET", "/v1/whoami")["peer_id"] == alice.peer_id
    assert call(alice, "GET", "/v1/status")["http"]["url"] == alice.url
    assert bob.peer_id in {p["peer_id"] for p in call(alice, "GET", "/v1/peers")}
    contacts = call(alice, "GET", "/v1/contacts")
    assert [(c["name"], c["trust"]) for c in contacts] == [("bob", "trusted")]
    added = call(alice, "POST", "/v1/contacts", json={"peer": carol.peer_id, "name": "c"})
    assert added["name"] == "c"
    renamed = call(alice, "PUT", "/v1/contacts/{ref}/name", path={"ref": "c"}, json={"name": "cc"})
    assert renamed["name"] == "cc"
    blocked = call(alice, "PUT", "/v1/contacts/{ref}/trust", path={"ref": "cc"},
                   json={"trust": "blocked"})  # fmt: skip
    assert blocked["trust"] == "blocked"
    call(alice, "DELETE", "/v1/contacts/{ref}", path={"ref": "cc"})
    assert [c["name"] for c in call(alice, "GET", "/v1/contacts")] == ["bob"]

    sent = call(alice, "POST", "/v1/messages", json={"to": "bob", "text": "hello bob"})
    assert sent["delivered"] is True
    got = call(bob, "GET", "/v1/messages", params={"after": 0, "wait": 20})
    assert [(m["from"], m["text"], m["content_from_peer"]) for m in got["messages"]] == [
        (alice.peer_id, "hello bob", True)
    ]
    assert got["messages"][0]["notice"]
    inbox = call(bob, "GET", "/v1/inbox", params={"reader": "web", "peek": "true"})
    assert [m["text"] for m in inbox] == ["hello bob"]
    everything = call(bob, "GET", "/v1/history", params={"conversation": "alice"})
    one = call(bob, "GET", "/v1/conversations/{conversation}/messages",
               path={"conversation": "alice"}, params={"after": 0, "limit": 10})  # fmt: skip
    assert everything == one
    assert one[0]["content_from_peer"] is True
    assert one[0]["author_name"] == "alice"
    own = call(alice, "GET", "/v1/history", params={"conversation": "bob"})
    assert own[0]["content_from_peer"] is False
    assert "notice" not in own[0]
    conversations = call(bob, "GET", "/v1/conversations")
    assert [c["id"] for c in conversations] == [sent["conversation"]]
    transcript = call(alice, "GET", "/v1/export/{conversation}", path={"conversation": "bob"})
    report = verify_transcript(transcript)  # the file itself, as `meshtalk verify` reads it
    assert report.ok
    assert [c.envelope.body for c in report.checked if c.envelope] == ["hello bob"]
    pruned = call(alice, "POST", "/v1/prune", json={"older_than_days": 1, "dry_run": True})
    assert pruned["dry_run"] is True


def test_rooms(mesh: Mesh) -> None:
    alice, bob = mesh.alice, mesh.bob
    room = call(alice, "POST", "/v1/rooms", json={"name": "plan"})
    assert room["admin"] is True
    assert room["name"] == "plan"
    assert "plan" in [r["name"] for r in call(alice, "GET", "/v1/rooms")]
    assert call(alice, "GET", "/v1/rooms/{room}", path={"room": "plan"})["id"] == room["id"]
    call(alice, "POST", "/v1/rooms/{room}/members", path={"room": "plan"},
         json={"contact": "bob", "timeout": 30})  # fmt: skip
    invites = call(bob, "GET", "/v1/room-invites")
    assert [i["room"] for i in invites] == ["plan"]
    joined = call(bob, "POST", "/v1/rooms/join", json={"room": "plan", "timeout": 30})
    assert joined["member"] is True
    members = call(alice, "GET", "/v1/rooms/{room}/members", path={"room": "plan"})
    assert sorted(m["name"] for m in members) == ["alice", "bob"]
    promoted = call(alice, "POST", "/v1/rooms/{room}/admins", path={"room": "plan"},
                    json={"member": "bob"})  # fmt: skip
    assert {m["name"]: m["admin"] for m in promoted["members"]}["bob"] is True
    call(
        alice, "DELETE", "/v1/rooms/{room}/admins/{member}", path={"room": "plan", "member": "bob"}
    )
    call(alice, "PUT", "/v1/rooms/{room}/name", path={"room": "plan"}, json={"name": "plan2"})
    posted = call(bob, "POST", "/v1/rooms/{room}/messages", path={"room": room["id"]},
                  json={"text": "from bob to the room", "timeout": 30})  # fmt: skip
    assert posted["delivered"] is True
    read = call(alice, "GET", "/v1/rooms/{room}/messages", path={"room": "plan2"})
    shown = [(m["author_name"], m["text"], m["content_from_peer"]) for m in read]
    assert ("bob", "from bob to the room", True) in shown
    token = call(alice, "POST", "/v1/rooms/{room}/tokens", path={"room": "plan2"},
                 json={"ttl": 600})  # fmt: skip
    assert token["token"].startswith("mtr") or token["token"]
    call(alice, "DELETE", "/v1/rooms/{room}/members/{member}",
         path={"room": "plan2", "member": "bob"})  # fmt: skip
    second = call(alice, "POST", "/v1/rooms", json={"name": "brief"})
    call(alice, "POST", "/v1/rooms/{room}/members", path={"room": "brief"},
         json={"contact": "bob", "timeout": 30})  # fmt: skip
    call(bob, "POST", "/v1/rooms/join", json={"room": "brief", "timeout": 30})
    left = call(bob, "POST", "/v1/rooms/{room}/leave", path={"room": second["id"]})
    assert left["member"] is False


def test_pairing_and_invites(mesh: Mesh) -> None:
    alice, bob, carol = mesh.alice, mesh.bob, mesh.carol
    offer = call(alice, "POST", "/v1/pairing/offers", json={"ttl": 120})
    waiting = call(alice, "GET", "/v1/pairing/offers/{code}", path={"code": offer["code"]},
                   ok=202)  # fmt: skip
    assert waiting == {"paired": False, **offer}
    joined = call(carol, "POST", "/v1/pairing/join", json={"code": offer["code"], "timeout": 60})
    assert joined["peer_id"] == alice.peer_id
    done = call(alice, "GET", "/v1/pairing/offers/{code}", path={"code": offer["code"]},
                params={"wait": 30})  # fmt: skip
    assert done["paired"] is True
    assert done["contact"]["peer_id"] == carol.peer_id
    withdrawn = call(alice, "POST", "/v1/pairing/offers", json={})
    call(alice, "DELETE", "/v1/pairing/offers/{code}", path={"code": withdrawn["code"]})
    with alice.client() as client:
        after = client.get(f"/v1/pairing/offers/{withdrawn['code']}", params={"wait": 10})
    assert "withdrawn" in error_of(after, 404, 704)

    invite = call(bob, "POST", "/v1/invites", json={"ttl": 600})
    paired = call(carol, "POST", "/v1/invites/join", json={"token": invite["token"],
                                                          "timeout": 60})  # fmt: skip
    assert paired["peer_id"] == bob.peer_id
    names = {c["peer_id"] for c in call(carol, "GET", "/v1/contacts")}
    assert names == {alice.peer_id, bob.peer_id}


def test_events_and_openapi(mesh: Mesh) -> None:
    alice = mesh.alice
    document = call(alice, "GET", "/v1/openapi.json")
    assert document["openapi"].startswith("3.")
    assert "/v1/events" in document["paths"]
    for route in ROUTES:
        assert route.method.lower() in document["paths"][route.path]
    call(alice, "POST", "/v1/messages", json={"to": "bob", "text": "for the stream"})
    events = "GET", "/v1/events"  # with the key:
    with alice.client() as client, client.stream(*events, params={"after": 0}) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        for line in s.iter_lines():
            if line.startswith("data: ") and "for the stream" in line:
                break


def test_errors_are_json_with_the_control_codes(mesh: Mesh) -> None:
    alice = mesh.alice
    with alice.client() as client:
        unknown = client.post("/v1/messages", json={"to": "nobody", "text": "hi"})
        message = error_of(unknown, 404, 502)
        cli_error = mesh.cli.run("alice", "send", "nobody", "hi", "--json")
        assert json.loads(cli_error.stderr)["code"] == 502  # the same operation, the same code
        assert "nobody" in message
        error_of(client.post("/v1/messages", json={"to": "bob", "text": "  "}), 400, 401)
        error_of(client.post("/v1/messages", content=b"{not json"), 400, 400)
        error_of(client.post("/v1/messages", content=b"[" * 100_000), 400, 400)
        error_of(client.post("/v1/messages", json=["to", "bob"]), 400, 400)
        error_of(client.post("/v1/messages", json={"to": 5, "text": "x"}), 400, 400)
        too_big = client.post("/v1/messages", content=b" " * (4 * 1024 * 1024 + 1))
        error_of(too_big, 400, 400)
        assert too_big.headers["connection"] == "close"  # the body is left: a new connection
        assert "connection" not in client.get("/v1/whoami").headers  # kept alive otherwise
        error_of(client.get("/v1/messages", params={"after": "x"}), 400, 400)
        error_of(client.get("/v1/messages", params={"wait": "nan"}), 400, 400)
        error_of(client.get("/v1/messages", params={"wait": "-1"}), 400, 400)
        before = len(client.get("/v1/history").json())
        for timeout in (b"-1", b"NaN", b"Infinity", b"1e999"):
            body = b'{"to": "bob", "text": "late", "timeout": ' + timeout + b"}"
            error_of(client.post("/v1/messages", content=body), 400, 400)
        assert len(client.get("/v1/history").json()) == before  # refused before it was queued
        error_of(client.post("/v1/invites", json={"ttl": -5}), 400, 400)
        error_of(client.get("/v1/messages", params={"color": "blue"}), 400, 400)
        error_of(client.get("/v1/messages", params={"limit": 0}), 400, 400)
        error_of(client.get("/v1/rooms/none-such"), 404, 904)
        error_of(client.get("/v1/nothing/here"), 404, 400)
        error_of(client.delete("/v1/whoami"), 405, 400)
        assert client.get("/v1/whoami").status_code == 200  # the node goes on


def test_shutdown(mesh: Mesh) -> None:
    carol = mesh.carol
    assert call(carol, "POST", "/v1/shutdown") == {"stopping": True}
    for _ in range(100):
        if mesh.cli.run("carol", "status").returncode == 3:
            break
    assert mesh.cli.run("carol", "status").returncode == 3


def test_every_route_is_called_with_the_key_by_some_test() -> None:
    sources = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = [f"{m} {p}" for m, p in SERVED if f'"{m}", "{p}"' not in sources]
    assert not missing, "routes no test calls with the key: " + ", ".join(missing)
