"""Every example runs as its docstring shows."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


def requirement(path: Path) -> str | None:
    """The optional framework an example needs (a `# requires: NAME` line), if any."""
    for line in path.read_text().splitlines():
        if line.startswith("# requires: "):
            return line.removeprefix("# requires: ").strip()
    return None


# Over 6 s each (pytest --durations): the others take 1 to 4 s.
SLOW = {"two_terminals.py", "mcp_client.py"}


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=[pytest.mark.slow] if p.name in SLOW else []) for p in EXAMPLES],
    ids=lambda p: p.name,
)
def test_example_runs(path: Path) -> None:
    if requirement(path) == "autogen":
        pytest.skip("needs `meshtalk[autogen]`: tests/test_integrations/test_autogen.py runs it")
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "Traceback" not in result.stderr


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.skipif(
    importlib.util.find_spec("autogen_agentchat") is not None, reason="AutoGen is installed"
)
def test_the_autogen_example_without_autogen_says_what_to_install() -> None:
    path = EXAMPLES[0].parent / "autogen_team.py"
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "autogen_team.py: No module named 'autogen_agentchat'; "
        "install AutoGen with: pip install 'meshtalk[autogen]'"
    )
