"""A `Mesh` on a daemon that restarts (`down` and `up`, kill -9): calls go on, sends are definite.

The daemon is the real `meshtalk up --detach` (a subprocess); bob, when there is one, is an
embedded node in this process.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meshtalk import Mesh
from meshtalk.protocol.errors import MeshtalkError, NodeNotRunning, NotQueued, UnknownPeer
from meshtalk.protocol.keys import NodeKey
from tests.test_cli.helpers import Cli
from tests.test_cli.test_daemon import wait_until_dead
from tests.test_facade.helpers import loopback_profile

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]  # daemons start in seconds


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path)
    loopback_profile(tmp_path, "alice")
    cli.ok("alice", "up", "--detach")
    try:
        yield cli
    finally:
        cli.cleanup(["alice"])


def restart(cli: Cli, how: str) -> None:
    """Stop alice's daemon (`down`, or kill -9 that leaves a stale socket) and start it again."""
    if how == "down":
        cli.ok("alice", "down")
    else:
        pid = cli.json("alice", "status")["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until_dead(pid)
    cli.ok("alice", "up", "--detach")


def fill_the_pool(mesh: Mesh, connections: int = 4) -> None:
    """Calls at the same time, so that the Mesh keeps several idle connections."""
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(lambda _: mesh.call("status", deadline=10), range(connections * 4)))


@pytest.mark.parametrize("embedded", [False, None])
def test_every_pooled_connection_survives_restarts(
    cli: Cli, tmp_path: Path, embedded: bool | None
) -> None:
    bob_id = str(NodeKey.generate().peer_id)  # a contact that never answers
    with Mesh(cli.profile_dir("alice"), embedded=embedded) as mesh:
        pid = mesh.call("status")["pid"]
        mesh.add_contact(bob_id, "bob", [])
        for how in ("down", "kill", "down"):
            fill_the_pool(mesh)
            restart(cli, how)
            # a call that changes something first: it must not meet a dead connection
            message_id = mesh.send("bob", f"after {how}")
            assert mesh.history("bob")[-1]["id"] == message_id
            assert mesh.whoami()["name"] == "alice"
            assert mesh.peers()[0]["peer_id"] == bob_id
            with pytest.raises(UnknownPeer):
                mesh.send("nobody", "x")  # the node's own errors still come through
            status = mesh.call("status")
            assert status["pid"] != pid  # the new daemon, not a node started here
            assert not mesh.embedded
            pid = status["pid"]
        assert [m["text"] for m in mesh.history("bob")] == [
            "after down",
            "after kill",
            "after down",
        ]


def test_a_send_during_restarts_is_queued_once_or_says_it_was_not(cli: Cli, tmp_path: Path) -> None:
    bob = Mesh(loopback_profile(tmp_path, "bob"))
    alice = Mesh(cli.profile_dir("alice"), embedded=False)
    sent: dict[str, str] = {}  # text -> id
    refused: dict[str, MeshtalkError] = {}
    stop = threading.Event()

    def keep_sending() -> None:
        n = 0
        while not stop.is_set():
            text = f"m{n}"
            n += 1
            try:
                sent[text] = alice.send("bob", text, via="human")
            except (NodeNotRunning, NotQueued) as exc:  # not queued, and says so
                refused[text] = exc
                time.sleep(0.05)
            time.sleep(0.01)

    try:
        bob.join(alice.invite())
        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            time.sleep(1)
            for how in ("kill", "down", "kill"):
                restart(cli, how)
                time.sleep(1)
        finally:
            stop.set()
            sender.join(30)
        assert not sender.is_alive()

        received: list[dict[str, str]] = []
        after, deadline = 0, time.monotonic() + 90
        while len(received) < len(sent) and time.monotonic() < deadline:
            batch = bob.receive(after, wait=5, limit=500)
            received += batch["messages"]
            after = batch["cursor"]
        texts = Counter(m["text"] for m in received)
        assert [text for text, count in texts.items() if count > 1] == []  # nothing doubled
        assert {m["text"]: m["id"] for m in received} == sent  # each returned id, delivered
        assert len(sent) > 50
        assert not set(refused) & set(texts)  # a refused send was really not queued
    finally:
        alice.close()
        bob.close()
