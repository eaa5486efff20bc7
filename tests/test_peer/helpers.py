"""Helpers for tests that run real nodes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from meshtalk.peer.models import Message
from meshtalk.peer.node import Node, NodeConfig, open_node


def fast_config(**overrides: Any) -> NodeConfig:
    """Short retry intervals so tests that take a peer offline finish quickly."""
    settings: dict[str, Any] = {
        "retry_initial": 0.05,
        "retry_max": 0.5,
        "dial_timeout": 5.0,
        "room_door_grace": 1.0,
        "mdns": False,  # tests that want LAN discovery turn it on
    }
    settings.update(overrides)
    return NodeConfig(**settings)


def introduce(
    nodes: Sequence[Node], names: Sequence[str] | None = None, *, with_addresses: bool = True
) -> None:
    """Make every node a trusted contact of every other, by name (n0, n1... by default), with
    its addresses, or by peer ID alone so that discovery has to find them."""
    names = names or [f"n{i}" for i in range(len(nodes))]
    for node in nodes:
        for other, name in zip(nodes, names, strict=True):
            if other is not node:
                node.add_contact(other.peer_id, name, other.listen_addrs if with_addresses else ())


@asynccontextmanager
async def running(
    root: Path, *names: str, config: NodeConfig | None = None, contacts: bool = True
) -> AsyncIterator[list[Node]]:
    """Start one node per name under `root`, optionally all mutual contacts."""
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(open_node(root / name, config or fast_config()))
            for name in names
        ]
        if contacts:
            introduce(nodes, names)
        yield nodes


async def collect(node: Node, count: int, timeout: float = 20.0, after: int = 0) -> list[Message]:
    """The first `count` incoming messages, failing the test if they do not come in time."""
    got: list[Message] = []
    with trio.fail_after(timeout):
        async for message in node.messages(after=after):
            got.append(message)
            if len(got) == count:
                return got
    raise AssertionError("unreachable")


def every_incoming(node: Node) -> list[Message]:
    """Every received message in the store, page after page (a page is cut by size too)."""
    found: list[Message] = []
    while page := node.store.messages.incoming(found[-1].cursor if found else 0, 1000):
        found += page
    return found


def port_of(node: Node) -> int:
    """The TCP port a node listens on."""
    return int(node.listen_addrs[0].split("/tcp/")[1].split("/")[0])
