"""`meshtalk chat` on a terminal: a prompt_toolkit prompt with line editing and history.

patch_stdout makes every print of the chat's threads appear above the prompt, which is drawn
again below with what was being typed, so an incoming line never lands inside it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from prompt_toolkit import PromptSession
from prompt_toolkit.history import History
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout

from ..profile.paths import FILE_MODE, private_file

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

__all__ = ["HISTORY_FILE", "ChatInput", "PrivateHistory", "run_terminal"]

HISTORY_FILE = "chat_history"  # in the profile folder (0700), the file itself 0600
_INTERRUPTED = 130
_KEEP = 1000  # lines typed that Up can recall; the file is cut back to this many


class ChatInput(Protocol):
    """What the prompt needs of a chat (`chat.Chat`): handle a line, and learn it ended."""

    on_lost: Callable[[], None]
    lost: str | None

    def handle(self, line: str) -> bool:
        """Act on one typed line; False when the user asked to leave."""
        ...


class PrivateHistory(History):
    """What was typed in chats of one profile: one JSON string a line, in a 0600 file.

    It lives in the profile folder with the store, which holds the same text anyway, and never
    grows past twice `_KEEP` lines (it is rewritten with the newest `_KEEP` when it does).
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def load_history_strings(self) -> Iterable[str]:
        """The lines typed before, newest first (prompt_toolkit's order)."""
        try:
            raw = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in raw:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line (a crash while writing) or a foreign file
            if isinstance(entry, str):
                entries.append(entry)
        if len(raw) > 2 * _KEEP:
            entries = entries[-_KEEP:]
            self._write("".join(json.dumps(e) + "\n" for e in entries), append=False)
        return list(reversed(entries[-_KEEP:]))

    def store_string(self, string: str) -> None:
        """Append one typed line."""
        self._write(json.dumps(string) + "\n", append=True)

    def _write(self, text: str, append: bool) -> None:
        private_file(self.path)  # created 0600, or tightened to it
        flags = os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC) | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, FILE_MODE)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)


def run_terminal(
    chat: ChatInput, profile: Path, input: Input | None = None, output: Output | None = None
) -> int:
    """Prompt for lines until /quit or Ctrl-D (0), or the node goes away (1).

    Ctrl-C raises KeyboardInterrupt (exit 130, as everywhere in the CLI). `input` and `output`
    default to the terminal; tests pass a pipe input.
    """
    keys = KeyBindings()

    @keys.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        # prompt_toolkit's own Ctrl-C raises KeyboardInterrupt inside an asyncio task, which
        # asyncio reports with a traceback; an ordinary exception ends the prompt quietly
        event.app.exit(exception=_Interrupted())

    session: PromptSession[str] = PromptSession(
        history=PrivateHistory(profile / HISTORY_FILE),
        input=input,
        output=output,
        key_bindings=keys,
        erase_when_done=True,  # the line comes back as "14:03 me: ...", with its status
    )
    code = asyncio.run(_prompt_loop(chat, session))
    if code == _INTERRUPTED:
        raise KeyboardInterrupt  # now outside asyncio: the CLI says "interrupted", exit 130
    return code


class _Interrupted(Exception):
    """Ctrl-C at the prompt."""


async def _prompt_loop(chat: ChatInput, session: PromptSession[str]) -> int:
    loop = asyncio.get_running_loop()
    lost = asyncio.Event()

    def on_lost() -> None:  # called from the chat's threads
        loop.call_soon_threadsafe(lost.set)

    chat.on_lost = on_lost
    if chat.lost is not None:  # went away before on_lost was set
        return 1
    gone = asyncio.ensure_future(lost.wait())
    try:
        with patch_stdout():
            while True:
                prompt = asyncio.ensure_future(session.prompt_async("> "))
                await asyncio.wait({prompt, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not prompt.done():  # the node went away while the user was typing
                    prompt.cancel()
                    await asyncio.gather(prompt, return_exceptions=True)
                    return 1
                try:
                    line = prompt.result()
                except EOFError:  # Ctrl-D
                    return 0
                except _Interrupted:
                    return _INTERRUPTED
                if not chat.handle(line):
                    return 0
    finally:
        gone.cancel()
