"""Contacts and refusals: the `contacts` and `refusals` tables.

Owns who this node knows (name, trust, the addresses given with the contact, when it was last
connected) and the bounded tally of peers whose deliveries were refused. Addresses learned from
discovery live in the address book instead (addressbook.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from ...protocol.envelope import peer_id_from_bytes
from ...protocol.errors import ConfigError
from ...protocol.keys import PeerId
from ..models import Contact, Trust
from .database import Database
from .rows import contact_from_row

__all__ = ["ContactTable", "DEFAULT_MAX_REFUSALS"]

DEFAULT_MAX_REFUSALS: Final = 1_000
"""Refused peers remembered (the most recent win)."""
_MAX_REFUSAL_TEXT: Final = 1_000
_CONTACT_COLUMNS: Final = "peer_id, name, trust, addresses, added_ms, last_seen_ms"


class ContactTable:
    """The contacts (and refusals) of a store."""

    def __init__(self, db: Database, max_refusals: int = DEFAULT_MAX_REFUSALS) -> None:
        self._db = db
        self.max_refusals = max_refusals

    def upsert(
        self,
        peer: PeerId,
        name: str | None,
        addresses: Sequence[str],
        trust: Trust,
        now_ms: int,
    ) -> Contact:
        """Add a contact, or update its name (if given), trust and addresses (merged)."""
        with self._db.transaction() as db:
            if name is not None:
                owner = db.execute(
                    "SELECT peer_id FROM contacts WHERE name = ?", (name,)
                ).fetchone()
                if owner is not None and owner[0] != peer.to_bytes():
                    raise ConfigError(f"the name {name!r} already belongs to another contact")
            row = db.execute(
                "SELECT addresses, name FROM contacts WHERE peer_id = ?", (peer.to_bytes(),)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO contacts (peer_id, name, trust, addresses, added_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (peer.to_bytes(), name, trust.value, json.dumps(list(addresses)), now_ms),
                )
            else:
                merged = list(dict.fromkeys([*addresses, *json.loads(row[0])]))
                db.execute(
                    "UPDATE contacts SET name = ?, trust = ?, addresses = ? WHERE peer_id = ?",
                    (
                        name if name is not None else row[1],
                        trust.value,
                        json.dumps(merged),
                        peer.to_bytes(),
                    ),
                )
        contact = self.get(peer)
        assert contact is not None
        return contact

    def remove(self, peer: PeerId) -> bool:
        """Forget a contact; its stored messages stay. Returns whether it existed."""
        with self._db.transaction() as db:
            cursor = db.execute("DELETE FROM contacts WHERE peer_id = ?", (peer.to_bytes(),))
            return cursor.rowcount > 0

    def get(self, peer: PeerId) -> Contact | None:
        """The contact with this peer ID, or None."""
        row = self._db.one(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE peer_id = ?", (peer.to_bytes(),)
        )
        return None if row is None else contact_from_row(row)

    def all(self) -> list[Contact]:
        """All contacts, by name."""
        rows = self._db.all(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts ORDER BY name IS NULL, name, added_ms"
        )
        return [contact_from_row(row) for row in rows]

    def note_seen(self, peer: PeerId, now_ms: int) -> None:
        """Record that a contact was just connected."""
        with self._db.transaction() as db:
            db.execute(
                "UPDATE contacts SET last_seen_ms = ? WHERE peer_id = ?", (now_ms, peer.to_bytes())
            )

    # -- refusals ---------------------------------------------------------------------------

    def record_refusal(self, peer: PeerId, error: str, now_ms: int) -> None:
        """Count a refused attempt by `peer` to deliver to this node."""
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO refusals (peer_id, count, last_ms, last_error) VALUES (?, 1, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET count = count + 1, last_ms = excluded.last_ms,"
                " last_error = excluded.last_error",
                (peer.to_bytes(), now_ms, error[:_MAX_REFUSAL_TEXT]),
            )
            # Bounded like the address book: every stranger that opens a stream lands here.
            db.execute(
                "DELETE FROM refusals WHERE peer_id IN (SELECT peer_id FROM refusals "
                "ORDER BY last_ms DESC, rowid DESC LIMIT -1 OFFSET ?)",
                (self.max_refusals,),
            )

    def refusals(self) -> dict[PeerId, int]:
        """How many deliveries each refused peer attempted."""
        rows = self._db.all("SELECT peer_id, count FROM refusals")
        return {peer_id_from_bytes(row[0]): row[1] for row in rows}
