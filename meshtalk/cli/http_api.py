"""`meshtalk http-key` and `meshtalk http-url`: what a script needs to talk to the local HTTP API.

curl -H "Authorization: Bearer $(meshtalk http-key)" "$(meshtalk http-url)/v1/whoami"
"""

from __future__ import annotations

import argparse

from ..control.client import connect_control
from ..profile.http_access import load_or_create_api_key
from ..protocol.errors import NodeError
from .output import emit_json, profile_of, wants_json

__all__ = ["http_key", "http_url"]


def http_key(args: argparse.Namespace) -> int:
    """Print the profile's API key (made now if the profile has none yet)."""
    key = load_or_create_api_key(profile_of(args))
    if wants_json(args):
        emit_json({"key": key})
    else:
        print(key)
    return 0


def http_url(args: argparse.Namespace) -> int:
    """Print where the running node's HTTP API listens."""
    with connect_control(profile_of(args)) as control:
        info = control.call("status")
    http = info.get("http") or {"state": "unknown", "url": None, "error": None}
    if http["url"] is None:
        why = http["error"] or {"off": "it is off (meshtalk config set http on, then restart)",
                                "starting": "it is still starting; try again"}.get(
            http["state"], "this node is too old to serve it")  # fmt: skip
        raise NodeError(f"the node has no HTTP API address: {why}")
    if wants_json(args):
        emit_json(http)
    else:
        print(http["url"])
    return 0
