"""`meshtalk chat`: a conversation with one contact in the terminal.

Three threads share one `Chat`: the main one reads what the user types (a prompt_toolkit
prompt on a terminal, plain lines from a pipe) and sends it, a follower prints the
conversation's new messages as the node stores them (the `follow` op), and a watcher reports
when each sent line is delivered, refused, or slow (it asks `history` for the statuses of the
lines still pending). Message text from a peer is printed with its control characters made
visible, so a hostile peer cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..control.client import connect_control, open_control
from ..profile.paths import DEFAULT_PROFILE
from ..protocol.errors import (
    REMOTE_PREFIX,
    ControlError,
    ControlTimeout,
    MeshtalkError,
    UnknownPeer,
)
from ..protocol.room_errors import NotAMember
from .output import profile_of, safe, who

__all__ = ["chat", "Chat", "HELP"]

HELP = """commands:
  /help          this list
  /quit, /exit   leave the chat (Ctrl-D too; Ctrl-C leaves at once)
  //text         send a line that starts with "/" (as "/text")
Any other line is sent as typed, without its line ending; blank lines are not sent.
Up and Down recall what you typed before; the usual line editing keys work."""

_CALL_TIMEOUT = 15.0  # s: one request to the node (a send only stores the message)
_POLL = 0.25  # s: how often the watcher asks for the status of pending lines
_SLOW = 10.0  # s: a line not delivered by then gets a note that it stays queued
_LINGER = 5.0  # s: on leaving, how long to wait for the acks of the last lines
_RECENT = 10  # messages of the conversation shown on start
# C0/C1 controls (but tab and newline), and the bidi controls that reorder what is shown


def chat(args: argparse.Namespace) -> int:
    """Type lines to send them; the other side's messages appear as they arrive."""
    profile = profile_of(args)
    with connect_control(profile, timeout=_CALL_TIMEOUT) as control:
        target = find_target(control, args.to)
        peer_id = target["peer_id"]  # a room's: its id, which `send` and `history` accept
        recent = control.call("history", conversation=peer_id, limit=_RECENT, reader="cli")
        online = any(p["peer_id"] == peer_id and p["online"] for p in control.call("peers"))
        own_id = control.call("whoami")["peer_id"]
    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    name = f"#{safe(target['name'])}" if target.get("room") else safe(who(target["name"], peer_id))
    session = Chat(profile, peer_id, name, terminal)
    session.own_id = own_id
    for message in recent:
        session.out(session.line_of(message))
    state = "" if online else f" (not connected to {session.name} now: lines wait until it is)"
    if target.get("room"):
        state = f" ({target['member_count']} members)"
    session.out(f"chatting with {session.name}{state}; /help lists the commands, /quit leaves")
    session.start(recent[-1]["cursor"] if recent else 0)
    try:
        if terminal:
            from .chat_terminal import run_terminal  # prompt_toolkit only for a person

            code = run_terminal(session, profile)
        else:
            code = run_piped(session)
        session.finish()
    finally:
        session.stop()
    session.raise_if_lost()
    return code


def find_target(control: Any, ref: str) -> dict[str, Any]:
    """The contact `ref` names, or else the room (as {"room": True, "peer_id": its id, ...})."""
    try:
        return find_contact(control.call("contacts.list"), ref)
    except UnknownPeer:
        try:
            found: dict[str, Any] = control.call("room.show", room=ref)
        except MeshtalkError:
            raise UnknownPeer(
                f"{ref} is neither a contact nor a room; pair first (meshtalk pair), or see "
                "meshtalk room list"
            ) from None
        if not found["member"]:
            raise NotAMember(f"this node is not a member of room {ref!r} (any more)") from None
        return {**found, "room": True, "peer_id": found["id"]}


def find_contact(found: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """The contact named `ref` (name or peer ID) in a `contacts.list` result."""
    for contact in found:
        if ref in (contact["name"], contact["peer_id"]):
            return contact
    raise UnknownPeer(f"{ref} is not a contact; pair first (meshtalk pair) or add it")


def when(ms: int, now: float | None = None) -> str:
    """`14:03` today, `2026-11-30 14:03` another day (local time)."""
    stamp, today = time.localtime(ms / 1000), time.localtime(now)
    same_day = stamp[:3] == today[:3]
    return time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", stamp)


def run_piped(session: Chat) -> int:
    """Read lines from a pipe until it ends or a /quit; no prompt, no line editing."""
    events: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            events.put(line)
        events.put(None)  # end of input

    threading.Thread(target=read, daemon=True, name="chat-stdin").start()
    session.on_lost = lambda: events.put(None)
    while (line := events.get()) is not None and not session.lost:
        if not session.handle(line):
            break
    return 0


@dataclass
class _Pending:
    """A line this chat sent that is not yet delivered or refused."""

    text: str
    sent: float  # time.monotonic()
    warned: bool = False


class Chat:
    """What the user sees and sends in one chat, shared by its threads."""

    def __init__(self, profile: Path, peer_id: str, name: str, terminal: bool) -> None:
        self.profile, self.peer_id, self.name, self.terminal = profile, peer_id, name, terminal
        self.on_lost: Callable[[], None] = lambda: None  # set by the loop reading input
        self.lost: str | None = None  # why the node can no longer be reached
        self._lock = threading.Lock()  # pending, own, lost, and one send at a time
        self._pending: dict[str, _Pending] = {}
        self._own: set[str] = set()  # ids of the lines sent here, not shown again by follow
        self._floor = 0  # every pending line has a cursor above this one
        self._wake, self._stopped = threading.Event(), threading.Event()
        self._control: Any = None
        self._watcher: threading.Thread | None = None
        self.own_id = ""  # this node's peer ID, shown as "you" in a refusal

    # -- output -------------------------------------------------------------------------------

    def out(self, text: str) -> None:
        """One line of the conversation (stdout; above the prompt on a terminal)."""
        print(text, flush=True)

    def note(self, text: str) -> None:
        """A remark about the chat itself: above the prompt, or on stderr when piped."""
        print(text, file=sys.stdout if self.terminal else sys.stderr, flush=True)

    def line_of(self, message: dict[str, Any]) -> str:
        """A stored message as a chat line: time, sender, text (and how far an own one got)."""
        text = safe(message["text"])
        if message["direction"] == "in":
            author = safe(who(message["author_name"], message["author"]))
            return _block(f"{when(message['timestamp_ms'])} {author}: ", text)
        status = message["status"]
        mark = {"delivered": "  ✓", "failed": "  ✗ not delivered"}.get(status, f"  ({status})")
        return _block(f"{when(message['timestamp_ms'])} me: ", text) + mark

    # -- input --------------------------------------------------------------------------------

    def handle(self, line: str) -> bool:
        """Act on one typed line; False when the user asked to leave."""
        text = line.rstrip("\r\n")  # the line ending is not part of the message, as in `send`
        word = text.strip()
        if not word:
            return True
        if word.startswith("//"):
            text = text.replace("/", "", 1)
        elif word.startswith("/"):
            command = word.split()[0]
            if command in ("/quit", "/exit"):
                return False
            if command == "/help":
                print(HELP, flush=True)
            else:
                self.note(f"unknown command {safe(command)}: /help lists them "
                          "(start a line with // to send it with one /)")  # fmt: skip
            return True
        self.send(text)
        return True

    def send(self, text: str) -> None:
        """Queue one line for the contact and show it; a refusal by this node is one note."""
        with self._lock:  # the follower waits here, so it knows the id before it sees the line
            try:
                result = self._connection().call(
                    "send", to=self.peer_id, text=text, wait=False, via="human"
                )
            except ControlError:
                raise
            except TimeoutError:
                raise ControlTimeout(
                    f"the node did not answer within {_CALL_TIMEOUT:.0f} s; is it overloaded?"
                ) from None
            except MeshtalkError as exc:  # too large, a guard, the contact removed: say why
                self.note(f"not sent: {exc}")
                return
            self._own.add(result["id"])
            self._pending[result["id"]] = _Pending(text, time.monotonic())
        self.out(_block(f"{when(int(time.time() * 1000))} me: ", safe(text)) + "  (queued)")
        self._wake.set()

    def _connection(self) -> Any:
        if self._control is None:
            self._control = open_control(self.profile, timeout=_CALL_TIMEOUT)
        return self._control

    # -- the threads --------------------------------------------------------------------------

    def start(self, after: int) -> None:
        """Start following the conversation after cursor `after`, and watching deliveries."""
        self._floor = after
        threading.Thread(
            target=self._follow, args=(after,), daemon=True, name="chat-follow"
        ).start()
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="chat-watch")
        self._watcher.start()

    def stop(self) -> None:
        """Stop the watcher and hang up (the follower ends with the process)."""
        self._stopped.set()
        self._wake.set()
        if self._watcher is not None:  # let it read the answer it waits for: hanging up on
            self._watcher.join(_CALL_TIMEOUT)  # an unread answer resets the connection
        if self._control is not None:
            self._control.close()

    def finish(self) -> None:
        """Before leaving: wait a little for the acks of the last lines, then say what is left."""
        deadline = time.monotonic() + _LINGER
        while self._pending and self.lost is None and time.monotonic() < deadline:
            time.sleep(_POLL / 2)
        if self._pending and self.lost is None:
            count = len(self._pending)
            self.note(f"{count} line{'s' if count > 1 else ''} not delivered yet: the node keeps "
                      f"{'them' if count > 1 else 'it'} queued for {self.name}")  # fmt: skip

    def raise_if_lost(self) -> None:
        """Raise ControlError if the node went away during the chat."""
        if self.lost is not None:
            flag = "" if self.profile.name == DEFAULT_PROFILE else f" --profile {self.profile.name}"
            raise ControlError(
                f"{self.lost}; the chat ended (start the node again: meshtalk{flag} up --detach)"
            )

    def _lose(self, exc: Exception) -> None:
        with self._lock:
            first = self.lost is None and not self._stopped.is_set()
            if first:
                self.lost = str(exc) if isinstance(exc, MeshtalkError) else f"lost the node: {exc}"
        if first:
            self.on_lost()

    def _follow(self, after: int) -> None:
        def show(event: dict[str, Any]) -> None:
            message = event["message"]
            with self._lock:
                mine = message["id"] in self._own
            if message["direction"] == "in":
                self.out(self.line_of(message))
            elif not mine:  # sent by another tool (meshtalk send, an agent) on this node
                self.out(self.line_of(message) + " (sent elsewhere)")

        try:
            with connect_control(self.profile) as control:  # no timeout: it waits for messages
                control.call("follow", show, conversation=self.peer_id, after=after, reader="cli")
        except (MeshtalkError, OSError) as exc:
            self._lose(exc)

    def _watch(self) -> None:
        try:
            with connect_control(self.profile, timeout=_CALL_TIMEOUT) as control:
                while not self._stopped.is_set():
                    self._wake.wait(_POLL)
                    self._wake.clear()
                    with self._lock:
                        floor, waiting = self._floor, bool(self._pending)
                    if waiting:
                        found = control.call(
                            "history", conversation=self.peer_id, after=floor, limit=200
                        )
                        self._settle(found)
        except (MeshtalkError, OSError) as exc:
            self._lose(exc)

    def _settle(self, found: list[dict[str, Any]]) -> None:
        """Report the pending lines that were delivered, refused, or are slow."""
        lines, still = [], []
        with self._lock:
            for message in found:
                pending = self._pending.get(message["id"])
                if pending is None:
                    continue
                line, done = self._progress(message, pending)
                if line:
                    lines.append(line)
                if done:
                    del self._pending[message["id"]]
                else:
                    still.append(message["cursor"])
            if still:
                self._floor = min(still) - 1
            elif found:
                self._floor = max(self._floor, found[-1]["cursor"])
        for line in lines:
            self.out(line)

    def _progress(self, message: dict[str, Any], pending: _Pending) -> tuple[str | None, bool]:
        """What to say about one pending line now, and whether it is settled."""
        short, stamp = _short(pending.text), when(int(time.time() * 1000))
        if message["status"] == "delivered":
            return f"{stamp} ✓ delivered: {short}", True
        if message["status"] == "failed":
            why = self.reason(message["error"])
            return f"{stamp} ✗ not delivered: {short}: {why}; it will not be retried", True
        if pending.warned or time.monotonic() - pending.sent < _SLOW:
            return None, False
        pending.warned = True
        return (f"… still queued: {short} ({self.name} is not reachable now; the node "
                "delivers it when it is)"), False  # fmt: skip

    def reason(self, error: str | None) -> str:
        """A stored delivery error (`<peer>: NotAuthorized: peer refused: ...`) as a short
        clause with names: `bob refused it: bob does not accept messages from you`."""
        text = safe(error or "refused").replace(self.peer_id, self.name)
        if self.own_id:
            text = text.replace(self.own_id, "you")
        _, refused, detail = text.partition(REMOTE_PREFIX)
        if refused:
            return f"{self.name} refused it: {detail}"
        return re.sub(r"^(\S+: )?[A-Z]\w+: ", "", text)  # drop "<peer>: TypeName: "


def _block(prefix: str, text: str) -> str:
    """`prefix` then `text`, its later lines indented under the first."""
    return prefix + text.replace("\n", "\n" + " " * len(prefix))


def _short(text: str, width: int = 40) -> str:
    one = safe(" ".join(text.split()))
    return f"“{one if len(one) <= width else one[: width - 1] + '…'}”"
