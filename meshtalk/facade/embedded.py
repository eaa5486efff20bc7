"""A node in a background trio thread, for programs that are not trio (see `meshtalk.Mesh`).

The thread runs the profile's node exactly as `meshtalk up` does (`serve_profile`: same
settings, same control operations, the control socket too, so other local tools can use the
node while this program runs). Calls from other threads enter trio with
`trio.from_thread.run`: a thread hand-off, not a socket round trip.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from pathlib import Path
from typing import Any, Final

import trio

from ..control.server import Operation
from ..profile.settings import load_settings
from ..protocol.errors import ControlError, ControlTimeout, MeshtalkError, NodeClosed, unwrap_group
from .daemon import serve_profile
from .transport import OnEvent

__all__ = ["EmbeddedNode"]


_START_TIMEOUT: Final = 60.0


class EmbeddedNode:
    """Start the profile's node in a daemon thread; `call` runs control operations on it.

    A `meshtalk.facade.transport.Transport`, like the control socket's `SocketTransport`.
    """

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self._settings = load_settings(profile)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self.operations: dict[str, Operation] = {}
        self._thread = threading.Thread(target=self._main, name="meshtalk node", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise ControlError(f"the embedded node did not start within {_START_TIMEOUT:g} s")
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
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as nursery:
                _, self.operations = await nursery.start(
                    functools.partial(serve_profile, self.profile, self._settings)
                )
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()

    async def _call(
        self, op: str, args: dict[str, Any], on_event: OnEvent | None, timeout: float
    ) -> Any:
        operation = self.operations.get(op)
        if operation is None:
            raise ControlError(f"unknown control operation {op!r}")

        async def emit(event: dict[str, Any]) -> None:
            if on_event is not None:
                on_event(event)

        with trio.fail_after(timeout):
            return await operation(args, emit)

    def call(self, op: str, args: dict[str, Any], on_event: OnEvent | None, timeout: float) -> Any:
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
        scope = self._scope
        if self._token is not None and scope is not None and self._thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(scope.cancel, trio_token=self._token)
        self._thread.join(timeout=30)
