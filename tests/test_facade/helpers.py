"""Profiles for facade tests: loopback only, no mDNS, fast retries are the node defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshtalk.profile import save_setting


def loopback_profile(root: Path, name: str, **settings: Any) -> Path:
    """A profile folder under `root` whose node listens on 127.0.0.1 only, without mDNS."""
    profile = root / "profiles" / name
    save_setting(profile, "listen", ["/ip4/127.0.0.1/tcp/0"])
    save_setting(profile, "mdns", False)
    save_setting(profile, "name", name)
    for key, value in settings.items():
        save_setting(profile, key, value)
    return profile
