"""`meshtalk room ACTION`: create, invite, join, leave, list and show rooms, and change who is
in them (remove, promote, demote) or their name (rename); docs/rooms.md.

Posting and reading use the usual commands with the room's name: `meshtalk send ROOM TEXT`,
`meshtalk history ROOM`, `meshtalk chat ROOM`.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from ..control.client import connect_control
from .output import ago, command_hint, emit_json, profile_of, safe, status_line, table, wants_json

__all__ = ["room"]


def _call(args: argparse.Namespace, op: str, **request: Any) -> Any:
    with connect_control(profile_of(args)) as control:
        return control.call(op, **request)


def room(args: argparse.Namespace) -> int:
    """room list|create|show|members|invite|invites|join|leave|remove|promote|demote|rename."""
    action = args.action
    if action == "list":
        return _list(args)
    if action == "invites":
        return _invites(args)
    if action == "create":
        found, done = _call(args, "room.create", name=args.name), "created"
    elif action in ("show", "members"):
        found, done = _call(args, "room.show", room=args.room), None
    elif action == "invite":
        if not wants_json(args):
            status_line(f"inviting {args.contact} to {args.room}…")
        invited = _call(args, "room.invite", room=args.room, contact=args.contact)
        if wants_json(args):
            emit_json(invited)
        else:
            print(f"invited {invited['invited_name'] or invited['invited']} to {invited['room']}")
            hint = command_hint(args, f"room join {shlex.quote(invited['room'])}")
            status_line(f"on their node:  {hint}")
        return 0
    elif action == "token":
        made = _call(args, "room.token", room=args.room, ttl=args.ttl)
        if wants_json(args):
            emit_json(made)
        else:
            print(made["token"])
            hint = command_hint(args, "room join TOKEN")
            status_line(f"one use, for room {made['room']}; on the new agent's node:  {hint}")
        return 0
    elif action == "join":
        found, done = _join(args), "joined"
    elif action == "leave":
        found, done = _call(args, "room.leave", room=args.room), "left"
    elif action == "rename":
        found, done = _call(args, "room.rename", room=args.room, name=args.name), "renamed"
    else:  # remove, promote, demote
        found = _call(args, f"room.{action}", room=args.room, member=args.member)
        done = _DONE[action].format(member=args.member)
    if wants_json(args):
        emit_json(found)
        return 0
    if done is not None:
        print(f"{done} room {safe(found['name'])} ({found['id'][:12]})")
    _show(args, found)
    return 0


_DONE = {
    "remove": "removed {member} from",
    "promote": "made {member} an admin of",
    "demote": "{member} is no longer an admin of",
}


def _join(args: argparse.Namespace) -> dict[str, Any]:
    quiet = wants_json(args)

    def joining(event: dict[str, Any]) -> None:
        if not quiet:
            status_line(f"asking the admin to add this node to {event['joining']}…")

    with connect_control(profile_of(args)) as control:
        result: dict[str, Any] = control.call(
            "room.join", joining, room=args.room, timeout=args.timeout
        )
    return result


def _list(args: argparse.Namespace) -> int:
    found = _call(args, "room.list")
    if wants_json(args):
        emit_json(found)
    elif not found:
        create, invites = command_hint(args, "room create NAME"), command_hint(args, "room invites")
        print(f"no rooms yet ({create}, or see invites: {invites})")
    else:
        rows = [
            [safe(r["name"]), r["id"][:12], str(r["member_count"]), _standing(r)] for r in found
        ]
        table(["NAME", "ID", "MEMBERS", "YOU"], rows)
    return 0


def _invites(args: argparse.Namespace) -> int:
    found = _call(args, "room.invites")
    if wants_json(args):
        emit_json(found)
    elif not found:
        print("no room invites")
    else:
        table(
            ["ROOM", "ID", "FROM"],
            [
                [safe(i["room"]), i["room_id"][:12], i["inviter_name"] or i["inviter"]]
                for i in found
            ],
        )
        status_line(f"accept one with:  {command_hint(args, 'room join ROOM')}")
    return 0


def _standing(found: dict[str, Any]) -> str:
    if found["left_ms"] is not None:
        return f"left {ago(found['left_ms'])}"
    if found["admin"]:
        return "admin"
    return "member" if found["member"] else "not added yet"


def _show(args: argparse.Namespace, found: dict[str, Any]) -> None:
    print(f"room {safe(found['name'])}  {found['id']}  ({_standing(found)})")
    rows = [
        [
            safe(m["name"]) + (" (me)" if m["me"] else ""),
            m["peer_id"],
            "admin" if m["admin"] else "member",
        ]
        for m in found["members"]
    ]
    table(["NAME", "PEER ID", "ROLE"], rows)
    if found["member"] and args.action in ("create", "join"):
        post = command_hint(args, f"send {shlex.quote(found['name'])} 'hello, room'")
        print(f"post to it: {post}")
