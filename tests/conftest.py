"""Shared fixtures: fixed keys, a fixed clock, and envelopes between them."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from meshtalk.protocol import Envelope, NodeKey, direct_conversation_id

# Deterministic runs: the same examples every time, no timing-based flakiness on slow CI.
settings.register_profile(
    "meshtalk",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=int(os.environ.get("MESHTALK_HYPOTHESIS_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("meshtalk")

NOW_MS = 1_790_000_000_000


def fixed_key(name: str) -> NodeKey:
    """A key derived from a name, the same in every run."""
    return NodeKey.from_seed(name.encode().ljust(32, b"."))


@pytest.fixture
def alice() -> NodeKey:
    return fixed_key("alice")


@pytest.fixture
def bob() -> NodeKey:
    return fixed_key("bob")


@pytest.fixture
def carol() -> NodeKey:
    return fixed_key("carol")


def make_envelope(sender: NodeKey, *recipients: NodeKey, **fields: Any) -> Envelope:
    """An envelope from `sender` to `recipients` at NOW_MS; `fields` override the defaults."""
    defaults: dict[str, Any] = {
        "id": bytes(range(16)),
        "conversation": direct_conversation_id(sender.peer_id, recipients[0].peer_id),
        "author": sender.peer_id,
        "recipients": tuple(r.peer_id for r in recipients),
        "timestamp_ms": NOW_MS,
        "lamport": 1,
        "body": "hello",
    }
    defaults.update(fields)
    return Envelope(**defaults)
