"""The discovery statistics are frozen snapshots, and `to_json()` is the JSON `status` sends."""

from __future__ import annotations

import dataclasses
import json

import pytest

from meshtalk.discovery import (
    DiscoveryStatistics,
    MdnsStatistics,
    RendezvousClient,
    RendezvousPoint,
    RendezvousSession,
)
from meshtalk.discovery.mdns import MdnsService
from meshtalk.protocol import NodeKey
from meshtalk.protocol.rendezvous import Discover, Register, Unregister

REGISTRY_KEYS = [
    "registrations",
    "record_bytes",
    "namespaces",
    "peers",
    "connections",
    "sources",
    "index_entries",
    "expiry_entries",
]


def test_a_point_s_json_is_flat_and_names_only_the_counters_that_ran() -> None:
    point = RendezvousPoint()
    assert point.statistics().to_json() == dict.fromkeys(REGISTRY_KEYS, 0)
    point.handle(b"peer", Discover("ns", None, b"not a cookie"))
    point.handle(b"peer", Register("", b"record"))
    point.handle(b"peer", Register("ns", b"not a record"))
    point.handle(b"peer", Unregister("ns"))
    stats = point.statistics()
    assert (stats.register, stats.discover, stats.unregister, stats.malformed) == (2, 1, 1, 0)
    assert stats.refused == {
        "E_INVALID_COOKIE": 1,
        "E_INVALID_NAMESPACE": 1,
        "E_INVALID_SIGNED_PEER_RECORD": 1,
    }
    assert stats.to_json() == {
        **dict.fromkeys(REGISTRY_KEYS, 0),
        "register": 2,
        "discover": 1,
        "unregister": 1,
        "refused_E_INVALID_COOKIE": 1,
        "refused_E_INVALID_NAMESPACE": 1,
        "refused_E_INVALID_SIGNED_PEER_RECORD": 1,
    }
    nested = dataclasses.asdict(stats)
    assert type(nested["refused"]) is dict
    assert list(nested["registry"]) == REGISTRY_KEYS
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.register = 0  # type: ignore[misc]
    point.handle(b"peer", Discover("ns"))
    assert stats.discover == 1  # a snapshot: the point's next request does not change it


def test_a_session_s_json_has_its_fields_in_order() -> None:
    key, point = NodeKey.generate(), NodeKey.generate().peer_id
    client = RendezvousClient(None, key, point, [])
    session = RendezvousSession(client, "meshtalk/test", list, lambda record: None)
    assert session.statistics().to_json() == {
        "point": str(point),
        "state": "starting",
        "last_error": None,
        "ttl": None,
        "registrations": 0,
        "discovered": 0,
        "invalid_records": 0,
    }


def test_mdns_json_names_why_it_failed_in_its_state() -> None:
    service = MdnsService(NodeKey.generate().peer_id, list, lambda peer, addresses: None)
    assert service.statistics() == MdnsStatistics(state="starting", found=0, error=None)
    assert service.statistics().to_json() == {"state": "starting", "found": 0}
    failed = MdnsStatistics(state="failed", found=0, error="[Errno 19] No such device")
    assert failed.to_json() == {"state": "failed: [Errno 19] No such device", "found": 0}


def test_discovery_json_is_what_status_sends() -> None:
    point = RendezvousPoint()
    session = MdnsStatistics(state="running", found=2, error=None)
    stats = DiscoveryStatistics(rendezvous=(), point=point.statistics(), mdns=session)
    assert stats.to_json() == {
        "rendezvous": [],
        "point": dict.fromkeys(REGISTRY_KEYS, 0),
        "mdns": {"state": "running", "found": 2},
    }
    assert DiscoveryStatistics((), None, None).to_json() == {
        "rendezvous": [],
        "point": None,
        "mdns": None,
    }
    json.dumps(dataclasses.asdict(stats))  # asdict gives plain, JSON-ready values too
