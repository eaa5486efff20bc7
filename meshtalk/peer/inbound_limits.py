"""What inbound message streams may hold: streams per peer and in all, bytes of unfinished frames.

A trusted peer needs one inbound stream (a few while a reconnect overlaps the old one), and a
frame is buffered only until it is whole; so a peer that opens many streams, or starts big frames
and never finishes them, is refused (StreamRefused) instead of pinning memory. With the defaults
one peer holds at most 4 x (1 MiB frame + one 256 KiB read), and every peer together at most
64 MiB of unfinished frames; a frame that has begun must also end within the node's
`frame_timeout` (net/framed.py).
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
from typing import Final

from ..protocol.errors import StreamRefused
from ..protocol.keys import PeerId

__all__ = ["InboundLimits", "InboundStatistics", "StreamShare"]

_MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class InboundStatistics:
    """A node's inbound message streams right now, and how many it has refused."""

    streams: int  # open inbound message streams
    peers: int  # peers with at least one of them
    buffered_bytes: int  # bytes of unfinished frames they hold
    refused: int  # streams refused since the node started (per peer or in total)

    def to_json(self) -> dict[str, int]:
        """The fields by name."""
        return dataclasses.asdict(self)


@dataclass
class StreamShare:
    """One admitted stream's share of the byte budget."""

    limits: InboundLimits
    peer: PeerId
    buffered: int = 0

    def buffered_now(self, size: int) -> None:
        """The stream now holds `size` bytes of an unfinished frame (raises if over budget)."""
        limits = self.limits
        total = limits.buffered_bytes - self.buffered + size
        if size > self.buffered and total > limits.max_buffered_bytes:
            raise StreamRefused(
                f"unfinished frames of every peer would hold {total} bytes, more than the "
                f"{limits.max_buffered_bytes} this node allows; this stream is closed"
            )
        limits.buffered_bytes, self.buffered = total, size

    def release(self) -> None:
        """The stream ended: free its slot and its bytes (call once)."""
        self.limits._release(self)


class InboundLimits:
    """Counts a node's inbound message streams and the bytes their unfinished frames hold."""

    def __init__(
        self,
        max_streams_per_peer: int = 4,
        max_streams: int = 1024,
        max_buffered_bytes: int = 64 * _MIB,
    ) -> None:
        self.max_streams_per_peer = max_streams_per_peer
        self.max_streams = max_streams
        self.max_buffered_bytes = max_buffered_bytes
        self.streams: collections.Counter[PeerId] = collections.Counter()
        self.total_streams = 0
        self.buffered_bytes = 0
        self.refused = 0

    def admit(self, peer: PeerId) -> StreamShare:
        """A stream slot for `peer` (give it back with `release()`); StreamRefused if none."""
        if self.streams[peer] >= self.max_streams_per_peer:
            self.refused += 1
            raise StreamRefused(
                f"{peer} already has {self.streams[peer]} message streams open here, the limit "
                "per peer; one stream per peer is enough"
            )
        if self.total_streams >= self.max_streams:
            self.refused += 1
            raise StreamRefused(
                f"this node has {self.max_streams} inbound message streams open, its limit"
            )
        self.streams[peer] += 1
        self.total_streams += 1
        return StreamShare(self, peer)

    def _release(self, share: StreamShare) -> None:
        self.buffered_bytes -= share.buffered
        share.buffered = 0
        self.streams[share.peer] -= 1
        self.total_streams -= 1
        if not self.streams[share.peer]:
            del self.streams[share.peer]

    def statistics(self) -> InboundStatistics:
        """Open streams, peers with streams, bytes of unfinished frames, streams refused."""
        return InboundStatistics(
            streams=self.total_streams,
            peers=len(self.streams),
            buffered_bytes=self.buffered_bytes,
            refused=self.refused,
        )
