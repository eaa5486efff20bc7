"""An agent in 15 lines of Python over the local HTTP API: it greets a contact, then answers
each message it gets, for TURNS messages. Its node is already running and paired:

    export MESHTALK_URL=$(meshtalk http-url) MESHTALK_KEY=$(meshtalk http-key)
    python examples/http/agent.py bob 3
"""

import os
import sys

import requests

url, peer, turns = os.environ["MESHTALK_URL"], sys.argv[1], int(sys.argv[2])
api = requests.Session()
api.headers["Authorization"] = "Bearer " + os.environ["MESHTALK_KEY"]
hello = {"to": peer, "text": "hello! shall we talk?", "wait": False}  # queued: no waiting
api.post(f"{url}/v1/messages", json=hello, timeout=30).raise_for_status()
cursor, seen = None, 0  # the consumer keeps our place across restarts; `after` makes it exact
while seen < turns:
    params = {"consumer": "py-agent", "wait": 60, **({"after": cursor} if cursor else {})}
    reply = api.get(f"{url}/v1/messages", params=params, timeout=90).json()
    cursor = reply["cursor"]
    for message in reply["messages"][: turns - seen]:  # verified sender, content_from_peer: true
        print(f"{message['from_name']}: {message['text']}", flush=True)
        seen += 1
        answer = {"to": message["from"], "text": f"thanks for {message['text']!r}", "wait": False}
        api.post(f"{url}/v1/messages", json=answer, timeout=30).raise_for_status()
