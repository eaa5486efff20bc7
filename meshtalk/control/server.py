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
from typing import TYPE_CHECKING, Any, Final

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
from ..protocol.errors import ConfigError, MeshtalkError, NodeError, ProfileLocked, unwrap_group
from ..protocol.frames import NEED_DATA, FrameDecoder

if TYPE_CHECKING:
    from trio_typing import TaskStatus  # py-libp2p's trio-typing stubs stand in for trio's

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
    # A plain function: unlinking a socket file does not block, whatever ASYNC240 assumes.
    path.unlink(missing_ok=True)


class ControlServer:
    """Serves `operations` (op name -> handler) on the profile's control socket."""

    def __init__(self, operations: dict[str, Operation]) -> None:
        self.operations = operations

    async def serve(
        self, path: Path, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
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
        """Serve one client. Whatever ends it (a hang-up, a reset, a bug) ends that connection
        only: it never reaches serve_listeners, which would stop the node. The error may come
        wrapped in the connection nursery's exception group."""
        try:
            async with stream:
                await _Connection(self.operations, stream).serve()
        except Exception as error:
            exc = unwrap_group(error)
            if not _only_hang_ups(error):
                logger.error("control connection failed; the node goes on", exc_info=error)
            elif getattr(exc, "errno", None) not in (None, errno.EPIPE, errno.ECONNRESET):
                logger.info("control connection ended: %r", exc)


_HANG_UPS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
"""How a client going away shows up on the server's side of its connection."""


def _only_hang_ups(error: Exception) -> bool:
    """Whether `error` (or every error of its group) is a client going away."""
    if isinstance(error, BaseExceptionGroup):
        return error.split(_HANG_UPS)[1] is None
    return isinstance(error, _HANG_UPS)


class _Connection:
    """One client: a reader task decodes requests (and notices a hang-up at any time), the
    serving loop runs them one at a time."""

    def __init__(self, operations: dict[str, Operation], stream: trio.SocketStream) -> None:
        self.operations = operations
        self.stream = stream
        self.decoder: FrameDecoder[dict[str, Any]] = FrameDecoder(
            MAX_CONTROL_MESSAGE, decode_control
        )
        self.requests, self._incoming = trio.open_memory_channel[dict[str, Any]](16)
        self.current: trio.CancelScope | None = None
        self.gone = False

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            try:
                async for message in self._incoming:
                    if not await self._request(message):
                        break
            except MeshtalkError as exc:  # a malformed frame: answer once, then hang up
                await self.stream.send_all(encode_control(make_error(0, exc)))
            nursery.cancel_scope.cancel()

    async def _read(self) -> None:
        try:
            while True:
                message = self.decoder.next_frame()
                if message is not NEED_DATA:
                    await self.requests.send(message)
                    continue
                data = await self.stream.receive_some(64 * 1024)
                if not data:
                    break
                self.decoder.receive_data(data)
        except MeshtalkError as exc:
            await self.requests.send({"malformed": exc})
        except _HANG_UPS:
            pass  # a reset (a client that closed with our answer unread) is a hang-up too
        finally:
            self.gone = True
            if self.current is not None:
                self.current.cancel()
            await self.requests.aclose()

    async def _request(self, message: dict[str, Any]) -> bool:
        """Run one request; False if the client went away meanwhile."""
        if isinstance(message.get("malformed"), MeshtalkError):
            raise message["malformed"]
        given = message.get("id")
        request_id: int = given if isinstance(given, int) else 0
        stream = self.stream

        async def emit(event: dict[str, Any]) -> None:
            await stream.send_all(encode_control(make_event(request_id, event)))

        with trio.CancelScope() as self.current:
            try:
                request_id, op, args = read_request(message)
                operation = self.operations.get(op)
                if operation is None:
                    raise NodeError(f"unknown control operation {op!r}; upgrade meshtalk?")
                reply = make_reply(request_id, await operation(args, emit))
            except MeshtalkError as exc:
                reply = make_error(request_id, exc)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
            except Exception as exc:
                logger.exception("control operation failed")
                reply = make_error(request_id, NodeError(f"internal error: {exc!r}"))
        self.current = None
        if self.gone:
            return False
        await stream.send_all(encode_control(reply))
        return True
