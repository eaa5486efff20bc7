"""The address book on a real store file: sources, order, bounds, and the schema upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from meshtalk.peer.models import Trust
from meshtalk.peer.store import AddressSource, Store
from meshtalk.peer.store.schema import MIGRATIONS
from meshtalk.protocol import NodeKey

A1, A2, A3 = "/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.3/tcp/1"


def test_addresses_keep_every_source_and_come_most_recent_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    peer = NodeKey.generate().peer_id
    assert store.book.learn(peer, [A1, A2], AddressSource.RENDEZVOUS, 1000)
    assert not store.book.learn(peer, [A1], AddressSource.RENDEZVOUS, 2000)  # nothing new
    assert not store.book.learn(peer, [A2], AddressSource.MDNS, 3000)  # new source, old address
    known = store.book.addresses(peer)
    assert [(k.address, k.source, k.last_seen_ms) for k in known] == [
        (A2, AddressSource.MDNS, 3000),
        (A1, AddressSource.RENDEZVOUS, 2000),
        (A2, AddressSource.RENDEZVOUS, 1000),
    ]
    assert known[1].first_seen_ms == 1000
    store.close()
    reopened = Store(tmp_path / "store.db")  # the book outlives the process
    assert len(reopened.book.addresses(peer)) == 3
    assert sorted(k.address for k in reopened.book.addresses(peer)) == [A1, A2, A2]


def test_each_peer_keeps_only_its_most_recent_addresses(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    store.book.max_per_peer = 4
    peer = NodeKey.generate().peer_id
    for n in range(10):
        store.book.learn(peer, [f"/ip4/10.0.0.{n}/tcp/1"], AddressSource.MDNS, n)
    assert [k.address for k in store.book.addresses(peer)] == [
        f"/ip4/10.0.0.{n}/tcp/1" for n in (9, 8, 7, 6)
    ]


def test_strangers_are_evicted_first_contacts_never(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    store.book.max_peers = 3
    friend = NodeKey.generate().peer_id
    store.contacts.upsert(friend, "friend", [], Trust.TRUSTED, 0)
    store.book.learn(friend, [A1], AddressSource.MDNS, 0)  # the oldest of all
    strangers = [NodeKey.generate().peer_id for _ in range(6)]
    for n, stranger in enumerate(strangers, start=1):
        store.book.learn(stranger, [A2], AddressSource.RENDEZVOUS, n)
    left = {k.peer_id for k in store.book.everything()}
    assert left == {friend, *strangers[-3:]}


def test_a_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version=1;")
    db.execute("INSERT INTO settings (key, value) VALUES ('kept', 'yes')")
    db.commit()
    db.close()
    store = Store(path)
    assert store.db.one("PRAGMA user_version")[0] == len(MIGRATIONS)
    assert store.db.get_setting("kept") == "yes"
    peer = NodeKey.generate().peer_id
    assert store.book.learn(peer, [A3], AddressSource.BOOTSTRAP, 5)
