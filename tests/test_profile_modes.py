"""Everything in a profile is private to its user: the folder 0700, every file 0600.

Each test sets the usual umask (022) itself, so it shows what a default environment gets and
not what the test runner's umask happens to hide. node.log is never written through a link.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshtalk.peer.store import Store
from tests.test_cli.helpers import Cli, one_line_error
from tests.test_peer.helpers import running

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def default_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path / "home")
    try:
        yield cli
    finally:
        cli.cleanup(["alice"])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def modes(folder: Path) -> dict[str, int]:
    """The mode of every entry in a folder, by name."""
    return {entry.name: mode(entry) for entry in folder.iterdir()}


async def test_a_running_node_keeps_its_profile_private(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", "bob") as (alice, bob):
        await alice.send(bob.peer_id, "only for bob")
        for name in ("alice", "bob"):
            profile = tmp_path / name
            found = modes(profile)
            assert {"store.db", "store.db-wal", "store.db-shm", "identity.key"} <= set(found)
            assert mode(profile) == 0o700
            loose = {n: f"{m:04o}" for n, m in found.items() if m != 0o600 and n != "node.lock"}
            assert loose == {}, loose
            assert found["node.lock"] == 0o600
    for name in ("alice", "bob"):  # after a clean stop, what is left is private too
        assert all(m == 0o600 for m in modes(tmp_path / name).values())


async def test_an_open_profile_folder_and_loose_files_are_fixed_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, "alice", contacts=False):
        pass
    profile = tmp_path / "alice"
    profile.chmod(0o755)  # as a profile made by an older meshtalk, or by hand, would be
    (profile / "store.db").chmod(0o644)
    (profile / "node.lock").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="meshtalk.profile"):
        async with running(tmp_path, "alice", contacts=False):
            assert mode(profile) == 0o700
            assert all(m == 0o600 for m in modes(profile).values()), modes(profile)
    warnings = [r.getMessage() for r in caplog.records if r.name == "meshtalk.profile"]
    assert any(str(profile) in w and "0755" in w for w in warnings), warnings
    assert any("store.db (0644)" in w and "node.lock (0644)" in w for w in warnings), warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meshtalk.profile"):
        async with running(tmp_path, "alice", contacts=False):
            pass
    assert not [r for r in caplog.records if r.name == "meshtalk.profile"]  # nothing to fix


async def test_a_readable_identity_key_is_still_refused_not_tightened(tmp_path: Path) -> None:
    async with running(tmp_path, "alice", contacts=False):
        pass
    key = tmp_path / "alice" / "identity.key"
    key.chmod(0o644)  # others may have copied it: the user must decide, not meshtalk
    from meshtalk.profile.lock import ProfileLock

    ProfileLock(tmp_path / "alice").release()
    assert mode(key) == 0o644


def test_a_store_opened_on_its_own_is_private(tmp_path: Path) -> None:
    path = tmp_path / "loose" / "store.db"
    path.parent.mkdir()
    store = Store(path)
    try:
        store.checkpoint()
        assert modes(path.parent) == {
            "store.db": 0o600,
            "store.db-wal": 0o600,
            "store.db-shm": 0o600,
        }
    finally:
        store.close()
    path.chmod(0o644)
    Store(path).close()
    assert mode(path) == 0o600


def test_config_set_writes_config_toml_0600(cli: Cli) -> None:
    cli.ok("alice", "config", "set", "mdns", "false")
    profile = cli.profile_dir("alice")
    assert mode(profile) == 0o700
    assert mode(profile / "config.toml") == 0o600
    (profile / "config.toml").chmod(0o644)
    cli.ok("alice", "config", "set", "listen", "/ip4/127.0.0.1/tcp/0")
    assert mode(profile / "config.toml") == 0o600
    assert sorted(modes(profile)) == ["config.toml"]  # no temporary file left


def test_init_makes_the_profile_folder_0700(cli: Cli) -> None:
    cli.ok("alice", "init", "--name", "alice")
    profile = cli.profile_dir("alice")
    assert mode(profile) == 0o700
    assert all(m == 0o600 for m in modes(profile).values()), modes(profile)


@pytest.mark.slow  # over 6 s
def test_up_detach_writes_node_log_0600(cli: Cli) -> None:
    cli.ok("alice", "init", "--name", "alice")
    cli.ok("alice", "config", "set", "listen", "/ip4/127.0.0.1/tcp/0")
    cli.ok("alice", "config", "set", "mdns", "false")
    profile = cli.profile_dir("alice")
    profile.chmod(0o755)
    result = cli.run("alice", "up", "--detach")
    assert result.returncode == 0, result.stderr
    assert "0755" in result.stderr  # the folder was fixed, and the user told
    assert mode(profile) == 0o700
    assert mode(profile / "node.log") == 0o600
    loose = {n: f"{m:04o}" for n, m in modes(profile).items() if m != 0o600}
    assert loose == {}, loose
    cli.ok("alice", "down")


@pytest.mark.slow  # over 6 s
def test_up_detach_tightens_an_existing_node_log(cli: Cli) -> None:
    cli.ok("alice", "config", "set", "listen", "/ip4/127.0.0.1/tcp/0")
    cli.ok("alice", "config", "set", "mdns", "false")
    log = cli.profile_dir("alice") / "node.log"
    log.write_text("an older run\n")
    log.chmod(0o644)
    cli.ok("alice", "up", "--detach")
    assert mode(log) == 0o600
    assert log.read_text().startswith("an older run\n")  # appended to, not replaced
    cli.ok("alice", "down")


def test_a_node_log_symlink_is_refused_and_its_target_untouched(cli: Cli, tmp_path: Path) -> None:
    cli.ok("alice", "config", "set", "listen", "/ip4/127.0.0.1/tcp/0")
    cli.ok("alice", "config", "set", "mdns", "false")
    target = tmp_path / "elsewhere.txt"
    target.write_text("someone else's file\n")
    target.chmod(0o644)
    log = cli.profile_dir("alice") / "node.log"
    log.symlink_to(target)
    line = one_line_error(cli.run("alice", "up", "--detach"))
    assert "node.log" in line
    assert "symbolic link" in line
    assert target.read_text() == "someone else's file\n"
    assert mode(target) == 0o644
    assert log.is_symlink()
    assert not (cli.profile_dir("alice") / "control.sock").exists()  # no node was started


def test_a_dangling_node_log_symlink_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.ok("alice", "config", "set", "mdns", "false")
    target = tmp_path / "would-be-created"
    log = cli.profile_dir("alice") / "node.log"
    log.symlink_to(target)
    one_line_error(cli.run("alice", "up", "--detach"))
    assert not target.exists()
