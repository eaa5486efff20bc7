"""The node's file-descriptor and connection budget, and a guard in front of the TCP listener.

Each libp2p TCP connection holds one file descriptor. A node raises RLIMIT_NOFILE's soft limit
to the hard limit at start (`raise_fd_limit`), derives how many connections it may hold from it
(`plan_connections`), and refuses inbound connections beyond that by closing the accepted socket
before any Noise handshake (`install_accept_guard`), with one log line per minute. When the
process runs out of descriptors anyway, trio's accept loop logs an error (with a traceback) and
sleeps 0.1 s on every EMFILE: a filter on its logger counts those and lets one summary through
per minute instead of ten tracebacks a second.

Several nodes in one process share one descriptor table: `share=` divides the budget by the
number of nodes the caller starts there (a fixed division, so a running node's budget and the
numbers in its start-up warning never change under it).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import trio
from libp2p.transport.tcp.tcp import TCP

__all__ = [
    "AcceptGuard",
    "AcceptStatistics",
    "ConnectionAdmission",
    "ConnectionBudget",
    "FdLimits",
    "connection_budget",
    "install_accept_error_filter",
    "install_accept_guard",
    "plan_connections",
    "raise_fd_limit",
]

logger = logging.getLogger("meshtalk.budget")

SUMMARY_INTERVAL: Final = 60.0
"""Seconds between two log lines about refused connections or failed accepts."""

SMALL_BUDGET: Final = 256
"""Below this many connections a node warns at start."""

MACOS_OPEN_MAX: Final = 10240
"""macOS refuses a soft limit above OPEN_MAX (or kern.maxfilesperproc) even when hard is
RLIM_INFINITY; this is the value to try next."""

CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""What accept(2) returns when the process or the system has no room (trio's own set)."""


@dataclass(frozen=True)
class FdLimits:
    """RLIMIT_NOFILE after `raise_fd_limit`: soft and hard (None: unlimited or unknown)."""

    soft: int | None
    hard: int | None
    raised_from: int | None = None  # the soft limit before the raise, if it was raised
    error: str | None = None  # why the soft limit could not be raised to the hard limit


_limits_lock = threading.Lock()
_limits: FdLimits | None = None


def raise_fd_limit() -> FdLimits:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; never raises.

    Process-wide and idempotent: the first call does the work, later calls (other nodes in the
    same process) return its result. Where the hard limit is unlimited or refused (macOS), it
    tries OPEN_MAX (10240); every failure is reported in `FdLimits.error`.
    """
    global _limits
    with _limits_lock:
        if _limits is None:
            _limits = _raise_fd_limit_once()
        return _limits


def _raise_fd_limit_once() -> FdLimits:
    try:
        import resource  # absent on Windows
    except ImportError:
        return FdLimits(None, None, error="no RLIMIT_NOFILE on this platform")
    infinity = resource.RLIM_INFINITY
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError) as exc:
        return FdLimits(None, None, error=f"getrlimit failed: {exc}")
    finite_hard = None if hard == infinity else hard
    if soft in (infinity, hard):
        return FdLimits(None if soft == infinity else soft, finite_hard)
    # The hard limit first; then OPEN_MAX, for macOS, where an unlimited hard limit or one above
    # kern.maxfilesperproc makes setrlimit fail.
    ceiling = hard if finite_hard is not None else MACOS_OPEN_MAX
    targets = [t for t in dict.fromkeys((ceiling, MACOS_OPEN_MAX)) if soft < t <= ceiling]
    error = None
    for target in targets:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            error = f"setrlimit({target}) failed: {exc}"
            continue
        return FdLimits(target, finite_hard, raised_from=soft, error=None)
    return FdLimits(soft, finite_hard, error=error)


@dataclass(frozen=True)
class ConnectionBudget:
    """How many libp2p connections one node may hold, and where the number comes from."""

    limits: FdLimits
    reserved: int  # descriptors kept for the store, sockets, mDNS, logging, Python itself
    share: int  # nodes in this process that divide the descriptors
    cap: int | None  # the configured maximum, if any
    connections: int

    def warning(self) -> str | None:
        """One line with the numbers and what to do, when the budget is small; else None."""
        problems = []
        if self.limits.error is not None:
            problems.append(f"could not raise the file-descriptor limit ({self.limits.error})")
        small = self.connections < SMALL_BUDGET and (
            self.cap is None or self.cap > self.connections
        )
        if small:
            problems.append(f"file descriptors allow only {self.connections} connections")
        if not problems:
            return None
        soft, hard = _show(self.limits.soft), _show(self.limits.hard)
        shared = f", shared by {self.share} nodes" if self.share > 1 else ""
        advice = (
            f"start the node after `ulimit -n {hard}`"
            if self.limits.hard is not None and (self.limits.soft or 0) < self.limits.hard
            else "raise the hard limit (limits.conf, systemd LimitNOFILE, launchctl limit maxfiles)"
        )
        return (
            f"{'; '.join(problems)} (soft limit {soft}, hard {hard}, {self.reserved} reserved"
            f"{shared}): inbound connections beyond {self.connections} are refused; {advice}"
        )


def _show(limit: int | None) -> str:
    return "unlimited" if limit is None else str(limit)


def connection_budget(
    limits: FdLimits, *, cap: int | None = None, share: int = 1
) -> ConnectionBudget:
    """The connections a node may hold under `limits`, with `share` nodes in the process.

    Reserves max(64, 10%) of the soft limit, but never more than half of it, so that a tiny
    limit (64) still leaves a few connections rather than none.
    """
    if share < 1:
        raise ValueError("share must be at least 1")
    if cap is not None and cap < 0:
        raise ValueError("cap must not be negative")
    soft = limits.soft if limits.soft is not None else 1 << 20
    reserved = min(max(64, soft // 10), soft // 2)
    connections = max(0, soft - reserved) // share
    if cap is not None:
        connections = min(connections, cap)
    return ConnectionBudget(limits, reserved, share, cap, connections)


def plan_connections(*, cap: int | None = None, share: int = 1) -> ConnectionBudget:
    """Raise the descriptor limit, compute this node's budget, and warn once if it is small."""
    budget = connection_budget(raise_fd_limit(), cap=cap, share=share)
    warning = budget.warning()
    if warning is not None:
        logger.warning("%s", warning)
    return budget


class ConnectionAdmission:
    """An `admit()` for `install_accept_guard`: True while fewer than `limit` are in use."""

    def __init__(self, limit: int, in_use: Callable[[], int]) -> None:
        self.limit = limit
        self._in_use = in_use

    def __call__(self) -> bool:
        return self._in_use() < self.limit

    def reason(self) -> str:
        """Why a connection was refused, with the numbers."""
        return f"at the connection budget ({self._in_use()} of {self.limit})"


@dataclass(frozen=True)
class AcceptStatistics:
    """What an AcceptGuard has done, for status output."""

    refused_at_budget: int
    accept_errors: int  # EMFILE and friends seen by trio's accept loop on this guard's sockets
    inbound_open: int  # accepted connections whose handler is still running
    last_refusal: str | None


Handler = Callable[[Any], Awaitable[None]]


class AcceptGuard:
    """Closes accepted connections at once while `admit()` is False, and counts them."""

    def __init__(
        self,
        admit: Callable[[], bool],
        *,
        reason: Callable[[], str] | None = None,
        clock: Callable[[], float] = trio.current_time,
        interval: float = SUMMARY_INTERVAL,
    ) -> None:
        self._admit = admit
        self._reason = reason or (lambda: "admit() said no")
        self._clock = clock
        self._interval = interval
        self._refused = 0
        self._unlogged = 0
        self._logged_at: float | None = None
        self._inbound = 0
        self._last_refusal: str | None = None
        self.accept_errors = 0
        # The TCP listeners this guard wraps, so the accept-error filter can tell whose
        # socket failed.
        self.listeners: weakref.WeakSet[Any] = weakref.WeakSet()

    def statistics(self) -> AcceptStatistics:
        """Counts since the guard was installed."""
        return AcceptStatistics(
            self._refused, self.accept_errors, self._inbound, self._last_refusal
        )

    def owns(self, socket_listener: object) -> bool:
        """Whether `socket_listener` (a trio.SocketListener) is one of this guard's."""
        return any(socket_listener in getattr(tcp, "listeners", ()) for tcp in self.listeners)

    def wrap(self, handler: Handler) -> Handler:
        """`handler`, preceded by the admission check."""

        async def guarded(stream: Any) -> None:
            if not self._admit():
                await self._refuse(stream)
                return
            self._inbound += 1
            try:
                await handler(stream)
            finally:
                self._inbound -= 1

        return guarded

    async def _refuse(self, stream: Any) -> None:
        self._refused += 1
        self._unlogged += 1
        self._last_refusal = self._reason()
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                await stream.close()
            except Exception:
                logger.debug("closing a refused connection failed", exc_info=True)
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._interval:
            return
        if self._logged_at is None:
            what = f"refused an inbound connection: {self._last_refusal}"
            what += f" (further refusals are summarised every {self._interval:.0f} s)"
        else:
            span = now - self._logged_at
            what = f"refused {self._unlogged} inbound connection(s) in the last {span:.0f} s: "
            what += self._last_refusal
        logger.warning("%s", what)
        self._logged_at, self._unlogged = now, 0


_guards: weakref.WeakSet[AcceptGuard] = weakref.WeakSet()


def install_accept_guard(
    tcp: TCP,
    admit: Callable[[], bool],
    *,
    reason: Callable[[], str] | None = None,
    clock: Callable[[], float] = trio.current_time,
) -> AcceptGuard:
    """Put an AcceptGuard in front of every listener `tcp` creates from now on.

    Call it before the host listens. py-libp2p 0.8.1's swarm calls `tcp.create_listener` once
    per listen address; the guard wraps the handler it is given. Also installs the
    accept-error filter on trio's accept loop logger.
    """
    guard = AcceptGuard(admit, reason=reason, clock=clock)
    create_listener = tcp.create_listener

    def guarded_create_listener(handler_function: Handler) -> Any:
        listener = create_listener(guard.wrap(handler_function))
        guard.listeners.add(listener)
        return listener

    tcp.create_listener = guarded_create_listener  # type: ignore[method-assign]
    _guards.add(guard)
    install_accept_error_filter()
    return guard


class _AcceptErrorFilter(logging.Filter):
    """Counts trio's "accept returned EMFILE" records; lets one summary through per interval."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.total = 0
        self._unlogged = 0
        self._logged_at: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, OSError) or exc.errno not in CAPACITY_ERRNOS:
            return True
        self.total += 1
        self._unlogged += 1
        owner = _socket_listener_of(record)
        for guard in list(_guards):
            if owner is not None and guard.owns(owner):
                guard.accept_errors += 1
        now = self.clock()
        if self._logged_at is not None and now - self._logged_at < SUMMARY_INTERVAL:
            return False
        span = None if self._logged_at is None else now - self._logged_at
        record.msg, record.args = _emfile_summary(exc.errno, self._unlogged, span), ()
        record.exc_info, record.exc_text = None, None  # one line, not a traceback
        self._logged_at, self._unlogged = now, 0
        return True


def _socket_listener_of(record: logging.LogRecord) -> object | None:
    """The trio.SocketListener whose accept failed: a local of trio's `_serve_one_listener`,
    the frame that caught the error (trio 0.27 to 0.35). None if trio changed."""
    tb = record.exc_info[2] if record.exc_info else None
    return None if tb is None else tb.tb_frame.f_locals.get("listener")


def _current_limits() -> FdLimits:
    """RLIMIT_NOFILE as it is now, read only (a log filter must not change the limits)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return FdLimits(None, None)
    infinity = resource.RLIM_INFINITY
    return FdLimits(None if soft == infinity else soft, None if hard == infinity else hard)


def _emfile_summary(code: int, count: int, span: float | None) -> str:
    limits = _current_limits()
    name = errno.errorcode.get(code, str(code))
    if span is None:
        head = f"accept failed with {name} ({os.strerror(code)})"
        tail = f"; further failures are summarised every {SUMMARY_INTERVAL:.0f} s"
    else:
        head = f"accept failed {count} times in the last {span:.0f} s with {name}"
        tail = ""
    where = "the process" if code == errno.EMFILE else "the system"
    return (
        f"{head}: {where} has no file descriptors or buffers left (soft limit "
        f"{_show(limits.soft)}, hard {_show(limits.hard)}); inbound connections wait until some"
        f" close; raise the limit (`ulimit -n {_show(limits.hard)}`) or lower the connection"
        f" cap{tail}"
    )


_filter_lock = threading.Lock()
_filter: _AcceptErrorFilter | None = None


def install_accept_error_filter() -> None:
    """Summarise trio's EMFILE/ENFILE/ENOBUFS/ENOMEM accept errors (idempotent, process-wide)."""
    global _filter
    with _filter_lock:
        if _filter is None:
            _filter = _AcceptErrorFilter()
            logging.getLogger("trio.serve_listeners").addFilter(_filter)
