"""`meshtalk chat` between two real background nodes: piped (scripts) and on a terminal (a pty).

One pair of paired nodes (alice and bob, on loopback, met at a real rendezvous point) serves
every test of the module; each test uses its own texts.
"""

from __future__ import annotations

import os
import pty
import re
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.test_cli.helpers import Cli, one_line_error, prepare, rendezvous_point

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # nodes start in seconds

STAMP = r"\d\d:\d\d"  # how chat shows today's times


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """alice and bob running, paired and trusting each other."""
    cli = Cli(tmp_path_factory.mktemp("chat") / "home")
    try:
        with rendezvous_point(cli) as point:
            prepare(cli, "alice", point)
            prepare(cli, "bob", point)
            cli.ok("alice", "up", "--detach")
            cli.ok("bob", "up", "--detach")
            cli.ok("bob", "join", cli.json("alice", "invite")["token"])
            yield cli
    finally:
        cli.cleanup(["alice", "bob"])


def texts_at(cli: Cli, profile: str, peer: str) -> list[str]:
    return [m["text"] for m in cli.json(profile, "history", peer, "--limit", "1000")]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def test_shown_text_cannot_drive_the_terminal() -> None:
    from meshtalk.cli.chat import when
    from meshtalk.cli.output import safe

    assert safe("hi\x1b[2Jthere\r\u202eevil\nnext\tline") == (
        "hi\\x1b[2Jthere\\x0d\\u202eevil\nnext\tline"
    )
    assert re.fullmatch(STAMP, when(int(time.time() * 1000)))
    assert when(0, now=86400 * 400).startswith("1970-01-0")


def test_piped_chat_sends_lines_and_keeps_commands_to_itself(cli: Cli) -> None:
    typed = (
        "hello bob\n/help\n   \n\n//slash at the start\n/nosuch thing\n  spaced  \r\n"
        "/quit\nafter quit\n"
    )
    result = cli.run("alice", "chat", "bob", stdin=typed)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith("chatting with bob")
    assert "/quit, /exit" in result.stdout  # /help printed the commands
    assert re.search(rf"^{STAMP} me: hello bob  \(queued\)$", result.stdout, re.M)
    # it stayed until bob's node acknowledged the lines
    assert re.search(rf"^{STAMP} ✓ delivered: “hello bob”$", result.stdout, re.M)
    assert "unknown command /nosuch" in result.stderr
    wait_for(lambda: "  spaced  " in texts_at(cli, "bob", "alice"), "the last line reached bob")
    sent = texts_at(cli, "bob", "alice")
    assert sent[-3:] == ["hello bob", "/slash at the start", "  spaced  "]
    assert not {"/help", "/nosuch thing", "/quit", "after quit", "", "   "} & set(sent)


def test_piped_chat_prints_incoming_lines_with_sender_and_time(cli: Cli) -> None:
    chat = cli.start("alice", "chat", "bob")
    assert chat.stdout is not None
    assert chat.stdin is not None
    while not (line := chat.stdout.readline()).startswith("chatting with bob"):
        assert line, "chat ended before its first line"
    cli.ok("bob", "send", "alice", "ping from bob\nsecond line")
    first, second = chat.stdout.readline(), chat.stdout.readline()
    assert re.fullmatch(rf"{STAMP} bob: ping from bob\n", first), first
    assert second == " " * len(first.split("bob: ")[0] + "bob: ") + "second line\n"
    cli.ok("alice", "send", "bob", "from another tool")  # shown too, as sent elsewhere
    elsewhere = chat.stdout.readline()
    assert re.fullmatch(rf"{STAMP} me: from another tool  .*\(sent elsewhere\)\n", elsewhere)
    cli.ok("bob", "send", "alice", "evil \x1b[2J\x1b]0;title\x07 \u202eright to left")
    assert chat.stdout.readline().endswith(
        "bob: evil \\x1b[2J\\x1b]0;title\\x07 \\u202eright to left\n"
    )  # a hostile text cannot clear the screen, set the title or reorder the line
    chat.communicate(timeout=20)  # the end of the input ends the chat
    assert chat.returncode == 0


def test_a_refused_line_says_so_at_once(cli: Cli) -> None:
    cli.ok("bob", "contacts", "block", "alice")
    try:
        started = time.monotonic()
        result = cli.run("alice", "chat", "bob", stdin="not welcome\n")
        elapsed = time.monotonic() - started
    finally:
        cli.ok("bob", "contacts", "trust", "alice")
    assert result.returncode == 0, result.stderr
    refused = [line for line in result.stdout.splitlines() if "✗" in line]
    assert len(refused) == 1, result.stdout
    assert "not delivered: “not welcome”" in refused[0]
    assert "bob refused it: bob does not accept messages" in refused[0]
    assert "not delivered yet" not in result.stderr  # it did not linger: the refusal is final
    assert elapsed < 15


def test_a_line_to_a_stopped_node_stays_queued_and_chat_says_so(cli: Cli) -> None:
    cli.ok("bob", "down")
    try:
        started = time.monotonic()
        result = cli.run("alice", "chat", "bob", stdin="while you sleep\n")
        elapsed = time.monotonic() - started
    finally:
        cli.ok("bob", "up", "--detach")
    assert result.returncode == 0, result.stderr
    assert "chatting with bob (not connected to bob now" in result.stdout
    assert re.search(rf"^{STAMP} me: while you sleep  \(queued\)$", result.stdout, re.M)
    assert "✓" not in result.stdout.splitlines()[-1]
    assert result.stderr.strip() == "1 line not delivered yet: the node keeps it queued for bob"
    assert elapsed < 20  # it waited 5 s for the ack, not for ever
    wait_for(lambda: "while you sleep" in texts_at(cli, "bob", "alice"), "delivery after up", 60)


class Screen:
    """Just enough of a terminal to replay what prompt_toolkit draws: text, CR, LF, BS, cursor
    moves (CSI A B C D G), erase to the end of the line (K) or of the screen (J); the other
    sequences (modes, colours) change nothing that the tests look at."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = [[]]
        self.row = self.col = 0

    def feed(self, text: str) -> None:
        for match in re.finditer(r"\x1b\[([0-9;?]*)([ -/]*[@-~])|\x1b[^\[]|[\s\S]", text):
            if match[0].startswith("\x1b["):
                self._csi(match[1], match[2])
            elif not match[0].startswith("\x1b"):
                self._char(match[0])

    def _csi(self, params: str, final: str) -> None:
        n = int(params) if params.isdigit() else 1
        if final == "A":
            self.row = max(0, self.row - n)
        elif final == "B":
            self._down(n)
        elif final == "C":
            self.col += n
        elif final == "D":
            self.col = max(0, self.col - n)
        elif final == "G":
            self.col = n - 1
        elif final == "K" and params in ("", "0"):
            del self.rows[self.row][self.col :]
        elif final == "J" and params in ("", "0"):
            del self.rows[self.row][self.col :]
            del self.rows[self.row + 1 :]

    def _down(self, n: int) -> None:
        self.row += n
        while len(self.rows) <= self.row:
            self.rows.append([])

    def _char(self, char: str) -> None:
        if char == "\r":
            self.col = 0
        elif char == "\n":
            self._down(1)
        elif char == "\b":
            self.col = max(0, self.col - 1)
        elif char >= " ":
            line = self.rows[self.row]
            line.extend(" " * (self.col + 1 - len(line)))
            line[self.col] = char
            self.col += 1

    def lines(self) -> list[str]:
        return ["".join(line).rstrip() for line in self.rows]


class Terminal:
    """`meshtalk chat` on a pseudo-terminal: keys typed into it, and the screen it drew."""

    def __init__(self, cli: Cli, *args: str) -> None:
        master, slave = pty.openpty()
        env = {**cli.env, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
        self.process = subprocess.Popen(cli.argv("alice", args), stdin=slave, stdout=slave,
                                        stderr=slave, env=env, close_fds=True)  # fmt: skip
        os.close(slave)
        self.master, self.raw = master, b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            self.raw += data

    def screen(self) -> list[str]:
        """The lines on the screen now (the scrollback too), as a terminal would show them."""
        screen = Screen()
        screen.feed(self.raw.decode("utf-8", "replace"))
        return screen.lines()

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_screen(self, check: Callable[[list[str]], bool], what: str) -> list[str]:
        """Wait until the screen's lines pass `check`; returns them."""
        deadline = time.monotonic() + 30
        while not check(lines := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not on the screen within 30 s: {lines}")
            time.sleep(0.05)
        return lines

    def wait_line(self, pattern: str) -> list[str]:
        """Wait until a line of the screen matches `pattern` (a regex, whole line)."""
        return self.wait_screen(
            lambda lines: any(re.fullmatch(pattern, line) for line in lines), repr(pattern)
        )

    def end(self) -> int:
        """Wait for the chat to end (killed if it does not); its exit code."""
        try:
            return self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)
            self._reader.join(timeout=5)
            os.close(self.master)


def test_terminal_chat_draws_incoming_lines_above_what_is_typed(cli: Cli) -> None:
    term = Terminal(cli, "chat", "bob")
    try:
        term.wait_line(r"chatting with bob.*")
        term.wait_line(">")
        term.type("/help\r")
        term.wait_line(r"\s*/quit, /exit .*")
        term.type("half a li")
        term.wait_line("> half a li")
        cli.ok("bob", "send", "alice", "incoming while typing")
        incoming = rf"{STAMP} bob: incoming while typing"
        # the incoming line is one of its own, and the half-typed one is drawn again below it
        term.wait_screen(
            lambda lines: lines[-1] == "> half a li" and bool(re.fullmatch(incoming, lines[-2])),
            "the incoming line above the prompt",
        )
        term.type("ne\r")
        wait_for(lambda: "half a line" in texts_at(cli, "bob", "alice"), "the typed line at bob")
        lines = term.wait_line(rf"{STAMP} ✓ delivered: “half a line”")
        assert any(re.fullmatch(rf"{STAMP} me: half a line  \(queued\)", line) for line in lines)
        term.type("\x04")  # Ctrl-D leaves
    finally:
        assert term.end() == 0
    assert "/help" not in texts_at(cli, "bob", "alice")
    assert not any("Traceback" in line for line in term.screen())
    history = cli.profile_dir("alice") / "chat_history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert '"half a line"' in history.read_text().splitlines()

    again = Terminal(cli, "chat", "bob")  # Up recalls what was typed in the last chat
    try:
        again.wait_line(">")
        again.type("\x1b[A")
        again.wait_line("> half a line")
        again.type("\x03")  # Ctrl-C leaves at once, as an interrupt
    finally:
        assert again.end() == 130
    assert texts_at(cli, "bob", "alice").count("half a line") == 1  # Ctrl-C sent nothing
    assert not any("Traceback" in line for line in again.screen())

    last = Terminal(cli, "chat", "bob")  # the node stops while a line is being typed
    try:
        last.wait_line(">")
        last.type("never finished")
        last.wait_line("> never finished")
        cli.ok("alice", "down")
    finally:
        code = last.end()
        cli.ok("alice", "up", "--detach")
    assert code == 1
    errors = [line for line in last.screen() if line.startswith("meshtalk: error: ")]
    assert len(errors) == 1, last.screen()
    assert "the chat ended" in errors[0]
    assert "meshtalk --profile alice up --detach" in errors[0]
    assert not any("Traceback" in line for line in last.screen())


def test_chat_ends_with_one_line_when_the_node_goes_away(cli: Cli) -> None:
    chat = cli.start("alice", "chat", "bob")
    assert chat.stdout is not None
    while not (line := chat.stdout.readline()).startswith("chatting with bob"):
        assert line, "chat ended before its first line"
    cli.ok("alice", "down")
    try:
        out, err = chat.communicate(timeout=20)  # its stdin is still open: it must end itself
        result = subprocess.CompletedProcess(chat.args, chat.returncode, out, err)
        assert "the chat ended" in one_line_error(result, code=1)
    finally:
        cli.ok("alice", "up", "--detach")


def test_history_file_keeps_the_newest_lines(tmp_path: Path) -> None:
    from meshtalk.cli.chat_terminal import PrivateHistory

    path = tmp_path / "chat_history"
    history = PrivateHistory(path)
    for n in range(2001):
        history.store_string(f"line {n}")
    path.write_text(path.read_text() + '"torn\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = list(PrivateHistory(path).load_history_strings())
    assert loaded[0] == "line 2000"
    assert len(loaded) == 1000
    assert len(path.read_text().splitlines()) == 1000
