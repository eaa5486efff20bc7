"""The one exception hierarchy of meshtalk, rooted at `MeshtalkError`.

Every error has a stable numeric `code`, carried in ERROR frames, so that the other side of a
stream can turn a refusal back into the same exception type with `error_from_code`. An error
rebuilt that way has `remote = True` and a `str()` that starts with "peer refused: ", so a
refusal by the peer is still caught by `except MessageRejected` (or whichever class it is) but
is never mistaken for a check this node made itself (`remote = False`). The tree, with codes
(tests/test_protocol/test_remote_errors.py checks it against error_classes.py):

    MeshtalkError 1
    ├── ProtocolError 100
    │   ├── FrameTooLarge 101
    │   ├── MalformedFrame 102
    │   ├── MalformedEnvelope 103
    │   ├── MessageTooLarge 104
    │   ├── UnsupportedVersion 105
    │   ├── FrameTimeout 106
    │   └── StreamRefused 107
    ├── MessageRejected 200
    │   ├── BadSignature 201
    │   │   └── AuthorMismatch 202
    │   ├── DecryptionFailed 203
    │   ├── NotARecipient 204
    │   ├── ClockSkew 206
    │   ├── NotAuthorized 207
    │   ├── LamportOutOfRange 208
    │   └── ConversationMismatch 209
    ├── IdentityError 300
    │   ├── InvalidPeerId 301
    │   └── KeyFileError 302
    │       ├── KeyFileInsecure 303
    │       ├── KeyFileCorrupt 304
    │       └── KeyFileMissing 305
    ├── ConfigError 400
    │   └── EmptyMessage 401
    ├── NodeError 500
    │   ├── ProfileLocked 501
    │   ├── UnknownPeer 502
    │   ├── StoreError 503
    │   ├── DeliveryFailed 504
    │   ├── DeliveryTimeout 505
    │   ├── NodeClosed 506
    │   ├── PeerUnreachable 507
    │   ├── GuardTripped 508
    │   └── InternalError 509
    ├── DiscoveryError 600
    │   ├── RendezvousError 601
    │   └── InvalidSignedRecord 602
    ├── PairingError 700
    │   ├── InvalidCode 701
    │   ├── WrongCode 702
    │   ├── CodeExpired 703
    │   └── NoPairingOffer 704
    ├── ControlError 800
    │   ├── NodeNotRunning 801
    │   ├── ControlTimeout 802
    │   ├── NotQueued 803
    │   └── AccessDenied 804
    └── RoomError 900
        ├── InvalidRoomEntry 901
        ├── NotAMember 902
        ├── NotRoomAdmin 903
        ├── UnknownRoom 904
        ├── RoomFull 905
        └── InvalidTranscript 906

Codes 1 to 299 may travel in ERROR frames (docs/protocol.md, section 6); the others are local.
"""

from __future__ import annotations

import re
from typing import Final

from .error_classes import (
    REMOTE_PREFIX,
    AccessDenied,
    AuthorMismatch,
    BadSignature,
    ClockSkew,
    CodeExpired,
    ConfigError,
    ControlError,
    ControlTimeout,
    ConversationMismatch,
    DecryptionFailed,
    DeliveryFailed,
    DeliveryTimeout,
    DiscoveryError,
    EmptyMessage,
    FrameTimeout,
    FrameTooLarge,
    GuardTripped,
    IdentityError,
    InternalError,
    InvalidCode,
    InvalidPeerId,
    InvalidSignedRecord,
    KeyFileCorrupt,
    KeyFileError,
    KeyFileInsecure,
    KeyFileMissing,
    LamportOutOfRange,
    MalformedEnvelope,
    MalformedFrame,
    MeshtalkError,
    MessageRejected,
    MessageTooLarge,
    NodeClosed,
    NodeError,
    NodeNotRunning,
    NoPairingOffer,
    NotARecipient,
    NotAuthorized,
    NotQueued,
    PairingError,
    PeerUnreachable,
    ProfileLocked,
    ProtocolError,
    RendezvousError,
    StoreError,
    StreamRefused,
    UnknownPeer,
    UnsupportedVersion,
    WrongCode,
)
from .room_errors import (
    InvalidRoomEntry,
    InvalidTranscript,
    NotAMember,
    NotRoomAdmin,
    RoomError,
    RoomFull,
    UnknownRoom,
)

__all__ = [  # the names of error_classes.__all__ and room_errors.__all__, then the helpers
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
    "RoomError",
    "InvalidRoomEntry",
    "NotAMember",
    "NotRoomAdmin",
    "UnknownRoom",
    "RoomFull",
    "InvalidTranscript",
    "error_from_code",
    "shown_safely",
    "unwrap_group",
]


def _all_subclasses(cls: type[MeshtalkError]) -> list[type[MeshtalkError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def shown_safely(text: str) -> str:
    """A peer's text with control characters and bidirectional overrides written as escapes
    (`\\x1b`, `\\n`, `\\u202e`): it ends up on terminals and in logs, where a hostile peer
    could otherwise move the cursor, recolour the screen, fake lines or reorder what is shown."""
    return _UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


def error_from_code(code: int, message: str, *, remote: bool = False) -> MeshtalkError:
    """Rebuild the exception an ERROR's `code` stands for; unknown codes map to the base.

    `remote=True` when a peer sent it (an ERROR frame, a pairing ERROR): the error keeps its
    class but says it is the peer's refusal (`remote`, and `str()` starts with REMOTE_PREFIX),
    and its text is `shown_safely`.
    The local control socket's errors are this node's own and keep the default.
    """
    if remote:
        message = shown_safely(message)
    for cls in _all_subclasses(MeshtalkError):
        if cls.code == code:
            error = cls(message)
            break
    else:
        error = MeshtalkError(f"error {code}: {message}")
    error.remote = remote
    return error


def unwrap_group(error: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups, else `error` itself.

    Structured concurrency wraps an error from a task in a group; a caller that expects one
    error (say a `MeshtalkError` to print as one line) unwraps it with this.
    """
    leaf = error
    while isinstance(leaf, BaseExceptionGroup):
        if len(leaf.exceptions) != 1:
            return error
        leaf = leaf.exceptions[0]
    return leaf
