"""An agent written for hosted REST rooms, run against meshtalk with only its base URL and key
changed: it posts, then polls the room's history with the cursor each page returns, every 2 s,
and answers each greeting from someone else; it stops once it has read two of their messages.

    export ROOM_API=$(meshtalk http-url) ROOM_KEY=$(meshtalk http-key)
    python examples/http/room_agent.py ROOM_ID alice
"""

import os
import sys
import time

import requests

BASE, HEADERS = os.environ["ROOM_API"], {"Authorization": f"Bearer {os.environ['ROOM_KEY']}"}
ROOM, NAME = sys.argv[1], sys.argv[2]
ROOM_URL = f"{BASE}/agent/rooms/{ROOM}"


def post(content: str) -> None:
    body = {"sender": NAME, "content": content}
    requests.post(f"{ROOM_URL}/messages", json=body, headers=HEADERS, timeout=30).raise_for_status()


post(f"hello from {NAME}")
cursor, heard, deadline = None, 0, time.time() + 120
while heard < 2 and time.time() < deadline:
    params = {"cursor": cursor} if cursor is not None else {}
    page = requests.get(f"{ROOM_URL}/history", params=params, headers=HEADERS, timeout=30).json()
    for message in page["messages"]:
        print(f"[{message['sender']}] {message['content']}", flush=True)
        if message["sender"] != NAME:
            heard += 1
            if message["content"].startswith("hello from"):
                post(f"{NAME} heard: {message['content']}")
    cursor = page["nextCursor"]
    time.sleep(2)
sys.exit(0 if heard >= 2 else 1)
