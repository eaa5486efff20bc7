"""A node in a background trio thread, for programs that are not trio (see `meshtalk.Mesh`).

The thread runs the profile's node exactly as `meshtalk up` would (same settings, same control
operations) and also serves the control socket, so other local tools can use the node while
this program runs. Calls from other threads enter trio with `trio.from_thread.run`, which costs
a thread hand-off (tens of microseconds), not a socket round trip.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import trio

from .daemon import node_config
from .peer.control import ControlServer, control_socket_path
from .peer.control_ops import build_operations
from .peer.node import open_node
from .profile import load_settings
from .protocol.errors import ControlError, ControlTimeout, MeshtalkError, NodeClosed, unwrap_group

__all__ = ["EmbeddedNode"]


class EmbeddedNode:
    """Start the profile's node in a daemon thread; `call` runs control operations on it."""

    def __init__(
        self, profile: Path, serve_control: bool = True, start_timeout: float = 60
    ) -> None:
        self.profile = profile
        self._settings = load_settings(profile)
        self._serve_control = serve_control
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self.operations: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._main, name="meshtalk node", daemon=True)
        self._thread.start()
        if not self._ready.wait(start_timeout):
            raise ControlError(f"the embedded node did not start within {start_timeout:g} s")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            trio.run(self._run)
        except BaseException as exc:
            leaf = unwrap_group(exc)
            self._error = leaf if isinstance(leaf, MeshtalkError) else exc
        finally:
            self._ready.set()

    async def _run(self) -> None:
        config = node_config(self._settings)
        async with open_node(self.profile, config) as node:
            self._stop = trio.Event()
            self.operations = build_operations(
                node, self.profile.name, self._stop.set, self._settings
            )
            async with trio.open_nursery() as nursery:
                if self._serve_control:
                    server = ControlServer(self.operations)
                    await nursery.start(server.serve, control_socket_path(self.profile))
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await self._stop.wait()
                nursery.cancel_scope.cancel()

    async def _call(self, op: str, args: dict[str, Any], on_event: Any, timeout: float) -> Any:
        operation = self.operations.get(op)
        if operation is None:
            raise ControlError(f"unknown control operation {op!r}")

        async def emit(event: dict[str, Any]) -> None:
            if on_event is not None:
                on_event(event)

        with trio.fail_after(timeout):
            return await operation(args, emit)

    def call(self, op: str, args: dict[str, Any], on_event: Any, timeout: float) -> Any:
        """Run one control operation on the node and return its result."""
        if self._token is None or not self._thread.is_alive():
            raise NodeClosed("the embedded node is not running")
        try:
            return trio.from_thread.run(
                self._call, op, args, on_event, timeout, trio_token=self._token
            )
        except trio.TooSlowError:
            raise ControlTimeout(f"the node did not answer {op!r} within {timeout:g} s") from None
        except trio.RunFinishedError:
            raise NodeClosed("the embedded node stopped") from None

    def close(self) -> None:
        """Stop the node and wait for its thread."""
        if self._token is not None and self._stop is not None and self._thread.is_alive():
            stop = self._stop
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(stop.set, trio_token=self._token)
        self._thread.join(timeout=30)
