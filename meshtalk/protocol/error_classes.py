"""The classes of meshtalk's error tree, each with its stable `code`.

Import them from `meshtalk.protocol.errors` (or `meshtalk`), whose docstring draws the tree and
which adds `error_from_code` and `unwrap_group`; this module only keeps that one short.
"""

from __future__ import annotations

from typing import ClassVar, Final

__all__ = [
    "MeshtalkError",
    "ProtocolError",
    "FrameTooLarge",
    "MalformedFrame",
    "MalformedEnvelope",
    "MessageTooLarge",
    "UnsupportedVersion",
    "FrameTimeout",
    "StreamRefused",
    "MessageRejected",
    "BadSignature",
    "AuthorMismatch",
    "DecryptionFailed",
    "NotARecipient",
    "ClockSkew",
    "NotAuthorized",
    "LamportOutOfRange",
    "ConversationMismatch",
    "IdentityError",
    "InvalidPeerId",
    "KeyFileError",
    "KeyFileInsecure",
    "KeyFileCorrupt",
    "KeyFileMissing",
    "ConfigError",
    "NodeError",
    "ProfileLocked",
    "UnknownPeer",
    "StoreError",
    "DeliveryFailed",
    "DeliveryTimeout",
    "NodeClosed",
    "PeerUnreachable",
    "DiscoveryError",
    "RendezvousError",
    "InvalidSignedRecord",
    "GuardTripped",
    "InternalError",
    "PairingError",
    "InvalidCode",
    "WrongCode",
    "CodeExpired",
    "NoPairingOffer",
    "ControlError",
    "NodeNotRunning",
    "ControlTimeout",
    "NotQueued",
    "AccessDenied",
    "EmptyMessage",
    "REMOTE_PREFIX",
]

REMOTE_PREFIX: Final = "peer refused: "
"""How the text of an error rebuilt from the other side's ERROR frame begins."""


class MeshtalkError(Exception):
    """Base class of every error meshtalk raises on purpose."""

    code: ClassVar[int] = 1
    message_id: bytes | None = None
    """The id of the message the error is about, when it is known."""
    remote: bool = False
    """True when the other side raised this error and sent it in an ERROR frame (the peer
    refused); False when this node raised it."""

    def about(self, message_id: bytes) -> MeshtalkError:
        """Attach the id of the message this error is about; returns self."""
        self.message_id = message_id
        return self

    @property
    def detail(self) -> str:
        """The error's text as whoever raised it wrote it (without `REMOTE_PREFIX`)."""
        return super().__str__()

    def __str__(self) -> str:
        return REMOTE_PREFIX + self.detail if self.remote else self.detail


class ProtocolError(MeshtalkError):
    """The other side sent bytes that do not follow the meshtalk wire protocol."""

    code = 100


class FrameTooLarge(ProtocolError):
    """A frame declared a length above the allowed cap; it was refused before being buffered."""

    code = 101


class MalformedFrame(ProtocolError):
    """A frame could not be decoded: bad length prefix, bad msgpack, or wrong field types."""

    code = 102


class MalformedEnvelope(ProtocolError):
    """A sealed message or envelope is not well formed: missing, unknown or mistyped fields."""

    code = 103


class MessageTooLarge(ProtocolError):
    """An envelope is larger than the protocol allows; send less, or split it."""

    code = 104


class UnsupportedVersion(ProtocolError):
    """The two sides share no protocol version; upgrade the older node."""

    code = 105


class FrameTimeout(ProtocolError):
    """A frame that had begun did not arrive whole in time: the stream is closed."""

    code = 106


class StreamRefused(ProtocolError):
    """The receiver holds as many streams, or as many bytes of unfinished frames, as it allows
    (per peer or in all); try again later."""

    code = 107


class MessageRejected(MeshtalkError):
    """A well-formed message was refused for security reasons."""

    code = 200


class BadSignature(MessageRejected):
    """The author's signature does not verify: the message was altered or forged."""

    code = 201


class AuthorMismatch(BadSignature):
    """The signed envelope names a different author than the key that signed and sealed it."""

    code = 202


class DecryptionFailed(MessageRejected):
    """The sealed box could not be opened: corrupted, or not encrypted to this node."""

    code = 203


class NotARecipient(MessageRejected):
    """This node is not among the message's recipients."""

    code = 204


class ClockSkew(MessageRejected):
    """The message timestamp is outside the accepted window; check both machines' clocks."""

    code = 206


class NotAuthorized(MessageRejected):
    """The author is not allowed to deliver to this node (not a trusted contact)."""

    code = 207


class LamportOutOfRange(MessageRejected):
    """A message's Lamport counter is above the protocol's cap, or jumps too far past the
    conversation's counter (a peer may not push another node's clock to the edge)."""

    code = 208


class ConversationMismatch(MessageRejected):
    """A message names a conversation it does not belong to: a direct conversation's id with
    another author or recipient set, or a named conversation its author is not a member of."""

    code = 209


class IdentityError(MeshtalkError):
    """A problem with a node identity: a key, a key file or a peer ID."""

    code = 300


class InvalidPeerId(IdentityError):
    """A peer ID could not be parsed, or does not embed an Ed25519 key."""

    code = 301


class KeyFileError(IdentityError):
    """The identity key file cannot be used."""

    code = 302


class KeyFileInsecure(KeyFileError):
    """The key file can be read by other users; restrict it with `chmod 600`."""

    code = 303


class KeyFileCorrupt(KeyFileError):
    """The key file is damaged or truncated; restore it from a backup (no new key was made)."""

    code = 304


class KeyFileMissing(KeyFileError):
    """The profile has no identity yet; create one (`meshtalk init`)."""

    code = 305


class ConfigError(MeshtalkError):
    """A setting, profile name or path is not acceptable; the message names which and why."""

    code = 400


class EmptyMessage(ConfigError):
    """A message with no text (or only blanks) was refused before anything was stored."""

    code = 401


class NodeError(MeshtalkError):
    """The node could not do what was asked."""

    code = 500


class ProfileLocked(NodeError):
    """Another node is already running on this profile; stop it or use another profile."""

    code = 501


class UnknownPeer(NodeError):
    """No contact has that name or peer ID; add it first (contacts add)."""

    code = 502


class StoreError(NodeError):
    """The local store failed (disk full, damaged, or from a newer meshtalk); nothing was lost."""

    code = 503


class DeliveryFailed(NodeError):
    """The recipient refused the message for good; it will not be retried."""

    code = 504


class DeliveryTimeout(NodeError):
    """No acknowledgement in time; the message stays queued and will still be delivered."""

    code = 505


class NodeClosed(NodeError):
    """The node is shut down; open it again to continue."""

    code = 506


class PeerUnreachable(NodeError):
    """The peer could not be reached at any known address right now."""

    code = 507


class GuardTripped(NodeError):
    """A conversation limit for agents was reached (rate, turns without a human, size)."""

    code = 508


class InternalError(NodeError):
    """meshtalk hit an unexpected error with one message or request; the node goes on.

    This is a bug: please report it with the node's log."""

    code = 509


class DiscoveryError(MeshtalkError):
    """Finding peers failed: a rendezvous point, a peer record or LAN discovery."""

    code = 600


class RendezvousError(DiscoveryError):
    """A rendezvous point refused a request; `status` is the spec's response status."""

    code = 601
    status: int = 300  # E_INTERNAL_ERROR unless the point said otherwise

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class InvalidSignedRecord(DiscoveryError):
    """A signed peer record did not verify: bad signature, wrong domain or type, or damage."""

    code = 602


class PairingError(MeshtalkError):
    """Pairing two nodes with a code or an invite failed."""

    code = 700


class InvalidCode(PairingError):
    """A pairing code or invite token is not in the expected form."""

    code = 701


class WrongCode(PairingError):
    """The two sides did not use the same code: nothing was added, and the code is used up."""

    code = 702


class CodeExpired(PairingError):
    """The pairing code or invite expired or was already used; make a new one."""

    code = 703


class NoPairingOffer(PairingError):
    """No node was found waiting with this code (not started, expired, or unreachable)."""

    code = 704


class ControlError(MeshtalkError):
    """Talking to the local node over its control socket failed."""

    code = 800


class NodeNotRunning(ControlError):
    """No node is running for this profile; start one with `meshtalk up`."""

    code = 801


class ControlTimeout(ControlError):
    """The node did not answer a local request in time (it may still be working on it)."""

    code = 802


class NotQueued(ControlError):
    """The node went away before it queued a message: nothing was stored or sent; send again."""

    code = 803


class AccessDenied(ControlError):
    """The local HTTP API refused a request: no or a wrong API key (`meshtalk http-key` prints
    it), or a Host header that does not name this machine's loopback."""

    code = 804
