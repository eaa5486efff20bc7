"""`meshtalk up`: run a profile's node with its control socket, in the foreground or detached.

The foreground node prints what happens (ready, one line per incoming message) and logs to
stderr; it stops cleanly on Ctrl-C, SIGTERM or `meshtalk down`. `start_detached` runs the same
thing as a background process that writes all of it to `node.log` in the profile (rotated at
`log_max_mib`, 3 older files kept), and returns once the node answers on its control socket.
A message's text is in those lines only with `log_bodies = true`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..control.client import connect_control
from ..profile.http_access import HttpBind, http_bind
from ..profile.identity import load_or_create_identity
from ..profile.lock import profile_in_use
from ..profile.logfile import DAEMON_LOGGER, LOG_FILE_NAME, configure_logging, last_lines, log_path
from ..profile.paths import open_private_log, private_profile_dir
from ..profile.settings import load_settings
from ..protocol.errors import (
    MeshtalkError,
    NodeClosed,
    NodeError,
    NodeNotRunning,
    unwrap_group,
)

if TYPE_CHECKING:  # trio and the node load on first use: `meshtalk down` needs neither
    from trio import CancelScope, Event
    from trio_typing import TaskStatus  # py-libp2p's trio-typing stubs stand in for trio's

    from ..control.server import Emit, Operation
    from ..http.server import HttpApi
    from ..peer.models import Message
    from ..peer.node import Node, NodeConfig

__all__ = [
    "LOG_FILE_NAME",
    "http_line",
    "node_config",
    "serve_profile",
    "message_line",
    "run_foreground",
    "start_detached",
    "stop_node",
]

_START_TIMEOUT: Final = 60.0
_HTTP_SETTLE_TIMEOUT: Final = 10.0
_MIB: Final = 1024 * 1024
# Set by start_detached for the node it starts: that `meshtalk up` logs to node.log.
_DETACHED_ENV: Final = "MESHTALK_DETACHED"
_TEXT_SHOWN: Final = 200  # characters of a message's text in its line (with log_bodies)

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
        relays=settings["relays"],
        serve_relay=settings["serve_relay"],
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
    http_settled: Event | None = None,
) -> None:
    """Run a profile's node and its control socket until a `shutdown` request (or cancel).

    Reports `started((node, operations))` once the node listens and the socket answers. This
    is what `meshtalk up` runs and what `Mesh` embeds when no node runs for the profile. The
    HTTP API (setting `http`) starts just after; `http_settled` is set once it listens or has
    failed (or at once when it is off), and `status` says which.
    """
    import trio

    from ..control.operations import build_operations
    from ..control.server import ControlServer, control_socket_path
    from ..peer.node import open_node

    stopping = trio.Event()
    async with open_node(profile, node_config(settings)) as node, trio.open_nursery() as nursery:
        operations = build_operations(node, profile.name, stopping.set, settings)
        http = _HttpTask(node, operations, profile, http_bind(settings["http"]), http_settled)
        operations["status"] = http.with_status(operations["status"])
        await nursery.start(ControlServer(operations).serve, control_socket_path(profile))
        nursery.start_soon(http.run)  # after: the control socket answers without waiting
        if task_status is not None:
            task_status.started((node, operations))
        await stopping.wait()
        await trio.sleep(0.2)  # the reply to `shutdown` goes out first
        nursery.cancel_scope.cancel()


class _HttpTask:
    """The node's HTTP API, loaded and started in the background (its imports take a moment),
    and its state in `status`."""

    def __init__(
        self,
        node: Node,
        operations: dict[str, Operation],
        profile: Path,
        bind: HttpBind | None,
        settled: Event | None,
    ) -> None:
        self._args = node, operations, profile
        self._bind = bind
        self._settled = settled
        self._api: HttpApi | None = None

    def with_status(self, status: Operation) -> Operation:
        """The `status` operation with the API's state in "http"."""

        async def with_http(args: dict[str, Any], emit: Emit) -> Any:
            shown = await status(args, emit)
            if self._bind is None:
                return {**shown, "http": {"url": None, "state": "off", "error": None}}
            state = self._api.status() if self._api is not None else {"url": None,
                "state": "starting", "error": None}  # fmt: skip
            return {**shown, "http": state}

        return with_http

    async def run(self) -> None:
        import trio

        if self._bind is None:
            if self._settled is not None:
                self._settled.set()
            return
        from ..http.server import HttpApi

        self._api = HttpApi(*self._args, self._bind)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._api.serve)
            if self._settled is not None:
                await self._api.settled.wait()
                self._settled.set()


async def _run(profile: Path, settings: dict[str, Any], say: Say) -> None:
    import trio

    from ..control.server import control_socket_path

    async with trio.open_nursery() as nursery:
        http_settled = trio.Event()

        async def node_then_stop(task_status: TaskStatus[Started]) -> None:
            await serve_profile(
                profile, settings, task_status=task_status, http_settled=http_settled
            )
            nursery.cancel_scope.cancel()  # `meshtalk down`: the other tasks end too

        node, operations = await nursery.start(node_then_stop)
        say(f"meshtalk node {node.config.name or profile.name} {node.peer_id}")
        for address in node.listen_addrs:
            say(f"  listening   {address}")
        for point in node.config.rendezvous:
            say(f"  rendezvous  {point}")
        say(f"  mDNS        {'on' if node.config.mdns else 'off'}")
        say(f"  control     {control_socket_path(profile)}")
        say(f"  http        {await _http_line(operations, http_settled)}")
        say("ready (Ctrl-C or `meshtalk down` stops the node)")
        nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
        nursery.start_soon(_report_messages, node, say)
    say("stopping")


async def _http_line(operations: dict[str, Operation], settled: Event) -> str:
    """Where the HTTP API listens, once it has bound or failed: it starts in the background
    (its imports take a moment), and the header waits for it so its lines keep one order."""
    import trio

    async def ignore(event: dict[str, Any]) -> None:
        """`status` emits nothing."""

    with trio.move_on_after(_HTTP_SETTLE_TIMEOUT):
        await settled.wait()
    return http_line((await operations["status"]({}, ignore))["http"])


def http_line(http: dict[str, Any]) -> str:
    """The HTTP API's state (`status`'s "http") in a few words, for the lines `up` prints."""
    if http["state"] == "serving":
        return f"{http['url']} (key: `meshtalk http-key`)"
    if http["state"] == "off":
        return "off (setting `http`)"
    if http["state"] == "failed":
        return f"off: {http['error']}"
    return "starting (`meshtalk http-url` says where once it listens)"


async def _stop_on_signals(scope: CancelScope) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _report_messages(node: Node, say: Say) -> None:
    names = {c.peer_id: c.name for c in node.contacts()}
    try:
        async for message in node.messages(after=node.store.messages.last_cursor()):
            if message.author not in names:
                names = {c.peer_id: c.name for c in node.contacts()}
            sender = names.get(message.author) or str(message.author)
            say(message_line(message, sender, bodies=node.config.log_bodies))
    except NodeClosed:
        return  # the node is stopping (`meshtalk down`): the end, not an error


def message_line(message: Message, sender: str, *, bodies: bool) -> str:
    """The line for an incoming message: its text (escaped, one line) only with `bodies`."""
    if not sender.isprintable():  # a name a peer chose: no line breaks into the log
        sender = json.dumps(sender, ensure_ascii=False)
    if bodies:  # JSON-escaped, so a peer's text cannot forge log lines
        return f"message #{message.cursor} from {sender}: " + json.dumps(
            message.text[:_TEXT_SHOWN], ensure_ascii=False
        )
    size = len(message.text.encode())
    return f"message #{message.cursor} from {sender} ({message.kind}, {size} bytes)"


def run_foreground(profile: Path, say: Say, verbosity: int = 0) -> None:
    """Run the node until Ctrl-C, SIGTERM or `meshtalk down`.

    Its lines go to `say` and the log (at `verbosity`, the `-v` count) to stderr; in the node
    that `start_detached` starts, both go to node.log instead, rotated at `log_max_mib`.
    """
    import trio

    settings = load_settings(profile)  # a bad config.toml fails here, before anything starts
    if os.environ.pop(_DETACHED_ENV, None) == "1":
        configure_logging(
            verbosity,
            log_file=log_path(profile),
            max_bytes=settings["log_max_mib"] * _MIB,
            own_std_streams=True,  # a stray print or the last error line: in node.log too
        )
        say = logging.getLogger(DAEMON_LOGGER).info
    else:
        configure_logging(verbosity)
    try:
        trio.run(_run, profile, settings, say)
    except BaseExceptionGroup as group:
        leaf = unwrap_group(group)
        if isinstance(leaf, MeshtalkError):
            raise leaf from None
        raise


def start_detached(profile: Path, say: Say, verbosity: int = 0) -> tuple[dict[str, Any], bool]:
    """Start the node in the background; returns its `hello` once it answers and its HTTP API
    has bound or failed (in "http", as `status` gives it, so a script's next `meshtalk
    http-url` has an answer), and whether this call started it (False: it was already
    running, and is left as it is)."""
    try:
        return _with_http(profile, _hello(profile)), False
    except NodeNotRunning:
        pass
    load_settings(profile)
    load_or_create_identity(profile)  # a damaged key fails here, in this process
    path = log_path(profile)
    private_profile_dir(profile)
    verbose = ["-" + "v" * verbosity] if verbosity > 0 else []
    command = [sys.executable, "-m", "meshtalk", "--profile", profile.name, *verbose, "up"]
    env = {
        **os.environ,
        "MESHTALK_HOME": str(profile.parent.parent),
        "PYTHONUNBUFFERED": "1",
        _DETACHED_ENV: "1",
    }
    # What the node prints before its log is set up lands here too. open_private_log: 0600,
    # never through a link (a link at node.log is refused here, with one line).
    with os.fdopen(open_private_log(path), "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    return _with_http(profile, _wait_until_ready(profile, process, say)), True


def _wait_until_ready(profile: Path, process: subprocess.Popen[bytes], say: Say) -> dict[str, Any]:
    path = log_path(profile)
    started = time.monotonic()
    deadline, announced = started + _START_TIMEOUT, False
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = _last_line(path).removeprefix("meshtalk: error: ")
            raise NodeError(f"the node did not start: {reason} (log: {path})")
        if not announced and time.monotonic() - started > 1.0:
            say(f"starting the node… (log: {path})")
            announced = True
        try:
            return _hello(profile)
        except NodeNotRunning:
            time.sleep(0.1)
    process.terminate()
    raise NodeError(f"the node did not answer within {_START_TIMEOUT:g} s; see {path}")


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


def _with_http(profile: Path, hello: dict[str, Any]) -> dict[str, Any]:
    """`hello` with the HTTP API's state, once it is past "starting" (or after
    _HTTP_SETTLE_TIMEOUT: it starts in the background, its imports take a moment)."""
    deadline = time.monotonic() + _HTTP_SETTLE_TIMEOUT
    while True:
        with connect_control(profile, timeout=5) as control:
            http: dict[str, Any] | None = control.call("status").get("http")
        if http is None or http["state"] != "starting" or time.monotonic() > deadline:
            return {**hello, "http": http}
        time.sleep(0.05)


def _hello(profile: Path) -> dict[str, Any]:
    with connect_control(profile, timeout=5) as control:
        result: dict[str, Any] = control.call("hello")
        return result


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in last_lines(path, 20) if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(the log is empty)"
