"""The descriptor budget (meshtalk.net.budget): the limit raise, the budget, the accept guard on a
real py-libp2p host, and trio's EMFILE loop at a real descriptor limit (in child processes, so
this process' limits stay as they are)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import multiaddr
import pytest
import trio
from libp2p.peer.peerinfo import PeerInfo
from libp2p.transport.tcp.tcp import TCP

from meshtalk.net.budget import (
    AcceptStatistics,
    ConnectionAdmission,
    FdLimits,
    connection_budget,
    install_accept_guard,
)
from meshtalk.net.host import NETWORK_ERRORS, build_host, close_host, inbound_handshakes
from meshtalk.peer.node import open_node
from meshtalk.protocol.keys import NodeKey

from .helpers import fast_config, port_of

resource = pytest.importorskip("resource")

LOCAL = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def run_child(code: str, *args: str, timeout: float = 30) -> dict[str, Any]:
    """Run `code` in a fresh interpreter and return the JSON object it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_budget_reserves_a_margin_and_divides_by_share() -> None:
    roomy = connection_budget(FdLimits(65536, 65536))
    assert (roomy.reserved, roomy.connections, roomy.warning()) == (6553, 58983, None)
    assert connection_budget(FdLimits(65536, 65536), share=4).connections == 58983 // 4
    assert (
        connection_budget(FdLimits(65536, 65536), cap=100).warning() is None
    )  # chosen, not forced
    tiny = connection_budget(FdLimits(64, 64))
    assert (tiny.reserved, tiny.connections) == (32, 32)  # never reserve more than half


def test_a_small_budget_warns_with_the_numbers() -> None:
    budget = connection_budget(FdLimits(256, 1048576, raised_from=None), share=2)
    warning = budget.warning()
    assert warning is not None
    assert "only 96 connections" in warning
    assert "soft limit 256, hard 1048576, 64 reserved, shared by 2 nodes" in warning
    assert "ulimit -n 1048576" in warning
    stuck = connection_budget(FdLimits(256, 256, error="setrlimit(1024) failed"))
    assert "raise the hard limit" in (stuck.warning() or "")


@pytest.mark.timeout(30)
def test_raise_fd_limit_lifts_the_soft_limit_to_the_hard_limit() -> None:
    result = run_child(
        """
        import json, resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(128, hard), hard))
        from meshtalk.net.budget import raise_fd_limit
        first, again = raise_fd_limit(), raise_fd_limit()
        now = resource.getrlimit(resource.RLIMIT_NOFILE)
        print(json.dumps({"first": vars(first), "same": first is again, "now": now,
                          "hard": hard, "inf": resource.RLIM_INFINITY}))
        """
    )
    first = result["first"]
    assert result["same"]
    assert first["raised_from"] == min(128, result["hard"])
    assert first["error"] is None
    assert result["now"][0] == first["soft"]
    if result["hard"] != result["inf"]:
        assert first["soft"] == first["hard"] == result["hard"]


def tcp_of(host: Any) -> TCP:
    """The TCP transport build_host gave the host (it keeps no other reference to it)."""
    [tcp] = [t for t in host.get_network().transport_manager.get_transports() if isinstance(t, TCP)]
    return tcp


async def first_bytes(port: int) -> bytes:
    """What the listener sends a raw TCP client before the client says anything."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        with trio.move_on_after(2):
            return await stream.receive_some(100)
        return b"(nothing)"


@pytest.mark.timeout(30)
async def test_guard_closes_connections_beyond_the_budget_before_any_handshake(
    caplog: pytest.LogCaptureFixture,
) -> None:
    in_use = 5
    server = build_host(NodeKey.generate())
    admission = ConnectionAdmission(5, lambda: in_use)
    guard = install_accept_guard(tcp_of(server), admission, reason=admission.reason)
    clients = [build_host(NodeKey.generate()) for _ in range(2)]
    caplog.set_level(logging.INFO, logger="meshtalk.budget")
    async with server.run([LOCAL]), clients[0].run([LOCAL]), clients[1].run([LOCAL]):
        try:
            port = int(server.get_addrs()[0].value_for_protocol("tcp"))
            info = PeerInfo(server.get_id(), server.get_addrs())
            with trio.fail_after(10):
                assert await first_bytes(port) == b""  # closed at once, not a byte sent
                with pytest.raises(NETWORK_ERRORS):
                    await clients[0].connect(info)
            refused = guard.statistics()  # the raw connection, then the dial
            assert refused.refused_at_budget >= 2
            assert refused == AcceptStatistics(
                refused.refused_at_budget, 0, 0, "at the connection budget (5 of 5)"
            )
            [line] = [r.getMessage() for r in caplog.records if r.name == "meshtalk.budget"]
            assert "refused an inbound connection: at the connection budget (5 of 5)" in line
            in_use = 4
            with trio.fail_after(10):
                await clients[1].connect(info)
            assert guard.statistics().refused_at_budget == refused.refused_at_budget
            assert guard.statistics().inbound_open == 1  # the admitted connection
        finally:
            for host in (*clients, server):
                await close_host(host)


EMFILE_CHILD = """
import json, logging, os, resource, sys
import multiaddr, trio
from libp2p.transport.tcp.tcp import TCP
from meshtalk.net.budget import install_accept_guard

GUARDED, HOLD = sys.argv[1] == "guard", float(sys.argv[2])
lines = []

class Keep(logging.Handler):
    def emit(self, record):
        lines.append(self.format(record))

logging.getLogger().addHandler(Keep())
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

async def main():
    accepted = []

    async def handler(stream):
        accepted.append(1)
        await stream.close()

    tcp = TCP()
    guard = install_accept_guard(tcp, lambda: True) if GUARDED else None
    listener = tcp.create_listener(handler)
    await listener.listen(multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0"))
    port = listener.get_addrs()[0].value_for_protocol("tcp")
    hog = []
    try:
        while True:
            hog.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    print("ready", port, flush=True)
    await trio.sleep(0.3)  # the parent connects: the connection waits in the backlog
    before = resource.getrusage(resource.RUSAGE_SELF)
    await trio.sleep(HOLD)
    after = resource.getrusage(resource.RUSAGE_SELF)
    stuck_lines, stuck_records = sum(l.count("\\n") + 1 for l in lines), len(lines)
    for fd in hog:
        os.close(fd)
    with trio.fail_after(10):
        while not accepted:
            await trio.sleep(0.01)
        print("freed", flush=True)
        while len(accepted) < 2:
            await trio.sleep(0.01)
    await listener.close()
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({
        "lines": stuck_lines, "records": stuck_records, "cpu": cpu, "hogged": len(hog),
        "accepted": len(accepted), "first": lines[0] if lines else "",
        "errors": guard.statistics().accept_errors if guard else None,
    }))

trio.run(main)
"""


def stuck_at_emfile(mode: str, hold: float) -> dict[str, Any]:
    """Run EMFILE_CHILD: one connection while it has no descriptors left, one after."""
    child = subprocess.Popen(
        [sys.executable, "-c", EMFILE_CHILD, mode, str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        word, port = child.stdout.readline().split()
        assert word == "ready"
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
            assert child.stdout.readline().strip() == "freed"
            with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
                out, err = child.communicate(timeout=20)
        assert child.returncode == 0, err
        result: dict[str, Any] = json.loads(out.splitlines()[-1])
        return result
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_emfile_logs_one_summary_and_accepts_resume_once_descriptors_are_free() -> None:
    plain = stuck_at_emfile("plain", 1.0)
    assert plain["records"] >= 8  # trio: one traceback every 0.1 s
    assert plain["accepted"] == 2

    guarded = stuck_at_emfile("guard", 1.0)
    assert guarded["records"] == guarded["lines"] == 1
    assert guarded["first"].startswith("accept failed with EMFILE (Too many open files): ")
    assert "soft limit 64" in guarded["first"]
    assert guarded["errors"] >= 8  # counted into the guard whose socket failed
    assert guarded["accepted"] == 2


@pytest.mark.timeout(30)
async def test_connections_still_in_their_handshake_count_against_the_budget(
    tmp_path: Path,
) -> None:
    """Three connections that never finish their handshake fill a budget of three (each may
    take the 60 s handshake timeout): a fourth is closed at once, before any handshake."""
    async with open_node(tmp_path / "a", fast_config(max_connections=3)) as node:
        port = port_of(node)
        stalled = []
        try:
            for _ in range(3):
                stalled.append(await trio.open_tcp_stream("127.0.0.1", port))
            with trio.fail_after(10):
                while inbound_handshakes(node.host) < 3:
                    await trio.sleep(0.01)
            assert await first_bytes(port) == b""  # refused, not waiting for a Noise message
            accepts = node.statistics().accepts
            assert accepts is not None
            assert accepts.refused_at_budget == 1
            assert "3 in their handshake, of 3" in (accepts.last_refusal or "")
        finally:
            for stream in stalled:
                await stream.aclose()
