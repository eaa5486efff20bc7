"""Two nodes behind two NAT routers, with a rendezvous point that is also a relay on the public
network (tests/reach/topology.py builds it with network namespaces and iptables): the real CLI
and daemons, pairing by code, relayed and hole-punched connections, cut circuits, kill -9 and
a relay restart. Needs root, iproute2 and iptables (`.ci/run` installs iptables)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .nodes import (
    Box,
    RelayPoint,
    bodies_from,
    connection_to,
    node,
    pair,
    pair_by_invite,
    wait_for,
)
from .topology import NatKind, Network, nat_network, netns_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

_unavailable = netns_available()
if _unavailable is not None:
    pytestmark.append(pytest.mark.skip(reason=_unavailable))


@dataclass
class Setup:
    net: Network
    relay: RelayPoint
    a: Box
    b: Box


@contextmanager
def two_nats(
    tmp_path: Path, kind_a: NatKind, kind_b: NatKind, *relay_args: str, invite: bool = False
) -> Iterator[Setup]:
    """The network, the point-and-relay, and a node on each private host, paired by code (or
    by an invite token)."""
    with nat_network(kind_a, kind_b) as net:
        relay = RelayPoint(Box(net.public, tmp_path / "relay"), net.public_ip, *relay_args)
        a, b = Box(net.a, tmp_path / "a"), Box(net.b, tmp_path / "b")
        try:
            point = relay.start()
            node(a, "alice", point)
            node(b, "bob", point)
            for box in (a, b):
                wait_for("a reservation", lambda box=box: reserved(box), timeout=30)
            (pair_by_invite if invite else pair)(a, b)
            yield Setup(net, relay, a, b)
        except BaseException:
            for box in (a, b):
                print(f"--- {box.namespace} node.log ---\n{box.log()[-6000:]}")
            raise
        finally:
            for box in (a, b):
                box.stop()
            relay.stop(kill=True)


def reserved(box: Box) -> bool:
    relays = box.json("status")["reach"]["relays"]
    return any(r["state"] == "reserved" for r in relays)


def test_port_preserving_nats_pair_talk_relayed_then_directly(tmp_path: Path) -> None:
    with two_nats(tmp_path, "preserving", "preserving") as s:
        status = s.a.json("status")["reach"]
        assert status["behind_nat"] is True, status
        assert "through relay" in status["summary"]
        assert s.b.ok("send", "alice", "hello from behind two NATs").strip() == (
            "delivered to alice"
        )
        wait_for(
            "a direct connection",
            lambda: connection_to(s.a, "bob") == connection_to(s.b, "alice") == "direct",
        )
        punched = [box.json("status")["reach"]["hole_punches"] for box in (s.a, s.b)]
        assert sum(p.get("direct", 0) for p in punched) >= 1, punched
        for i in range(5):
            assert s.a.ok("send", "bob", f"direct {i}").strip() == "delivered to bob"
        assert bodies_from(s.b, "alice") == [f"direct {i}" for i in range(5)]
        assert bodies_from(s.a, "bob") == ["hello from behind two NATs"]
        s.relay.stop()
        # pairing and the first messages went through the relay
        assert "circuits relayed" in s.relay.stopped_line, s.relay.stopped_line
        assert not s.relay.stopped_line.endswith(" 0 circuits relayed)")


def test_symmetric_nat_on_one_side_stays_relayed_and_messages_flow(tmp_path: Path) -> None:
    with two_nats(tmp_path, "preserving", "symmetric", invite=True) as s:
        for i in range(10):
            assert s.a.ok("send", "bob", f"m{i}").strip() == "delivered to bob"
            assert s.b.ok("send", "alice", f"r{i}").strip() == "delivered to alice"
        assert connection_to(s.a, "bob") == "relayed"
        assert connection_to(s.b, "alice") == "relayed"
        assert bodies_from(s.b, "alice") == [f"m{i}" for i in range(10)]
        assert bodies_from(s.a, "bob") == [f"r{i}" for i in range(10)]


def test_a_circuit_cut_by_its_data_limit_is_redialed_and_nothing_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    # 0.02 MiB per circuit: a dozen or so messages of 1 KiB each cut it, several times over
    with two_nats(tmp_path, "symmetric", "symmetric", "--circuit-mib", "0.02") as s:
        text = "x" * 1000
        sent = [f"{i} {text}" for i in range(60)]
        for body in sent:
            assert s.a.ok("send", "bob", body, "--timeout", "60").strip() == "delivered to bob"
        assert bodies_from(s.b, "alice") == sent
        assert connection_to(s.a, "bob") == "relayed"
        relay_stats = s.a.json("status")["connections"]
        assert relay_stats["dials"] >= 2, relay_stats  # the cut circuits were dialed again


@pytest.mark.parametrize("killed", ["sender", "receiver"])
def test_kill_9_of_either_node_while_relayed_loses_nothing(tmp_path: Path, killed: str) -> None:
    with two_nats(tmp_path, "symmetric", "preserving") as s:
        sent = [f"queued {i}" for i in range(30)]
        first = s.a.ok("send", "bob", "before", "--timeout", "60").strip()
        assert first == "delivered to bob"
        victim = s.a if killed == "sender" else s.b
        if killed == "receiver":
            s.b.kill_node()
        for body in sent:  # queued (the receiver is down) or in flight when the sender dies
            s.a.ok("send", "bob", body, "--no-wait")
        if killed == "sender":
            s.a.kill_node()
        victim.ok("up", "--detach")
        wait_for(
            "every message",
            lambda: bodies_from(s.b, "alice") == ["before", *sent],
            timeout=90,
        )
        assert s.a.ok("send", "bob", "after", "--timeout", "60").strip() == "delivered to bob"
        assert connection_to(s.a, "bob") == "relayed"
        assert bodies_from(s.b, "alice") == ["before", *sent, "after"]


def test_after_the_relay_restarts_both_nodes_reserve_again_and_talk(tmp_path: Path) -> None:
    with two_nats(tmp_path, "symmetric", "symmetric") as s:
        assert s.a.ok("send", "bob", "before").strip() == "delivered to bob"
        s.relay.stop(kill=True)
        wait_for("the reservations to go", lambda: not reserved(s.a) and not reserved(s.b))
        s.relay.start()  # same profile, same peer ID, same port
        for box in (s.a, s.b):
            wait_for("a new reservation", lambda box=box: reserved(box), timeout=60)
        assert s.a.ok("send", "bob", "after", "--timeout", "60").strip() == "delivered to bob"
        assert s.b.ok("send", "alice", "back", "--timeout", "60").strip() == ("delivered to alice")
        assert bodies_from(s.b, "alice") == ["before", "after"]
