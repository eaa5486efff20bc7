"""The node's control socket: a Unix socket in the profile, mode 0600, serving local tools.

One request at a time per connection (see `meshtalk.protocol.control`); many connections at
once. A client that goes away cancels its request (a `pair` whose terminal was closed stops
waiting). Errors are `MeshtalkError`s sent back typed; anything else is logged here and sent
as a NodeError, never allowed to stop the node.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import trio

from ..protocol.control import (
    CONTROL_SOCKET_NAME,
    MAX_CONTROL_MESSAGE,
    decode_control,
    encode_control,
    make_error,
    make_event,
    make_reply,
    read_request,
)
from ..protocol.errors import ConfigError, MeshtalkError, NodeError, ProfileLocked
from ..protocol.frames import NEED_DATA, FrameDecoder

__all__ = ["CONTROL_SOCKET_NAME", "ControlServer", "Emit", "Operation", "control_socket_path"]

_MAX_UNIX_PATH: Final = 100  # sun_path is 104 (macOS) or 108 (Linux) bytes
logger = logging.getLogger("meshtalk.control")

Emit = Callable[[dict[str, Any]], Awaitable[None]]
Operation = Callable[[dict[str, Any], Emit], Awaitable[Any]]


def control_socket_path(profile: Path) -> Path:
    """Where a profile's node listens for local tools."""
    return profile / CONTROL_SOCKET_NAME


def _remove_stale_socket(path: Path) -> None:
    """Delete a socket file left by a node that died, refusing if a node still answers."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: left over from a crash
        return
    finally:
        probe.close()
    raise ProfileLocked(f"a node already answers on {path}; stop it with `meshtalk down`")


def _remove_socket_file(path: Path) -> None:
    path.unlink(missing_ok=True)


class ControlServer:
    """Serves `operations` (op name -> handler) on the profile's control socket."""

    def __init__(self, operations: dict[str, Operation]) -> None:
        self.operations = operations
        self.connections = 0

    async def serve(self, path: Path, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on `path` until cancelled; the socket file is removed on the way out."""
        if len(os.fsencode(path)) > _MAX_UNIX_PATH:
            raise ConfigError(
                f"the control socket path {path} is too long for a Unix socket; "
                "set MESHTALK_HOME to a shorter folder"
            )
        _remove_stale_socket(path)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # created 0600: no window where others could connect
        try:
            await sock.bind(str(path))
        finally:
            os.umask(previous)
        try:
            os.chmod(path, 0o600)
            sock.listen(32)
            listener = trio.SocketListener(sock)
            task_status.started()
            await trio.serve_listeners(self._connection, [listener])
        finally:
            sock.close()
            _remove_socket_file(path)

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        decoder: FrameDecoder[dict[str, Any]] = FrameDecoder(MAX_CONTROL_MESSAGE, decode_control)
        try:
            async with stream:
                try:
                    await self._serve_requests(stream, decoder)
                except MeshtalkError as exc:  # a malformed frame: answer once, then hang up
                    await stream.send_all(encode_control(make_error(0, exc)))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if getattr(exc, "errno", None) not in (None, errno.EPIPE, errno.ECONNRESET):
                logger.info("control connection ended: %r", exc)
        finally:
            self.connections -= 1

    async def _serve_requests(
        self, stream: trio.SocketStream, decoder: FrameDecoder[dict[str, Any]]
    ) -> None:
        while True:
            message = decoder.next_frame()
            if message is NEED_DATA:
                data = await stream.receive_some(64 * 1024)
                if not data:
                    return
                decoder.receive_data(data)
                continue
            if not await self._request(stream, decoder, message):
                return

    async def _request(
        self,
        stream: trio.SocketStream,
        decoder: FrameDecoder[dict[str, Any]],
        message: dict[str, Any],
    ) -> bool:
        """Run one request; False if the client went away meanwhile."""
        given = message.get("id")
        request_id: int = given if isinstance(given, int) else 0
        client_gone = False

        async def emit(event: dict[str, Any]) -> None:
            await stream.send_all(encode_control(make_event(request_id, event)))

        async def watch_for_hangup(scope: trio.CancelScope) -> None:
            nonlocal client_gone
            while True:  # a well-behaved client sends nothing until the reply
                data = await stream.receive_some(64 * 1024)
                if not data:
                    client_gone = True
                    scope.cancel()
                    return
                decoder.receive_data(data)

        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as request_scope:
                nursery.start_soon(watch_for_hangup, request_scope)
                try:
                    request_id, op, args = read_request(message)
                    operation = self.operations.get(op)
                    if operation is None:
                        raise NodeError(f"unknown control operation {op!r}; upgrade meshtalk?")
                    reply = make_reply(request_id, await operation(args, emit))
                except MeshtalkError as exc:
                    reply = make_error(request_id, exc)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    client_gone = True
                    reply = {}
                except Exception as exc:
                    logger.exception("control operation failed")
                    reply = make_error(request_id, NodeError(f"internal error: {exc!r}"))
            nursery.cancel_scope.cancel()
        if client_gone or request_scope.cancelled_caught:
            return False
        await stream.send_all(encode_control(reply))
        return True
