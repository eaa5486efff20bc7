"""mDNS: the TXT format, two nodes on loopback that find each other by mDNS alone, and no
thread or service left behind when a node stops."""

from __future__ import annotations

import threading
from pathlib import Path

import trio

from meshtalk.discovery.mdns import decode_txt, encode_txt
from meshtalk.peer.node import open_node
from meshtalk.protocol import NodeKey
from tests.test_discovery.test_node_discovery import wait_until_known
from tests.test_peer.helpers import collect, fast_config, introduce


def test_txt_records_carry_one_dnsaddr_per_address() -> None:
    peer = NodeKey.generate().peer_id
    raw = encode_txt(peer, ["/ip4/10.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4001"])
    assert raw.count(b"dnsaddr=") == 2
    assert decode_txt(raw) == (peer, ["/ip4/10.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4001"])


def test_txt_records_that_lie_or_are_garbage_give_nothing() -> None:
    a, b = NodeKey.generate().peer_id, NodeKey.generate().peer_id
    two_peers = encode_txt(a, ["/ip4/10.0.0.1/tcp/1"]) + encode_txt(b, ["/ip4/10.0.0.2/tcp/1"])
    assert decode_txt(two_peers) is None
    assert decode_txt(b"\x05hello") is None
    assert decode_txt(b"\x0ednsaddr=/bogus") is None
    bad_then_good = b"\x0cdnsaddr=\xff\xfe\xfd\xfc" + encode_txt(a, ["/ip4/10.0.0.1/tcp/1"])
    assert decode_txt(bad_then_good) == (a, ["/ip4/10.0.0.1/tcp/1"])
    assert decode_txt(b"\xff" + b"dnsaddr=") is None  # a length running past the end


async def test_two_nodes_find_each_other_on_loopback_by_mdns_alone(tmp_path: Path) -> None:
    config = fast_config(mdns=True, mdns_interfaces=["127.0.0.1"])
    async with open_node(tmp_path / "a", config) as a, open_node(tmp_path / "b", config) as b:
        started = trio.current_time()
        await wait_until_known(a, [b], timeout=5)
        await wait_until_known(b, [a], timeout=5)
        elapsed = trio.current_time() - started
        assert elapsed < 5
        # other nodes on this loopback (another test run, a pytest-xdist worker) may be found
        # too: b must be, and by mDNS alone
        assert {p.peer_id: p.sources for p in a.peers()}[b.peer_id] == ("mdns",)
        introduce([a, b], with_addresses=False)
        await a.send(b.peer_id, "found you on the LAN", wait=True, timeout=10)
        assert (await collect(b, 1))[0].text == "found you on the LAN"
        with trio.fail_after(5):  # registration may still be going on: it runs in the background
            while a.statistics().discovery.mdns.state == "starting":
                await trio.sleep(0.05)
        assert a.statistics().discovery.mdns.state == "running"
    # zeroconf's threads end with the node (trio's idle worker threads may linger: not ours)
    assert not [
        t.name for t in threading.enumerate() if "zeroconf" in t.name or "_run_loop" in t.name
    ]
