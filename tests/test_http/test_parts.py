"""The HTTP API's parts one at a time (the `http` setting, the key file, binding with fallback,
Host names, query arguments, labels), and its settings and CLI on real daemons."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from meshtalk.http.app import host_name
from meshtalk.http.labels import Labels
from meshtalk.http.routes import ROUTES, query_arguments
from meshtalk.http.server import bind_socket
from meshtalk.peer.models import Contact, Trust
from meshtalk.profile.http_access import HttpBind, http_bind, load_or_create_api_key
from meshtalk.protocol import NodeKey
from meshtalk.protocol.errors import ConfigError, KeyFileCorrupt, KeyFileInsecure, UnknownPeer
from tests.test_cli.helpers import Cli, one_line_error, prepare, wait_for_line
from tests.test_http.conftest import http_node


@pytest.mark.parametrize(
    ("value", "bind"),
    [
        ("on", HttpBind("127.0.0.1", 7747, fallback=True)),
        ("off", None),
        ("OFF", None),
        ("8080", HttpBind("127.0.0.1", 8080)),
        ("127.0.0.1:0", HttpBind("127.0.0.1", 0)),
        ("[::1]:7000", HttpBind("::1", 7000)),
        ("localhost:7000", HttpBind("localhost", 7000)),
        ("0.0.0.0:7747", HttpBind("0.0.0.0", 7747)),
    ],
)
def test_http_setting(value: str, bind: HttpBind | None) -> None:
    assert http_bind(value) == bind


@pytest.mark.parametrize("value", ["yes", "70000", "-1", "host.example:80", "1.2.3:80", ":"])
def test_bad_http_settings(value: str) -> None:
    with pytest.raises(ValueError, match=r"expected|host"):
        http_bind(value)


def test_loopback_and_candidates() -> None:
    assert HttpBind("127.0.0.1", 1).loopback
    assert HttpBind("::1", 1).loopback
    assert not HttpBind("0.0.0.0", 1).loopback
    assert HttpBind("127.0.0.1", 5000, fallback=True).candidates() == [*range(5000, 5010), 0]
    assert HttpBind("127.0.0.1", 5000).candidates() == [5000]


def test_bind_falls_back_past_a_taken_port() -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    taken = held.getsockname()[1]
    try:
        sock = bind_socket(HttpBind("127.0.0.1", taken, fallback=True))
        assert sock.getsockname()[1] != taken
        sock.close()
        with pytest.raises(OSError, match="in use"):  # an explicit port: no fallback
            bind_socket(HttpBind("127.0.0.1", taken))
    finally:
        held.close()


def test_api_key_file(tmp_path: Path) -> None:
    key = load_or_create_api_key(tmp_path)
    path = tmp_path / "http.key"
    assert len(key) >= 40
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create_api_key(tmp_path) == key
    path.chmod(0o644)
    with pytest.raises(KeyFileInsecure, match="chmod 600"):
        load_or_create_api_key(tmp_path)
    path.chmod(0o600)
    path.write_text("short\n")
    with pytest.raises(KeyFileCorrupt):
        load_or_create_api_key(tmp_path)


@pytest.mark.parametrize(
    ("header", "host"),
    [("127.0.0.1:7747", "127.0.0.1"), ("LOCALHOST:1", "localhost"), ("[::1]:7747", "::1"),
     ("localhost", "localhost"), ("evil.example:80", "evil.example"), ("", "")],
)  # fmt: skip
def test_host_name(header: str, host: str) -> None:
    assert host_name(header) == host


def test_query_arguments() -> None:
    receive = next(r for r in ROUTES if r.op == "receive")
    found = query_arguments(receive, [("after", "5"), ("wait", "1.5"), ("consumer", "x")])
    assert found == {"after": 5, "wait": 1.5, "consumer": "x"}
    inbox = next(r for r in ROUTES if r.op == "inbox")
    assert query_arguments(inbox, [("peek", "TRUE")]) == {"peek": True}
    for bad in ([("after", "1.5")], [("wait", "inf")], [("peek", "maybe")], [("x", "1")]):
        with pytest.raises(ConfigError):
            query_arguments(receive if bad[0][0] != "peek" else inbox, bad)


def test_labels_hide_untrusted_authors() -> None:
    labels = Labels("me", list, lambda conversation: False, lambda conversation: ())
    mine = {"author": "me", "room": None}
    stranger = {"author": "other", "room": None}
    in_room = {"author": "other", "room": "plan"}
    assert [v["author"] for v in labels.messages([mine, stranger, in_room])] == ["me", "other"]
    assert labels.label(mine)["content_from_peer"] is False
    assert labels.label(in_room)["content_from_peer"] is True
    assert labels.label(in_room)["notice"]


def test_labels_hide_conversations_with_untrusted_members() -> None:
    peer = NodeKey.generate().peer_id
    friend = Contact(peer, "bob", Trust.TRUSTED, (), 0, None)
    members = {b"\x01" * 16: ("me", str(peer)), b"\x02" * 16: ("me", "stranger"),
               b"\x03" * 16: ("me", "stranger")}  # fmt: skip
    rooms = {b"\x03" * 16}
    labels = Labels("me", lambda: [friend], rooms.__contains__, members.__getitem__)
    views = [{"id": cid.hex()} for cid in members]
    assert [v["id"] for v in labels.shown("conversations", views)] == [
        (b"\x01" * 16).hex(), (b"\x03" * 16).hex()]  # fmt: skip
    assert labels.transcript({"conversation": (b"\x01" * 16).hex()})
    with pytest.raises(UnknownPeer, match="not a trusted contact"):
        labels.transcript({"conversation": (b"\x02" * 16).hex()})


def test_http_cli_and_settings(cli: Cli) -> None:
    prepare(cli, "alice", None)
    assert "expected on, off" in one_line_error(cli.run("alice", "config", "set", "http", "yes"))
    key = cli.ok("alice", "http-key").strip()  # made before the node ever ran
    assert key == (cli.profile_dir("alice") / "http.key").read_text().strip()
    assert cli.json("alice", "http-key") == {"key": key}
    assert "no node" in one_line_error(cli.run("alice", "http-url"), code=3).lower()
    cli.ok("alice", "config", "set", "http", "off")
    cli.ok("alice", "up", "--detach")
    assert cli.json("alice", "status")["http"]["state"] == "off"
    assert "http      off" in cli.ok("alice", "status")
    assert "it is off" in one_line_error(cli.run("alice", "http-url"))
    cli.ok("alice", "down")


def test_a_taken_port_leaves_the_node_running(cli: Cli) -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        prepare(cli, "alice", None)
        cli.ok("alice", "config", "set", "http", f"127.0.0.1:{held.getsockname()[1]}")
        up = cli.ok("alice", "up", "--detach")  # returns once the bind has failed
        assert "  http  off: cannot listen on 127.0.0.1:" in up
        http = cli.json("alice", "status")["http"]
        assert http["state"] == "failed"
        assert "cannot listen" in http["error"]
        assert "failed" in cli.ok("alice", "status")
        log = cli.profile_dir("alice") / "node.log"
        assert "off: cannot listen on 127.0.0.1:" in wait_for_line(log, "  http        ")
    finally:
        held.close()


def test_kill_9_then_restart_serves_again(cli: Cli) -> None:
    alice = http_node(cli, "alice")
    os.kill(int(cli.json("alice", "status")["pid"]), signal.SIGKILL)
    time.sleep(0.5)
    assert (cli.profile_dir("alice") / "http.url").exists()  # left behind by the kill
    assert "no node is running" in one_line_error(cli.run("alice", "http-url"), code=3)
    cli.ok("alice", "up", "--detach")
    url = cli.ok("alice", "http-url").strip()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {alice.key}"}) as client:
        assert client.get("/v1/whoami").json()["peer_id"] == alice.peer_id  # the same key


def test_hostile_bytes_on_the_http_port(cli: Cli) -> None:
    alice = http_node(cli, "alice")
    host, port = alice.url.removeprefix("http://").split(":")
    for garbage in (b"\x00\xff" * 1000 + b"\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000,
                    b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999"
                    b"\r\n\r\n{", b"GET /v1/whoami HTTP/9.9\r\n\r\n"):  # fmt: skip
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(garbage)
            raw.shutdown(socket.SHUT_WR)
            raw.settimeout(10)
            while raw.recv(65536):
                pass
    key = alice.key.encode()
    for request in (  # with the key: cut short, waiting for 100-continue, HEAD on a stream
        b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n"
        b"Authorization: Bearer " + key + b'\r\n\r\n{"to"',
        b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n"
        b"Expect: 100-continue\r\n\r\n",
        b"HEAD /v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
        + key
        + b"\r\n\r\n",
    ):
        with socket.create_connection((host, int(port)), timeout=20) as raw:
            raw.sendall(request)
            if b"Content-Length: 100\r\nAuth" in request:  # the client goes, body unsent
                raw.shutdown(socket.SHUT_WR)
                assert raw.recv(65536) == b""  # closed at once, no answer and no traceback
                continue
            assert raw.recv(65536).startswith(b"HTTP/1.1 ")  # an answer, not a hang
    with alice.client() as client:
        assert client.get("/v1/whoami").status_code == 200
        for bad in ("\u00b2", "9" * 30):  # a digit int() refuses; past SQLite's integers
            assert client.get("/v1/events", params={"after": bad}).status_code == 400
            assert client.get("/v1/messages", params={"after": bad}).status_code == 400
        with client.stream("GET", "/v1/events") as stream:  # resumable before any message
            assert next(stream.iter_lines()).startswith("id: ")
    time.sleep(0.5)
    assert "Traceback" not in (cli.profile_dir("alice") / "node.log").read_text()


def test_a_non_loopback_bind_warns(cli: Cli) -> None:
    alice = http_node(cli, "alice", http="0.0.0.0:0")
    port = alice.url.rsplit(":", 1)[1]
    log = (cli.profile_dir("alice") / "node.log").read_text()
    assert "other machines can reach it" in log
    local = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=local, headers={"Authorization": f"Bearer {alice.key}"}) as client:
        assert client.get("/v1/whoami").status_code == 200
        assert client.get("/v1/whoami", headers={"Host": "evil.example"}).status_code == 403
    assert alice.url.startswith("http://0.0.0.0:")


def test_any_loopback_address_is_a_host_it_answers(cli: Cli) -> None:
    alice = http_node(cli, "alice", http="127.0.0.2:0")
    assert alice.url.startswith("http://127.0.0.2:")
    with alice.client() as client:  # Host: 127.0.0.2:port, as clients send it
        assert client.get("/v1/whoami").status_code == 200
        assert client.get("/v1/whoami", headers={"Host": "evil.example"}).status_code == 403
