"""`Mesh`: meshtalk for synchronous code (agent frameworks that are not trio).

    with Mesh("alice") as mesh:               # the profile's running node, or an embedded one
        mesh.send("bob", "hello", wait=True)
        batch = mesh.receive(wait=30)         # long-poll: {"messages": [...], "cursor": n}

`Mesh` talks to the profile's node through the operations of its control socket
(docs/control.md), so results are the same plain dicts everywhere. It holds a `Transport`
(`meshtalk.facade.transport`): the running node's control socket or, when no node runs for the
profile, a node it starts in a background trio thread (`embedded=None`, the default, does this
automatically; `embedded=False` refuses with NodeNotRunning; `embedded=True` insists), which
also serves the control socket, so `meshtalk` commands keep working while it runs. Errors are
the same `MeshtalkError` types as everywhere. A daemon that restarts is reconnected to
transparently (see `call`); `send` either returns the id of a queued message or raises, and a
send that raised queued nothing. `AsyncMesh` (`meshtalk.facade.async_mesh`) runs
the same calls in worker threads; `start_pairing` returns a `PairingOffer`
(`meshtalk.facade.offer`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..profile.paths import PROFILE_ENV, profile_dir
from ..protocol.envelope import new_message_id
from ..protocol.errors import (
    ControlError,
    ControlTimeout,
    DeliveryTimeout,
    NodeNotRunning,
)
from .mesh_rooms import MeshRooms
from .offer import PairingOffer
from .sent import SendRecovery
from .transport import OnEvent, ReplyLost, SocketTransport, Transport

__all__ = ["Mesh"]


def _resolve_profile(profile: str | os.PathLike[str] | None) -> Path:
    if profile is None:
        return profile_dir(os.environ.get(PROFILE_ENV) or None)
    if isinstance(profile, str) and os.sep not in profile:
        return profile_dir(profile)
    return Path(profile)


class Mesh(MeshRooms):
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
        self.embedded = False
        self._transport: Transport = self._connect()

    def _connect(self) -> Transport:
        """The profile's running node, or (unless embedded=False) one started here."""
        if self._mode is not True:
            try:
                transport = SocketTransport(self.profile)
            except NodeNotRunning:
                if self._mode is False:
                    raise
            else:
                self.embedded = False
                return transport
        from .embedded import EmbeddedNode

        node = EmbeddedNode(self.profile)
        self.embedded = True
        return node

    # -- plumbing ------------------------------------------------------------------------

    def call(
        self, op: str, on_event: OnEvent | None = None, deadline: float | None = None, **args: Any
    ) -> Any:
        """Run any control operation (docs/control.md) within `deadline` seconds.

        A daemon that restarted is reconnected to at once: a call is run again on a new
        connection when the request never reached the node, and calls that only read also when
        the answer was lost. If no node runs for the profile any more, the call raises
        NodeNotRunning with `embedded=False`; otherwise this Mesh starts the node itself and
        goes on. A call that changes something and lost its answer raises ControlError (it is
        not known whether it ran); `send` finds out instead.
        """
        try:
            return self._run(op, on_event, deadline, args)
        except ReplyLost as lost:
            raise ControlError(
                f"{lost}: it may or may not have been done; check before repeating it"
            ) from None

    def _run(
        self, op: str, on_event: OnEvent | None, deadline: float | None, args: dict[str, Any]
    ) -> Any:
        """`call`, except that a lost answer raises ReplyLost."""
        clean = {k: v for k, v in args.items() if v is not None}
        transport = self._transport
        try:
            return transport.call(op, clean, on_event, deadline or self.timeout)
        except NodeNotRunning:
            # No node took the request (it was never sent), so it is safe to run it elsewhere.
            if self.embedded or self._mode is False:
                raise
            with self._lock:
                if self._transport is transport:  # not yet replaced by another thread
                    transport.close()
                    self._transport = self._connect()
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

        A send that returned queued the message; a send that raised queued nothing, except
        DeliveryTimeout (wait=True), which carries the queued message's id. If the node goes
        away during the send, this finds out whether it had queued the message: if so, the id
        is returned (or DeliveryTimeout raised); if not, the send is made once more. Empty text
        is refused by the node (EmptyMessage). `via="agent"` (the default) applies the
        conversation guards; say `"human"` only for text a person typed.
        """
        deadline = (timeout or self.timeout) + 5
        # The id is chosen here, so a send whose answer was lost can be looked for, and sent
        # again idempotently (the node returns the id it already holds).
        message_id = new_message_id(time.time_ns() // 1_000_000).hex()
        args = {"to": to, "text": text, "conversation": conversation, "wait": wait,
                "timeout": timeout, "via": via, "id": message_id}  # fmt: skip
        recovery = SendRecovery(self._run, to, conversation, message_id)
        for attempt in (1, 2):
            recovery.begin()
            try:
                result = self._run("send", recovery.on_event, deadline, args)
            except ControlTimeout:
                if recovery.queued_id is None:
                    raise  # "it may still be working": the id lets `history` tell
                raise DeliveryTimeout(
                    f"the message is queued (id {message_id}) but its delivery was not "
                    "confirmed in time; it will still be delivered"
                ).about(bytes.fromhex(message_id)) from None
            except ReplyLost:
                found = recovery.queued_id or recovery.find(self.timeout)
                if found is None and attempt == 1:
                    continue  # the node had not queued it: sending again cannot double it
                return recovery.settle(found, wait)
            return str(result["id"])
        raise AssertionError("unreachable")  # pragma: no cover

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

    def inbox(
        self, *, reader: str | None = None, peek: bool = False, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Incoming messages not yet read by `reader` (a short name: each reader has its own
        read position; default the CLI's `inbox`), oldest first; marks them read unless
        `peek`."""
        args: dict[str, Any] = {"peek": peek or None, "limit": limit}
        if reader is not None:  # only when given, so that nodes without readers still answer
            args["reader"] = reader
        result: list[dict[str, Any]] = self.call("inbox", **args)
        return result

    def history(
        self, conversation: str | None = None, after: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Messages of a conversation (contact, peer ID, room or id; default all), both ways."""
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
