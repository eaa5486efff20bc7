"""The keystore: real files, real permissions, real failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshtalk.profile import (
    create_identity,
    default_home,
    key_path,
    load_identity,
    load_or_create_identity,
    profile_dir,
)
from meshtalk.protocol import (
    ConfigError,
    KeyFileCorrupt,
    KeyFileError,
    KeyFileInsecure,
    KeyFileMissing,
)


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return tmp_path / "profiles" / "test"


def test_create_then_load(profile: Path) -> None:
    key = create_identity(profile)
    path = key_path(profile)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_identity(profile).seed == key.seed
    assert str(key.peer_id) in path.read_text()
    assert [p.name for p in profile.iterdir()] == ["identity.key"]  # no temp files left


def test_never_overwrites(profile: Path) -> None:
    create_identity(profile)
    before = key_path(profile).read_bytes()
    with pytest.raises(KeyFileError, match="never overwrites"):
        create_identity(profile)
    assert key_path(profile).read_bytes() == before


def test_load_or_create_is_idempotent(profile: Path) -> None:
    first, created = load_or_create_identity(profile)
    again, created_again = load_or_create_identity(profile)
    assert created
    assert not created_again
    assert first.peer_id == again.peer_id


def test_missing(profile: Path) -> None:
    with pytest.raises(KeyFileMissing, match="meshtalk init"):
        load_identity(profile)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666])
def test_readable_by_others_is_refused(profile: Path, mode: int) -> None:
    create_identity(profile)
    key_path(profile).chmod(mode)
    with pytest.raises(KeyFileInsecure, match=f"chmod 600 {key_path(profile)}"):
        load_identity(profile)


def test_every_truncation_is_a_clear_error(profile: Path) -> None:
    create_identity(profile)
    path = key_path(profile)
    original = path.read_bytes()
    for length in range(len(original) - 1):
        path.write_bytes(original[:length])
        with pytest.raises(KeyFileCorrupt, match="damaged"):
            load_identity(profile)
    # Only the trailing newline is optional.
    path.write_bytes(original[:-1])
    assert str(load_identity(profile).peer_id) in original.decode()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda text: text.replace("seed: ", "seed: A"), "base64|32"),
        (lambda text: text.replace("peer-id: 12D3KooW", "peer-id: 12D3KooX"), "does not match"),
        (lambda text: text.replace("meshtalk-identity: 1", "meshtalk-identity: 9"), "format"),
        (lambda text: text + "extra: field\n", "extra"),
        (lambda text: text + "seed: again\n", "unexpected"),
        (lambda text: text + "no colon here\n", "unexpected"),
        (lambda text: "\xff" + text, "not text"),
        (lambda text: text * 20, "too large"),
    ],
)
def test_corruptions_are_refused(profile: Path, change: object, why: str) -> None:
    create_identity(profile)
    path = key_path(profile)
    path.write_bytes(change(path.read_text()).encode("latin-1"))  # type: ignore[operator]
    with pytest.raises(KeyFileCorrupt, match=why):
        load_identity(profile)


def test_flipped_seed_character_is_caught(profile: Path) -> None:
    create_identity(profile)
    path = key_path(profile)
    lines = path.read_text().splitlines(keepends=True)
    seed_line = next(i for i, line in enumerate(lines) if line.startswith("seed: "))
    text = lines[seed_line]
    lines[seed_line] = text[:10] + ("B" if text[10] != "B" else "C") + text[11:]
    path.write_text("".join(lines))
    with pytest.raises(KeyFileCorrupt, match="does not match"):
        load_identity(profile)


def test_symlink_and_directory_are_refused(profile: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    create_identity(real)
    profile.mkdir(parents=True)
    key_path(profile).symlink_to(key_path(real))
    with pytest.raises(KeyFileError, match="symbolic link"):
        load_identity(profile)
    other = tmp_path / "dir-profile"
    key_path(other).mkdir(parents=True)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_identity(other)


FULL_DISK_SCRIPT = """
import resource, signal, sys
from meshtalk.profile.identity import create_identity
from meshtalk.protocol import KeyFileError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))
try:
    create_identity(sys.argv[1])
except KeyFileError as exc:
    print("refused:", exc)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics are Linux's")
def test_write_failure_leaves_no_half_key(profile: Path) -> None:
    # A file-size limit makes the write fail part-way, as a full disk would.
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "cannot write identity key file" in result.stdout
    assert list(profile.iterdir()) == []
    with pytest.raises(KeyFileMissing):
        load_identity(profile)


def test_profile_dir_and_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MESHTALK_HOME", str(tmp_path))
    assert default_home() == tmp_path
    assert profile_dir() == tmp_path / "profiles" / "default"
    assert profile_dir("work") == tmp_path / "profiles" / "work"
    assert profile_dir("x", home=tmp_path / "other") == tmp_path / "other" / "profiles" / "x"
    monkeypatch.delenv("MESHTALK_HOME")
    assert default_home().name == "meshtalk"


@pytest.mark.parametrize("name", ["", "../escape", ".hidden", "a/b", "x" * 65, "sp ace"])
def test_bad_profile_names(name: str) -> None:
    with pytest.raises(ConfigError, match="profile name"):
        profile_dir(name)
