"""How `Mesh` reaches a node: one `Transport` protocol, two implementations.

- `SocketTransport` (here): a running node's control socket (`meshtalk up`, or another
  program's embedded node), through `meshtalk.control.client`.
- `EmbeddedNode` (`meshtalk.facade.embedded`): a node this program runs in a background trio
  thread, called in-process.

Both run the control operations of docs/control.md, raise the same `MeshtalkError` types
(`ControlTimeout` when `timeout` passes) and hand a streaming operation's events to
`on_event` as they come.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..control.client import ControlClient, open_control
from ..protocol.errors import ControlError, ControlTimeout

__all__ = ["OnEvent", "SocketTransport", "Transport"]

OnEvent = Callable[[dict[str, Any]], None]


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

    def call(self, op: str, args: dict[str, Any], on_event: OnEvent | None, timeout: float) -> Any:
        """Run `op` on one pooled connection (a new one if none is idle)."""
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = open_control(self.profile)
        client.settimeout(timeout)
        try:
            result = client.call(op, on_event, **args)
        except TimeoutError:
            client.close()
            raise ControlTimeout(f"the node did not answer {op!r} within {timeout:g} s") from None
        except (ControlError, OSError):
            client.close()
            raise
        self._release(client)
        return result

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()
