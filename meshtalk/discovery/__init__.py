"""Finding peers: rendezvous, mDNS, bootstrap lists and the address cache (issue: Discovery).

Nothing lives here yet.
"""

__all__: list[str] = []
