"""Multiaddress strings as text: helpers below both the libp2p host and the store (no libp2p)."""

from __future__ import annotations

__all__ = ["without_peer_id"]


def without_peer_id(address: str) -> str:
    """The address without a trailing /p2p/<id> (a relayed address keeps its relay's)."""
    head, separator, tail = address.rpartition("/p2p/")
    return head if separator and "/" not in tail else address
