"""Contacts and trust: who this node knows by name, and who may deliver to it.

Reads come from an in-memory cache of the contacts table, dropped on every change, because the
inbound path asks `is_trusted` for every message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from ..net.host import parse_multiaddrs
from ..protocol.errors import ConfigError, InvalidPeerId, UnknownPeer
from ..protocol.keys import PeerId
from .models import Contact, Trust, check_contact_name

if TYPE_CHECKING:
    from .ports import Clock
    from .store.contacts import ContactTable

__all__ = ["Accept", "Contacts"]

Accept = Literal["contacts", "anyone"]


class Contacts:
    """The contact list of one node, and its trust policy (a `TrustPolicy` port)."""

    def __init__(
        self,
        own: PeerId,
        table: Callable[[], ContactTable],
        clock: Clock,
        accept: Accept,
        on_change: Callable[[PeerId], None],
    ) -> None:
        """`table`: the store's contacts (raises NodeClosed while the node is stopped);
        `on_change(peer)`: a contact was added or changed (its link may retry now)."""
        self._own = own
        self._table = table
        self._clock = clock
        self._accept = accept
        self._on_change = on_change
        self._cache: dict[PeerId, Contact] | None = None

    def _contacts(self) -> dict[PeerId, Contact]:
        if self._cache is None:
            self._cache = {c.peer_id: c for c in self._table().all()}
        return self._cache

    def forget_cache(self) -> None:
        """Drop the cache (the store changed under it, or the node stopped)."""
        self._cache = None

    def resolve(self, ref: str | PeerId) -> PeerId:
        """A contact name or peer ID (text or PeerId) as a PeerId."""
        if isinstance(ref, PeerId):
            return ref
        for contact in self._contacts().values():
            if contact.name == ref:
                return contact.peer_id
        try:
            return PeerId.from_string(ref)
        except InvalidPeerId:
            raise UnknownPeer(f"no contact is named {ref!r}, and it is not a peer ID") from None

    def add(
        self,
        peer: str | PeerId,
        name: str | None = None,
        addresses: Sequence[str] = (),
        trust: Trust = Trust.TRUSTED,
    ) -> Contact:
        """Add or update a contact (addresses are merged); trusted contacts may deliver."""
        peer_id = peer if isinstance(peer, PeerId) else PeerId.from_string(peer)
        if peer_id == self._own:
            raise ConfigError("a node cannot be its own contact")
        if name is not None:
            check_contact_name(name)
        parse_multiaddrs(addresses)
        contact = self._table().upsert(peer_id, name, addresses, trust, self._clock())
        self._cache = None
        self._on_change(peer_id)
        return contact

    def remove(self, ref: str | PeerId) -> None:
        """Forget a contact; its messages stay in the store."""
        peer = self.resolve(ref)
        if not self._table().remove(peer):
            raise UnknownPeer(f"{ref} is not a contact")
        self._cache = None

    def set_trust(self, ref: str | PeerId, trust: Trust) -> Contact:
        """Trust or block a contact."""
        return self.add(self.get(ref).peer_id, None, (), trust)

    def get(self, ref: str | PeerId) -> Contact:
        """One contact by name or peer ID."""
        contact = self._contacts().get(self.resolve(ref))
        if contact is None:
            raise UnknownPeer(f"{ref} is not a contact; add it first")
        return contact

    def find(self, peer: PeerId) -> Contact | None:
        """The contact for `peer`, or None."""
        return self._contacts().get(peer)

    def all(self) -> list[Contact]:
        """Every contact."""
        return list(self._contacts().values())

    def names(self) -> dict[PeerId, str | None]:
        """Every contact's name by peer ID."""
        return {peer: contact.name for peer, contact in self._contacts().items()}

    def is_trusted(self, peer: PeerId) -> bool:
        """Whether `peer` may deliver messages to this node."""
        contact = self._contacts().get(peer)
        if contact is None:
            return self._accept == "anyone"
        return contact.trust is Trust.TRUSTED

    def seen(self, peer: PeerId) -> None:
        """`peer` is connected now: remember when."""
        self._table().note_seen(peer, self._clock())
        self._cache = None
