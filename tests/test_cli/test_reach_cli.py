"""The CLI of reach: a point that is also a relay, a node's reachability in `status` and its
connection kind in `peers`, and clean errors for bad relay arguments."""

from __future__ import annotations

import signal
import time

import pytest

from tests.test_cli.helpers import Cli, one_line_error, prepare

pytestmark = pytest.mark.timeout(120)


def test_bad_relay_arguments_are_one_line_errors(cli: Cli) -> None:
    line = one_line_error(cli.run(None, "rendezvous", "--circuit-mib", "1"))
    assert "need --relay" in line
    line = one_line_error(cli.run(None, "rendezvous", "--relay", "--circuit-hours", "-1"))
    assert "--circuit-hours must be a positive number" in line
    cli.ok("a", "init", "--name", "a")
    line = one_line_error(cli.run("a", "config", "set", "relays", "/ip4/10.0.0.1/tcp/4001"))
    assert "/p2p/<peer ID>" in line


def test_a_relay_point_is_reserved_at_and_status_says_so(cli: Cli) -> None:
    point = cli.start(
        "point", "rendezvous", "--relay", "--circuit-mib", "64", "--listen", "/ip4/127.0.0.1/tcp/0"
    )
    assert point.stdout is not None
    lines = [point.stdout.readline() for _ in range(5)]
    assert lines[0].startswith("rendezvous point and relay 12D3KooW"), lines
    address = lines[1].strip()
    assert any("circuits of up to 12 h and 64 MiB" in line for line in lines), lines
    try:
        prepare(cli, "a", address)
        cli.ok("a", "up", "--detach")
        deadline = time.monotonic() + 30
        while True:
            reach = cli.json("a", "status")["reach"]
            if any(r["state"] == "reserved" for r in reach["relays"]):
                break
            assert time.monotonic() < deadline, reach
            time.sleep(0.2)
        # py-libp2p records no observation made over loopback: whether a NAT is in the way is
        # unknown here (tests/reach/ checks it behind a real NAT)
        assert reach["behind_nat"] is None, reach
        assert reach["summary"].startswith("through relay 12D3KooW")
        human = cli.ok("a", "status")
        assert "reachable through relay 12D3KooW" in human
        assert "relay     12D3KooW" in human
        assert "reserved" in human
        circuit = f"{address}/p2p-circuit"
        assert reach["circuits"] == [circuit]
        peers = cli.json("a", "peers")
        assert [p["connection"] for p in peers if p["rendezvous_point"]] == ["direct"]
        assert "direct" in cli.ok("a", "peers")
    finally:
        cli.run("a", "down")
        point.send_signal(signal.SIGTERM)
        out, _ = point.communicate(timeout=20)
    assert "circuits relayed)" in out.strip().splitlines()[-1]
