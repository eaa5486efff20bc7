"""What became of a send whose answer was lost: `Mesh.send` asks the node's store.

`Mesh.send` chooses the message's id itself (a UUIDv7) and passes it with the send, so the
answer is definite: the node commits a message durably before it answers (and before the
`queued` event), so once a node runs the profile again its store either holds a message of its
own with that id (queued) or not (not queued). Sending again with the same id is idempotent
(the node returns the id it holds), so a retry can never double a message.
"""

from __future__ import annotations

import time
from typing import Any, Final, Protocol

from ..protocol.errors import ControlError, DeliveryTimeout, NodeNotRunning, NotQueued
from .transport import OnEvent, ReplyLost

__all__ = ["SendRecovery"]

_HISTORY_LIMIT: Final = 200
_POLL: Final = 0.2


class Runner(Protocol):
    """`Mesh._run`: one control operation, a lost answer raised as ReplyLost."""

    def __call__(
        self, op: str, on_event: OnEvent | None, deadline: float | None, args: dict[str, Any]
    ) -> Any:
        """The operation's result."""
        ...


class SendRecovery:
    """One `Mesh.send`'s way to find out whether a lost attempt queued its message."""

    def __init__(self, run: Runner, to: str, conversation: str | None, message_id: str) -> None:
        self._run = run
        self._conversation = conversation or to  # a contact names the direct conversation
        self.message_id = message_id
        self.queued_id: str | None = None
        """The id in the current attempt's `queued` event, once the node sent it."""

    def begin(self) -> None:
        """Start an attempt."""
        self.queued_id = None

    def on_event(self, event: dict[str, Any]) -> None:
        """The send operation's events: `queued` says the node has committed the message."""
        if "queued" in event:
            self.queued_id = str(event["queued"])

    def find(self, patience: float) -> str | None:
        """The message's id if the node's store holds it (the lost attempt queued it), else
        None. Waits up to `patience` s for a node to answer (one that is restarting); after
        that, ControlError: the outcome is unknown."""
        for message in self._history(patience):
            if message["direction"] == "out" and message["id"] == self.message_id:
                return self.message_id
        return None

    def settle(self, message_id: str | None, wait: bool) -> str:
        """The send's outcome once a lost attempt was looked for: its id, DeliveryTimeout
        (queued, delivery not confirmed) or NotQueued (not queued)."""
        if message_id is None:
            raise NotQueued(
                "the node went away twice before it queued the message: it was not queued "
                "and nothing was sent; send it again"
            )
        if wait:
            raise DeliveryTimeout(
                f"the node restarted while the message waited for delivery; it is queued "
                f"(id {message_id}) and will still be delivered"
            ).about(bytes.fromhex(message_id))
        return message_id

    def _history(self, patience: float) -> list[dict[str, Any]]:
        give_up = time.monotonic() + patience
        args = {"conversation": self._conversation, "limit": _HISTORY_LIMIT}
        while True:
            try:
                history: list[dict[str, Any]] = self._run("history", None, None, args)
                return history
            except (NodeNotRunning, ReplyLost) as exc:
                if time.monotonic() >= give_up:
                    raise ControlError(
                        f"the node went away while queuing the message and did not answer "
                        f"again within {patience:g} s ({exc}), so it is not known whether the "
                        "message was queued: look for it with `meshtalk history` before "
                        "sending it again"
                    ) from None
                time.sleep(_POLL)
