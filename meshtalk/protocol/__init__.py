"""The sans-I/O core of meshtalk: envelopes, sealing, frames, replay tracking and errors.

Bytes in, values and exceptions out. Nothing here touches sockets, files, trio, SQLite or
libp2p, so every part can be tested with plain bytes and a fixed clock.
"""

from .codec import MAX_DEPTH, check_value, packb, unpackb_strict
from .envelope import (
    MAX_ENVELOPE_SIZE,
    MAX_LAMPORT,
    MAX_LAMPORT_STEP,
    MAX_RECIPIENTS,
    PROTOCOL_VERSION,
    Body,
    Envelope,
    check_lamport_step,
    direct_conversation_id,
    new_message_id,
    next_lamport,
    peer_id_from_bytes,
)
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .frames import (
    DEFAULT_MAX_FRAME_SIZE,
    MAX_ACK_IDS,
    NEED_DATA,
    AckFrame,
    ErrorFrame,
    Frame,
    FrameDecoder,
    FrameType,
    HelloFrame,
    MessageFrame,
    NeedData,
    decode_frame_body,
    encode_frame,
    encode_uvarint,
    negotiate_version,
)
from .keys import NodeKey, PeerId, RandomBytes
from .replay import ReplayGuard
from .sealing import (
    DEFAULT_MAX_AGE_MS,
    DEFAULT_MAX_FUTURE_SKEW_MS,
    MAX_SEALED_SIZE,
    SEALED_VERSION,
    SIGNING_CONTEXT,
    open_sealed,
    seal,
)

__all__ = [
    *_errors_all,
    "MAX_DEPTH",
    "check_value",
    "packb",
    "unpackb_strict",
    "MAX_ENVELOPE_SIZE",
    "MAX_RECIPIENTS",
    "PROTOCOL_VERSION",
    "Body",
    "Envelope",
    "MAX_LAMPORT",
    "MAX_LAMPORT_STEP",
    "check_lamport_step",
    "direct_conversation_id",
    "new_message_id",
    "next_lamport",
    "peer_id_from_bytes",
    "DEFAULT_MAX_FRAME_SIZE",
    "MAX_ACK_IDS",
    "NEED_DATA",
    "AckFrame",
    "ErrorFrame",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "HelloFrame",
    "MessageFrame",
    "NeedData",
    "decode_frame_body",
    "encode_frame",
    "encode_uvarint",
    "negotiate_version",
    "NodeKey",
    "PeerId",
    "RandomBytes",
    "ReplayGuard",
    "DEFAULT_MAX_AGE_MS",
    "DEFAULT_MAX_FUTURE_SKEW_MS",
    "MAX_SEALED_SIZE",
    "SEALED_VERSION",
    "SIGNING_CONTEXT",
    "open_sealed",
    "seal",
]
