"""A real js-libp2p rendezvous client registers at, and discovers from, a meshtalk point.

The client (tests/js/rendezvous_client.mjs) encodes the spec's schema proto3-style, as
js-libp2p's protobuf compiler does: its REGISTER carries no `type` (REGISTER = 0) and no `ttl`
(0: the default), its DISCOVER no limit and no cookie. `.ci/run` installs it with
`npm ci --prefix tests/js`; without Node or those modules the test skips, except under CI,
where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import trio

import meshtalk.discovery.rendezvous as rendezvous_module
from meshtalk.discovery import open_rendezvous_point
from meshtalk.protocol import NodeKey
from meshtalk.protocol.rendezvous import Register, RendezvousMessage, decode_message
from tests.test_discovery.helpers import client_of, own_address

JS = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS / "rendezvous_client.mjs"
NS = "meshtalk/js-interop"


@pytest.fixture
def node() -> str:
    """The node binary, once the JS client's modules are installed; else skip (fail in CI)."""
    binary = shutil.which("node")
    installed = (JS / "node_modules" / "@canvas-js" / "libp2p-rendezvous").is_dir()
    if binary is None or not installed:
        why = "node is not installed" if binary is None else f"run `npm ci --prefix {JS}`"
        if os.environ.get("CI"):
            pytest.fail(f"the js-libp2p interop test cannot run under CI: {why}")
        pytest.skip(f"js-libp2p interop: {why}")
    return binary


@pytest.mark.timeout(120)
async def test_a_js_libp2p_client_registers_and_discovers(
    node: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies: list[bytes] = []

    def recording_decode(body: bytes) -> RendezvousMessage:
        bodies.append(body)
        return decode_message(body)

    # the point's streams decode through this module's name: keep every request it reads
    monkeypatch.setattr(rendezvous_module, "decode_message", recording_decode)
    async with open_rendezvous_point(NodeKey.generate()) as (point, addresses):
        async with client_of(addresses[0]) as python:
            await python.register(NS, own_address(python))
            bodies.clear()
            with trio.fail_after(90):
                # run_process kills the child if the test is cancelled or times out
                done = await trio.run_process(
                    [node, str(SCRIPT), addresses[0], NS],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
            js = json.loads(done.stdout.decode().strip().splitlines()[-1])

            # js -> meshtalk: the point granted the default TTL and kept the record
            assert js["ttl"] == 7200
            records, _, _ = await python.discover(NS)
            found = {str(r.peer_id): list(r.addresses) for r in records}
            assert found[js["peerId"]] == js["addresses"]
            # meshtalk -> js: the client found the Python peer at its address
            theirs = {d["peerId"]: d["addresses"] for d in js["discovered"]}
            assert theirs == {str(python.key.peer_id): own_address(python)}

        # the REGISTER really came without `type` and without `ttl`
        registers = [b for b in bodies if isinstance(decode_message(b), Register)]
        assert len(registers) == 1
        assert not registers[0].startswith(b"\x08")  # field 1 (type) absent: REGISTER
        register = decode_message(registers[0])
        assert isinstance(register, Register)
        assert register.ttl is None
        stats = point.statistics()
        assert stats.malformed == 0
        assert (stats.register, stats.discover) == (2, 2)
