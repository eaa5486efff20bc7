"""The node's contact methods, a mixin of `Node` (peer/contacts.py does the work)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .models import Contact, Trust

if TYPE_CHECKING:
    from ..protocol.keys import PeerId
    from .contacts import Contacts

__all__ = ["NodeContacts"]


class NodeContacts:
    """Contacts and trust, on a node whose `_contacts` part is wired."""

    _contacts: Contacts

    def resolve(self, ref: str | PeerId) -> PeerId:
        """A contact name or peer ID (text or PeerId) as a PeerId."""
        return self._contacts.resolve(ref)

    def add_contact(
        self,
        peer: str | PeerId,
        name: str | None = None,
        addresses: Sequence[str] = (),
        trust: Trust = Trust.TRUSTED,
    ) -> Contact:
        """Add or update a contact (addresses are merged); trusted contacts may deliver."""
        return self._contacts.add(peer, name, addresses, trust)

    def remove_contact(self, ref: str | PeerId) -> None:
        """Forget a contact; its messages stay in the store."""
        self._contacts.remove(ref)

    def set_trust(self, ref: str | PeerId, trust: Trust) -> Contact:
        """Trust or block a contact."""
        return self._contacts.set_trust(ref, trust)

    def contact(self, ref: str | PeerId) -> Contact:
        """One contact by name or peer ID."""
        return self._contacts.get(ref)

    def contacts(self) -> list[Contact]:
        """Every contact."""
        return self._contacts.all()
