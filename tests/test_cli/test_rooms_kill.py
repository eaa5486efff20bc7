"""kill -9 of a room's author in the middle of its fan-out: after it restarts, every member
holds every message `send` returned for, exactly once, though carol, offline meanwhile, can
get each both from alice's outbox and from bob's catch-up. Real daemons, real SIGKILL."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from meshtalk import Mesh
from tests.test_cli.helpers import Cli
from tests.test_cli.test_rooms_cli import _up_and_introduce

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def _room_ids(cli: Cli, profile: str) -> list[str]:
    """Ids of the room's text messages in `profile`'s history (every one, with repeats)."""
    found = cli.json(profile, "history", "team", "--after", "0", "--limit", "1000")
    return [m["id"] for m in found if m["kind"] == "text"]


def test_killing_the_author_mid_fan_out_loses_and_doubles_nothing(cli: Cli) -> None:
    _up_and_introduce(cli)
    cli.ok("alice", "room", "create", "team")
    for member in ("bob", "carol"):
        cli.ok("alice", "room", "invite", "team", member)
        deadline = time.monotonic() + 30
        while not cli.json(member, "room", "invites") and time.monotonic() < deadline:
            time.sleep(0.2)
        cli.ok(member, "room", "join", "team")

    cli.ok("carol", "down")  # alice's copies for carol wait in her outbox through the kill
    pid = int(cli.json("alice", "status")["pid"])
    returned: list[str] = []
    killed, stopped = threading.Event(), threading.Event()

    def post() -> None:
        # A send the kill interrupts finds out, once the node is back, whether it was queued
        # (Mesh.send); each returned id must then be delivered.
        with Mesh(cli.profile_dir("alice"), embedded=False) as mesh:
            for i in range(400):
                if killed.is_set():
                    break
                try:
                    returned.append(mesh.send("team", f"post {i}", via="human"))
                except Exception:  # not queued, or not known: nothing to expect of it
                    break
        stopped.set()

    poster = threading.Thread(target=post, daemon=True)
    poster.start()
    deadline = time.monotonic() + 60
    while len(returned) < 60 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)  # fan-out in full swing: copies queued, some written
    killed.set()
    cli.ok("alice", "up", "--detach")
    assert stopped.wait(60)
    assert len(returned) >= 60
    assert cli.json("alice", "status")["outbox"] >= len(returned)  # carol's copies, kept
    cli.ok("carol", "up", "--detach")  # from alice's outbox and bob's catch-up: once each

    for member in ("bob", "carol"):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            got = _room_ids(cli, member)
            if set(returned) <= set(got):
                break
            time.sleep(0.5)
        assert set(returned) <= set(got), (member, len(set(returned) - set(got)))
        assert len(got) == len(set(got)), f"{member} stored a message twice"
        authored = set(_room_ids(cli, "alice"))
        assert set(got) <= authored  # nothing but what alice stored before the kill
