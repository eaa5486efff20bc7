"""`meshtalk up`: run a profile's node with its control socket, in the foreground or detached.

The foreground node prints what happens (ready, peers, incoming messages) and stops cleanly on
Ctrl-C or SIGTERM. `start_detached` runs the same thing as a background process whose output
goes to `node.log` in the profile, and returns once the node answers on its control socket.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..control.client import connect_control
from ..profile.identity import load_or_create_identity
from ..profile.lock import profile_in_use
from ..profile.paths import open_private_log, private_profile_dir
from ..profile.settings import load_settings
from ..protocol.errors import ConfigError, MeshtalkError, NodeError, NodeNotRunning, unwrap_group

if TYPE_CHECKING:  # trio and the node load on first use: `meshtalk down` needs neither
    from trio import CancelScope
    from trio_typing import TaskStatus  # py-libp2p's trio-typing stubs stand in for trio's

    from ..control.server import Operation
    from ..peer.node import Node, NodeConfig

__all__ = [
    "LOG_FILE_NAME",
    "node_config",
    "serve_profile",
    "run_foreground",
    "start_detached",
    "stop_node",
]

LOG_FILE_NAME: Final = "node.log"
_START_TIMEOUT: Final = 60.0
_MAX_LOG: Final = 5 * 1024 * 1024

Say = Callable[[str], None]
Started = tuple["Node", dict[str, "Operation"]]  # what serve_profile reports once it serves


def node_config(settings: dict[str, Any]) -> NodeConfig:
    """The NodeConfig a profile's settings describe."""
    from ..peer.guards import GuardLimits
    from ..peer.node import NodeConfig

    return NodeConfig(
        listen=settings["listen"],
        mesh=settings["mesh"],
        rendezvous=settings["rendezvous"],
        bootstrap=settings["bootstrap"],
        mdns=settings["mdns"],
        mdns_interfaces=settings["mdns_interfaces"] or None,
        accept=settings["accept"],
        rendezvous_point=settings["serve_rendezvous"],
        durability=settings["durability"],
        name=settings["name"],
        guards=GuardLimits.from_settings(settings),
        log_bodies=settings["log_bodies"],
        retain_days=settings["retain_days"],
        retain_mib=settings["retain_mib"],
    )


async def serve_profile(
    profile: Path,
    settings: dict[str, Any],
    *,
    task_status: TaskStatus[Started] | None = None,
) -> None:
    """Run a profile's node and its control socket until a `shutdown` request (or cancel).

    Reports `started((node, operations))` once the node listens and the socket answers. This
    is what `meshtalk up` runs and what `Mesh` embeds when no node runs for the profile.
    """
    import trio

    from ..control.operations import build_operations
    from ..control.server import ControlServer, control_socket_path
    from ..peer.node import open_node

    stopping = trio.Event()
    async with open_node(profile, node_config(settings)) as node, trio.open_nursery() as nursery:
        operations = build_operations(node, profile.name, stopping.set, settings)
        await nursery.start(ControlServer(operations).serve, control_socket_path(profile))
        if task_status is not None:
            task_status.started((node, operations))
        await stopping.wait()
        await trio.sleep(0.2)  # the reply to `shutdown` goes out first
        nursery.cancel_scope.cancel()


async def _run(profile: Path, settings: dict[str, Any], say: Say) -> None:
    import trio

    from ..control.server import control_socket_path

    async with trio.open_nursery() as nursery:

        async def node_then_stop(task_status: TaskStatus[Started]) -> None:
            await serve_profile(profile, settings, task_status=task_status)
            nursery.cancel_scope.cancel()  # `meshtalk down`: the other tasks end too

        node, _ = await nursery.start(node_then_stop)
        say(f"meshtalk node {node.config.name or profile.name} {node.peer_id}")
        for address in node.listen_addrs:
            say(f"  listening   {address}")
        for point in node.config.rendezvous:
            say(f"  rendezvous  {point}")
        say(f"  mDNS        {'on' if node.config.mdns else 'off'}")
        say(f"  control     {control_socket_path(profile)}")
        say("ready (Ctrl-C or `meshtalk down` stops the node)")
        nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
        nursery.start_soon(_report_messages, node, say)
    say("stopping")


async def _stop_on_signals(scope: CancelScope) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _report_messages(node: Node, say: Say) -> None:
    names = {c.peer_id: c.name for c in node.contacts()}
    async for message in node.messages(after=node.store.messages.last_cursor()):
        if message.author not in names:
            names = {c.peer_id: c.name for c in node.contacts()}
        sender = names.get(message.author) or str(message.author)
        say(f"message from {sender}: {message.text[:200]}")


def run_foreground(profile: Path, say: Say) -> None:
    """Run the node until Ctrl-C, SIGTERM or `meshtalk down`."""
    import trio

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(profile)  # a bad config.toml fails here, before anything starts
    try:
        trio.run(_run, profile, settings, say)
    except BaseExceptionGroup as group:
        leaf = unwrap_group(group)
        if isinstance(leaf, MeshtalkError):
            raise leaf from None
        raise


def start_detached(profile: Path, say: Say) -> dict[str, Any]:
    """Start the node in the background; returns its `hello` once it answers."""
    try:
        return _hello(profile)  # already running
    except NodeNotRunning:
        pass
    load_settings(profile)
    load_or_create_identity(profile)  # a damaged key fails here, in this process
    log_path = profile / LOG_FILE_NAME
    private_profile_dir(profile)
    _rotate(log_path)
    command = [sys.executable, "-m", "meshtalk", "--profile", profile.name, "up"]
    env = {**os.environ, "MESHTALK_HOME": str(profile.parent.parent), "PYTHONUNBUFFERED": "1"}
    with os.fdopen(open_private_log(log_path), "ab") as log:  # 0600, never through a link
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    started = time.monotonic()
    deadline, announced = started + _START_TIMEOUT, False
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = _last_line(log_path).removeprefix("meshtalk: error: ")
            raise NodeError(f"the node did not start: {reason} (log: {log_path})")
        if not announced and time.monotonic() - started > 1.0:
            say(f"starting the node… (log: {log_path})")
            announced = True
        try:
            return _hello(profile)
        except NodeNotRunning:
            time.sleep(0.1)
    process.terminate()
    raise NodeError(f"the node did not answer within {_START_TIMEOUT:g} s; see {log_path}")


def _rotate(log_path: Path) -> None:
    """Keep one previous log (node.log.1) once the log passes _MAX_LOG bytes.

    A symbolic link at node.log is refused, not rotated (nor followed); renaming onto
    node.log.1 replaces whatever is there, a link included, without following it.
    """
    try:
        info = log_path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(
            f"{log_path} is a symbolic link; meshtalk writes its log only to a regular file "
            f"there (remove the link: rm {log_path})"
        )
    if info.st_size > _MAX_LOG:
        os.replace(log_path, log_path.with_name(log_path.name + ".1"))


def stop_node(profile: Path, timeout: float = 30.0) -> bool:
    """Ask the node to stop and wait until it has; False if none was running."""
    try:
        with connect_control(profile) as control:
            control.call("shutdown")
    except NodeNotRunning:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not profile_in_use(profile):  # stopped means: the profile can be used again
            return True
        time.sleep(0.05)
    raise NodeError(f"the node did not stop within {timeout:g} s")


def _hello(profile: Path) -> dict[str, Any]:
    with connect_control(profile, timeout=5) as control:
        result: dict[str, Any] = control.call("hello")
        return result


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(the log is empty)"
