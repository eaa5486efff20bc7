"""Two "machines" (network namespaces on one bridge), each with its own MESHTALK_HOME and the
default settings (listen on every interface, mDNS on): pair with a code, talk, and reconnect
after both nodes restart, all with the real CLI. Needs root and iproute2 (see `lan`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # every test here is over 6 s


class Machine:
    """The meshtalk CLI run inside one network namespace, with its own home folder."""

    def __init__(self, namespace: str, home: Path) -> None:
        self.namespace = namespace
        self.env = {**os.environ, "MESHTALK_HOME": str(home)}
        self.env.pop("MESHTALK_PROFILE", None)

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "meshtalk", *args]

    def ok(self, *args: str) -> str:
        result = subprocess.run(self.argv(args), env=self.env, capture_output=True, text=True,
                                timeout=90)  # fmt: skip
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result.stdout

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_two_machines_pair_by_code_on_the_lan_and_talk(
    lan: tuple[str, str], tmp_path: Path
) -> None:
    alice, bob = Machine(lan[0], tmp_path / "alice"), Machine(lan[1], tmp_path / "bob")
    alice.ok("init", "--name", "alice")
    bob.ok("init", "--name", "bob")
    offer: subprocess.Popen[str] | None = None
    try:
        alice.ok("up", "--detach")
        bob.ok("up", "--detach")
        assert json.loads(alice.ok("status", "--json"))["listening"][0].startswith(
            "/ip4/10.77.0.1/tcp/"
        )
        offer = alice.start("pair")
        assert offer.stdout is not None
        code = offer.stdout.readline().split(": ", 1)[1].strip()
        joined = json.loads(bob.ok("pair", code, "--json", "--timeout", "60"))
        assert joined["name"] == "alice"
        offer.communicate(timeout=60)
        assert offer.returncode == 0
        assert bob.ok("send", "alice", "hello across the LAN").strip() == "delivered to alice"
        assert "hello across the LAN" in alice.ok("inbox")

        # both restart (new processes, same profiles): no new code, they find each other again
        for machine in (alice, bob):
            machine.ok("down")
            machine.ok("up", "--detach")
        assert alice.ok("send", "bob", "still there?", "--timeout", "60").strip() == (
            "delivered to bob"
        )
        peers = json.loads(bob.ok("peers", "--json"))
        assert [p["name"] for p in peers if p["contact"]] == ["alice"]
    finally:
        if offer is not None and offer.poll() is None:
            offer.kill()
            offer.communicate(timeout=10)
        for machine in (alice, bob):
            subprocess.run(machine.argv(("down",)), env=machine.env, capture_output=True,
                           timeout=60)  # fmt: skip
