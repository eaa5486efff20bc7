"""A blocking client of a node's control socket, for the CLI and other local tools.

    with connect_control(profile_dir("alice")) as control:
        print(control.call("status")["peer_id"])

It imports neither trio nor py-libp2p, so commands that talk to a running node start fast.
"""

from __future__ import annotations

import errno
import itertools
import select
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..profile.paths import DEFAULT_PROFILE
from ..protocol.control import (
    CONTROL_SOCKET_NAME,
    MAX_CONTROL_MESSAGE,
    decode_control,
    encode_control,
    make_request,
    read_reply,
)
from ..protocol.errors import ControlError, FrameTooLarge, NodeNotRunning
from ..protocol.frames import NEED_DATA, FrameDecoder

__all__ = ["ControlClient", "connect_control", "open_control"]


class ControlClient:
    """One connection to a node's control socket.

    After a call that raised, `lost` says whether the connection broke (the node hung up or
    went away) rather than the node answering with an error, `request_sent` whether the whole
    request had been written (a request that was not cannot have been run), and
    `reply_started` whether any of the answer (an event or the result) had come back.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._ids = itertools.count(1)
        self._decoder: FrameDecoder[dict[str, Any]] = FrameDecoder(
            MAX_CONTROL_MESSAGE, decode_control
        )
        self.lost = False
        self.request_sent = False
        self.reply_started = False

    def is_open(self) -> bool:
        """Whether an idle connection is still usable: the node has not hung up on it.

        Between calls the node sends nothing, so anything to read (the end of the stream,
        most often, after the node stopped) means the connection is no good.
        """
        if self._sock.fileno() < 0:  # closed here already
            return False
        # poll, not select: select refuses descriptors >= 1024 (a busy program has them)
        poller = select.poll()
        poller.register(self._sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return not poller.poll(0)

    def settimeout(self, timeout: float | None) -> None:
        """Bound each wait for the node (None: wait as long as it takes)."""
        self._sock.settimeout(timeout)

    def close(self) -> None:
        """Hang up (a waiting request on the node is cancelled)."""
        self._sock.close()

    def call(
        self, op: str, on_event: Callable[[dict[str, Any]], None] | None = None, **args: Any
    ) -> Any:
        """Run `op` on the node and return its result; events go to `on_event` meanwhile.

        An error on the node is raised here as the same MeshtalkError type.
        """
        request = make_request(
            next(self._ids), op, {k: v for k, v in args.items() if v is not None}
        )
        frame = encode_control(request)
        if len(frame) > MAX_CONTROL_MESSAGE:
            raise FrameTooLarge(
                f"the request is {len(frame)} bytes; the control socket takes at most "
                f"{MAX_CONTROL_MESSAGE} (a message is limited to 1 MiB anyway)"
            )
        self.lost = self.request_sent = self.reply_started = False
        try:
            self._sock.sendall(frame)
            self.request_sent = True
            while True:
                final, value = read_reply(self._receive())
                if final:
                    return value
                if on_event is not None:
                    on_event(value)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            self.lost = True
            raise ControlError(f"the node closed the control connection ({exc.strerror})") from None

    def _receive(self) -> dict[str, Any]:
        while True:
            message = self._decoder.next_frame()
            if message is not NEED_DATA:
                return message
            data = self._sock.recv(256 * 1024)
            if not data:
                self.lost = True
                raise ControlError("the node closed the control connection (did it stop?)")
            self.reply_started = True
            self._decoder.receive_data(data)


def open_control(profile: Path, timeout: float | None = None) -> ControlClient:
    """Connect to the node running on `profile` (close the client when done).

    Raises NodeNotRunning if there is none.
    """
    path = profile / CONTROL_SOCKET_NAME
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
            raise NodeNotRunning(
                f"no node is running for profile {profile.name!r}; start it with "
                f"`meshtalk{_profile_flag(profile)} up --detach`"
            ) from None
        raise ControlError(f"cannot reach the node at {path}: {exc.strerror}") from None
    return ControlClient(sock)


@contextmanager
def connect_control(profile: Path, timeout: float | None = None) -> Iterator[ControlClient]:
    """`open_control` as a context manager that closes the connection."""
    client = open_control(profile, timeout)
    try:
        yield client
    finally:
        client.close()


def _profile_flag(profile: Path) -> str:
    return "" if profile.name == DEFAULT_PROFILE else f" --profile {profile.name}"
