"""The `cli` fixture: the real `meshtalk` command on a temporary MESHTALK_HOME, whose nodes and
processes are all stopped at the end of the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli.helpers import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path / "home")
    try:
        yield cli
    finally:
        profiles = cli.home / "profiles"
        cli.cleanup(sorted(p.name for p in profiles.iterdir()) if profiles.is_dir() else [])
