"""The running node: libp2p host, stream handlers, store, outbox, contacts (issue: Peer node).

Nothing lives here yet; the identity keystore it will use is `meshtalk.identity`.
"""

__all__: list[str] = []
