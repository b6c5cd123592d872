"""Vectors for the X3DH-style handshake (vectors/handshake.json, kind "handshake").

Each case names an `operation` (spec/04-handshake.md, "Test vectors"):
- "handshake": from the initiator's and responder's private keys, the ephemeral key, and the seed
  and plaintext of the initiator's first Double Ratchet message: the bundle, DH1..DH4, the shared
  secret, the associated data, the sealed identity, the replay tag, the ratchet message (a real
  one, spec 05) and the full initial message. The verifier recomputes the initiator side, then
  runs the whole responder side: accept, the responder's ratchet, `decrypt_initial` of the ratchet
  message (it must give the plaintext), and only then the commit.
- "accept": deliver `initial_message` `deliveries` times to the responder, each delivery the
  whole responder side (accept, decrypt the first ratchet message, commit); negative cases name
  the error of the last delivery (replay, other suite, tampering, a later ratchet message in the
  initial message).
- "initiate": start a handshake from a bundle encoding; negative cases (bad prekey signature).

The responder's account holds exactly the vector's prekeys; `next_signed_prekey_id` and
`next_one_time_prekey_id` are its id counters (spec 03, "Account"), given so that an outside
implementation can rebuild the same account.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.double_ratchet import DoubleRatchet
from triple_ratchet.handshake import (
    Initiation,
    accept,
    initiate_with_ephemeral,
    replay_tag,
)
from triple_ratchet.identity import (
    ACCOUNT_STATE_VERSION,
    MAX_PREKEY_ID,
    Account,
    PrekeyBundle,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, Suite
from triple_ratchet.testvectors import (
    CaseResult,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)
from triple_ratchet.testvectors.identity import (
    build_bundle,
    bundle_inputs,
    identity_keys,
    keypair,
    suite_named,
)

KIND = "handshake"
FILE = "handshake.json"


def _responder(suite: Suite, inputs: dict[str, Any]) -> tuple[Account, PrekeyBundle]:
    """The responder's account holding exactly the prekeys of the vector (via its saved-state
    format, so the ids are the vector's)."""
    kp, bundle = build_bundle(suite, inputs)
    opk = bundle.one_time_prekey
    state = cbor.encode([
        ACCOUNT_STATE_VERSION, suite.suite_id,
        [bytes.fromhex(inputs["signing_private"]), bytes.fromhex(inputs["dh_private"]),
         kp.public.dh_key_signature],
        _id(inputs["next_signed_prekey_id"]),
        [[bundle.signed_prekey.prekey_id, bytes.fromhex(inputs["signed_prekey_private"]),
          bundle.signed_prekey.signature, False, []]],
        _id(inputs["next_one_time_prekey_id"]),
        [] if opk is None else [[opk.prekey_id,
                                 bytes.fromhex(inputs["one_time_prekey_private"])]],
    ])
    return Account.from_bytes(state), bundle


def _id(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_PREKEY_ID + 1:
        raise AssertionError(f"not a prekey id counter: {str(value)[:40]}")
    return value


def _respond(account: Account, data: bytes) -> bytes:
    """The whole responder side (spec 04): accept, the ratchet's first decrypt, then commit."""
    pending = accept(account, data)
    ratchet = DoubleRatchet.respond(pending.suite, pending.shared_secret,
                                    pending.own_ratchet_key, pending.associated_data)
    plaintext = ratchet.decrypt_initial(pending.ratchet_message)
    pending.commit()
    return plaintext


def _first_ratchet_message(suite: Suite, start: Initiation, inputs: dict[str, Any]) -> bytes:
    ratchet = DoubleRatchet.initiate(
        suite, start.shared_secret, start.responder_ratchet_key, start.associated_data,
        rng=DeterministicRandom(bytes.fromhex(inputs["ratchet_rng_seed"])))
    return ratchet.encrypt(bytes.fromhex(inputs["plaintext"]))


def _initiator_outputs(suite: Suite, inputs: dict[str, Any]) -> dict[str, Any]:
    alice = keypair(suite, inputs["initiator"])
    _, bundle = _responder(suite, inputs["responder"])
    ek = suite.dh_private_from_bytes(bytes.fromhex(inputs["ephemeral_private"]))
    start = initiate_with_ephemeral(alice, bundle, ek)
    ratchet_message = _first_ratchet_message(suite, start, inputs)
    message = start.initial_message(ratchet_message)
    spk = bundle.signed_prekey.public_key
    dh = [alice.dh_private_key.exchange(spk), ek.exchange(bundle.identity.dh_key),
          ek.exchange(spk)]
    if bundle.one_time_prekey is not None:
        dh.append(ek.exchange(bundle.one_time_prekey.public_key))
    return {
        "initiator_identity": alice.public.to_bytes().hex(),
        "bundle": bundle.to_bytes().hex(),
        "ephemeral_public": ek.public_key().to_bytes().hex(),
        "dh_outputs": [d.hex() for d in dh],
        "shared_secret": start.shared_secret.hex(),
        "associated_data": start.associated_data.hex(),
        "sealed_identity": start.header.sealed_identity.hex(),
        "replay_tag": replay_tag(suite, start.header.ephemeral_key,
                                 start.header.sealed_identity).hex(),
        "ratchet_message": ratchet_message.hex(),
        "initial_message": message.hex(),
    }


def _check(case: dict[str, Any]) -> None:
    suite = suite_named(case["suite"])
    inputs = case["inputs"]
    op = inputs["operation"]
    if op == "handshake":
        got = _initiator_outputs(suite, inputs)
        for key, want in case.get("outputs", {}).items():
            expect_equal(key, got.get(key), want)
        account, _ = _responder(suite, inputs["responder"])
        accepted = accept(account, bytes.fromhex(got["initial_message"]))
        expect_equal("responder shared_secret", accepted.shared_secret.hex(),
                     got["shared_secret"])
        expect_equal("responder associated_data", accepted.associated_data.hex(),
                     got["associated_data"])
        expect_equal("responder sees initiator", accepted.peer.to_bytes().hex(),
                     got["initiator_identity"])
        expect_equal("ratchet message", accepted.ratchet_message.hex(), got["ratchet_message"])
        expect_equal("first plaintext", _respond(account, bytes.fromhex(got["initial_message"]))
                     .hex(), inputs["plaintext"])
    elif op == "accept":
        account, _ = _responder(suite, inputs["responder"])
        data = bytes.fromhex(inputs["initial_message"])
        deliveries = inputs["deliveries"]
        if deliveries not in (1, 2):
            raise AssertionError("deliveries must be 1 or 2")
        for _ in range(deliveries):
            _respond(account, data)
    elif op == "initiate":
        alice = keypair(suite, inputs["initiator"])
        bundle = PrekeyBundle.from_bytes(bytes.fromhex(inputs["bundle"]), suite)
        ek = suite.dh_private_from_bytes(bytes.fromhex(inputs["ephemeral_private"]))
        initiate_with_ephemeral(alice, bundle, ek)
    else:
        raise AssertionError(f"unknown operation {op!r}")


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for suite in ALL_SUITES:
        rng = DeterministicRandom(b"handshake vectors " + suite.name.encode())
        for description, opk_id in (("handshake with a one-time prekey", 5),
                                    ("handshake without a one-time prekey", None)):
            responder = bundle_inputs(suite, rng, 3, opk_id)
            del responder["operation"]
            responder["next_signed_prekey_id"] = 4
            responder["next_one_time_prekey_id"] = 0 if opk_id is None else opk_id + 1
            inputs: dict[str, Any] = {
                "operation": "handshake", "initiator": identity_keys(suite, rng),
                "responder": responder,
                "ephemeral_private": suite.generate_dh(rng).to_bytes().hex(),
                "ratchet_rng_seed": rng(16).hex(),
                "plaintext": b"the first message (a welcome travels here)".hex()}
            outputs = _initiator_outputs(suite, inputs)
            cases.append({"description": description, "suite": suite.name, "inputs": inputs,
                          "outputs": outputs})
            message = outputs["initial_message"]
            kind = "one-time prekey" if opk_id is not None else "replay cache"
            cases.append({"description": f"replayed initial message ({kind})",
                          "suite": suite.name,
                          "inputs": {"operation": "accept", "responder": responder,
                                     "initial_message": message, "deliveries": 2},
                          "error": {"type": "ReplayError"}})
            # The header of this initial message around the initiator's second ratchet message
            # (N = 1): refused before the commit (spec 04, 05 5.6a).
            alice = keypair(suite, inputs["initiator"])
            _, bundle = _responder(suite, responder)
            start = initiate_with_ephemeral(
                alice, bundle,
                suite.dh_private_from_bytes(bytes.fromhex(inputs["ephemeral_private"])))
            ratchet = DoubleRatchet.initiate(
                suite, start.shared_secret, start.responder_ratchet_key, start.associated_data,
                rng=DeterministicRandom(bytes.fromhex(inputs["ratchet_rng_seed"])))
            ratchet.encrypt(bytes.fromhex(inputs["plaintext"]))
            cases.append({"description": f"a later ratchet message in the initial message "
                                         f"({kind})",
                          "suite": suite.name,
                          "inputs": {"operation": "accept", "responder": responder,
                                     "initial_message": start.initial_message(
                                         ratchet.encrypt(b"second")).hex(),
                                     "deliveries": 1},
                          "error": {"type": "ProtocolError"}})
            if opk_id is None:
                continue
            raw = bytes.fromhex(message)
            fields: list[cbor.CborEncodable] = list(cbor.as_list(cbor.decode(raw), "message"))
            sealed = bytearray(bytes(fields[5]))  # type: ignore[arg-type]
            sealed[3] ^= 0x10
            fields[5] = bytes(sealed)
            cases.append({"description": "tampered sealed identity", "suite": suite.name,
                          "inputs": {"operation": "accept", "responder": responder,
                                     "initial_message": cbor.encode(fields).hex(),
                                     "deliveries": 1},
                          "error": {"type": "AuthenticationError"}})
            spk_sig_fields = cbor.as_list(cbor.decode(bytes.fromhex(outputs["bundle"])), "bundle")
            spk_sig = bytearray(cbor.as_bytes(spk_sig_fields[7], "spk sig"))
            spk_sig[10] ^= 0x01
            spk_sig_fields[7] = bytes(spk_sig)
            cases.append({"description": "bundle with a bad signed-prekey signature",
                          "suite": suite.name,
                          "inputs": {"operation": "initiate", "initiator": inputs["initiator"],
                                     "bundle": cbor.encode(spk_sig_fields).hex(),
                                     "ephemeral_private": inputs["ephemeral_private"]},
                          "error": {"type": "InvalidSignature"}})
    # Each suite's message delivered to a responder of the other suite.
    for case in [c for c in cases if c["inputs"]["operation"] == "handshake"
                 and c["inputs"]["responder"]["one_time_prekey_id"] is not None]:
        other = next(s for s in ALL_SUITES if s.name != case["suite"])
        target = next(c for c in cases if c["suite"] == other.name
                      and c["inputs"]["operation"] == "handshake")
        cases.append({"description": "initial message of another suite", "suite": other.name,
                      "inputs": {"operation": "accept",
                                 "responder": target["inputs"]["responder"],
                                 "initial_message": case["outputs"]["initial_message"],
                                 "deliveries": 1},
                      "error": {"type": "ProtocolError"}})
    return {FILE: document(KIND, "The X3DH-style handshake with a sealed initiator identity "
                                 "(spec/04-handshake.md)", cases)}


register(lambda: {KIND: verify})
register_generator(generate)
