"""Profiles for facade tests: loopback only, no mDNS, fast retries are the node defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshtalk.profile import save_settings


def loopback_profile(root: Path, name: str, **settings: Any) -> Path:
    """A profile folder under `root` whose node listens on 127.0.0.1 only, without mDNS, its
    HTTP API on an OS port (not the default 7747)."""
    profile = root / "profiles" / name
    loopback = {"listen": ["/ip4/127.0.0.1/tcp/0"], "mdns": False, "name": name,
                "http": "127.0.0.1:0"}  # fmt: skip
    save_settings(profile, {**loopback, **settings})
    return profile
