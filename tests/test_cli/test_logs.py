"""node.log: rotation by size with the standard handler, levels by -v, and `meshtalk logs [-f]`."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from meshtalk.cli.logs import follow
from meshtalk.profile.logfile import PrivateLogHandler
from tests.test_cli.helpers import Cli, one_line_error

pytestmark = pytest.mark.timeout(60)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_log_rotates_at_its_size_keeping_three_older_files_0600(tmp_path: Path) -> None:
    path = tmp_path / "node.log"
    handler = PrivateLogHandler(path, max_bytes=1000)
    logger = logging.getLogger("test.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for n in range(200):
            logger.warning("line %03d %s", n, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["node.log", "node.log.1", "node.log.2", "node.log.3"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    assert all(mode(p) == 0o600 for p in tmp_path.iterdir())
    newest = path.read_text().splitlines()
    assert newest[-1].startswith("line 199")
    before = path.with_name("node.log.1").read_text().splitlines()
    assert int(before[-1].split()[1]) + 1 == int(newest[0].split()[1])  # nothing lost between


def test_a_link_at_the_log_is_refused_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("not yours\n")
    (tmp_path / "node.log").symlink_to(target)
    with pytest.raises(Exception, match="symbolic link"):
        PrivateLogHandler(tmp_path / "node.log", max_bytes=1000)
    assert target.read_text() == "not yours\n"


_WRITER = """
import logging, sys
from pathlib import Path
from meshtalk.profile.logfile import configure_logging
path = Path(sys.argv[1])
configure_logging(int(sys.argv[2]), log_file=path, max_bytes=int(sys.argv[3]),
                  own_std_streams=True)
logging.getLogger("meshtalk.daemon").info("daemon line")
logging.getLogger("meshtalk.peer.x").info("routine info")
logging.getLogger("meshtalk.peer.x").debug("debug detail")
logging.getLogger("meshtalk.peer.x").warning("a warning")
logging.getLogger("libp2p.y").info("library info")
print("printed before", flush=True)
for n in range(int(sys.argv[4])):
    logging.getLogger("meshtalk.daemon").info("filler %04d %s", n, "y" * 60)
print("printed after", flush=True)
"""


def write_log(tmp_path: Path, verbosity: int, max_bytes: int = 10**6, filler: int = 0) -> str:
    """Run a process that logs like the detached node does; returns what node.log holds."""
    path = tmp_path / "node.log"
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(path), str(verbosity), str(max_bytes), str(filler)],
        check=True,
        timeout=30,
    )
    return path.read_text()


def test_the_default_level_keeps_routine_lines_out_and_v_lets_them_in(tmp_path: Path) -> None:
    for verbosity in range(3):
        (tmp_path / str(verbosity)).mkdir()
    quiet = write_log(tmp_path / "0", 0)
    assert "daemon line" in quiet
    assert "a warning" in quiet
    assert "routine info" not in quiet
    assert "library info" not in quiet
    verbose = write_log(tmp_path / "1", 1)
    assert "routine info" in verbose
    assert "debug detail" not in verbose
    assert "debug detail" in write_log(tmp_path / "2", 2)


def test_stdout_and_stderr_follow_the_log_into_the_new_file(tmp_path: Path) -> None:
    newest = write_log(tmp_path, 0, max_bytes=4000, filler=60)  # 1 or 2 rotations
    assert "printed after" in newest  # not in node.log.1, the file renamed under it
    older = "".join(p.read_text() for p in tmp_path.glob("node.log.*"))
    assert "printed after" not in older
    assert "printed before" in newest + older


def test_logs_without_a_log_says_so(cli: Cli) -> None:
    assert "no node log yet" in one_line_error(cli.run("alice", "logs"))


def test_logs_prints_the_last_lines_and_json_objects(cli: Cli) -> None:
    log = cli.profile_dir("alice") / "node.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "".join(f"2026-12-02 04:00:0{n},000 INFO meshtalk.daemon: line {n}\n" for n in range(5))
        + "a stray line\n"
    )
    assert cli.ok("alice", "logs", "-n", "2").splitlines() == [
        "2026-12-02 04:00:04,000 INFO meshtalk.daemon: line 4",
        "a stray line",
    ]
    assert len(cli.ok("alice", "logs", "-n", "0").splitlines()) == 6
    records = [json.loads(line) for line in cli.ok("alice", "logs", "-n", "2", "--json").split("\n")
               if line]  # fmt: skip
    assert records == [
        {"time": "2026-12-02 04:00:04,000", "level": "INFO", "logger": "meshtalk.daemon",
         "message": "line 4"},
        {"time": None, "level": None, "logger": None, "message": "a stray line"},
    ]  # fmt: skip
    refused = cli.run("alice", "logs", "-n", "-1")  # a bad argument: exit 2, no traceback
    assert refused.returncode == 2
    assert "--lines" in refused.stderr
    assert "Traceback" not in refused.stderr


_ROTATING_WRITER = """
import logging, sys, time
from pathlib import Path
from meshtalk.cli.logs import follow
from meshtalk.profile.logfile import PrivateLogHandler
handler = PrivateLogHandler(Path(sys.argv[1]), max_bytes=2000)
handler.setFormatter(logging.Formatter("%(message)s"))
logger = logging.getLogger("w")
logger.addHandler(handler)
for n in range(300):
    logger.warning("entry %04d %s", n, "z" * 30)
    if n % 20 == 0:  # a file holds ~45 entries
        time.sleep(0.1)
"""


@pytest.mark.slow  # over 6 s on a loaded machine
def test_logs_follow_goes_on_across_rotations_and_ends_quietly_on_ctrl_c(cli: Cli) -> None:
    log = cli.profile_dir("alice") / "node.log"
    log.parent.mkdir(parents=True)
    log.write_text("before\n")
    follower = cli.start("alice", "logs", "-f")
    assert follower.stdout is not None
    assert follower.stdout.readline() == "before\n"
    subprocess.run([sys.executable, "-c", _ROTATING_WRITER, str(log)], check=True, timeout=30)
    assert log.with_name("node.log.3").exists()  # it rotated many times meanwhile
    seen = [follower.stdout.readline().split()[1] for _ in range(300)]
    assert seen == [f"{n:04d}" for n in range(300)]  # each entry once, in order
    log.write_text("after truncation\n")  # the same file, shorter: read from its start
    assert follower.stdout.readline() == "after truncation\n"
    follower.send_signal(signal.SIGINT)
    _, err = follower.communicate(timeout=10)
    assert follower.returncode == 130
    assert err == ""


def test_logs_follow_waits_for_new_lines(cli: Cli) -> None:
    log = cli.profile_dir("alice") / "node.log"
    log.parent.mkdir(parents=True)
    log.write_text("one\ntwo\n")
    follower = cli.start("alice", "logs", "-f", "-n", "1")
    assert follower.stdout is not None
    assert follower.stdout.readline() == "two\n"
    with log.open("a") as file:
        file.write("three\n")
    assert follower.stdout.readline() == "three\n"
    follower.send_signal(signal.SIGINT)
    assert follower.wait(timeout=10) == 130


class _Enough(Exception):
    pass


@pytest.mark.timeout(10)
def test_follow_reads_the_files_of_several_rotations_between_two_looks(tmp_path: Path) -> None:
    path = tmp_path / "node.log"
    path.write_bytes(b"a0\n")
    file = path.open("rb")
    file.seek(0, 2)
    with path.open("ab") as old:
        old.write(b"a1\n")  # written after the follower's last look
    path.rename(tmp_path / "node.log.1")
    path.write_bytes(b"b0\nb1\n")
    (tmp_path / "node.log.1").rename(tmp_path / "node.log.2")
    path.rename(tmp_path / "node.log.1")
    path.write_bytes(b"c0\n")
    seen: list[bytes] = []

    def emit(line: bytes) -> None:
        seen.append(line)
        if line == b"c0":
            raise _Enough

    with pytest.raises(_Enough):
        follow(path, file, emit, poll=0.01)
    assert seen == [b"a1", b"b0", b"b1", b"c0"]


def test_a_message_line_is_one_line_whatever_its_sender_and_text() -> None:
    from meshtalk.facade.daemon import message_line
    from meshtalk.peer.models import Direction, Message, MessageStatus
    from meshtalk.protocol.keys import NodeKey

    peer = NodeKey.generate().peer_id
    message = Message(
        cursor=7, id=b"\x01" * 16, conversation=b"\x02" * 32, author=peer, recipients=(peer,),
        direction=Direction.IN, kind="text", body="two\nlines", timestamp_ms=0, lamport=1,
        reply_to=None, metadata=None, status=MessageStatus.RECEIVED, error=None, stored_ms=0,
    )  # fmt: skip
    assert message_line(message, "bob", bodies=False) == "message #7 from bob (text, 9 bytes)"
    with_text = message_line(message, "evil\n2026 WARNING x: forged", bodies=True)
    assert "\n" not in with_text
    assert with_text.endswith(': "two\\nlines"')
