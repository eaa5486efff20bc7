"""How `Mesh` reaches a node: one `Transport` protocol, two implementations.

- `SocketTransport` (here): a running node's control socket (`meshtalk up`, or another
  program's embedded node), through `meshtalk.control.client`.
- `EmbeddedNode` (`meshtalk.facade.embedded`): a node this program runs in a background trio
  thread, called in-process.

Both run the control operations of docs/control.md, raise the same `MeshtalkError` types
(`ControlTimeout` when `timeout` passes) and hand a streaming operation's events to
`on_event` as they come.

A node that restarted (`meshtalk down` and `up`, a crash, kill -9) leaves `SocketTransport`
with dead pooled connections. Those are found and dropped before use, and a call whose
connection breaks is run again once on a new connection when that is safe: when the request
provably never reached the node (it could not be written), and for operations that only read
(`READ_ONLY`) also when the answer was lost. Otherwise the call raises `ReplyLost`: the node got
the request and went away before answering, so only the caller can tell what became of it
(`Mesh.send` looks for the message in the store).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..control.client import ControlClient, open_control
from ..protocol.errors import ControlTimeout

__all__ = ["READ_ONLY", "OnEvent", "ReplyLost", "SocketTransport", "Transport"]

OnEvent = Callable[[dict[str, Any]], None]

READ_ONLY = frozenset(
    {"hello", "whoami", "status", "peers", "contacts.list", "history", "conversations", "receive"}
)
"""Operations that change nothing a caller could see twice, so they may be run again after a
lost answer. Not `receive` with a `consumer`: the node moves that consumer past what the lost
answer held, so a repeated call would never report those messages (`_repeatable`)."""


def _repeatable(op: str, args: dict[str, Any]) -> bool:
    """Whether running `op` again after its answer was lost loses or doubles nothing."""
    return op in READ_ONLY and not (op == "receive" and args.get("consumer") is not None)


class ReplyLost(Exception):
    """The node got a request and went away before answering it: whether it ran is unknown.

    Not a MeshtalkError: `Mesh` turns it into one that says what to do, after finding out
    what it can (for a send, whether the message was queued).
    """

    def __init__(self, op: str, reason: str) -> None:
        super().__init__(f"the node went away during {op!r} before answering ({reason})")
        self.op = op


class Transport(Protocol):
    """A connection to one node that runs control operations; safe to call from any thread."""

    def call(self, op: str, args: dict[str, Any], on_event: OnEvent | None, timeout: float) -> Any:
        """Run control operation `op` with `args`, within `timeout` seconds; its result."""
        ...

    def close(self) -> None:
        """Let go of the node (an embedded node stops; a daemon keeps running)."""
        ...


class SocketTransport:
    """Calls over the control socket; a small pool of connections, one call per connection."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self._idle: list[ControlClient] = []
        self._lock = threading.Lock()
        self._release(open_control(profile))  # fails now with NodeNotRunning if there is no node

    def _release(self, client: ControlClient) -> None:
        with self._lock:
            self._idle.append(client)

    def _take(self) -> ControlClient:
        """An idle connection the node has not hung up on, or a new one (NodeNotRunning)."""
        while True:
            with self._lock:
                client = self._idle.pop() if self._idle else None
            if client is None:
                return open_control(self.profile)
            if client.is_open():
                return client
            client.close()  # the node stopped since this connection was last used

    def call(self, op: str, args: dict[str, Any], on_event: OnEvent | None, timeout: float) -> Any:
        """Run `op` on one pooled connection (a new one if none is idle).

        A broken connection is retried once on a new one when that cannot run `op` twice (see
        the module's docstring); otherwise ReplyLost.
        """
        for attempt in (1, 2):
            client = self._take()
            client.settimeout(timeout)
            try:
                result = client.call(op, on_event, **args)
            except BaseException as exc:
                client.close()  # the node's own error answer too: a new connection is cheap
                if isinstance(exc, TimeoutError):
                    raise ControlTimeout(
                        f"the node did not answer {op!r} within {timeout:g} s"
                    ) from None
                if not client.lost:
                    raise  # the node's own answer, or a failure of this machine
                if attempt == 1 and (not client.request_sent or _repeatable(op, args)):
                    continue  # never reached the node, or harmless to run again
                if not client.request_sent:
                    raise
                raise ReplyLost(op, str(exc)) from None
            self._release(client)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()
