"""`meshtalk chat`: a conversation with one contact in the terminal."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from ..control.client import connect_control
from .output import format_message, profile_of, who

__all__ = ["chat"]


def chat(args: argparse.Namespace) -> int:
    """Type lines to send them; the other side's messages appear as they arrive."""
    profile = profile_of(args)
    with connect_control(profile) as control:
        contact = control.call("contacts.list")
        target = _find_contact(contact, args.to)
        name = who(target["name"], target["peer_id"])
        recent = control.call("history", conversation=target["peer_id"], limit=10)
    for message in recent:
        print(format_message(message))
    print(f"chatting with {name}; type a message and press Enter (Ctrl-D or /quit to leave)")
    after = recent[-1]["cursor"] if recent else 0  # 0: nothing of this conversation is missed
    listener = threading.Thread(
        target=_show_incoming, args=(profile, target, name, after), daemon=True
    )
    listener.start()
    with connect_control(profile) as control:
        for line in sys.stdin:
            text = line.rstrip("\n")
            if text.strip() in ("/quit", "/exit"):
                break
            if text.strip():
                control.call("send", to=target["peer_id"], text=text, wait=False, via="human")
    return 0


def _find_contact(found: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    for contact in found:
        if ref in (contact["name"], contact["peer_id"]):
            return contact
    from ..protocol.errors import UnknownPeer

    raise UnknownPeer(f"{ref} is not a contact; pair first (meshtalk pair) or add it")


def _show_incoming(profile: Any, target: dict[str, Any], name: str, after: int) -> None:
    def show(event: dict[str, Any]) -> None:
        message = event["message"]
        if message["direction"] == "in":
            print(f"{name}: {message['text']}", flush=True)

    try:
        with connect_control(profile) as control:
            control.call("follow", show, conversation=target["peer_id"], after=after)
    except Exception as exc:  # the node went away: say so once, the main thread goes on
        print(f"[no longer receiving: {exc}]", flush=True)
