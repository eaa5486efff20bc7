"""Memory a trusted but hostile peer can pin with slow, half-sent frames (issue 12, item 4).

    python bench/partial_frames.py [--streams 150] [--frame-kib 1000] [--sent 0.9]

A node runs in its own process; this process holds one libp2p host with a key the node trusts,
opens `--streams` message streams to it, and on each declares a frame of `--frame-kib` KiB and
sends `--sent` of it, then waits. Prints the node's RSS before, while the frames hang, after
the node has timed them out or refused them, and after the attacker resets everything, with
how many streams the node answered or closed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import trio
from children import ROOT, rss_mb

from meshtalk.net.framed import FramedStream
from meshtalk.net.host import MSG_PROTOCOL, build_host, close_host, peer_info, to_libp2p_id
from meshtalk.protocol import NodeKey, PeerId, encode_uvarint

LOCAL = "/ip4/127.0.0.1/tcp/0"


async def hold_partial_frame(
    host: object, target: PeerId, size: int, sent: int, results: dict[str, int]
) -> None:
    """One stream: HELLO, then a frame of `size` bytes of which only `sent` arrive."""
    try:
        with trio.fail_after(20):
            stream = await host.new_stream(to_libp2p_id(target), [MSG_PROTOCOL])  # type: ignore[attr-defined]
            framed = FramedStream(stream)
            await framed.hello((1,), "bench", 10)
            await stream.write(encode_uvarint(size) + b"\x92\x01\xc6" + bytes(sent))
        results["holding"] += 1
        with trio.move_on_after(120):
            await framed.read_frames()  # returns (or raises) once the node gives up on us
        results["answered"] += 1
    except Exception:
        results["refused"] += 1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=150)
    parser.add_argument("--frame-kib", type=int, default=1000)
    parser.add_argument("--sent", type=float, default=0.9)
    parser.add_argument("--hold", type=float, default=40.0, help="seconds to hold the frames")
    args = parser.parse_args()
    rogue = NodeKey.generate()
    with tempfile.TemporaryDirectory() as home:
        child = subprocess.Popen(  # noqa: ASYNC220 (setup, before anything is measured)
            [sys.executable, "-m", "tests.test_peer.node_process", str(Path(home) / "bob")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            ready = json.loads(child.stdout.readline())
            command = {"op": "contact", "peer": str(rogue.peer_id), "name": "rogue", "addrs": []}
            child.stdin.write(json.dumps(command) + "\n")
            child.stdin.flush()
            child.stdout.readline()
            target = PeerId.from_string(ready["peer_id"])
            await trio.sleep(1)
            before = rss_mb(child.pid)
            host = build_host(rogue)
            results = {"holding": 0, "answered": 0, "refused": 0}
            size = args.frame_kib * 1024
            async with host.run([__import__("multiaddr").Multiaddr(LOCAL)]):
                await host.connect(peer_info(target, ready["addrs"]))
                async with trio.open_nursery() as nursery:
                    for _ in range(args.streams):
                        nursery.start_soon(
                            hold_partial_frame, host, target, size, int(size * args.sent), results
                        )
                    await trio.sleep(5)
                    during = rss_mb(child.pid)
                    await trio.sleep(max(0.0, args.hold - 5))
                    held = rss_mb(child.pid)
                    nursery.cancel_scope.cancel()
                await close_host(host)
            await trio.sleep(3)
            after = rss_mb(child.pid)
        finally:
            child.kill()
            child.wait()
    print(
        f"{args.streams} streams x {args.frame_kib} KiB frames, {args.sent:.0%} sent: "
        f"node RSS {before:.1f} MiB before, {during:.1f} after 5 s (+{during - before:.1f}), "
        f"{held:.1f} after {args.hold:.0f} s (+{held - before:.1f}), "
        f"{after:.1f} after the attacker left (+{after - before:.1f}); "
        f"streams holding {results['holding']}, answered or closed by the node "
        f"{results['answered']}, refused at open {results['refused']}"
    )


if __name__ == "__main__":
    trio.run(main)
