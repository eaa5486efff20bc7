"""A plain (not async) script that embeds meshtalk: two nodes in this process, paired with an
invite, exchange messages with the sync `Mesh` API.

    python examples/embedded_sync.py

With no `meshtalk up` running for a profile, `Mesh(profile)` starts that profile's node in a
background thread (and serves its control socket, so `meshtalk` commands work meanwhile).
Here both profiles live in a temporary folder and listen on 127.0.0.1 only.
"""

import tempfile
from pathlib import Path

from meshtalk import Mesh
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
    print(f"alice is {alice.whoami()['peer_id']} (embedded: {alice.embedded})")
    contact = bob.join(alice.invite())  # one-time token: bob now trusts alice and vice versa
    print(f"bob paired with {contact['name']}")
    bob.send("alice", "build 812 is green", wait=True, timeout=10)
    for message in alice.receive(wait=10)["messages"]:
        print(f"alice got {message['text']!r} from {message['from_name']} (verified sender)")
    alice.send("bob", "thanks, merging", wait=True, timeout=10)
    print("bob's view of the conversation:")
    for message in bob.history("alice"):
        print(f"  {message['direction']:>3} {message['text']!r} [{message['status']}]")
