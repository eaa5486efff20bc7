"""Sealed-message vectors: envelopes with all their inputs and intermediate values, and the
sealed messages a receiver must refuse, each with the error it raises (see `cases`)."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgpack
from nacl.bindings import crypto_box_easy_afternm

from meshtalk.protocol import (
    MAX_LAMPORT,
    Envelope,
    MessageFrame,
    NodeKey,
    PeerId,
    direct_conversation_id,
    encode_frame,
    new_message_id,
    open_sealed,
)
from meshtalk.protocol.codec import packb
from meshtalk.protocol.envelope import MAX_ENVELOPE_SIZE
from meshtalk.protocol.sealing import (
    DEFAULT_MAX_AGE_MS,
    DEFAULT_MAX_FUTURE_SKEW_MS,
    MAX_SEALED_SIZE,
    SIGNING_CONTEXT,
    seal,
)

from .cases import NOW_MS, PEER_ID_PREFIX, L, refusal, sha256, spec, to_json

__all__ = ["valid_envelopes", "refusals"]

NONCES: Final = [bytes(range(100 + i, 124 + i)) for i in range(0, 80, 8)]
ID_RANDOM: Final = bytes(range(200, 210))
NAMED: Final = bytes(range(16, 32))  # a named conversation: 16 random bytes
SMILE: Final = "\U0001f600"


def _sealed_json(sealed: bytes) -> dict[str, Any]:
    if len(sealed) <= 64 * 1024:
        return {"sealed_hex": sealed.hex()}
    return {"sealed_sha256": sha256(sealed), "sealed_size": len(sealed)}


def _box(author: NodeKey, to: PeerId, plain: bytes, nonce: bytes) -> bytes:
    return nonce + crypto_box_easy_afternm(plain, nonce, author.shared_key(to))


def _envelope_json(
    envelope: Envelope, id_random: bytes | None, conversation: str
) -> dict[str, Any]:
    return {
        "id_hex": envelope.id.hex(),
        "id_random_hex": id_random and id_random.hex(),
        "kind": envelope.kind,
        "conversation": conversation,
        "conversation_hex": envelope.conversation.hex(),
        "author": str(envelope.author),
        "recipients": [str(r) for r in envelope.recipients],
        "timestamp_ms": envelope.timestamp_ms,
        "lamport": envelope.lamport,
        "reply_to_hex": envelope.reply_to and envelope.reply_to.hex(),
        "body": to_json(envelope.body),
        "metadata": to_json(envelope.metadata),
    }


def _copies(
    keys: dict[str, NodeKey],
    author: str,
    to: list[str],
    packed: bytes,
    signature: bytes,
    nonces: list[bytes],
    header: bytes | None = None,
) -> list[dict[str, Any]]:
    copies = []
    for name, nonce in zip(to, nonces, strict=False):
        peer = keys[name].peer_id
        box = _box(keys[author], peer, signature + packed, nonce)
        if header is None:
            sealed = packb([1, keys[author].peer_id.to_bytes(), peer.to_bytes(), box])
        else:  # a hand-encoded outer array: `header`, then the box as bin32
            sealed = header + b"\xc6" + len(box).to_bytes(4, "big") + box
        copies.append(
            {
                "recipient": name,
                "nonce_hex": nonce.hex(),
                "shared_key_hex": keys[author].shared_key(peer).hex(),
                "box_hex": box.hex(),
                **_sealed_json(sealed),
                "message_frame_hex": encode_frame(MessageFrame(sealed)).hex(),
            }
        )
    return copies


def _valid(
    keys: dict[str, NodeKey],
    name: str,
    description: str,
    to: list[str],
    *,
    timestamp_ms: int = NOW_MS,
    **fields: Any,
) -> dict[str, Any]:
    """A well-formed envelope from alice, sealed to each of `to` and checked with the code."""
    alice = keys["alice"]
    recipients = tuple(keys[n].peer_id for n in to)
    id_random = fields.pop("id_random", ID_RANDOM)
    conversation = fields.pop("conversation", None)
    nonce_list: list[bytes] = fields.pop("nonces")
    envelope = Envelope(
        id=new_message_id(timestamp_ms, lambda n: id_random[:n]),
        conversation=conversation or direct_conversation_id(alice.peer_id, recipients[0]),
        author=alice.peer_id, recipients=recipients, timestamp_ms=timestamp_ms, **fields,
    )  # fmt: skip
    packed = envelope.pack()
    signature = alice.sign(SIGNING_CONTEXT + packed)
    copies = _copies(keys, "alice", to, packed, signature, nonce_list)
    for copy, recipient in zip(copies, recipients, strict=True):
        sealed = seal(envelope, alice, recipient, lambda n, c=copy: bytes.fromhex(c["nonce_hex"]))
        assert sealed.hex() == copy["sealed_hex"]
        assert open_sealed(sealed, keys[copy["recipient"]], NOW_MS) == envelope
    return {
        "name": name,
        "description": description,
        "author": "alice",
        "now_ms": NOW_MS,
        "envelope": _envelope_json(envelope, id_random, "named" if conversation else "direct"),
        "envelope_packed_hex": packed.hex(),
        "signature_hex": signature.hex(),
        "copies": copies,
    }


def _non_canonical(keys: dict[str, NodeKey]) -> dict[str, Any]:
    """Every value in a longer encoding than needed, keys out of order: still accepted."""
    alice, bob = keys["alice"].peer_id, keys["bob"].peer_id
    message_id = new_message_id(NOW_MS, lambda n: ID_RANDOM[:n])
    conversation = direct_conversation_id(alice, bob)
    parts = [
        b"\xde\x00\x0a",  # map16 of 10 entries (fixmap would do)
        b"\xd9\x01b" + b"\xd9\x05hello",  # str8 key and value
        b"\xa1l" + b"\xce\x00\x00\x00\x05",  # 5 as uint32
        b"\xa1t" + b"\xd3" + NOW_MS.to_bytes(8, "big"),  # int64, not uint64
        b"\xa1v" + b"\xcc\x01",  # 1 as uint8
        b"\xa2id" + b"\xc5\x00\x10" + message_id,  # bin16
        b"\xa1k" + b"\xda\x00\x04text",  # str16
        b"\xa1c" + b"\xc6\x00\x00\x00\x10" + conversation,  # bin32
        b"\xa1a" + b"\xc4\x26" + alice.to_bytes(),
        b"\xa1r" + b"\xdc\x00\x01" + b"\xc4\x26" + bob.to_bytes(),  # array16
        b"\xa1m" + b"\x81\xa1x\xca\x3f\xc0\x00\x00",  # float32 1.5
    ]
    packed = b"".join(parts)
    envelope = Envelope.unpack(packed)
    signature = keys["alice"].sign(SIGNING_CONTEXT + packed)
    header = b"\xdc\x00\x04\xcc\x01\xc5\x00\x26" + alice.to_bytes() + b"\xc4\x26" + bob.to_bytes()
    copies = _copies(keys, "alice", ["bob"], packed, signature, NONCES[8:9], header)
    assert open_sealed(bytes.fromhex(copies[0]["sealed_hex"]), keys["bob"], NOW_MS) == envelope
    return {
        "name": "non_canonical_encoding",
        "description": "map16, str8/str16 keys and values, uint8/uint32/int64 ints, bin16/bin32, "
        "array16, a float32, keys in another order, and an outer array16 with a bin16 author: "
        "receivers accept any valid msgpack and verify the signature over the bytes as sent",
        "author": "alice",
        "now_ms": NOW_MS,
        "envelope": _envelope_json(envelope, ID_RANDOM, "direct"),
        "envelope_packed_hex": packed.hex(),
        "signature_hex": signature.hex(),
        "copies": copies,
    }


def valid_envelopes(keys: dict[str, NodeKey]) -> list[dict[str, Any]]:
    """Envelopes every receiver accepts, with inputs, intermediates and outputs."""
    every_value = {
        "nil": None, "true": True, "false": False, "zero": 0, "min": -(2**63), "max": 2**64 - 1,
        "float": 1.5, "text": f"h\u00e9llo {SMILE}", "bin": {"$bin": "00ff"}, "list": [1, "a", []],
        "map": {"": {}},
    }  # fmt: skip
    deep: Any = []
    for _ in range(15):
        deep = [deep]
    body = {
        k: (bytes.fromhex(v["$bin"]) if isinstance(v, dict) and "$bin" in v else v)
        for k, v in every_value.items()
    }
    n = NONCES
    return [
        _valid(
            keys,
            "text_direct",
            "the usual chat message",
            ["bob"],
            nonces=n[1:2],
            lamport=1,
            body="hello bob",
        ),
        _valid(
            keys,
            "full_direct",
            "the message of protocol-v1.json: every optional field",
            ["bob"],
            nonces=n[0:1],
            lamport=7,
            body={"text": "hello bob", "n": 1},
            kind="data",
            reply_to=bytes(16),
            metadata={"lang": "en"},
        ),
        _valid(
            keys,
            "named_two_recipients",
            "one signed envelope, sealed once per recipient",
            ["bob", "carol"],
            nonces=n[2:4],
            conversation=NAMED,
            lamport=3,
            body="hello both",
        ),
        _valid(
            keys,
            "every_value_type",
            "each msgpack value a body may hold; a 32-char kind",
            ["bob"],
            nonces=n[4:5],
            lamport=2,
            body=body,
            kind="a.b_c-d0123456789abcdefghijklmno",
            metadata={"via": "agent", "n": -1},
        ),
        _valid(
            keys,
            "body_16_levels",
            "lists nested 16 deep, the most allowed",
            ["bob"],
            nonces=n[5:6],
            lamport=4,
            body=deep,
        ),
        _valid(
            keys,
            "oldest_accepted",
            "30 days old to the millisecond; the largest Lamport",
            ["bob"],
            nonces=n[6:7],
            timestamp_ms=NOW_MS - DEFAULT_MAX_AGE_MS,
            lamport=MAX_LAMPORT,
            body="old",
        ),
        _valid(
            keys,
            "newest_accepted",
            "5 minutes ahead to the millisecond; Lamport 0",
            ["bob"],
            nonces=n[7:8],
            timestamp_ms=NOW_MS + DEFAULT_MAX_FUTURE_SKEW_MS,
            lamport=0,
            body="soon",
        ),
        _non_canonical(keys),
    ]


REF: Final = new_message_id(NOW_MS, lambda n: ID_RANDOM[:n])


def _wire(keys: dict[str, NodeKey], **changes: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "v": 1, "id": REF, "k": "text",
        "c": direct_conversation_id(keys["alice"].peer_id, keys["bob"].peer_id),
        "a": keys["alice"].peer_id.to_bytes(), "r": [keys["bob"].peer_id.to_bytes()],
        "t": NOW_MS, "l": 1, "b": "hello bob",
    }  # fmt: skip
    for key, value in changes.items():
        if value is _DROP:
            del wire[key]
        else:
            wire[key] = value
    return wire


_DROP: Final = object()


def _refused(
    keys: dict[str, NodeKey],
    name: str,
    description: str,
    *,
    packed: bytes | None = None,
    sealed: bytes | None = None,
    signature: bytes | None = None,
    signer: str = "alice",
    author: str = "alice",
    to: str = "bob",
    nonce: bytes = NONCES[9],
) -> dict[str, Any]:
    """A sealed message bob refuses: alice's box of `signature || packed` unless `sealed`."""
    vector: dict[str, Any] = {
        "name": name,
        "description": description,
        "receiver": "bob",
        "now_ms": NOW_MS,
    }
    if sealed is None:
        assert packed is not None
        if signature is None:
            signature = keys[signer].sign(SIGNING_CONTEXT + packed)
        box = _box(keys[author], keys[to].peer_id, signature + packed, nonce)
        sealed = packb([1, keys[author].peer_id.to_bytes(), keys[to].peer_id.to_bytes(), box])
        if len(packed) > 64 * 1024:
            assert packed[200:] == packed[200:201] * (len(packed) - 200)
            vector["envelope_packed_hex"] = spec(packed[:200], packed[200:201], len(packed) - 200)
            vector["envelope_packed_sha256"] = sha256(packed)
        else:
            vector["envelope_packed_hex"] = packed.hex()
        vector.update(
            signature_hex=signature.hex(), sealed_by=author, sealed_to=to, nonce_hex=nonce.hex()
        )
    vector.update(_sealed_json(sealed))
    vector.update(refusal(lambda: open_sealed(sealed, keys["bob"], NOW_MS)))
    return vector


def _sealed_refusals(keys: dict[str, NodeKey]) -> list[dict[str, Any]]:
    alice, bob = keys["alice"].peer_id.to_bytes(), keys["bob"].peer_id.to_bytes()
    good = packb(_wire(keys))
    box = _box(
        keys["alice"],
        keys["bob"].peer_id,
        keys["alice"].sign(SIGNING_CONTEXT + good) + good,
        NONCES[9],
    )
    ok = packb([1, alice, bob, box])
    small_order = PEER_ID_PREFIX + (1).to_bytes(32, "little")
    flipped = bytearray(box)
    flipped[40] ^= 1
    too_large = spec(b"", b"\x00", MAX_SEALED_SIZE + 1)
    big = b"\x00" * (MAX_SEALED_SIZE + 1)
    vector = {
        "name": "sealed_too_large",
        "description": f"{MAX_SEALED_SIZE + 1} bytes",
        "receiver": "bob",
        "now_ms": NOW_MS,
        "sealed_hex": too_large,
        "sealed_sha256": sha256(big),
        **refusal(lambda: open_sealed(big, keys["bob"], NOW_MS)),
    }
    r = _refused
    return [
        vector,
        r(keys, "sealed_not_msgpack", "0xc1 is no msgpack value", sealed=b"\xc1"),
        r(
            keys,
            "sealed_trailing_byte",
            "a valid sealed message and one more byte",
            sealed=ok + b"\x00",
        ),
        r(keys, "sealed_not_array", "a map", sealed=packb({"v": 1})),
        r(keys, "sealed_three_items", "the box is missing", sealed=packb([1, alice, bob])),
        r(keys, "sealed_version_2", "outer version 2", sealed=packb([2, alice, bob, box])),
        r(keys, "sealed_version_bool", "outer version true", sealed=packb([True, alice, bob, box])),
        r(keys, "sealed_author_str", "header author as str", sealed=packb([1, "alice", bob, box])),
        r(
            keys,
            "box_103_bytes",
            "one byte short of nonce + MAC + signature",
            sealed=packb([1, alice, bob, box[:103]]),
        ),
        r(
            keys,
            "box_104_bytes",
            "long enough to try, but does not open",
            sealed=packb([1, alice, bob, box[:104]]),
        ),
        r(
            keys,
            "sealed_to_carol",
            "header recipient carol: bob refuses before decrypting",
            packed=packb(_wire(keys)),
            to="carol",
        ),
        r(
            keys,
            "author_small_order",
            "header author embeds the neutral point",
            sealed=packb([1, small_order, bob, box]),
        ),
        r(
            keys,
            "author_secp256k1",
            "header author is not an Ed25519 peer ID",
            sealed=packb([1, bytes.fromhex("00250802122102") + bytes(32), bob, box]),
        ),
        r(
            keys,
            "author_swapped",
            "header author carol, box made by alice",
            sealed=packb([1, keys["carol"].peer_id.to_bytes(), bob, box]),
        ),
        r(
            keys,
            "ciphertext_flipped",
            "one bit of the ciphertext flipped",
            sealed=packb([1, alice, bob, bytes(flipped)]),
        ),
        r(
            keys,
            "signature_flipped",
            "one bit of the signature flipped, then boxed",
            packed=good,
            signature=bytes([keys["alice"].sign(SIGNING_CONTEXT + good)[0] ^ 1])
            + keys["alice"].sign(SIGNING_CONTEXT + good)[1:],
        ),
        r(
            keys,
            "signature_by_carol",
            "signed by carol, boxed by alice",
            packed=good,
            signer="carol",
        ),
        r(
            keys,
            "signature_s_plus_l",
            "S + L in place of S (RFC 8032 requires S < L)",
            packed=good,
            signature=_s_plus_l(keys["alice"].sign(SIGNING_CONTEXT + good)),
        ),
        r(
            keys,
            "signature_without_context",
            "signed without the meshtalk/envelope/v1 prefix",
            packed=good,
            signature=keys["alice"].sign(good),
        ),
        r(
            keys,
            "signature_neutral_r",
            "R = the neutral point (r = 0), S = k*a: holds in the verification equation, but R "
            "has small order",
            packed=good,
            signature=_neutral_r(keys["alice"], SIGNING_CONTEXT + good),
        ),
    ]


def _neutral_r(key: NodeKey, message: bytes) -> bytes:
    """A signature with R = the neutral point, which only the key's owner can make."""
    digest = bytearray(hashlib.sha512(key.seed).digest()[:32])
    digest[0] &= 248
    digest[31] = (digest[31] & 127) | 64
    secret = int.from_bytes(digest, "little")
    neutral = (1).to_bytes(32, "little")
    k = int.from_bytes(
        hashlib.sha512(neutral + key.peer_id.public_key + message).digest(), "little"
    )
    return neutral + (k * secret % L).to_bytes(32, "little")


def _s_plus_l(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:], "little") + L
    return signature[:32] + s.to_bytes(32, "little")


def _envelope_refusals(keys: dict[str, NodeKey]) -> list[dict[str, Any]]:
    carol, bob = keys["carol"].peer_id.to_bytes(), keys["bob"].peer_id.to_bytes()
    others = [NodeKey.from_seed(i.to_bytes(32, "big")).peer_id.to_bytes() for i in range(1, 257)]
    text = packb(_wire(keys, b="Z"))
    duplicate = b"\x8a" + packb(_wire(keys))[1:] + b"\xa1t" + packb(NOW_MS)
    too_large_head = packb(_wire(keys, b=""))[:-1]
    filler = MAX_ENVELOPE_SIZE + 24 - len(too_large_head) - 5
    too_large = too_large_head + b"\xdb" + filler.to_bytes(4, "big") + b"a" * filler
    deep: Any = []
    for _ in range(16):
        deep = [deep]

    def w(**changes: Any) -> bytes:
        return packb(_wire(keys, **changes))

    cases = [
        ("author_mismatch", "envelope author carol, signed and sealed by alice", w(a=carol)),
        (
            "not_a_signed_recipient",
            "header recipient bob, envelope recipients [carol]",
            w(r=[carol]),
        ),
        ("too_old", "1 ms older than 30 days", w(t=NOW_MS - DEFAULT_MAX_AGE_MS - 1)),
        (
            "too_new",
            "1 ms further ahead than 5 minutes",
            w(t=NOW_MS + DEFAULT_MAX_FUTURE_SKEW_MS + 1),
        ),
        ("lamport_2_53", "Lamport 2^53, one above the cap", w(l=MAX_LAMPORT + 1)),
        ("lamport_negative", "Lamport -1", w(l=-1)),
        ("lamport_float", "Lamport 7.5", w(l=7.5)),
        ("envelope_version_2", "envelope v 2 (inside the box: MalformedEnvelope)", w(v=2)),
        ("unknown_key", "an extra key x", w(x=1)),
        ("missing_body", "no b", w(b=_DROP)),
        ("duplicate_key", "t twice", duplicate),
        ("id_15_bytes", "an id of 15 bytes: no usable ref", w(id=REF[:15])),
        ("id_str", "the id as str", w(id="0123456789abcdef")),
        ("kind_uppercase", "kind Text", w(k="Text")),
        ("kind_33_chars", "kind of 33 characters", w(k="a" * 33)),
        ("recipients_empty", "no recipients", w(r=[])),
        ("recipients_twice", "bob twice", w(r=[bob, bob])),
        ("recipients_257", "257 recipients", w(r=[bob, *others])),
        (
            "recipient_small_order",
            "a recipient with the neutral point",
            w(r=[bob, PEER_ID_PREFIX + (1).to_bytes(32, "little")]),
        ),
        ("timestamp_negative", "t -1", w(t=-1)),
        (
            "timestamp_extension",
            "t as the msgpack timestamp extension (-1)",
            w(t=msgpack.Timestamp(NOW_MS // 1000)),
        ),
        ("reply_to_8_bytes", "re of 8 bytes", w(re=bytes(8))),
        ("metadata_list", "m as an array", w(m=[1])),
        ("body_invalid_utf8", "body str holding the byte 0xff", text[:-1] + b"\xff"),
        ("body_int_map_key", "body {1: 1}", text[:-2] + b"\x81\x01\x01"),
        ("body_17_levels", "lists nested 17 deep", w(b=deep)),
        (
            "envelope_too_large",
            f"{len(too_large)} bytes packed, the limit is {MAX_ENVELOPE_SIZE}",
            too_large,
        ),
    ]
    return [_refused(keys, name, description, packed=packed) for name, description, packed in cases]


def refusals(keys: dict[str, NodeKey]) -> list[dict[str, Any]]:
    """Sealed messages bob refuses, each with its error (checked against the code)."""
    return _sealed_refusals(keys) + _envelope_refusals(keys)
