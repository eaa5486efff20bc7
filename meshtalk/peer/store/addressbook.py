"""The address book: every address learned for a peer, with its source and last-seen time.

Addresses come from rendezvous points (signed peer records), mDNS, the bootstrap list, the
peer's own HELLO-time identify data and connections that worked. They outlive every source: when
the rendezvous point is gone, a peer met earlier is still dialed at the addresses it had.

The book is bounded: at most `max_per_peer` rows (address, source) per peer, the most recently
seen win, and `max_peers` peers that are not contacts, the least recently seen go first; so a
hostile rendezvous point or LAN cannot grow it without end. It owns the `addresses` table.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ...net.addresses import without_peer_id
from ...protocol.envelope import peer_id_from_bytes
from ...protocol.keys import PeerId
from .database import Database

__all__ = ["AddressBook", "AddressSource", "KnownAddress"]

DEFAULT_MAX_PER_PEER: Final = 32  # rows: one per address and source
DEFAULT_MAX_PEERS: Final = 10_000


class AddressSource(enum.StrEnum):
    """Where an address was learned."""

    CONTACT = "contact"
    RENDEZVOUS = "rendezvous"
    MDNS = "mdns"
    BOOTSTRAP = "bootstrap"
    IDENTIFY = "identify"
    CONNECTION = "connection"
    ROOM = "room"


@dataclass(frozen=True, slots=True)
class KnownAddress:
    """One address of one peer, and where and when it was last learned."""

    peer_id: PeerId
    address: str
    source: AddressSource
    first_seen_ms: int
    last_seen_ms: int


class AddressBook:
    """The `addresses` table of a store."""

    def __init__(
        self,
        db: Database,
        max_per_peer: int = DEFAULT_MAX_PER_PEER,
        max_peers: int = DEFAULT_MAX_PEERS,
    ) -> None:
        self._db = db
        self.max_per_peer = max_per_peer
        self.max_peers = max_peers

    def learn(
        self, peer: PeerId, addresses: Sequence[str], source: AddressSource, now_ms: int
    ) -> bool:
        """Record addresses seen now; True if any of them was new for this peer."""
        addresses = [without_peer_id(a) for a in addresses]
        if not addresses:
            return False
        key = peer.to_bytes()
        with self._db.transaction() as db:
            rows = db.execute("SELECT address FROM addresses WHERE peer_id = ?", (key,)).fetchall()
            known = {row[0] for row in rows}
            db.executemany(
                "INSERT INTO addresses (peer_id, address, source, first_seen_ms, last_seen_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (peer_id, address, source) DO UPDATE SET "
                "last_seen_ms = excluded.last_seen_ms",
                [(key, a, source.value, now_ms, now_ms) for a in dict.fromkeys(addresses)],
            )
            new = bool(set(addresses) - known)
            if len(rows) + len(addresses) > self.max_per_peer:
                db.execute(
                    "DELETE FROM addresses WHERE peer_id = ? AND rowid NOT IN (SELECT rowid "
                    "FROM addresses WHERE peer_id = ? ORDER BY last_seen_ms DESC LIMIT ?)",
                    (key, key, self.max_per_peer),
                )
            if not rows:
                self._evict_strangers(db)
        return new

    def _evict_strangers(self, db: sqlite3.Connection) -> None:
        """Keep at most max_peers peers that are not contacts (least recently seen go)."""
        count = db.execute(
            "SELECT COUNT(DISTINCT peer_id) FROM addresses "
            "WHERE peer_id NOT IN (SELECT peer_id FROM contacts)"
        ).fetchone()[0]
        if count <= self.max_peers:
            return
        db.execute(
            "DELETE FROM addresses WHERE peer_id IN (SELECT peer_id FROM addresses "
            "WHERE peer_id NOT IN (SELECT peer_id FROM contacts) GROUP BY peer_id "
            "ORDER BY MAX(last_seen_ms) LIMIT ?)",
            (count - self.max_peers,),
        )

    def addresses(self, peer: PeerId) -> list[KnownAddress]:
        """Known addresses of one peer, most recently seen first."""
        rows = self._db.all(
            "SELECT peer_id, address, source, first_seen_ms, last_seen_ms FROM addresses "
            "WHERE peer_id = ? ORDER BY last_seen_ms DESC, address",
            (peer.to_bytes(),),
        )
        return [_known(row) for row in rows]

    def everything(self) -> list[KnownAddress]:
        """Every known address, by peer and most recently seen first."""
        rows = self._db.all(
            "SELECT peer_id, address, source, first_seen_ms, last_seen_ms FROM addresses "
            "ORDER BY peer_id, last_seen_ms DESC, address"
        )
        return [_known(row) for row in rows]


def _known(row: tuple[bytes, str, str, int, int]) -> KnownAddress:
    return KnownAddress(peer_id_from_bytes(row[0]), row[1], AddressSource(row[2]), row[3], row[4])
