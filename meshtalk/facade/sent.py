"""What became of a send whose answer was lost: `Mesh.send` asks the node's store.

The node commits a message durably before it answers (and before the `queued` event), so once
a node runs the profile again its store says whether the lost send was queued: an outgoing
message with the same text in the same conversation, stamped after the send began, that no
other send of this `Mesh` returned. `SentIds` remembers the ids this `Mesh` returned, so two
lost sends of the same text are not both matched to one stored message.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Final, Protocol

from ..protocol.errors import ControlError, DeliveryTimeout, NodeNotRunning, NotQueued
from .transport import OnEvent, ReplyLost

__all__ = ["SendRecovery", "SentIds"]

_CLOCK_SLACK_MS: Final = 2000  # the node stamps a message with its own reading of this clock
_HISTORY_LIMIT: Final = 200
_POLL: Final = 0.2


class Runner(Protocol):
    """`Mesh._run`: one control operation, a lost answer raised as ReplyLost."""

    def __call__(
        self, op: str, on_event: OnEvent | None, deadline: float | None, args: dict[str, Any]
    ) -> Any:
        """The operation's result."""
        ...


class SentIds:
    """The ids of the latest messages a `Mesh` sent (a bounded set; safe from any thread)."""

    def __init__(self, keep: int = 4096) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def claim(self, message_id: str) -> bool:
        """Remember `message_id` as returned by a send; False if it already was."""
        with self._lock:
            if message_id in self._ids:
                return False
            self._ids[message_id] = None
            while len(self._ids) > self._keep:
                self._ids.popitem(last=False)
            return True


class SendRecovery:
    """One `Mesh.send`'s way to find out whether a lost attempt queued its message."""

    def __init__(
        self, run: Runner, sent: SentIds, to: str, conversation: str | None, text: str
    ) -> None:
        self._run = run
        self._sent = sent
        self._conversation = conversation or to  # a contact names the direct conversation
        self._text = text
        self.queued_id: str | None = None
        """The id in the current attempt's `queued` event, once the node sent it."""

    def begin(self) -> float:
        """Start an attempt; the time it began (ms since the epoch)."""
        self.queued_id = None
        return time.time() * 1000

    def on_event(self, event: dict[str, Any]) -> None:
        """The send operation's events: `queued` says the node has committed the message."""
        if "queued" in event:
            self.queued_id = str(event["queued"])

    def claim(self, message_id: str) -> str:
        """`message_id`, remembered as returned by this Mesh."""
        self._sent.claim(message_id)
        return message_id

    def find(self, started_ms: float, patience: float) -> str | None:
        """The id of the message the lost attempt (begun at `started_ms`) queued, or None if
        the node's store has no such message. Waits up to `patience` s for a node to answer
        (one that is restarting); after that, ControlError: the outcome is unknown."""
        for message in self._history(patience):
            if (
                message["direction"] == "out"
                and message["text"] == self._text
                and message["timestamp_ms"] >= started_ms - _CLOCK_SLACK_MS
                and self._sent.claim(message["id"])
            ):
                return str(message["id"])
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
            ).about(bytes.fromhex(self.claim(message_id)))
        return self.claim(message_id)

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
