"""What an HTTP client is shown of stored messages: never a message of an untrusted peer, and
every message marked with who wrote it (`content_from_peer`, the agent view's marker).

A message is shown when this node wrote it, when a trusted contact wrote it, or when it was
posted in a room (the room's membership log admitted its author). `content_from_peer` is true
for every message another peer wrote, with the agent view's notice beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..control.views import NOTICE
from ..peer.models import Contact, Trust

__all__ = ["Labels"]


class Labels:
    """Filters and labels message views (control/views.py `message_view`) for HTTP clients."""

    def __init__(self, me: str, contacts: Callable[[], Iterable[Contact]]) -> None:
        """`me`: this node's peer ID as text; `contacts`: the node's contacts now."""
        self._me = me
        self._contacts = contacts

    def trusted(self) -> set[str]:
        """The peer IDs of trusted contacts, as text."""
        return {str(c.peer_id) for c in self._contacts() if c.trust is Trust.TRUSTED}

    def visible(self, view: dict[str, Any], trusted: set[str]) -> bool:
        """Whether a client may see this message (`trusted`: from `trusted()`)."""
        author = view["author"]
        return author == self._me or author in trusted or view.get("room") is not None

    def label(self, view: dict[str, Any]) -> dict[str, Any]:
        """The view with `content_from_peer` (and the notice when another peer wrote it)."""
        from_peer = view["author"] != self._me
        labelled = {**view, "content_from_peer": from_peer}
        if from_peer:
            labelled["notice"] = NOTICE
        return labelled

    def messages(self, views: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The views a client may see, labelled."""
        trusted = self.trusted()
        return [self.label(v) for v in views if self.visible(v, trusted)]
