"""Two terminals chatting: what `meshtalk chat` shows on each side, played out by this script.

By hand, with two profiles on one machine (or one profile on each of two machines):

    terminal 1: meshtalk --profile alice up --detach && meshtalk --profile alice invite
    terminal 2: meshtalk --profile bob up --detach && meshtalk --profile bob join <token>
    terminal 1: meshtalk --profile alice chat bob
    terminal 2: meshtalk --profile bob chat alice

This script does the same in a temporary MESHTALK_HOME (loopback only), types a few lines into
each `meshtalk chat` through its stdin, and prints what each terminal showed:

    python examples/two_terminals.py
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(home: Path) -> None:
    env = {**os.environ, "MESHTALK_HOME": str(home)}

    def meshtalk(profile: str, *args: str) -> str:
        command = [sys.executable, "-m", "meshtalk", "--profile", profile, *args]
        return subprocess.run(
            command, env=env, check=True, capture_output=True, text=True, timeout=60
        ).stdout

    def chat(profile: str, other: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "meshtalk", "--profile", profile, "chat", other]
        return subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    for name in ("alice", "bob"):
        meshtalk(name, "init", "--name", name)
        meshtalk(name, "config", "set", "listen", "/ip4/127.0.0.1/tcp/0")
        meshtalk(name, "config", "set", "mdns", "false")
        meshtalk(name, "up", "--detach")
    try:
        meshtalk("bob", "join", meshtalk("alice", "invite").strip())
        terminals = {"alice": chat("alice", "bob"), "bob": chat("bob", "alice")}
        time.sleep(1.0)  # both chats are listening
        script = [
            ("alice", "hi bob, is the staging deploy done?"),
            ("bob", "yes, 5 min ago"),
            ("alice", "great, starting the smoke tests"),
        ]
        for who, line in script:
            stdin = terminals[who].stdin
            assert stdin is not None
            stdin.write(line + "\n")
            stdin.flush()
            time.sleep(0.8)  # let it arrive before the other side answers
        for who, terminal in terminals.items():
            output, _ = terminal.communicate("/quit\n", timeout=30)
            print(f"--- what {who}'s terminal showed ---")
            print(output.rstrip())
    finally:
        for name in ("alice", "bob"):
            meshtalk(name, "down")


with tempfile.TemporaryDirectory(prefix="meshtalk-chat-") as tmp:
    main(Path(tmp))
