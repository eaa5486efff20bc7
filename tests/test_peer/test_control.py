"""The control socket served by a real node: hostile or confused clients change nothing."""

from __future__ import annotations

import functools
import os
import socket
import stat
from pathlib import Path

import pytest
import trio

from meshtalk.control.client import connect_control
from meshtalk.control.operations import build_operations
from meshtalk.control.server import ControlServer, control_socket_path
from meshtalk.peer.node import open_node
from meshtalk.protocol.control import (
    MAX_CONTROL_MESSAGE,
    decode_control,
    encode_control,
    make_request,
)
from meshtalk.protocol.errors import (
    ConfigError,
    FrameTooLarge,
    MalformedFrame,
    NodeError,
    NodeNotRunning,
    ProfileLocked,
    UnknownPeer,
    UnsupportedVersion,
)
from meshtalk.protocol.frames import NEED_DATA, FrameDecoder, encode_uvarint
from tests.test_peer.helpers import fast_config


def call(profile: Path, op: str, **args: object) -> object:
    with connect_control(profile, timeout=10) as control:
        return control.call(op, **args)


async def raw_exchange(path: Path, data: bytes) -> dict[str, object]:
    """Send raw bytes, return the one answer the node sends."""
    stream = await trio.open_unix_socket(str(path))
    decoder: FrameDecoder[dict[str, object]] = FrameDecoder(MAX_CONTROL_MESSAGE, decode_control)
    async with stream:
        await stream.send_all(data)
        with trio.fail_after(5):
            while (reply := decoder.next_frame()) is NEED_DATA:
                decoder.receive_data(await stream.receive_some())
    assert isinstance(reply, dict)
    return reply


async def test_a_confused_or_hostile_client_gets_typed_errors_and_the_node_goes_on(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "alice"
    path = control_socket_path(profile)
    async with open_node(profile, fast_config()) as node, trio.open_nursery() as nursery:
        stopped = trio.Event()
        server = ControlServer(build_operations(node, "alice", stopped.set))
        await nursery.start(server.serve, path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

        reply = await raw_exchange(path, encode_uvarint(3) + b"\xc1\xc1\xc1")
        assert reply["error"]["code"] == MalformedFrame.code  # type: ignore[index]
        reply = await raw_exchange(path, encode_uvarint(2**30))  # frame too large
        assert reply["ok"] is False
        wrong_version = {**make_request(1, "status", {}), "v": 99}
        reply = await raw_exchange(path, encode_control(wrong_version))
        assert reply["error"]["code"] == UnsupportedVersion.code  # type: ignore[index]

        with pytest.raises(NodeError, match="unknown control operation"):
            await trio.to_thread.run_sync(call, profile, "explode")
        with pytest.raises(UnknownPeer):
            await trio.to_thread.run_sync(lambda: call(profile, "send", to="nobody", text="x"))
        with pytest.raises(ConfigError, match="needs 'to'"):
            await trio.to_thread.run_sync(lambda: call(profile, "send", text="x"))
        with pytest.raises(FrameTooLarge, match="control socket takes at most"):
            await trio.to_thread.run_sync(
                lambda: call(profile, "send", to="x", text="y" * MAX_CONTROL_MESSAGE)
            )
        with pytest.raises(ConfigError, match="wrong type"):
            await trio.to_thread.run_sync(lambda: call(profile, "history", limit="many"))
        durations = [
            ("receive", "wait", -1.0), ("receive", "wait", float("nan")),
            ("pair.join", "timeout", float("inf")), ("invite.create", "ttl", -1),
            ("pair.offer", "ttl", float("nan")),
        ]  # fmt: skip
        for op, name, value in durations:  # refused where they are read, not a crash later
            bad = functools.partial(call, profile, op, code="1-a-b", **{name: value})
            with pytest.raises(ConfigError, match=f"'{name}' must be from 0 to"):
                await trio.to_thread.run_sync(bad)

        # a second server on the same socket is refused; the first one still answers
        with pytest.raises(ProfileLocked):
            await ControlServer({}).serve(path)
        status = await trio.to_thread.run_sync(call, profile, "status")
        assert status["peer_id"] == str(node.peer_id)  # type: ignore[index]
        await trio.to_thread.run_sync(call, profile, "shutdown")
        assert stopped.is_set()
        nursery.cancel_scope.cancel()
    assert not path.exists()
    with pytest.raises(NodeNotRunning):
        call(profile, "status")


async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    profile = tmp_path / "alice"
    profile.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(control_socket_path(profile)))
    stale.close()  # the file stays, nobody listens: like a node killed with -9
    with pytest.raises(NodeNotRunning):
        call(profile, "hello")
    async with open_node(profile, fast_config()) as node, trio.open_nursery() as nursery:
        server = ControlServer(build_operations(node, "alice", lambda: None))
        await nursery.start(server.serve, control_socket_path(profile))
        hello = await trio.to_thread.run_sync(call, profile, "hello")
        assert hello["control_version"] == 1  # type: ignore[index]
        nursery.cancel_scope.cancel()


async def test_a_client_that_hangs_up_with_its_answer_unread_does_not_end_the_node(
    tmp_path: Path,
) -> None:
    """Closing a Unix socket with unread data resets it: the server's read then fails with
    ECONNRESET inside the connection's nursery, which must end that connection only."""
    profile = tmp_path / "alice"
    path = control_socket_path(profile)
    async with open_node(profile, fast_config()) as node, trio.open_nursery() as nursery:
        await nursery.start(
            ControlServer(build_operations(node, "alice", lambda: None)).serve, path
        )

        def hang_up_unread() -> None:
            for request_id in range(5):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                    client.connect(str(path))
                    client.sendall(encode_control(make_request(request_id, "status", {})))
                    client.sendall(encode_control(make_request(request_id + 1, "status", {})))
                    trio.from_thread.run(trio.sleep, 0.2)  # both answers arrive, unread

        await trio.to_thread.run_sync(hang_up_unread)
        await trio.sleep(0.2)
        status = await trio.to_thread.run_sync(call, profile, "status")
        assert status["peer_id"] == str(node.peer_id)  # type: ignore[index]
        nursery.cancel_scope.cancel()


async def test_an_idle_connection_above_descriptor_1024_is_still_seen_as_open(
    tmp_path: Path,
) -> None:
    """`is_open` decides whether a pooled connection is reused: with select() every
    descriptor >= 1024 looked closed, so a busy program reconnected on every call."""
    import resource

    from meshtalk.control.client import open_control

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip("needs a descriptor limit above 1200")
    profile = tmp_path / "alice"
    path = control_socket_path(profile)
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        async with open_node(profile, fast_config()) as node, trio.open_nursery() as nursery:
            await nursery.start(
                ControlServer(build_operations(node, "alice", lambda: None)).serve, path
            )

            def check() -> None:
                client = open_control(profile, 10)
                try:
                    assert client._sock.fileno() >= 1024
                    client.call("status")
                    assert client.is_open()
                finally:
                    client.close()
                assert not client.is_open()

            await trio.to_thread.run_sync(check)
            nursery.cancel_scope.cancel()
    finally:
        for fd in fillers:
            os.close(fd)
