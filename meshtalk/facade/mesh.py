"""`Mesh` (sync) and `AsyncMesh` (asyncio): meshtalk for agent frameworks that are not trio.

    with Mesh("alice") as mesh:               # the profile's running node, or an embedded one
        mesh.send("bob", "hello", wait=True)
        batch = mesh.receive(wait=30)         # long-poll: {"messages": [...], "cursor": n}

Both talk to the profile's node through the operations of its control socket
(docs/control.md), so results are the same plain dicts everywhere. When no node runs for the
profile, `Mesh` starts one in a background trio thread (`embedded=None`, the default, does this
automatically; `embedded=False` refuses with NodeNotRunning; `embedded=True` insists) and also
serves the control socket, so `meshtalk` commands keep working while it runs. `AsyncMesh` runs
the same calls in worker threads. Errors are the same `MeshtalkError` types as everywhere.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from ..control.client import ControlClient, open_control
from ..profile.paths import PROFILE_ENV, profile_dir
from ..protocol.errors import ControlError, ControlTimeout, NodeNotRunning

__all__ = ["Mesh", "AsyncMesh", "PairingOffer"]

OnEvent = Callable[[dict[str, Any]], None]
_WAIT_SLICE = 1.0  # seconds an AsyncMesh long-poll holds a worker thread at a time
_READ_ONLY = frozenset(
    {"hello", "whoami", "status", "peers", "contacts.list", "history", "conversations", "receive"}
)


def _resolve_profile(profile: str | os.PathLike[str] | None) -> Path:
    if profile is None:
        return profile_dir(os.environ.get(PROFILE_ENV) or None)
    if isinstance(profile, str) and os.sep not in profile:
        return profile_dir(profile)
    return Path(profile)


class _SocketTransport:
    """Calls over the control socket; a small pool of connections, one call per connection."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self._idle: list[ControlClient] = []
        self._lock = threading.Lock()
        self._release(open_control(profile))  # fails now with NodeNotRunning if there is no node

    def _release(self, client: ControlClient) -> None:
        with self._lock:
            self._idle.append(client)

    def call(self, op: str, args: dict[str, Any], on_event: OnEvent | None, timeout: float) -> Any:
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = open_control(self.profile)
        client.settimeout(timeout)
        try:
            result = client.call(op, on_event, **args)
        except TimeoutError:
            client.close()
            raise ControlTimeout(f"the node did not answer {op!r} within {timeout:g} s") from None
        except (ControlError, OSError):
            client.close()
            raise
        self._release(client)
        return result

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()


class Mesh:
    """A profile's node, for synchronous code. Close it (or use `with`) when done."""

    def __init__(
        self,
        profile: str | os.PathLike[str] | None = None,
        *,
        embedded: bool | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.profile = _resolve_profile(profile)
        self.timeout = timeout
        self._mode = embedded
        self._lock = threading.Lock()
        self._transport: Any = None
        self.embedded = False
        self._connect()

    def _connect(self) -> None:
        """Use the profile's running node, or (unless embedded=False) start one here."""
        if self._mode is not True:
            try:
                self._transport = _SocketTransport(self.profile)
                self.embedded = False
                return
            except NodeNotRunning:
                if self._mode is False:
                    raise
        from .embedded import EmbeddedNode

        self._transport = EmbeddedNode(self.profile)
        self.embedded = True

    # -- plumbing ------------------------------------------------------------------------

    def call(
        self, op: str, on_event: OnEvent | None = None, deadline: float | None = None, **args: Any
    ) -> Any:
        """Run any control operation (docs/control.md) within `deadline` seconds.

        If the node this Mesh used goes away (another program's embedded node that stopped, a
        daemon stopped with `meshtalk down`), the next call finds or starts a node again;
        calls that only read are retried at once, others raise and can be repeated.
        """
        clean = {k: v for k, v in args.items() if v is not None}
        transport = self._transport
        try:
            return transport.call(op, clean, on_event, deadline or self.timeout)
        except (NodeNotRunning, ControlError) as exc:
            if self.embedded or self._mode is False or isinstance(exc, ControlTimeout):
                raise
            with self._lock:
                if self._transport is transport:  # not yet replaced by another thread
                    transport.close()
                    self._connect()
            if op not in _READ_ONLY:
                raise ControlError(
                    f"the node went away during {op!r} ({exc}); reconnected, so call again "
                    "(a message may or may not have been queued: check history)"
                ) from None
            return self._transport.call(op, clean, on_event, deadline or self.timeout)

    def close(self) -> None:
        """Let go of the node (an embedded node stops; a daemon keeps running)."""
        self._transport.close()

    def __enter__(self) -> Mesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ---------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """This node: peer ID, name, profile, mesh, addresses."""
        result: dict[str, Any] = self.call("whoami")
        return result

    def send(
        self,
        to: str,
        text: str,
        *,
        conversation: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        via: str = "agent",
    ) -> str:
        """Queue a message (durably) and return its id; with wait=True, until delivered.

        `via="agent"` (the default) applies the conversation guards; say `"human"` only for
        text a person typed.
        """
        deadline = (timeout or self.timeout) + 5
        result = self.call(
            "send",
            None,
            deadline,
            to=to,
            text=text,
            conversation=conversation,
            wait=wait,
            timeout=timeout,
            via=via,
        )
        return str(result["id"])

    def receive(
        self,
        after: int | None = None,
        *,
        conversation: str | None = None,
        wait: float = 0.0,
        limit: int = 50,
        consumer: str | None = None,
    ) -> dict[str, Any]:
        """Messages from trusted contacts after `after` (or the `consumer`'s position).

        Waits up to `wait` seconds for at least one. Returns {"messages": [...], "cursor": n};
        pass `cursor` as `after` next time.
        """
        result: dict[str, Any] = self.call(
            "receive",
            None,
            wait + self.timeout,
            after=after,
            conversation=conversation,
            wait=wait,
            limit=limit,
            consumer=consumer,
        )
        return result

    def messages(
        self, after: int | None = None, *, consumer: str | None = None, poll: float = 30.0
    ) -> Iterator[dict[str, Any]]:
        """Every message from trusted contacts, oldest first, waiting for new ones forever."""
        while True:
            batch = self.receive(after, wait=poll, consumer=consumer)
            yield from batch["messages"]
            after = batch["cursor"]

    def history(
        self, conversation: str | None = None, after: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Messages of a conversation (contact, peer ID or id; default all), both ways."""
        result: list[dict[str, Any]] = self.call(
            "history", conversation=conversation, after=after, limit=limit
        )
        return result

    def conversations(self) -> list[dict[str, Any]]:
        """Every conversation, most recently active first."""
        result: list[dict[str, Any]] = self.call("conversations")
        return result

    def peers(self) -> list[dict[str, Any]]:
        """Contacts and discovered peers: online, last seen, found via."""
        result: list[dict[str, Any]] = self.call("peers")
        return result

    def contacts(self) -> list[dict[str, Any]]:
        """Every contact."""
        result: list[dict[str, Any]] = self.call("contacts.list")
        return result

    def add_contact(
        self, peer: str, name: str | None = None, addresses: list[str] | None = None
    ) -> dict[str, Any]:
        """Trust a peer by peer ID."""
        result: dict[str, Any] = self.call(
            "contacts.add", peer=peer, name=name, addresses=addresses
        )
        return result

    def start_pairing(self, ttl: float | None = None) -> PairingOffer:
        """Make a pairing code; the returned offer's `wait()` gives the contact once used."""
        return PairingOffer(self, ttl)

    def pair_join(
        self, code: str, timeout: float = 60.0, name: str | None = None
    ) -> dict[str, Any]:
        """Pair with the node that shows `code`."""
        result: dict[str, Any] = self.call(
            "pair.join", None, timeout + self.timeout, code=code, timeout=timeout, name=name
        )
        return result

    def invite(self, ttl: float | None = None) -> str:
        """A one-time invite token for `join`."""
        return str(self.call("invite.create", ttl=ttl)["token"])

    def join(self, token: str, timeout: float = 30.0, name: str | None = None) -> dict[str, Any]:
        """Pair with the node that made `token`."""
        result: dict[str, Any] = self.call(
            "invite.join", None, timeout + self.timeout, token=token, timeout=timeout, name=name
        )
        return result


class PairingOffer:
    """A pairing code waiting for the other side (a background thread holds the request)."""

    def __init__(self, mesh: Mesh, ttl: float | None) -> None:
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


class AsyncMesh:
    """`Mesh` for asyncio code: the same methods, awaited (each call runs in a worker thread)."""

    def __init__(
        self,
        profile: str | os.PathLike[str] | None = None,
        *,
        embedded: bool | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._args = (profile, embedded, timeout)
        self._mesh: Mesh | None = None

    async def start(self) -> AsyncMesh:
        """Connect to (or start) the node; `async with AsyncMesh(...)` does it for you."""
        profile, embedded, timeout = self._args
        self._mesh = await asyncio.to_thread(Mesh, profile, embedded=embedded, timeout=timeout)
        return self

    @property
    def sync(self) -> Mesh:
        """The underlying `Mesh` (after `start`)."""
        if self._mesh is None:
            raise ControlError("AsyncMesh is not started: use `async with AsyncMesh(...)`")
        return self._mesh

    async def aclose(self) -> None:
        """Let go of the node."""
        if self._mesh is not None:
            await asyncio.to_thread(self._mesh.close)

    async def __aenter__(self) -> AsyncMesh:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(method, *args, **kwargs)

    async def call(self, op: str, **args: Any) -> Any:
        """Run any control operation."""
        return await self._run(self.sync.call, op, **args)

    async def whoami(self) -> dict[str, Any]:
        """This node."""
        result: dict[str, Any] = await self._run(self.sync.whoami)
        return result

    async def send(self, to: str, text: str, **kwargs: Any) -> str:
        """See `Mesh.send`."""
        return str(await self._run(self.sync.send, to, text, **kwargs))

    async def receive(
        self, after: int | None = None, *, wait: float = 0.0, **kwargs: Any
    ) -> dict[str, Any]:
        """See `Mesh.receive`. Long waits are taken in slices of at most a second, so that
        cancelling the awaiting task frees its worker thread within a second."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            step = max(0.0, min(_WAIT_SLICE, deadline - loop.time()))
            batch: dict[str, Any] = await self._run(self.sync.receive, after, wait=step, **kwargs)
            if batch["messages"] or loop.time() >= deadline:
                return batch
            if kwargs.get("consumer") is None:
                after = batch["cursor"]

    async def messages(
        self, after: int | None = None, *, consumer: str | None = None, poll: float = 30.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Every message from trusted contacts, waiting for new ones forever."""
        while True:
            batch = await self.receive(after, wait=poll, consumer=consumer)
            for message in batch["messages"]:
                yield message
            after = batch["cursor"]

    async def history(self, conversation: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """See `Mesh.history`."""
        result: list[dict[str, Any]] = await self._run(self.sync.history, conversation, **kwargs)
        return result

    async def conversations(self) -> list[dict[str, Any]]:
        """See `Mesh.conversations`."""
        result: list[dict[str, Any]] = await self._run(self.sync.conversations)
        return result

    async def peers(self) -> list[dict[str, Any]]:
        """See `Mesh.peers`."""
        result: list[dict[str, Any]] = await self._run(self.sync.peers)
        return result

    async def contacts(self) -> list[dict[str, Any]]:
        """See `Mesh.contacts`."""
        result: list[dict[str, Any]] = await self._run(self.sync.contacts)
        return result

    async def add_contact(self, peer: str, name: str | None = None) -> dict[str, Any]:
        """See `Mesh.add_contact`."""
        result: dict[str, Any] = await self._run(self.sync.add_contact, peer, name)
        return result

    async def start_pairing(self, ttl: float | None = None) -> PairingOffer:
        """See `Mesh.start_pairing` (await `asyncio.to_thread(offer.wait)` for the result)."""
        offer: PairingOffer = await self._run(self.sync.start_pairing, ttl)
        return offer

    async def pair_join(self, code: str, **kwargs: Any) -> dict[str, Any]:
        """See `Mesh.pair_join`."""
        result: dict[str, Any] = await self._run(self.sync.pair_join, code, **kwargs)
        return result

    async def invite(self, ttl: float | None = None) -> str:
        """See `Mesh.invite`."""
        return str(await self._run(self.sync.invite, ttl))

    async def join(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """See `Mesh.join`."""
        result: dict[str, Any] = await self._run(self.sync.join, token, **kwargs)
        return result
