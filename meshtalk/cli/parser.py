"""The argument parser of the `meshtalk` command (no command module is imported here)."""

from __future__ import annotations

import argparse
import os
from typing import Any, NoReturn

from .._version import __version__
from ..profile.paths import DEFAULT_PROFILE, PROFILE_ENV
from .completion import contact_names

__all__ = ["build_parser", "DEFAULT_RENDEZVOUS_LISTEN", "UsageError"]

DEFAULT_RENDEZVOUS_LISTEN = "/ip4/0.0.0.0/tcp/7400"

_EPILOG = """\
exit codes: 0 ok, 1 error, 2 bad arguments, 3 no node running for the profile, 4 the
recipient refused the message, 130 interrupted. With --json an error is one JSON object on
stderr: {"error": "NodeNotRunning", "code": 801, "message": "...", "remote": false, "exit": 3}.
Profiles live under $MESHTALK_HOME (default: the platform's user data folder); pick one with
--profile NAME or $MESHTALK_PROFILE, so several nodes can run on one machine.
"""


class UsageError(Exception):
    """Bad arguments: raised by the parser instead of printing usage and exiting, so that
    main() can report them as one line, or as JSON under --json, with exit code 2."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through add_subparsers, every subparser) that raises
    UsageError for bad arguments; --help and --version still print and exit 0."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def _contact(action: argparse.Action) -> None:
    """Complete this argument with the running node's contact names (shell completion)."""
    completer: Any = contact_names
    action.completer = completer  # type: ignore[attr-defined]  # argcomplete reads it


def _not_negative(text: str) -> int:
    """A whole number >= 0 (argparse turns the error into a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, not {text!r}")
    return value


def _common() -> _Parser:
    """Options every command takes, before or after its name."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--profile",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help=f"which node profile to use (default: ${PROFILE_ENV} or 'default')",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON for scripts instead of human-readable lines",
    )
    common.add_argument(
        "--verbose",
        "-v",
        action="count",
        dest="verbose_after",  # added to the count given before the command (main sums them)
        default=argparse.SUPPRESS,
        help="say more: -v logs what the node does, -vv also debug lines",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """Every command and option of `meshtalk`."""
    common = _common()
    parser = _Parser(
        prog="meshtalk",
        description="A peer-to-peer mesh for AI agents: signed, end-to-end encrypted messages "
        "between nodes, with no central server.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"meshtalk {__version__}")
    parser.add_argument(
        "--profile",
        metavar="NAME",
        default=os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE,
        help=f"which node profile to use (default: ${PROFILE_ENV} or 'default')",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument(
        "--verbose",
        "-v",
        action="count",
        default=0,
        help="say more: -v logs what the node does, -vv also debug lines",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=summary, description=description or summary, parents=[common]
        )

    p = command(
        "demo",
        "see it work: a rendezvous point and three nodes on this machine",
        "Start a rendezvous point and three nodes on 127.0.0.1 in temporary profiles; "
        "they discover each other, pair with a code and an invite, exchange signed and "
        "encrypted messages, and one goes away and gets its messages when it returns.",
    )
    p = command("init", "create this profile's identity and print its peer ID")
    p.add_argument("--name", help="how this node introduces itself when pairing")
    command("id", "print this profile's peer ID")
    p = command("up", "run this profile's node (Ctrl-C stops it)")
    p.add_argument(
        "--detach",
        "-d",
        action="store_true",
        help="run in the background and return once it is ready",
    )
    command("down", "stop this profile's background node")
    p = command("logs", "print this profile's node log (node.log)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    p.add_argument(
        "--lines",
        "-n",
        type=_not_negative,
        default=50,
        metavar="N",
        help="start with the last N lines (default 50; 0: the whole file)",
    )
    command("status", "the running node: addresses, rendezvous points, contacts online, outbox")
    command("http-key", "print the API key of the local HTTP API (docs/http.md)")
    command("http-url", "print the running node's HTTP API address")
    command("peers", "discovered peers and contacts: online, last seen, found via")

    p = command("contacts", "list, add, remove, rename, trust or block contacts")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="every contact", parents=[common])
    a = actions.add_parser("add", help="add a trusted contact by peer ID", parents=[common])
    a.add_argument("peer", help="the peer ID (12D3KooW...)")
    a.add_argument("name", nargs="?", help="a name to use instead of the peer ID")
    a.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="an address of the peer (repeatable)",
    )
    a = actions.add_parser("remove", help="forget a contact (its messages stay)", parents=[common])
    _contact(a.add_argument("contact", help="contact name or peer ID"))
    a = actions.add_parser("rename", help="give a contact another name", parents=[common])
    _contact(a.add_argument("contact", help="contact name or peer ID"))
    a.add_argument("name", help="the new name")
    for verb, summary in (
        ("trust", "accept messages from it again"),
        ("block", "refuse its messages"),
    ):
        a = actions.add_parser(verb, help=summary, parents=[common])
        _contact(a.add_argument("contact", help="contact name or peer ID"))

    p = command(
        "room",
        "rooms: create, invite, join, leave, list, show members, change membership",
        "A room is a group of nodes with signed membership; every member keeps its history "
        "and a member who was away catches up from any other (docs/rooms.md). Post with "
        "`meshtalk send ROOM TEXT`, read with `meshtalk history ROOM` or `meshtalk chat ROOM`.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="every room held here", parents=[common])
    a = actions.add_parser("create", help="a new room with you as its admin", parents=[common])
    a.add_argument("name", help="the room's name (members see it)")
    for verb, summary in (("show", "a room and its members"), ("members", "a room's members")):
        a = actions.add_parser(verb, help=summary, parents=[common])
        a.add_argument("room", help="room name or id")
    a = actions.add_parser("invite", help="invite a contact (admins only)", parents=[common])
    a.add_argument("room", help="room name or id")
    _contact(a.add_argument("contact", help="contact name or peer ID"))
    a = actions.add_parser(
        "token", help="a one-time token for an agent that is not your contact (admins only)",
        parents=[common],
    )  # fmt: skip
    a.add_argument("room", help="room name or id")
    a.add_argument(
        "--ttl", type=float, default=86400.0, metavar="S",
        help="how long the token stays valid (default 86400: a day)",
    )  # fmt: skip
    actions.add_parser("invites", help="invites your contacts sent you", parents=[common])
    a = actions.add_parser(
        "join", help="accept an invite or redeem a room token, and wait until added",
        parents=[common],
    )  # fmt: skip
    a.add_argument("room", help="the invite's room name or id, or a room token (mtr1...)")
    a.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="how long to wait for the admin to add you (default 30)",
    )
    a = actions.add_parser("leave", help="leave a room (its history stays)", parents=[common])
    a.add_argument("room", help="room name or id")
    for verb, summary in (
        ("remove", "remove a member (admins only)"),
        ("promote", "make a member an admin (admins only)"),
        ("demote", "take a member's admin rights; it stays a member (admins only)"),
    ):
        a = actions.add_parser(verb, help=summary, parents=[common])
        a.add_argument("room", help="room name or id")
        a.add_argument("member", help="the member's name in the room, or its peer ID")
    a = actions.add_parser("rename", help="give a room a new name (admins only)", parents=[common])
    a.add_argument("room", help="room name or id")
    a.add_argument("name", help="the new name (members see it)")

    p = command("send", "send a message and wait until it is delivered")
    _contact(p.add_argument("to", metavar="TO", help="contact name, peer ID or room name"))
    p.add_argument(
        "text",
        metavar="TEXT",
        help="the message, or - to read it from stdin (one trailing newline is dropped)",
    )
    p.add_argument("--no-wait", action="store_true", help="return once the message is queued")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="stop waiting after S seconds; the message stays queued (default 60)",
    )
    p = command(
        "inbox",
        "new incoming messages (marks them read)",
        "Print the received messages that no CLI view has shown yet, and mark them read. "
        "inbox, history and chat share one read position (the reader 'cli'): a message "
        "that history or chat displayed is not new here. The MCP server keeps its own "
        "(reader 'mcp'), so an agent and you each see every message once.",
    )
    p.add_argument("--peek", action="store_true", help="do not mark them read")
    p = command("history", "messages of one conversation, or of all")
    _contact(
        p.add_argument(
            "conversation",
            nargs="?",
            metavar="CONVERSATION",
            help="contact name, peer ID, room name or conversation id (default: all)",
        )
    )
    p.add_argument("--after", type=int, metavar="CURSOR", help="only messages after CURSOR")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new messages")
    p = command(
        "export",
        "write a conversation's or room's verifiable transcript",
        "Write the signed envelopes of a conversation (a room's with its membership log) as "
        "one file that `meshtalk verify` checks anywhere, offline. Binary: redirect stdout or "
        "give --output.",
    )
    _contact(
        p.add_argument(
            "conversation", metavar="CONVERSATION", help="room name, contact or conversation id"
        )
    )
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p = command(
        "verify",
        "check a transcript offline: signatures, authors, order",
        "Re-check every message of a transcript from `meshtalk export`: its author's "
        "signature, that its author could write there (a room's member at that time, by the "
        "membership log) and the order. Needs no node and no network; exit 1 if any fails.",
    )
    p.add_argument("file", metavar="FILE", help="the transcript file")
    p = command(
        "prune",
        "forget old messages now (never one still queued or not yet read)",
        "Delete delivered and read messages older than --older-than days, or the oldest "
        "beyond --max-mib; without options, use the profile's retain_days and retain_mib.",
    )
    p.add_argument(
        "--older-than", type=float, metavar="DAYS", help="forget messages older than this"
    )
    p.add_argument(
        "--max-mib", type=float, metavar="MIB", help="keep at most this many MiB of messages"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be forgotten, change nothing"
    )
    p = command("chat", "chat with a contact or in a room, in the terminal")
    _contact(p.add_argument("to", metavar="TO", help="contact name, peer ID or room name"))

    p = command(
        "pair",
        "pair with another node using a short code",
        "Without CODE: print a code such as 7-amber-falcon and wait until the other "
        "node uses it. With CODE: pair with the node that printed it. Both nodes then "
        "trust each other and reconnect later by themselves.",
    )
    p.add_argument("code", nargs="?", metavar="CODE", help="the code the other side printed")
    p.add_argument("--name", help="what to call the other node (default: the name it gives)")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="how long to look for the other node (default 60 when joining)",
    )
    p = command("invite", "print a one-time token another node can join with later")
    p.add_argument("--ttl", type=float, metavar="S", help="valid for S seconds (default 1 day)")
    p = command("join", "pair with the node that made an invite token")
    p.add_argument("token", metavar="TOKEN", help="the token `meshtalk invite` printed")
    p.add_argument("--name", help="what to call the other node (default: the name it gives)")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="how long to try to reach it (default 30)",
    )

    p = command(
        "rendezvous",
        "run a standalone rendezvous point (Ctrl-C stops it)",
        "Run a rendezvous point that introduces nodes to each other. It never sees a "
        "message. Its peer ID is this profile's identity, so it stays the same across "
        "restarts.",
    )
    p.add_argument(
        "--listen",
        action="append",
        metavar="MULTIADDR",
        help=f"where to listen (repeatable; default {DEFAULT_RENDEZVOUS_LISTEN})",
    )
    p.add_argument(
        "--relay",
        action="store_true",
        help="also relay for nodes behind NAT: they reserve here and are reached through it "
        "(it carries only encrypted bytes; docs/reach.md)",
    )
    p.add_argument(
        "--circuit-mib",
        type=float,
        metavar="MIB",
        help="with --relay: cut a circuit after this many MiB, both ways (default 256)",
    )
    p.add_argument(
        "--circuit-hours",
        type=float,
        metavar="H",
        help="with --relay: cut a circuit after this many hours (default 12)",
    )

    p = command("config", "show or change this profile's settings (config.toml)")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    a = actions.add_parser("get", help="print one setting, or all", parents=[common])
    a.add_argument("key", nargs="?", help="the setting's name")
    a = actions.add_parser("set", help="change one setting", parents=[common])
    a.add_argument("key", help="the setting's name")
    a.add_argument("value", help="the value (lists: comma-separated or TOML [..])")
    a = actions.add_parser("unset", help="put one setting back to its default", parents=[common])
    a.add_argument("key", help="the setting's name")
    actions.add_parser("path", help="print where config.toml is", parents=[common])

    command(
        "mcp",
        "serve MCP on stdio for a coding agent (uses the profile's node, or starts one)",
        "Run an MCP server on stdin/stdout with meshtalk's tools (whoami, list_peers, "
        "send_message, read_messages, list_conversations, pair_start, pair_status, pair_join). "
        "Add it to an MCP client, e.g.: claude mcp add meshtalk -- meshtalk mcp",
    )
    p = command(
        "completion",
        "print a shell completion script",
        "Print the script that makes the shell complete meshtalk's commands and options, e.g. "
        'eval "$(meshtalk completion bash)" in ~/.bashrc.',
    )
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="which shell")
    command(
        "selfcheck",
        "verify this installation: identities, sealing, tamper refusal",
        "Create two identities in a temporary folder, seal a message from one to the "
        "other and open it, and check that tampered or misaddressed copies are refused. "
        "Uses no network and leaves nothing behind.",
    )
    return parser
