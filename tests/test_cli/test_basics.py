"""The real `meshtalk` command, as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from meshtalk import __version__


def meshtalk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshtalk", *args], capture_output=True, text=True, timeout=60
    )


def test_version() -> None:
    result = meshtalk("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"meshtalk {__version__}"


def test_selfcheck_human() -> None:
    result = meshtalk("selfcheck")
    assert result.returncode == 0, result.stderr
    assert "all 5 checks passed" in result.stdout
    assert "DecryptionFailed" in result.stdout
    assert result.stderr == ""


def test_selfcheck_json() -> None:
    result = meshtalk("selfcheck", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [s["name"] for s in report["steps"]] == [
        "identity",
        "keystore",
        "seal/open",
        "tamper",
        "recipient",
    ]


def test_help_everywhere() -> None:
    for args in (["--help"], ["selfcheck", "--help"]):
        result = meshtalk(*args)
        assert result.returncode == 0
        assert "usage: meshtalk" in result.stdout


def test_bad_arguments_are_one_line_errors() -> None:
    for args in (["nonsense"], ["selfcheck", "--bogus"]):
        result = meshtalk(*args)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "error:" in result.stderr.splitlines()[-1]


def test_no_command_prints_help_and_fails() -> None:
    result = meshtalk()
    assert result.returncode == 2
    assert "selfcheck" in result.stdout


@pytest.mark.slow  # over 6 s
def test_demo_runs_the_whole_story_and_exits_0() -> None:
    result = meshtalk("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("found bob and carol through the point", "SPAKE2 with the code matched",
                 "carol joined with the token", "delivered and acked", "carol goes offline",
                 "carol received 2 message(s) from alice", "made room 'plan'",
                 "bob goes offline too", "caught up from alice", "verified as written by bob",
                 "demo finished"):  # fmt: skip
        assert step in out, step
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # over 6 s
def test_demo_json_is_one_json_object_per_line() -> None:
    """--json on a streaming command: JSON lines, each step with its time (issue 14, item 9)."""
    result = meshtalk("demo", "--json")
    assert result.returncode == 0, result.stderr
    steps = [json.loads(line) for line in result.stdout.splitlines()]
    assert steps[0] == {"elapsed_s": None, "text": steps[0]["text"]}
    assert steps[-1]["text"].startswith("demo finished")
    timed = [s["elapsed_s"] for s in steps[1:-1]]
    assert all(isinstance(t, float) for t in timed)
    assert timed == sorted(timed)
    assert any("delivered and acked" in s["text"] for s in steps)
