"""Shell completion with argcomplete: `meshtalk completion SHELL` prints the script, and
`autocomplete` answers the shell's questions (when `_ARGCOMPLETE` is set) before anything else.

argcomplete runs the whole `meshtalk` command for every Tab, so this module imports nothing
heavy at its top: argcomplete only when completing or printing a script, the control client
only when a contact name is being completed.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["completion", "autocomplete", "contact_names", "CONTACTS_TIMEOUT"]

CONTACTS_TIMEOUT = 0.5
"""How long a Tab waits for the running node's contact list before it completes nothing."""


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """If the shell is asking for completions, answer and end the process; else return at once."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    # Options only once a '-' is typed: `meshtalk <Tab>` lists the commands alone.
    argcomplete.autocomplete(parser, always_complete_options=False)


def contact_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The running node's contacts whose name (or peer ID) starts with `prefix`.

    Nothing, silently, when no node runs or it does not answer within CONTACTS_TIMEOUT: a Tab
    must never print an error or hang the shell.
    """
    from ..control.client import open_control
    from ..profile.paths import profile_dir

    try:
        client = open_control(profile_dir(getattr(parsed_args, "profile", None)), CONTACTS_TIMEOUT)
        try:
            found = client.call("contacts.list")
        finally:
            client.close()
    except Exception:  # no node, a slow node, a bad profile name: complete nothing
        return []
    names = [c["name"] or c["peer_id"] for c in found]
    if prefix:  # a typed `12D3...` completes to peer IDs too
        names += [c["peer_id"] for c in found if c["name"]]
    return sorted(n for n in set(names) if n.startswith(prefix))


def completion(args: argparse.Namespace) -> int:
    """Print the completion script for bash, zsh or fish."""
    from argcomplete.shell_integration import shellcode

    from .output import emit_json, wants_json

    script = shellcode(["meshtalk"], shell=args.shell)
    if wants_json(args):
        emit_json({"shell": args.shell, "script": script})
    else:
        print(script, end="" if script.endswith("\n") else "\n")
    return 0
