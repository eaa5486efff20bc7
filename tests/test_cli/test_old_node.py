"""A pre-room node (the last release before rooms, taken from this repository's history) and a
node with rooms: they settle on protocol version 1 in HELLO and exchange direct messages both
ways; the new node refuses to invite the old one to a room, whether it knew the old node's
version already or learned it delivering the invite."""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from tests.test_cli.helpers import TIMEOUT, Cli, one_line_error, prepare

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PRE_ROOM_COMMIT = "a61e8aa0451aab36bece9abd292209be54fa8006"
"""The last commit before rooms (protocol version 1 only)."""


@pytest.fixture(scope="module")
def pre_room_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pre-room `meshtalk` package, importable with PYTHONPATH=<this folder>."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PRE_ROOM_COMMIT, "meshtalk"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    if archive.returncode != 0:
        pytest.skip(f"this clone lacks commit {PRE_ROOM_COMMIT[:7]} (a shallow clone?)")
    tree = tmp_path_factory.mktemp("pre-room")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


class MixedCli(Cli):
    """Profile "old" runs the pre-room package (its daemon too: `up --detach` passes the
    environment and folder on), from its folder, since `python -m` puts the working folder
    first on sys.path; every other profile runs this tree's."""

    def __init__(self, home: Path, old_tree: Path) -> None:
        super().__init__(home)
        self.old_tree = old_tree
        self.old_env = {**self.env, "PYTHONPATH": str(old_tree)}

    def run(
        self, profile: str | None, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        old = profile == "old"
        return subprocess.run(self.argv(profile, args), capture_output=True, text=True,
                              timeout=TIMEOUT, env=self.old_env if old else self.env,
                              input=stdin, cwd=self.old_tree if old else None)  # fmt: skip


def test_a_pre_room_node_talks_directly_and_cannot_be_invited(
    tmp_path: Path, pre_room_tree: Path
) -> None:
    cli = MixedCli(tmp_path / "home", pre_room_tree)
    try:
        for name in ("old", "new"):
            # the pre-room package has no `http` setting
            prepare(cli, name, None, http=None if name == "old" else "127.0.0.1:0")
            cli.ok(name, "up", "--detach")
        assert "invalid choice: 'room'" in cli.run("old", "room", "list").stderr  # really old
        cli.ok("new", "join", cli.json("old", "invite")["token"])
        assert cli.ok("new", "send", "old", "hello, old node").strip() == "delivered to old"
        assert cli.ok("old", "send", "new", "hello, new node").strip() == "delivered to new"
        assert [m["text"] for m in cli.json("old", "history", "new")] == [
            "hello, old node", "hello, new node",
        ]  # fmt: skip
        assert [m["text"] for m in cli.json("new", "history", "old")] == [
            "hello, old node", "hello, new node",
        ]  # fmt: skip

        cli.ok("new", "room", "create", "planning")
        refused = one_line_error(cli.run("new", "room", "invite", "planning", "old"), progress=True)
        assert "old's node speaks protocol 1, which has no rooms; it must upgrade" in refused
        assert len(cli.json("old", "history", "new")) == 2  # nothing was queued

        # after a restart the new node does not know the version until it delivers the invite
        cli.ok("new", "down")
        cli.ok("new", "up", "--detach")
        refused = one_line_error(cli.run("new", "room", "invite", "planning", "old"), progress=True)
        assert "speaks protocol 1, which has no rooms; it got the invite as a note only" in refused
        assert cli.json("new", "room", "members", "planning")["member_count"] == 1
        assert cli.ok("new", "send", "old", "still talking").strip() == "delivered to old"
        assert cli.json("old", "history", "new")[-1]["text"] == "still talking"
    finally:
        cli.cleanup(["old", "new"])
