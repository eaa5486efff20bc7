"""Commands that ask the running node, over its control socket."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from ..control.client import connect_control
from ..protocol.errors import EmptyMessage
from .output import (
    ago,
    clean_reason,
    command_hint,
    emit_json,
    profile_of,
    status_line,
    table,
    wants_json,
    who,
)

__all__ = [
    "status",
    "peers",
    "contacts",
    "send",
    "pair",
    "invite",
    "join",
    "without_final_newline",
]


def _call(args: argparse.Namespace, op: str, **request: Any) -> Any:
    with connect_control(profile_of(args)) as control:
        return control.call(op, **request)


def status(args: argparse.Namespace) -> int:
    """The running node at a glance."""
    info = _call(args, "status")
    if wants_json(args):
        emit_json(info)
        return 0
    print(f"node      {info['name']}  {info['peer_id']}")
    print(
        f"profile   {info['profile']} (pid {info['pid']}, up {info['uptime_s']:g} s, "
        f"meshtalk {info['version']}, mesh {info['mesh']!r})"
    )
    for address in info["listening"]:
        print(f"listening {address}")
    for point in info["rendezvous"]:
        error = f" ({clean_reason(point['last_error'])})" if point["last_error"] else ""
        print(f"rendezvous {point['point'][:20]}… {point['state']}{error}")
    if not info["rendezvous"]:
        hint = command_hint(args, "config set rendezvous <address>")
        print(f"rendezvous none configured ({hint})")
    mdns = info["mdns"]
    print(f"mDNS      {mdns['state'] if mdns else 'off'}")
    http = info.get("http")
    if http:  # a daemon of an older version sends none
        shown = http["url"] or http["error"] or ""
        print(f"http      {shown} ({http['state']})" if shown else f"http      {http['state']}")
    reach = info.get("reach")
    if reach:  # a daemon of an older version sends none
        print(f"reachable {reach['summary']}")
        for relay in reach["relays"]:
            error = f" ({clean_reason(relay['error'])})" if relay["error"] else ""
            print(f"relay     {relay['relay'][:20]}… {relay['state']}{error}")
    online = info["contacts_online"]
    print(
        f"contacts  {info['contacts']} ({len(online)} online{': ' if online else ''}"
        f"{', '.join(online)})"
    )
    print(f"outbox    {info['outbox']} message(s) waiting for delivery")
    held = info.get("connections")
    if held:  # a daemon of an older version sends none
        print(
            f"connections {held['held']} of {held['budget']} to {held['peers']} peer(s), "
            f"{held['dials_in_flight']} dial(s) in flight, {held['dials_queued']} queued, "
            f"{held['refused_inbound']} inbound refused"
        )
    return 0


def peers(args: argparse.Namespace) -> int:
    """Discovered peers and contacts."""
    found = _call(args, "peers")
    if wants_json(args):
        emit_json(found)
        return 0
    if not found:
        print(f"no peers known yet (pair with one: {command_hint(args, 'pair')})")
        return 0
    rows = [
        [
            p["name"] or ("(rendezvous point)" if p.get("rendezvous_point") else "-"),
            p["peer_id"],
            (p.get("connection") or "yes") if p["online"] else "no",
            ago(p["last_seen_ms"]),
            ", ".join(p["sources"]) or "contact",
            p["trust"] or "not a contact",
        ]
        for p in found
    ]
    table(["NAME", "PEER ID", "ONLINE", "LAST SEEN", "VIA", "TRUST"], rows)
    return 0


def contacts(args: argparse.Namespace) -> int:
    """contacts list|add|remove|rename|trust|block."""
    action = args.action
    if action == "list":
        found = _call(args, "contacts.list")
        if wants_json(args):
            emit_json(found)
        elif not found:
            pair, add = command_hint(args, "pair"), command_hint(args, "contacts add PEER_ID NAME")
            print(f"no contacts yet ({pair}, or {add})")
        else:
            rows = [
                [c["name"] or "-", c["peer_id"], c["trust"], ago(c["last_seen_ms"])] for c in found
            ]
            table(["NAME", "PEER ID", "TRUST", "LAST SEEN"], rows)
        return 0
    if action == "add":
        contact = _call(
            args, "contacts.add", peer=args.peer, name=args.name, addresses=args.address
        )
        verb = "added"
    elif action == "remove":
        contact, verb = _call(args, "contacts.remove", ref=args.contact), "removed"
    elif action == "rename":
        contact = _call(args, "contacts.rename", ref=args.contact, name=args.name)
        verb = "renamed"
    else:
        trust = "trusted" if action == "trust" else "blocked"
        contact, verb = _call(args, "contacts.trust", ref=args.contact, trust=trust), trust
    if wants_json(args):
        emit_json(contact)
    else:
        print(f"{verb} {who(contact['name'], contact['peer_id'])} ({contact['peer_id']})")
    return 0


def send(args: argparse.Namespace) -> int:
    """Send one message; wait for delivery unless --no-wait."""
    text = without_final_newline(sys.stdin.read()) if args.text == "-" else args.text
    if not text.strip():
        raise EmptyMessage("the message is empty: give some text, or - to read it from stdin")
    quiet = wants_json(args)

    def queued(event: dict[str, Any]) -> None:
        if not quiet:
            waiting = "" if args.no_wait else ", waiting for delivery…"
            status_line(f"queued for {event['to']} (id {event['queued'][:12]}){waiting}")

    with connect_control(profile_of(args)) as control:
        result = control.call(
            "send",
            queued,
            to=args.to,
            text=text,
            wait=not args.no_wait,
            timeout=args.timeout,
            via="human",
        )
    if quiet:
        emit_json(result)
    elif result["delivered"]:
        print(f"delivered to {args.to}")
    else:
        print(f"queued for {args.to}; it will be delivered in the background")
    return 0


def without_final_newline(text: str) -> str:
    """Text read from stdin without the one newline that ends it (`echo hi`, a file), as the
    shell's $(...) drops it; a blank line the writer meant (two newlines) keeps one."""
    for end in ("\r\n", "\n"):
        if text.endswith(end):
            return text[: -len(end)]
    return text


def pair(args: argparse.Namespace) -> int:
    """Print a code and wait, or join with a code."""
    quiet = wants_json(args)
    if args.code is None:

        def show_code(event: dict[str, Any]) -> None:
            if quiet:
                emit_json(event)
                return
            print(f"pairing code: {event['code']}", flush=True)
            status_line(f"on the other machine run:  meshtalk pair {event['code']}")
            status_line("waiting for the other node… (Ctrl-C to cancel)")

        with connect_control(profile_of(args)) as control:
            contact = control.call("pair.offer", show_code, name=args.name, ttl=args.timeout)
    else:
        with connect_control(profile_of(args)) as control:
            if not quiet:
                status_line(f"looking for the node that offered {args.code}…")
            contact = control.call(
                "pair.join", code=args.code, name=args.name, timeout=args.timeout or 60
            )
    return _paired(args, contact)


def invite(args: argparse.Namespace) -> int:
    """Print a one-time invite token."""
    result = _call(args, "invite.create", ttl=args.ttl)
    if wants_json(args):
        emit_json(result)
    else:
        print(result["token"])
        status_line("on the other machine run:  meshtalk join <the token above>")
        status_line("this node must be running then; the token works once")
    return 0


def join(args: argparse.Namespace) -> int:
    """Pair with the node that made a token."""
    with connect_control(profile_of(args)) as control:
        if not wants_json(args):
            status_line("contacting the node that made the invite…")
        contact = control.call(
            "invite.join", token=args.token, name=args.name, timeout=args.timeout
        )
    return _paired(args, contact)


def _paired(args: argparse.Namespace, contact: dict[str, Any]) -> int:
    """Report a new contact from `pair` or `join`."""
    if wants_json(args):
        emit_json(contact)
    else:
        print(f"paired with {who(contact['name'], contact['peer_id'])} ({contact['peer_id']})")
        to = shlex.quote(contact["name"] or contact["peer_id"])
        hint = command_hint(args, f"send {to} 'hello'")
        print(f"send it a message: {hint}")
    return 0
