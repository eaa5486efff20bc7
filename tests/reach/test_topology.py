"""The NAT test network does what tests of reachability rely on: hosts get out, nothing gets in
unsolicited, two port-preserving NATs let a TCP simultaneous open through, and a symmetric NAT
changes the source port. Plain sockets in `ip netns exec` subprocesses, no meshtalk code."""

from __future__ import annotations

import selectors
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.reach.topology import NatKind, Network, nat_network, netns_available

_REASON = netns_available()
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]

PORT = 4100

# argv: port, number of connections. Prints "ready", then "<peer ip> <peer port>" per connection.
SERVER = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
server = socket.create_server(("0.0.0.0", port))
server.settimeout(10)
print("ready", flush=True)
for _ in range(count):
    conn, (host, peer_port) = server.accept()
    with conn:
        conn.settimeout(5)
        conn.sendall(b"ok:" + conn.recv(64))
    print(host, peer_port, flush=True)
"""

# argv: host, port, number of connections. Prints each connection's local port.
CLIENT = """
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(b"hi")
        assert conn.recv(64) == b"ok:hi"
        print(conn.getsockname()[1], flush=True)
"""

# argv: host, port, timeout. Prints "connected", "timeout", "refused" or the error.
PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
except TimeoutError:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print(repr(exc))
else:
    print("connected")
"""

# argv: peer, port, message, seconds. Binds `port` and connects to peer:port until that works
# (for at most `seconds`), then sends the message and prints "<attempts> <what the peer sent>".
PUNCH = """
import socket, sys, time
peer, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
deadline = time.monotonic() + float(sys.argv[4])
attempts = 0
while True:
    attempts += 1
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(max(0.1, min(1.5, deadline - time.monotonic())))
    try:
        sock.connect((peer, port))
        break
    except OSError as exc:
        sock.close()
        if time.monotonic() >= deadline:
            sys.exit(f"no connection after {attempts} attempts: {exc!r}")
        time.sleep(0.05)
sock.settimeout(5)
sock.sendall(message)
received = b""
while len(received) < len(message):
    chunk = sock.recv(64)
    if not chunk:
        break
    received += chunk
print(attempts, received.decode(), flush=True)
"""


def python(net: Network, namespace: str, code: str, *args: object) -> list[str]:
    """The command that runs `code` with this interpreter inside `namespace`."""
    return net.exec_argv(namespace, [sys.executable, "-c", code, *map(str, args)])


def run(argv: list[str], timeout: float = 15) -> list[str]:
    """Run a command to its end; its stdout lines (fails the test on a non-zero exit)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv[4:]} failed: {done.stderr.strip()}"
    return done.stdout.splitlines()


@contextmanager
def server(net: Network, namespace: str, count: int) -> Iterator[subprocess.Popen[str]]:
    """A SERVER in `namespace`, listening on PORT when this yields; killed on exit."""
    argv = python(net, namespace, SERVER, PORT, count)
    pipe = subprocess.PIPE
    with subprocess.Popen(argv, stdout=pipe, stderr=pipe, text=True) as proc:  # closes the pipes
        try:
            assert proc.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ)
                ready = selector.select(timeout=10) and proc.stdout.readline().strip()
            assert ready == "ready", f"no server: {proc.stderr and proc.stderr.read()}"
            yield proc
        finally:
            proc.kill()


def finish(proc: subprocess.Popen[str]) -> list[str]:
    """Wait for a SERVER that has had all its connections; its "<ip> <port>" lines."""
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, f"server failed: {err.strip()}"
    return out.splitlines()


@pytest.mark.parametrize("kind", ["preserving", "symmetric", "reset"])
def test_private_host_reaches_the_public_side(kind: NatKind) -> None:
    with nat_network(kind, kind) as net, server(net, net.public, 2) as proc:
        run(python(net, net.a, CLIENT, net.public_ip, PORT, 1))
        run(python(net, net.b, CLIENT, net.public_ip, PORT, 1))
        seen = [line.split()[0] for line in finish(proc)]
    # The public side sees the routers' addresses, never the private ones.
    assert seen == [net.a_public_ip, net.b_public_ip]


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [("preserving", "timeout"), ("symmetric", "timeout"), ("reset", "refused")],
)
def test_private_server_is_unreachable_from_the_public_side(kind: NatKind, outcome: str) -> None:
    with nat_network("preserving", kind) as net, server(net, net.b, 1):
        # The router's public address (no port mapping), and the private address itself over a
        # route the public side would need to know (FORWARD must refuse it too); in parallel.
        route = ["ip", "route", "add", "192.168.2.0/24", "via", net.b_public_ip]
        subprocess.run(net.exec_argv(net.public, route), check=True, timeout=10)
        probes = [
            subprocess.Popen(
                python(net, net.public, PROBE, target, PORT, 2),
                stdout=subprocess.PIPE,
                text=True,
            )
            for target in (net.b_public_ip, net.b_ip)
        ]
        results = [p.communicate(timeout=10)[0].strip() for p in probes]
        # The server is up: host b itself reaches it.
        assert run(python(net, net.b, PROBE, net.b_ip, PORT, 2)) == ["connected"]
    assert results == [outcome, outcome]


def punch(net: Network, seconds: float) -> list[tuple[int, str, str]]:
    """Hosts a and b both run PUNCH at once, each towards the other's router and PORT; for
    each, (exit code, stdout, stderr)."""
    pipe = subprocess.PIPE
    punches = [
        subprocess.Popen(
            python(net, host, PUNCH, peer, PORT, f"from-{host[-1]}", seconds),
            stdout=pipe,
            stderr=pipe,
            text=True,
        )
        for host, peer in ((net.a, net.b_public_ip), (net.b, net.a_public_ip))
    ]
    outputs = [p.communicate(timeout=seconds + 10) for p in punches]
    return [(p.returncode, out, err) for p, (out, err) in zip(punches, outputs, strict=True)]


def test_simultaneous_open_through_two_preserving_nats() -> None:
    with nat_network("preserving", "preserving") as net:
        results = punch(net, 5)
    for code, _, err in results:
        assert code == 0, err.strip()
    assert [out.split()[1] for _, out, _ in results] == ["from-b", "from-a"]


def test_simultaneous_open_fails_through_a_symmetric_nat() -> None:
    # The control: b's router sends b's SYN from a random port, not the one a aims at.
    with nat_network("preserving", "symmetric") as net:
        results = punch(net, 2)
    assert [code for code, _, _ in results] == [1, 1]
    assert all("no connection" in err for _, _, err in results)


def test_symmetric_nat_changes_the_source_port() -> None:
    with nat_network("symmetric", "preserving") as net, server(net, net.public, 4) as proc:
        local_a = [int(p) for p in run(python(net, net.a, CLIENT, net.public_ip, PORT, 3))]
        local_b = [int(p) for p in run(python(net, net.b, CLIENT, net.public_ip, PORT, 1))]
        mapped = [int(line.split()[1]) for line in finish(proc)]
    mapped_a, mapped_b = mapped[:3], mapped[3:]
    # --random-fully: a fresh random public port per connection (equal by chance 1 in ~64k).
    assert sum(m != local for m, local in zip(mapped_a, local_a, strict=True)) >= 2
    assert len(set(mapped_a)) == 3
    # The preserving router on the other side keeps the port it was given.
    assert mapped_b == local_b
