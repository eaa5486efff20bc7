"""LangChain tools on meshtalk: a (fake, scripted) chat model on alice's side calls
`meshtalk_send` to ask bob's agent something, and bob's side reads it with `meshtalk_read`.

    python examples/langchain_tools.py        # needs: pip install 'meshtalk[langchain]'

Both nodes run embedded in this process, in a temporary folder, on 127.0.0.1; they pair with
an invite. No API key: the model's replies are scripted, the tool calls and the messages are
real.
"""

import json
import tempfile
from pathlib import Path

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage

from meshtalk import Mesh
from meshtalk.integrations.langchain import meshtalk_tools
from meshtalk.profile import save_settings


def profile(root: Path, name: str) -> Path:
    """A profile whose node stays on this machine: 127.0.0.1 only, no mDNS."""
    save_settings(root / name, {"listen": ["/ip4/127.0.0.1/tcp/0"], "mdns": False, "name": name})
    return root / name


with (
    tempfile.TemporaryDirectory() as tmp,
    Mesh(profile(Path(tmp), "alice")) as alice,
    Mesh(profile(Path(tmp), "bob")) as bob,
):
    bob.join(alice.invite())  # pair once; from now on they trust each other
    tools = {tool.name: tool for tool in meshtalk_tools(alice)}
    model = FakeMessagesListChatModel(
        responses=[
            AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "meshtalk_send",
                        "id": "call-1",
                        "args": {
                            "to": "bob",
                            "text": "Can you run the integration tests on your box?",
                        },
                    }
                ],
            ),
        ]
    )
    reply = model.invoke([HumanMessage("Ask bob's agent to run the integration tests.")])
    for call in reply.tool_calls:
        result = tools[call["name"]].invoke(call["args"])
        print(f"alice's model called {call['name']}: {result}")

    bob_tools = {tool.name: tool for tool in meshtalk_tools(bob)}
    read = json.loads(bob_tools["meshtalk_read"].invoke({"wait_seconds": 10}))
    for message in read["messages"]:
        print(f"bob's agent read from {message['from_name']}: {message['text']!r}")
        print(f"  (marked content_from_peer={message['content_from_peer']})")
    error = bob_tools["meshtalk_send"].invoke({"to": "carol", "text": "hi"})
    print(f"a send to a stranger is a tool error the model can read: {error}")
