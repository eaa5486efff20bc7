"""Finding peers: rendezvous points (client and point), LAN mDNS and signed peer records.

The node (`meshtalk.peer`) wires these into its address book; a standalone rendezvous point
runs with `open_rendezvous_point`.
"""

from .point import RendezvousPoint, open_rendezvous_point
from .records import PeerRecord, open_peer_record, sign_peer_record
from .registry import Registry, RegistryLimits
from .rendezvous import RendezvousClient, RendezvousSession, RendezvousStream, namespace_for
from .stats import (
    DiscoveryStatistics,
    MdnsStatistics,
    PointStatistics,
    RegistryStatistics,
    SessionStatistics,
)

__all__ = [
    "DiscoveryStatistics",
    "MdnsStatistics",
    "PeerRecord",
    "PointStatistics",
    "Registry",
    "RegistryLimits",
    "RegistryStatistics",
    "RendezvousClient",
    "RendezvousPoint",
    "RendezvousSession",
    "RendezvousStream",
    "SessionStatistics",
    "namespace_for",
    "open_peer_record",
    "open_rendezvous_point",
    "sign_peer_record",
]
