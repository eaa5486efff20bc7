"""Signed peer records (libp2p RFC 0002/0003), built and checked with py-libp2p's functions.

A record says "peer P listens at these addresses (version `seq`)", inside an envelope signed
by P's key with the domain "libp2p-peer-record" and payload type 0x0301. py-libp2p's
`consume_envelope` checks the signature, the domain and the payload type but not that the
signing key is P's, and it accepts addresses it cannot parse; `open_peer_record` adds both
checks, caps the size and the address count, and turns every failure into
`InvalidSignedRecord`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import multiaddr
from libp2p.peer.envelope import consume_envelope, seal_record
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PEER_RECORD_ENVELOPE_DOMAIN
from libp2p.peer.peer_record import PeerRecord as Libp2pPeerRecord

from ..net.host import without_peer_id
from ..profile.identity import libp2p_key_pair
from ..protocol.errors import InvalidPeerId, InvalidSignedRecord
from ..protocol.keys import NodeKey, PeerId

__all__ = ["PeerRecord", "sign_peer_record", "open_peer_record", "MAX_RECORD_SIZE"]

MAX_RECORD_SIZE: Final = 4096
MAX_RECORD_ADDRESSES: Final = 32


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A verified record: the peer, its addresses (without /p2p/) and the record's version."""

    peer_id: PeerId
    addresses: tuple[str, ...]
    seq: int


def sign_peer_record(key: NodeKey, addresses: Sequence[str], seq: int | None = None) -> bytes:
    """A signed envelope holding this node's peer record (seq defaults to the time in ns)."""
    key_pair = libp2p_key_pair(key)
    addrs = [multiaddr.Multiaddr(without_peer_id(a)) for a in addresses]
    record = Libp2pPeerRecord(ID(key.peer_id.to_bytes()), addrs, seq or time.time_ns())
    data: bytes = seal_record(record, key_pair.private_key).marshal_envelope()
    return data


def open_peer_record(data: bytes) -> PeerRecord:
    """Verify a signed peer record; raises InvalidSignedRecord saying what was wrong."""
    if len(data) > MAX_RECORD_SIZE:
        raise InvalidSignedRecord(
            f"signed peer record is {len(data)} bytes; the limit is {MAX_RECORD_SIZE}"
        )
    try:
        envelope, record = consume_envelope(data, PEER_RECORD_ENVELOPE_DOMAIN)
    except Exception as exc:  # py-libp2p raises ValueError, protobuf DecodeError, TypeError...
        raise InvalidSignedRecord(f"signed peer record does not verify: {exc}") from None
    try:
        peer = PeerId(record.peer_id.to_bytes())
        signer = PeerId(ID.from_pubkey(envelope.public_key).to_bytes())
    except (InvalidPeerId, ValueError) as exc:
        raise InvalidSignedRecord(f"signed peer record names an invalid peer: {exc}") from None
    if signer != peer:
        raise InvalidSignedRecord(f"peer record for {peer} is signed by {signer}, not by it")
    if len(record.addrs) > MAX_RECORD_ADDRESSES:
        raise InvalidSignedRecord(
            f"peer record lists {len(record.addrs)} addresses; the limit is {MAX_RECORD_ADDRESSES}"
        )
    try:
        addresses = tuple(without_peer_id(str(a)) for a in record.addrs)
    except Exception as exc:
        raise InvalidSignedRecord(f"peer record holds an unreadable address: {exc}") from None
    return PeerRecord(peer, addresses, int(record.seq))
