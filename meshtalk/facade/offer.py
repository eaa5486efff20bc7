"""`PairingOffer`: a pairing code made by `Mesh.start_pairing`, waiting for the other side."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from ..protocol.errors import ControlError
from .transport import OnEvent

__all__ = ["PairingOffer"]


class Caller(Protocol):
    """What an offer needs of its `Mesh`: `call` and the default `timeout`."""

    timeout: float

    def call(
        self, op: str, on_event: OnEvent | None = None, deadline: float | None = None, **args: Any
    ) -> Any:
        """Run a control operation within `deadline` seconds."""
        ...


class PairingOffer:
    """A pairing code waiting for the other side (a background thread holds the request)."""

    def __init__(self, mesh: Caller, ttl: float | None) -> None:
        self._shown = threading.Event()
        self.code: str | None = None
        self.expires_ms: int | None = None
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        wait_for = (ttl or 3600) + mesh.timeout

        def show(event: dict[str, Any]) -> None:
            self.code, self.expires_ms = event["code"], event["expires_ms"]
            self._shown.set()

        def run() -> None:
            try:
                self._result = mesh.call("pair.offer", show, wait_for, ttl=ttl)
            except BaseException as exc:  # handed to whoever waits
                self._error = exc
            finally:
                self._shown.set()
                self._done.set()

        threading.Thread(target=run, name="meshtalk pairing", daemon=True).start()
        self._shown.wait(mesh.timeout)
        if self.code is None:
            self._done.wait(1)
            raise self._error or ControlError("the node did not make a pairing code")

    def done(self) -> bool:
        """Whether the pairing finished (either way)."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """The new contact, once the other side joined; raises WrongCode, CodeExpired, ..."""
        if not self._done.wait(timeout):
            raise ControlError(f"the code {self.code} was not used within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result
