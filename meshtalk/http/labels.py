"""What an HTTP client is shown of stored messages: never a message of an untrusted peer, and
every message marked with who wrote it (`content_from_peer`, the agent view's marker).

A message is shown when this node wrote it, when a trusted contact wrote it, or when it was
posted in a room (the room's membership log admitted its author). `content_from_peer` is true
for every message another peer wrote, with the agent view's notice beside it. A conversation
(in the list, or exported as a transcript) is shown when it is a room this node holds or when
every other member is a trusted contact: a stranger's conversation (`accept = "anyone"`) is
neither listed nor exported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..control.views import NOTICE
from ..peer.models import Contact, Trust
from ..protocol.errors import UnknownPeer

__all__ = ["Labels"]


class Labels:
    """Filters and labels message views (control/views.py `message_view`) for HTTP clients."""

    def __init__(
        self,
        me: str,
        contacts: Callable[[], Iterable[Contact]],
        is_room: Callable[[bytes], bool],
        members: Callable[[bytes], Iterable[Any]],
    ) -> None:
        """`me`: this node's peer ID as text; `contacts`: the node's contacts now; `is_room`:
        whether a conversation id is a room this node holds; `members`: a conversation's."""
        self._me = me
        self._contacts = contacts
        self._is_room = is_room
        self._members = members

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

    def conversation_visible(self, conversation: bytes, trusted: set[str]) -> bool:
        """Whether a client may see a conversation: a room held here, or one whose other
        members are all trusted contacts."""
        if self._is_room(conversation):
            return True
        return all(str(m) == self._me or str(m) in trusted for m in self._members(conversation))

    def conversations(self, views: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation views (the `conversations` operation's) a client may see."""
        trusted = self.trusted()
        return [v for v in views if self.conversation_visible(bytes.fromhex(v["id"]), trusted)]

    def transcript(self, exported: dict[str, Any]) -> dict[str, Any]:
        """The `export` operation's result, if a client may see that conversation."""
        if not self.conversation_visible(bytes.fromhex(exported["conversation"]), self.trusted()):
            raise UnknownPeer(
                "that conversation is with a peer that is not a trusted contact: the HTTP API "
                "shows none of its messages (`meshtalk export` on this machine still can)"
            )
        return exported

    def shown(self, kind: str, result: Any) -> Any:
        """What a client may see of a route's `result` (`kind`: the route's `shown`)."""
        if kind == "messages":
            return self.messages(result)
        if kind == "conversations":
            return self.conversations(result)
        return result
