"""Open forwarded copies too: room catch-up, where a member re-seals another author's message.

A forwarded copy is sealed version 2, `[2, sender_peer_id, recipient_peer_id, box]`, made by
`sealing.seal_signed` when the sender is not the author: the box is keyed X25519(sender,
recipient) like a direct copy's, and holds the author's signed bytes unchanged, so the
signature is checked against the envelope's author and the forwarder can neither alter nor
invent a message. Refused, beyond every check of a direct copy:

- a version-2 copy whose sender is the author (MalformedEnvelope): the author's own copies are
  version 1, which every node reads, so "forwarded" always means "by someone else";
- a sender that is not among the envelope's signed recipients (NotARecipient): only they could
  have read it.

`open_sealed` stays version 1 only, for callers that know nothing of forwarding.
"""

from __future__ import annotations

from dataclasses import dataclass

from .envelope import Envelope
from .errors import MalformedEnvelope, NotARecipient
from .keys import NodeKey, PeerId

# The checks of a direct copy are sealing's internals; they are imported rather than copied so
# that both versions keep one set of rules.
from .sealing import (
    DEFAULT_MAX_AGE_MS,
    DEFAULT_MAX_FUTURE_SKEW_MS,
    FORWARDED_SEALED_VERSION,
    SEALED_VERSION,
    SignedEnvelope,
    _check_addressed,
    _check_clock,
    _open_box,
    _verify_direct,
    verify_signed,
)

__all__ = ["OpenedMessage", "open_any"]


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    """What `open_any` returns: the verified signed envelope, and who forwarded this copy
    (None when the author sealed it itself, version 1)."""

    signed: SignedEnvelope
    forwarded_by: PeerId | None

    @property
    def envelope(self) -> Envelope:
        """The verified envelope."""
        return self.signed.envelope


def _verify_forwarded(
    plain: bytes,
    sender: PeerId,
    me: PeerId,
    now_ms: int,
    max_future_skew_ms: int,
    max_age_ms: int | None,
) -> SignedEnvelope:
    """Version 2: the author's signature, and a sender that is another of its recipients."""
    signed = verify_signed(plain, None)
    envelope = signed.envelope
    if envelope.author == sender:
        raise MalformedEnvelope(
            f"message sealed by its own author {sender} must use sealed version "
            f"{SEALED_VERSION}, not {FORWARDED_SEALED_VERSION}"
        ).about(envelope.id)
    _check_addressed(envelope, me)
    if sender not in envelope.recipients:
        raise NotARecipient(
            f"{sender} forwarded a message it is not among the recipients of"
        ).about(envelope.id)
    _check_clock(envelope, now_ms, max_future_skew_ms, max_age_ms)
    return signed


def open_any(
    data: bytes,
    my_key: NodeKey,
    now_ms: int,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
    max_forwarded_age_ms: int | None = None,
) -> OpenedMessage:
    """Open a direct (version 1) or forwarded (version 2) copy addressed to `my_key`'s peer.

    Direct copies get exactly `open_sealed`'s checks. A forwarded copy's signature is checked
    against its envelope's author; the sender must be another of the envelope's recipients and
    `my_key`'s peer one of them. A forwarded copy is history a member catches up on, so its
    age is limited only by `max_forwarded_age_ms` (None: not at all); its future skew is
    limited like a direct copy's.
    """
    me = my_key.peer_id
    versions = (SEALED_VERSION, FORWARDED_SEALED_VERSION)
    version, sender, plain = _open_box(data, my_key, versions)
    if version == SEALED_VERSION:
        envelope = _verify_direct(plain, sender, me, now_ms, max_future_skew_ms, max_age_ms)
        return OpenedMessage(SignedEnvelope(envelope, plain), None)
    signed = _verify_forwarded(plain, sender, me, now_ms, max_future_skew_ms, max_forwarded_age_ms)
    return OpenedMessage(signed, sender)
