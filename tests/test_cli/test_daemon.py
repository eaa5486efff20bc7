"""Two profiles, real background nodes, a real rendezvous point: the CLI from end to end."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from contextlib import suppress
from pathlib import Path

import pytest

from tests.test_cli.helpers import (
    Cli,
    one_line_error,
    prepare,
    rendezvous_point,
    wait_for_line,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # every test here is over 6 s


def offer_code(cli: Cli, profile: str) -> tuple[str, object]:
    """Start `meshtalk pair` and return the code it printed, and the process."""
    offer = cli.start(profile, "pair")
    assert offer.stdout is not None
    line = offer.stdout.readline()
    assert line.startswith("pairing code: "), line
    return line.split(": ", 1)[1].strip(), offer


def test_up_pair_send_history_peers_down(cli: Cli) -> None:
    with rendezvous_point(cli) as point:
        alice_id, bob_id = prepare(cli, "alice", point), prepare(cli, "bob", point)
        up_lines = cli.ok("alice", "up", "--detach").splitlines()
        assert "is running" in up_lines[0]
        assert up_lines[1].startswith("  http  http://127.0.0.1:"), up_lines
        hello = cli.json("bob", "up", "--detach")
        assert hello["peer_id"] == bob_id
        # `up` returns once the HTTP API listens: the next command finds its address
        assert hello["http"]["state"] == "serving"
        assert cli.ok("bob", "http-url").strip() == hello["http"]["url"]
        socket_file = cli.profile_dir("alice") / "control.sock"
        assert stat.S_IMODE(socket_file.stat().st_mode) == 0o600
        again = cli.run("alice", "up", "--detach")  # already up: the same node, and it says so
        assert again.returncode == 0
        assert "is already running" in again.stdout
        assert cli.json("alice", "up", "--detach")["already_running"] is True

        # a wrong code fails on both sides and adds nothing
        code, offer = offer_code(cli, "alice")
        number, first, second = code.split("-")
        wrong = f"{number}-{first}-{'zinc' if second != 'zinc' else 'yak'}"
        assert "did not match" in one_line_error(
            cli.run("bob", "pair", wrong, "--timeout", "20"), progress=True
        )
        _, offer_err = offer.communicate(timeout=30)  # type: ignore[attr-defined]
        assert offer.returncode == 1  # type: ignore[attr-defined]
        assert "did not match" in offer_err.splitlines()[-1]
        assert cli.json("alice", "contacts") == []
        assert cli.json("bob", "contacts") == []

        # the right code pairs them
        code, offer = offer_code(cli, "alice")
        joined = cli.json("bob", "pair", code, "--timeout", "20")
        offered, _ = offer.communicate(timeout=30)  # type: ignore[attr-defined]
        assert offer.returncode == 0  # type: ignore[attr-defined]
        assert joined == {**joined, "peer_id": alice_id, "name": "alice", "trust": "trusted"}
        assert f"paired with bob ({bob_id})" in offered

        sent = cli.ok("bob", "send", "alice", "hello from bob")
        assert sent.strip() == "delivered to alice"
        assert "hello from bob" in cli.ok("alice", "inbox")
        assert cli.ok("alice", "inbox").strip() == "no new messages"
        cli.ok("alice", "send", "bob", "-", stdin="a reply\nover two lines")
        history = cli.json("bob", "history", "alice")
        assert [(m["direction"], m["text"]) for m in history] == [
            ("out", "hello from bob"), ("in", "a reply\nover two lines"),
        ]  # fmt: skip
        assert history[0]["status"] == "delivered"
        assert "me → alice: hello from bob" in cli.ok("bob", "history")

        peers = {p["peer_id"]: p for p in cli.json("alice", "peers")}
        assert peers[bob_id]["online"] is True
        assert peers[bob_id]["name"] == "bob"
        assert "rendezvous" in peers[bob_id]["sources"]
        assert [p["rendezvous_point"] for p in peers.values()].count(True) == 1
        table = cli.ok("alice", "peers")
        assert "(rendezvous point)" in table
        assert table.splitlines()[0].split() == ["NAME", "PEER", "ID", "ONLINE", "LAST", "SEEN",
                                                 "VIA", "TRUST"]  # fmt: skip
        status = cli.json("alice", "status")
        assert status["contacts_online"] == ["bob"]
        assert status["rendezvous"][0]["state"] == "registered"
        assert status["outbox"] == 0

        # a peer that refuses us says so at once, with its own exit code (issue 14)
        cli.ok("bob", "contacts", "block", "alice")
        refused = one_line_error(
            cli.run("alice", "send", "bob", "not welcome"), code=4, progress=True
        )
        assert "peer refused" in refused
        assert "does not accept messages" in refused
        assert [m["status"] for m in cli.json("alice", "history", "bob")][-1] == "failed"
        cli.ok("bob", "contacts", "trust", "alice")

        assert "unknown" not in cli.ok("alice", "contacts", "rename", "bob", "robert")
        assert "no contact or room is named" in one_line_error(cli.run("alice", "send", "bob", "x"))
        assert cli.ok("alice", "send", "robert", "renamed").strip() == "delivered to robert"

        assert cli.ok("alice", "down").strip() == "node stopped"
        assert not socket_file.exists()
        assert one_line_error(cli.run("alice", "status"), code=3)


def test_messages_survive_a_killed_node_and_reach_it_when_it_returns(cli: Cli) -> None:
    with rendezvous_point(cli) as point:
        prepare(cli, "alice", point)
        prepare(cli, "bob", point)
        cli.ok("alice", "up", "--detach")
        cli.ok("bob", "up", "--detach")
        invite = cli.json("alice", "invite")["token"]
        cli.ok("bob", "join", invite)
        assert "used or has expired" in one_line_error(
            cli.run("bob", "join", invite), progress=True
        )

        pid = cli.json("alice", "status")["pid"]
        os.kill(pid, signal.SIGKILL)  # the socket file stays behind, stale
        wait_until_dead(pid)
        assert "no node is running" in one_line_error(cli.run("alice", "status"), code=3)
        changed = cli.run("alice", "config", "set", "pair_timeout", "300")
        assert changed.returncode == 0
        assert "restart it" not in changed.stderr
        changed = cli.run("bob", "config", "set", "pair_timeout", "300")
        assert changed.returncode == 0
        assert "restart it to apply" in changed.stderr
        for n in range(3):
            queued = cli.json("bob", "send", "alice", f"while you were gone {n}", "--no-wait")
            assert queued["delivered"] is False
        assert cli.json("bob", "status")["outbox"] == 3

        cli.ok("alice", "up", "--detach")  # the stale socket is replaced
        follow = cli.start("alice", "history", "--follow", "--json", "--after", "0")
        assert follow.stdout is not None
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while len(seen) < 3 and time.monotonic() < deadline:
            line = follow.stdout.readline()
            assert line, follow.stderr.read() if follow.stderr else "follow ended"
            seen.append(json.loads(line)["text"])
        assert seen == [f"while you were gone {n}" for n in range(3)]


def wait_until_dead(pid: int, timeout: float = 10) -> None:
    """Wait until a process that is not our child has ended: gone, or a zombie."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with suppress(FileNotFoundError):  # Linux: a zombie that nothing reaps is dead too
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in "ZX":
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still runs {timeout} s after SIGKILL")


def test_chat_sends_typed_lines_and_shows_incoming_ones(cli: Cli) -> None:
    with rendezvous_point(cli) as point:
        prepare(cli, "alice", point)
        prepare(cli, "bob", point)
        log = cli.profile_dir("alice") / "node.log"
        cli.ok("alice", "config", "set", "log_max_mib", "1")
        log.write_bytes(b"old line\n" * 120_000)  # over 1 MiB: the first record rotates it
        cli.ok("alice", "up", "--detach")
        assert log.with_name("node.log.1").stat().st_size > 1_000_000
        assert log.stat().st_size < 100_000
        cli.ok("bob", "up", "--detach")
        cli.ok("bob", "join", cli.json("alice", "invite")["token"])
        chat = cli.start("alice", "chat", "bob")
        assert chat.stdout is not None
        assert chat.stdin is not None
        assert "chatting with bob" in chat.stdout.readline()
        cli.ok("bob", "send", "alice", "ping from bob")
        line = chat.stdout.readline()
        assert line.strip().endswith("bob: ping from bob"), (line, chat.poll())
        chat.stdin.write("pong from alice\n")
        chat.stdin.flush()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            texts = [m["text"] for m in cli.json("bob", "history", "alice")]
            if "pong from alice" in texts:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("alice's chat line never reached bob")
        chat.stdin.write("/quit\n")
        chat.stdin.flush()
        assert chat.wait(timeout=20) == 0


def test_foreground_up_stops_cleanly_on_sigterm(cli: Cli) -> None:
    prepare(cli, "alice", None)
    node = cli.start("alice", "up")
    assert node.stdout is not None
    lines = []
    while not lines or not lines[-1].startswith("ready"):
        lines.append(node.stdout.readline())
        assert lines[-1], node.stderr.read() if node.stderr else ""
    assert lines[0].startswith("meshtalk node alice 12D3KooW")
    # the HTTP API starts in the background; the header still waits for it, in one order
    assert lines[-2].startswith("  http        http://127.0.0.1:"), lines
    assert [line.split()[0] for line in lines[1:-2] if not line.startswith("  listening")] == [
        "mDNS",
        "control",
    ], lines
    listening = [line for line in lines if "listening" in line]
    assert listening
    assert all(line.count("/p2p/") == 1 for line in listening)
    assert "in use by another meshtalk node" in one_line_error(cli.run("alice", "up"))
    node.send_signal(signal.SIGTERM)
    out, err = node.communicate(timeout=20)
    assert node.returncode == 0, err
    assert "stopping" in out
    assert "Traceback" not in err
    assert not (cli.profile_dir("alice") / "control.sock").exists()


def test_node_log_holds_message_bodies_only_with_log_bodies_and_down_is_clean(cli: Cli) -> None:
    with rendezvous_point(cli) as point:
        prepare(cli, "alice", point)
        prepare(cli, "bob", point)
        log = cli.profile_dir("alice") / "node.log"
        cli.ok("alice", "up", "--detach")
        cli.ok("bob", "up", "--detach")
        cli.ok("bob", "join", cli.json("alice", "invite")["token"])
        cli.ok("bob", "send", "alice", "the secret plan")
        wait_for_line(log, "message #")
        assert cli.ok("alice", "down").strip() == "node stopped"
        text = log.read_text()
        assert "the secret plan" not in text
        assert "from bob (text, 15 bytes)" in text
        assert "error" not in text.lower(), text  # a clean stop is not an error
        assert text.splitlines()[-1].endswith("meshtalk.daemon: stopping")

        cli.ok("alice", "config", "set", "log_bodies", "true")
        cli.ok("alice", "up", "--detach")
        cli.ok("bob", "send", "alice", "line one\nlooks like a log line")
        line = wait_for_line(log, "line one")
        assert line.endswith('from bob: "line one\\nlooks like a log line"')  # one line
        assert "the secret plan" not in log.read_text()
        logs = cli.ok("alice", "logs", "-n", "3")
        assert "line one" in logs


def test_verbose_up_detach_logs_routine_network_failures_the_default_does_not(cli: Cli) -> None:
    away = cli.json("bob", "init")["peer_id"]  # a rendezvous point that never answers
    prepare(cli, "alice", f"/ip4/127.0.0.1/tcp/9/p2p/{away}")
    log = cli.profile_dir("alice") / "node.log"
    cli.ok("alice", "-v", "up", "--detach")
    assert "INFO meshtalk.rendezvous: rendezvous point" in wait_for_line(log, "meshtalk.rendezvous")
    cli.ok("alice", "down")
    log.unlink()
    cli.ok("alice", "up", "--detach")
    wait_for_line(log, "ready")
    time.sleep(3)  # the -v run logged its first failure within a second
    cli.ok("alice", "down")
    assert "meshtalk.rendezvous" not in log.read_text()
