"""Pairing two nodes with a short code or an invite secret (sans-I/O).

The joiner knows the code; the offerer made it. Over one libp2p stream (whose two peer IDs
Noise has already authenticated) they run SPAKE2 with the code as password and both peer IDs
as identities, so a relay in the middle cannot complete it without the code:

    joiner -> offerer   PAKE     {t: "pake", nameplate, msg}
    offerer -> joiner   REPLY    {t: "reply", msg, confirm}          (or ERROR: no offer)
    joiner -> offerer   CONFIRM  {t: "confirm", confirm, info}       (or ERROR: wrong code)
    offerer -> joiner   INFO     {t: "info", info}                   (or ERROR: wrong code)

`confirm` is an HMAC of the shared key proving each side derived the same key; `info` (name
and addresses) is sealed with a key derived from it. A wrong code fails both confirmations, so
each side learns it from the other's message or from the ERROR frame. The offerer allows one
attempt per code: a guesser gets one try, then the code is spent. A PAKE message that is not
valid (wrong size, not a point of the group, wrong fields) is refused with a PairingError or
MalformedFrame before the offerer answers, so it is no guess and the caller keeps the offer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Final

import nacl.exceptions
import nacl.secret
from spake2 import SPAKE2_A, SPAKE2_B  # type: ignore[import-untyped]

from .codec import packb, unpackb_strict
from .errors import (
    InvalidCode,
    MalformedFrame,
    MeshtalkError,
    PairingError,
    WrongCode,
    error_from_code,
)
from .invite_tokens import (
    MAX_EXPIRES_MS,
    MAX_INFO_ADDRESSES,
    Invite,
    RoomToken,
    encode_invite,
    encode_room_token,
    new_invite,
    parse_invite,
    parse_room_token,
)
from .keys import PeerId, RandomBytes
from .wordlist import WORDS

__all__ = [
    "PAIR_PROTOCOL",
    "MAX_PAIR_MESSAGE",
    "PairCode",
    "PeerInfo",
    "Invite",
    "new_code",
    "parse_code",
    "new_invite",
    "parse_invite",
    "encode_invite",
    "RoomToken",
    "encode_room_token",
    "parse_room_token",
    "MAX_EXPIRES_MS",
    "JoinerHandshake",
    "OffererHandshake",
    "encode_pair_message",
    "decode_pair_message",
    "error_message",
]

PAIR_PROTOCOL: Final = "/meshtalk/pair/1.0.0"
MAX_PAIR_MESSAGE: Final = 16 * 1024
PAKE_MESSAGE_SIZE: Final = 33  # spake2's side byte and one Ed25519 group element
MAX_NAMEPLATE: Final = 64
MAX_NUMBER: Final = 999
_CODE_RE: Final = re.compile(r"([1-9][0-9]{0,2})-([a-z]+)-([a-z]+)")
_WORD_SET: Final = frozenset(WORDS)


@dataclass(frozen=True, slots=True)
class PairCode:
    """A parsed pairing code: the nameplate finds the offer, the password runs the PAKE."""

    text: str
    number: int

    @property
    def nameplate(self) -> str:
        """Which offer this code is for (sent in the clear)."""
        return f"code:{self.number}"

    @property
    def password(self) -> bytes:
        """The secret part fed to SPAKE2 (the whole code)."""
        return self.text.encode()


def new_code(random_bytes: RandomBytes) -> PairCode:
    """A fresh code such as `7-amber-falcon`: a number (1..999) and two of 256 words."""
    raw = random_bytes(4)
    number = int.from_bytes(raw[:2], "big") % MAX_NUMBER + 1
    return PairCode(f"{number}-{WORDS[raw[2]]}-{WORDS[raw[3]]}", number)


def parse_code(text: str) -> PairCode:
    """Parse a code typed by a person (case and surrounding spaces do not matter)."""
    cleaned = text.strip().lower().replace(" ", "-")
    match = _CODE_RE.fullmatch(cleaned)
    if match is None or not {match[2], match[3]} <= _WORD_SET:
        raise InvalidCode(
            f"{text!r} is not a pairing code; codes look like 7-amber-falcon "
            "(run `meshtalk pair` on the other machine to get one)"
        )
    return PairCode(cleaned, int(match[1]))


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What each side tells the other once the code is confirmed."""

    name: str | None
    addresses: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        """The msgpack map sealed into INFO and CONFIRM."""
        return {"name": self.name, "addresses": list(self.addresses[:MAX_INFO_ADDRESSES])}

    @classmethod
    def from_wire(cls, value: Any) -> PeerInfo:
        """Validate a map received from the other side."""
        if not isinstance(value, dict):
            raise MalformedFrame("pairing info must be a map")
        name, addresses = value.get("name"), value.get("addresses", [])
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 64):
            raise MalformedFrame("pairing info has an invalid name")
        if not isinstance(addresses, list) or len(addresses) > MAX_INFO_ADDRESSES:
            raise MalformedFrame("pairing info has invalid addresses")
        if not all(isinstance(a, str) and len(a) <= 256 for a in addresses):
            raise MalformedFrame("pairing info has invalid addresses")
        return cls(name, tuple(addresses))


def encode_pair_message(message: dict[str, Any]) -> bytes:
    """One pairing message body (the stream prefixes its length)."""
    return packb(message)


def decode_pair_message(body: bytes) -> dict[str, Any]:
    """Decode a pairing message; it must be a map with a known `t`."""
    message = unpackb_strict(body, MalformedFrame, "pairing message")
    if not isinstance(message, dict) or message.get("t") not in (
        "pake",
        "reply",
        "confirm",
        "info",
        "error",
    ):
        raise MalformedFrame("not a pairing message")
    return message


def error_message(error: MeshtalkError) -> dict[str, Any]:
    """An ERROR message carrying `error` to the other side."""
    return {"t": "error", "code": error.code, "message": str(error)[:512]}


def _field(message: dict[str, Any], kind: str, name: str, typ: type) -> Any:
    if message.get("t") == "error":
        code, text = message.get("code"), message.get("message")
        if isinstance(code, int) and isinstance(text, str):
            raise error_from_code(code, text, remote=True)
        raise MalformedFrame("malformed pairing ERROR message")
    if message.get("t") != kind:
        raise MalformedFrame(f"expected a pairing {kind!r} message, got {message.get('t')!r}")
    value = message.get(name)
    if not isinstance(value, typ):
        raise MalformedFrame(f"pairing {kind!r} message has no valid {name!r}")
    return value


class _Keys:
    """Keys derived from the SPAKE2 result."""

    def __init__(self, shared: bytes) -> None:
        self.offerer_confirm = hmac.digest(shared, b"meshtalk pair: offerer confirms", "sha256")
        self.joiner_confirm = hmac.digest(shared, b"meshtalk pair: joiner confirms", "sha256")
        box_key = hmac.digest(shared, b"meshtalk pair: info box", "sha256")
        self.box = nacl.secret.SecretBox(box_key)

    def seal(self, info: PeerInfo, random_bytes: RandomBytes) -> bytes:
        return bytes(self.box.encrypt(packb(info.to_wire()), random_bytes(24)))

    def open(self, sealed: bytes) -> PeerInfo:
        try:
            plain = self.box.decrypt(sealed)
        except nacl.exceptions.CryptoError as exc:
            raise WrongCode("the pairing info did not decrypt: the codes differ") from exc
        return PeerInfo.from_wire(unpackb_strict(plain, MalformedFrame, "pairing info"))


def _check_pake(spake: Any, theirs: bytes, side: bytes) -> None:
    """Refuse with PairingError anything but a side byte and one valid group element.

    This runs before our own (costly) `start()`, so an invalid message costs little. spake2 is
    pure Python and says "invalid" in many ways (NotOnCurve, ValueError, AssertionError and
    more): every exception from it becomes a PairingError, so a stranger's bytes never raise
    anything outside the MeshtalkError tree.
    """
    if len(theirs) != PAKE_MESSAGE_SIZE:
        raise PairingError(
            f"the other side sent an invalid PAKE message: {len(theirs)} bytes, "
            f"not {PAKE_MESSAGE_SIZE}"
        )
    if theirs[:1] != side:
        raise PairingError(f"the other side sent an invalid PAKE message: not from side {side!r}")
    try:  # on the curve, in the prime-order group, not the identity
        spake.params.group.bytes_to_element(theirs[1:])
    except Exception as exc:  # every way spake2 says "invalid" (see above)
        raise PairingError(
            f"the other side sent an invalid PAKE message: {type(exc).__name__}: {exc}"
        ) from exc


def _finish(spake: Any, theirs: bytes, side: bytes) -> _Keys:
    """The keys from the other side's PAKE message (`_check_pake` first, then spake2's own)."""
    _check_pake(spake, theirs, side)
    try:
        shared = spake.finish(theirs)
    except Exception as exc:  # every way spake2 says "invalid" (see `_check_pake`)
        raise PairingError(
            f"the other side sent an invalid PAKE message: {type(exc).__name__}: {exc}"
        ) from exc
    return _Keys(hashlib.sha256(shared).digest())


_WRONG_CODE: Final = (
    "the pairing code did not match; nothing was added and the code is used up "
    "(start again with a new code)"
)


class JoinerHandshake:
    """The side that typed the code: `start()`, `receive_reply()`, `receive_info()`."""

    def __init__(
        self,
        nameplate: str,
        password: bytes,
        me: PeerId,
        offerer: PeerId,
        random_bytes: RandomBytes,
    ) -> None:
        self.nameplate = nameplate
        self._random = random_bytes
        self._spake = SPAKE2_A(
            password, idA=me.to_bytes(), idB=offerer.to_bytes(), entropy_f=random_bytes
        )
        self._keys: _Keys | None = None

    def start(self) -> dict[str, Any]:
        """The PAKE message that opens the stream."""
        return {"t": "pake", "nameplate": self.nameplate, "msg": self._spake.start()}

    def receive_reply(self, message: dict[str, Any], mine: PeerInfo) -> dict[str, Any]:
        """Check the offerer's confirmation; returns CONFIRM (raises WrongCode on mismatch)."""
        if self._keys is not None:
            raise PairingError("a second REPLY in one pairing")
        theirs = _field(message, "reply", "msg", bytes)
        confirm = _field(message, "reply", "confirm", bytes)
        keys = _finish(self._spake, theirs, b"B")
        if not hmac.compare_digest(confirm, keys.offerer_confirm):
            raise WrongCode(_WRONG_CODE)
        self._keys = keys
        return {
            "t": "confirm",
            "confirm": keys.joiner_confirm,
            "info": keys.seal(mine, self._random),
        }

    def receive_info(self, message: dict[str, Any]) -> PeerInfo:
        """The offerer's name and addresses: pairing is complete."""
        if self._keys is None:
            raise PairingError("INFO before the code was confirmed")
        return self._keys.open(_field(message, "info", "info", bytes))


class OffererHandshake:
    """The side that made the code: `receive_pake()`, then `receive_confirm()`."""

    def __init__(
        self, password: bytes, me: PeerId, joiner: PeerId, random_bytes: RandomBytes
    ) -> None:
        self._random = random_bytes
        self._spake = SPAKE2_B(
            password, idA=joiner.to_bytes(), idB=me.to_bytes(), entropy_f=random_bytes
        )
        self._keys: _Keys | None = None

    @staticmethod
    def nameplate_of(message: dict[str, Any]) -> str:
        """Which code or invite the joiner's first message is for."""
        nameplate = _field(message, "pake", "nameplate", str)
        if len(nameplate) > MAX_NAMEPLATE:
            raise MalformedFrame("pairing nameplate too long")
        return str(nameplate)

    def receive_pake(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer the joiner's PAKE with ours and our confirmation.

        Raises (MalformedFrame, PairingError) before anything is sent if the message is not
        a valid PAKE message; such a message is no guess at the code. Once the REPLY is
        out, the joiner can check one guess against our confirmation: the caller spends the
        offer before sending it.
        """
        if self._keys is not None:
            raise PairingError("a second PAKE message in one pairing")
        theirs = _field(message, "pake", "msg", bytes)
        _check_pake(self._spake, theirs, b"A")
        ours = self._spake.start()
        self._keys = _finish(self._spake, theirs, b"A")
        return {"t": "reply", "msg": ours, "confirm": self._keys.offerer_confirm}

    def receive_confirm(
        self, message: dict[str, Any], mine: PeerInfo
    ) -> tuple[PeerInfo, dict[str, Any]]:
        """Check the joiner's confirmation; returns its info and our INFO message."""
        if self._keys is None:
            raise PairingError("CONFIRM before PAKE")
        confirm = _field(message, "confirm", "confirm", bytes)
        if not hmac.compare_digest(confirm, self._keys.joiner_confirm):
            raise WrongCode(_WRONG_CODE)
        theirs = self._keys.open(_field(message, "confirm", "info", bytes))
        return theirs, {"t": "info", "info": self._keys.seal(mine, self._random)}
