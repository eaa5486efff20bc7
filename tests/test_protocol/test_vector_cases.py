"""protocol-v1-cases.json: the generator reproduces it byte for byte, the real code turns every
input into the stated intermediates and outputs and refuses every refusal with the named error,
and bare PyNaCl, hashlib and msgpack get the same values by following docs/protocol.md."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from nacl.bindings import (
    crypto_box_beforenm,
    crypto_box_easy_afternm,
    crypto_core_ed25519_is_valid_point,
    crypto_scalarmult_base,
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)
from nacl.public import Box, PrivateKey, PublicKey

from meshtalk.peer.admission import moved_conversation_id
from meshtalk.protocol import (
    NEED_DATA,
    AckFrame,
    Envelope,
    ErrorFrame,
    Frame,
    FrameDecoder,
    HelloFrame,
    MeshtalkError,
    MessageConnection,
    MessageFrame,
    NodeKey,
    PeerId,
    ProtocolViolation,
    check_lamport_step,
    direct_conversation_id,
    encode_frame,
    new_message_id,
    next_lamport,
    open_sealed,
    seal,
)
from meshtalk.protocol.codec import packb
from meshtalk.protocol.sealing import SIGNING_CONTEXT
from tests.vectors.cases import expand, from_json
from tests.vectors.make_vectors import FILES, HERE, render

CASES: dict[str, Any] = json.loads((HERE / "protocol-v1-cases.json").read_text())
KEYS = {name: NodeKey.from_seed(bytes.fromhex(k["seed_hex"])) for name, k in CASES["keys"].items()}
DOC = (Path(__file__).parent.parent.parent / "docs" / "protocol.md").read_text()


def by_name(items: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(item, id=item["name"]) for item in items]


def raised(call: Any) -> MeshtalkError:
    with pytest.raises(MeshtalkError) as info:
        call()
    return info.value


def assert_refusal(error: MeshtalkError, case: dict[str, Any]) -> None:
    assert (type(error).__name__, error.code) == (case["error"], case["code"]), error
    if "ref_hex" in case:
        ref = error.message_id
        assert (ref and ref.hex()) == case["ref_hex"]


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_generator_reproduces_the_committed_file(name: str) -> None:
    assert render(name) == (HERE / name).read_text(), "see tests/vectors/make_vectors.py"


def test_the_doc_states_the_constants() -> None:
    constants = CASES["constants"]
    for key in (
        "signing_context_hex",
        "peer_id_prefix_hex",
        "direct_person_hex",
        "moved_person_hex",
    ):
        assert constants[key] in DOC, key
    for key in ("max_envelope_size", "max_sealed_size", "max_frame_size", "max_age_ms"):
        assert f"{constants[key]:,}" in DOC, key


@pytest.mark.parametrize("name", sorted(CASES["keys"]))
def test_keys_derive_from_an_rfc8032_seed(name: str) -> None:
    vector = CASES["keys"][name]
    seed = bytes.fromhex(vector["seed_hex"])
    public, secret = crypto_sign_seed_keypair(seed)
    assert (public.hex(), secret.hex()) == (
        vector["ed25519_public_hex"],
        vector["ed25519_secret_hex"],
    )
    # X25519 secret: the first half of SHA-512(seed), clamped (RFC 7748), as libsodium does it
    scalar = bytearray(hashlib.sha512(seed).digest()[:32])
    scalar[0] &= 248
    scalar[31] = (scalar[31] & 127) | 64
    assert scalar.hex() == vector["x25519_secret_hex"]
    assert crypto_sign_ed25519_sk_to_curve25519(secret).hex() == vector["x25519_secret_hex"]
    x_public = crypto_scalarmult_base(bytes(scalar))
    assert x_public == crypto_sign_ed25519_pk_to_curve25519(public)
    assert x_public.hex() == vector["x25519_public_hex"]
    assert (CASES["constants"]["peer_id_prefix_hex"] + public.hex()) == vector["peer_id_hex"]
    key = KEYS[name]
    assert str(key.peer_id) == vector["peer_id"]
    assert PeerId.from_string(vector["peer_id"]).to_bytes().hex() == vector["peer_id_hex"]
    assert bytes(key.encryption_key.public_key).hex() == vector["x25519_public_hex"]


@pytest.mark.parametrize("pair", CASES["shared_keys"], ids=lambda p: f"{p['a']}-{p['b']}")
def test_the_shared_key_is_the_same_from_both_sides(pair: dict[str, str]) -> None:
    a, b = CASES["keys"][pair["a"]], CASES["keys"][pair["b"]]
    one = crypto_box_beforenm(
        bytes.fromhex(b["x25519_public_hex"]), bytes.fromhex(a["x25519_secret_hex"])
    )
    two = crypto_box_beforenm(
        bytes.fromhex(a["x25519_public_hex"]), bytes.fromhex(b["x25519_secret_hex"])
    )
    assert one.hex() == two.hex() == pair["shared_key_hex"]
    assert KEYS[pair["a"]].shared_key(KEYS[pair["b"]].peer_id) == one


def test_peer_ids() -> None:
    for valid in CASES["peer_ids"]["valid"]:
        assert str(PeerId(bytes.fromhex(valid["peer_id_hex"]))) == valid["peer_id"]
    for case in CASES["peer_ids"]["invalid"]:
        if "peer_id_hex" in case:
            raw = bytes.fromhex(case["peer_id_hex"])
            assert_refusal(raised(lambda r=raw: PeerId(r)), case)
            if len(raw) == 38 and raw.startswith(bytes.fromhex("002408011220")):
                # "a valid point" is exactly libsodium's crypto_core_ed25519_is_valid_point
                assert not crypto_core_ed25519_is_valid_point(raw[6:]), case["name"]
        else:
            assert_refusal(raised(lambda t=case["peer_id"]: PeerId.from_string(t)), case)


@pytest.mark.parametrize("case", CASES["message_ids"], ids=lambda c: c["id_random_hex"][:6])
def test_message_ids_are_uuidv7(case: dict[str, Any]) -> None:
    rand = bytes.fromhex(case["id_random_hex"])
    by_spec = (
        (case["now_ms"] % 2**48).to_bytes(6, "big")
        + bytes([0x70 | (rand[0] & 0x0F), rand[1], 0x80 | (rand[2] & 0x3F)])
        + rand[3:10]
    )
    assert by_spec.hex() == case["message_id_hex"]
    assert new_message_id(case["now_ms"], lambda n: rand[:n]).hex() == case["message_id_hex"]


def test_conversation_ids() -> None:
    conversations = CASES["conversations"]
    person = bytes.fromhex(conversations["direct_person_hex"])
    assert person == b"meshtalk/direct\x00"
    for case in conversations["direct"]:
        a, b = KEYS[case["a"]].peer_id, KEYS[case["b"]].peer_id
        low, high = sorted((a.to_bytes(), b.to_bytes()))
        assert (low + high).hex() == case["input_hex"]
        digest = hashlib.blake2b(low + high, digest_size=16, person=person).digest()
        assert digest.hex() == direct_conversation_id(a, b).hex() == case["direct_id_hex"]
    moved_person = bytes.fromhex(conversations["moved_person_hex"])
    for case in conversations["moved"]:
        conversation = bytes.fromhex(case["conversation_hex"])
        digest = hashlib.blake2b(conversation, digest_size=16, person=moved_person).digest()
        assert digest.hex() == moved_conversation_id(conversation).hex() == case["moved_id_hex"]


def test_lamport_counters() -> None:
    for case in CASES["lamport"]["next"]:
        assert next_lamport(case["local"], case["seen"]) == case["lamport"]
    for case in CASES["lamport"]["step"]:
        if case["accepted"]:
            check_lamport_step(case["lamport"], case["local"])
        else:
            assert_refusal(
                raised(lambda c=case: check_lamport_step(c["lamport"], c["local"])), case
            )


def envelope_of(case: dict[str, Any]) -> Envelope:
    """The envelope the vector's inputs describe, built by the code."""
    fields = case["envelope"]
    reply_to = fields["reply_to_hex"]
    return Envelope(
        id=bytes.fromhex(fields["id_hex"]),
        conversation=bytes.fromhex(fields["conversation_hex"]),
        author=PeerId.from_string(fields["author"]),
        recipients=tuple(PeerId.from_string(r) for r in fields["recipients"]),
        timestamp_ms=fields["timestamp_ms"],
        lamport=fields["lamport"],
        body=from_json(fields["body"]),
        kind=fields["kind"],
        reply_to=bytes.fromhex(reply_to) if reply_to else None,
        metadata=from_json(fields["metadata"]),
    )


@pytest.mark.parametrize("case", by_name(CASES["envelopes"]))
def test_an_envelope_seals_and_opens_with_the_code(case: dict[str, Any]) -> None:
    envelope, author = envelope_of(case), KEYS[case["author"]]
    fields = case["envelope"]
    packed = bytes.fromhex(case["envelope_packed_hex"])
    if case["name"] == "non_canonical_encoding":
        assert Envelope.unpack(packed) == envelope  # hand-encoded: the code never writes it
    else:
        assert envelope.pack() == packed
        assert (
            new_message_id(fields["timestamp_ms"], lambda n: bytes.fromhex(fields["id_random_hex"]))
            == envelope.id
        )
    if fields["conversation"] == "direct":
        assert (
            direct_conversation_id(envelope.author, envelope.recipients[0]) == envelope.conversation
        )
    assert author.sign(SIGNING_CONTEXT + packed).hex() == case["signature_hex"]
    for copy in case["copies"]:
        recipient = KEYS[copy["recipient"]]
        nonce = bytes.fromhex(copy["nonce_hex"])
        sealed = bytes.fromhex(copy["sealed_hex"])
        shared = author.shared_key(recipient.peer_id)
        assert shared == recipient.shared_key(author.peer_id)
        assert shared.hex() == copy["shared_key_hex"]
        box = nonce + crypto_box_easy_afternm(
            bytes.fromhex(case["signature_hex"]) + packed, nonce, shared
        )
        assert box.hex() == copy["box_hex"]
        if case["name"] != "non_canonical_encoding":
            assert seal(envelope, author, recipient.peer_id, lambda n, x=nonce: x) == sealed
        assert open_sealed(sealed, recipient, case["now_ms"]) == envelope
        assert encode_frame(MessageFrame(sealed)).hex() == copy["message_frame_hex"]


@pytest.mark.parametrize("case", by_name(CASES["envelopes"]))
def test_an_envelope_opens_by_following_the_doc_alone(case: dict[str, Any]) -> None:
    """docs/protocol.md sections 3 and 4 with nothing but PyNaCl, hashlib and msgpack."""
    fields = case["envelope"]
    for copy in case["copies"]:
        me = CASES["keys"][copy["recipient"]]
        version, author, recipient, box = msgpack.unpackb(bytes.fromhex(copy["sealed_hex"]))
        assert (version, recipient.hex()) == (1, me["peer_id_hex"])
        assert box.hex() == copy["box_hex"]
        assert box[:24].hex() == copy["nonce_hex"]
        author_x25519 = crypto_sign_ed25519_pk_to_curve25519(author[6:])
        shared = crypto_box_beforenm(author_x25519, bytes.fromhex(me["x25519_secret_hex"]))
        assert shared.hex() == copy["shared_key_hex"]
        my_secret = PrivateKey(bytes.fromhex(me["x25519_secret_hex"]))
        plain = Box(my_secret, PublicKey(author_x25519)).decrypt(box)  # = the shared key's box
        assert nonce_box(plain, box[:24], shared) == box
        signature, packed = plain[:64], plain[64:]
        assert (signature.hex(), packed.hex()) == (
            case["signature_hex"],
            case["envelope_packed_hex"],
        )
        crypto_sign_open(signature + b"meshtalk/envelope/v1\x00" + packed, author[6:])
        wire = msgpack.unpackb(packed, raw=False)
        assert (wire["v"], wire["a"]) == (1, author)
        assert recipient in wire["r"]
        assert (wire["id"].hex(), wire["c"].hex()) == (fields["id_hex"], fields["conversation_hex"])
        assert (wire["k"], wire["t"], wire["l"]) == (
            fields["kind"],
            fields["timestamp_ms"],
            fields["lamport"],
        )
        assert wire["b"] == from_json(fields["body"])
        assert wire.get("m") == from_json(fields["metadata"])
        assert (wire["re"].hex() if "re" in wire else None) == fields["reply_to_hex"]
        assert [str(PeerId(r)) for r in wire["r"]] == fields["recipients"]


def nonce_box(plain: bytes, nonce: bytes, shared: bytes) -> bytes:
    return nonce + crypto_box_easy_afternm(plain, nonce, shared)


def sealed_of(case: dict[str, Any]) -> bytes:
    """A refusal's sealed bytes, rebuilt from its inputs when they are too large to list."""
    if "sealed_hex" in case:
        sealed = expand(case["sealed_hex"])
    else:
        packed = expand(case["envelope_packed_hex"])
        assert hashlib.sha256(packed).hexdigest() == case["envelope_packed_sha256"]
        sealed = rebuilt(case, packed)
    if "sealed_sha256" in case:
        assert hashlib.sha256(sealed).hexdigest() == case["sealed_sha256"]
    return sealed


def rebuilt(case: dict[str, Any], packed: bytes) -> bytes:
    """`[1, author, recipient, nonce || box(signature || packed)]` from the vector's inputs."""
    author, to = KEYS[case["sealed_by"]], KEYS[case["sealed_to"]].peer_id
    plain = bytes.fromhex(case["signature_hex"]) + packed
    box = nonce_box(plain, bytes.fromhex(case["nonce_hex"]), author.shared_key(to))
    return packb([1, author.peer_id.to_bytes(), to.to_bytes(), box])


@pytest.mark.parametrize("case", by_name(CASES["refusals"]))
def test_a_refusal_raises_the_named_error(case: dict[str, Any]) -> None:
    sealed = sealed_of(case)
    if "envelope_packed_hex" in case:  # the inputs rebuild the very bytes refused
        assert rebuilt(case, expand(case["envelope_packed_hex"])) == sealed
    error = raised(lambda: open_sealed(sealed, KEYS[case["receiver"]], case["now_ms"]))
    assert_refusal(error, case)


def decode_all(data: bytes) -> list[Frame]:
    decoder: FrameDecoder[Frame] = FrameDecoder()
    decoder.receive_data(data)
    frames = []
    while (frame := decoder.next_frame()) is not NEED_DATA:
        frames.append(frame)
    decoder.end_of_stream()
    return frames


@pytest.mark.parametrize("case", by_name(CASES["frames"]["valid"]))
def test_a_frame_decodes(case: dict[str, Any]) -> None:
    data = expand(case["bytes_hex"])
    frames = decode_all(data)
    assert len(frames) == len(case["frames"]) == 1
    frame, expected = frames[0], case["frames"][0]
    if isinstance(frame, HelloFrame):
        assert frame == HelloFrame(tuple(expected["versions"]), expected["agent"])
    elif isinstance(frame, AckFrame) and "ids" in expected:
        assert len(frame.ids) == expected["ids"]
    elif isinstance(frame, AckFrame):
        assert frame == AckFrame(tuple(bytes.fromhex(i) for i in expected["ids_hex"]))
    elif isinstance(frame, ErrorFrame):
        ref = expected["ref_hex"]
        assert frame == ErrorFrame(expected["code"], expected["text"], ref and bytes.fromhex(ref))
    else:
        assert isinstance(frame, MessageFrame)
        assert hashlib.sha256(frame.sealed).hexdigest() == expected["sealed_sha256"]
    if "ids" not in expected:
        assert encode_frame(frame) == data  # the code writes exactly these bytes


@pytest.mark.parametrize("case", by_name(CASES["frames"]["refused"]))
def test_a_frame_is_refused(case: dict[str, Any]) -> None:
    assert_refusal(raised(lambda: decode_all(expand(case["bytes_hex"]))), case)


@pytest.mark.parametrize(
    "case", CASES["connection"], ids=lambda c: f"{c['role']}-{c['peer_hello_came']}-{c['frame']}"
)
def test_the_stream_rules(case: dict[str, Any]) -> None:
    connection = MessageConnection(case["role"], (1,), "me")
    connection.send_hello()
    if case["peer_hello_came"]:
        connection.receive_data(encode_frame(HelloFrame((1,), "peer")))
    event = connection.receive_data(bytes.fromhex(case["frame_hex"]))[-1]
    if case["event"] != "violation":
        assert type(event).__name__ == case["event"]
        if "code" in case:
            assert event.error.code == case["code"]  # type: ignore[union-attr]
        return
    assert isinstance(event, ProtocolViolation)
    assert (type(event.error).__name__, event.error.code) == (case["error"], case["code"])
    replies = decode_all(event.reply) if event.reply else []
    assert [f.code for f in replies if isinstance(f, ErrorFrame)] == (
        [case["reply_code"]] if case["reply_code"] is not None else []
    )


def test_the_full_case_is_the_committed_legacy_vector() -> None:
    legacy = json.loads((HERE / "protocol-v1.json").read_text())
    (full,) = [c for c in CASES["envelopes"] if c["name"] == "full_direct"]
    assert full["copies"][0]["sealed_hex"] == legacy["sealed"]
    assert full["envelope_packed_hex"] == legacy["envelope_packed"]
    assert full["envelope"]["id_hex"] == legacy["message_id"]
