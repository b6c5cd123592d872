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

Hybrid suites (the PQXDH-shaped handshake, spec 04): the responder's inputs also name the bundle's
KEM prekey (`kem_prekey_id`, null for the last-resort one, and `kem_prekey_seed`), the seed of the
signed prekey's last-resort KEM prekey when the bundle carries a one-time one
(`last_resort_kem_prekey_seed`) and the counter `next_one_time_kem_prekey_id`; the handshake
inputs add `kem_randomness` (ML-KEM's 32-byte `m`), its outputs `kem_ciphertext` and
`kem_shared_secret`. The classical suites' cases are generated first and are unchanged.
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
from triple_ratchet.suites import CLASSICAL_SUITES, HYBRID_SUITES, Suite
from triple_ratchet.suites.mlkem import MlKemPrivateKey
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
    classical_twin,
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
    spk_entry: list[cbor.CborEncodable] = [
        bundle.signed_prekey.prekey_id, bytes.fromhex(inputs["signed_prekey_private"]),
        bundle.signed_prekey.signature, False, []]
    fields: list[cbor.CborEncodable] = [
        ACCOUNT_STATE_VERSION, suite.suite_id,
        [bytes.fromhex(inputs["signing_private"]), bytes.fromhex(inputs["dh_private"]),
         kp.public.dh_key_signature],
        _id(inputs["next_signed_prekey_id"]),
        [spk_entry],
        _id(inputs["next_one_time_prekey_id"]),
        [] if opk is None else [[opk.prekey_id,
                                 bytes.fromhex(inputs["one_time_prekey_private"])]],
    ]
    kem = bundle.kem_prekey
    if kem is not None:
        # The signed prekey's last-resort KEM prekey, and the one-time KEM prekey if any.
        seed = bytes.fromhex(inputs["kem_prekey_seed"])
        last_resort = (bytes.fromhex(inputs["last_resort_kem_prekey_seed"]) if kem.one_time
                       else seed)
        spk_entry += [last_resort, kp.sign_kem_prekey(
            bundle.signed_prekey.prekey_id,
            MlKemPrivateKey.from_seed(last_resort).public_key(), one_time=False).signature]
        fields += [_id(inputs["next_one_time_kem_prekey_id"]),
                   [[kem.prekey_id, seed, kem.signature]] if kem.one_time else []]
    return Account.from_bytes(cbor.encode(fields)), bundle


def _kem_randomness(suite: Suite, inputs: dict[str, Any]) -> bytes | None:
    return bytes.fromhex(inputs["kem_randomness"]) if suite.post_quantum else None


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
    m = _kem_randomness(suite, inputs)
    start = initiate_with_ephemeral(alice, bundle, ek, m)
    ratchet_message = _first_ratchet_message(suite, start, inputs)
    message = start.initial_message(ratchet_message)
    spk = bundle.signed_prekey.public_key
    dh = [alice.dh_private_key.exchange(spk), ek.exchange(bundle.identity.dh_key),
          ek.exchange(spk)]
    if bundle.one_time_prekey is not None:
        dh.append(ek.exchange(bundle.one_time_prekey.public_key))
    out: dict[str, Any] = {
        "initiator_identity": alice.public.to_bytes().hex(),
        "bundle": bundle.to_bytes().hex(),
        "ephemeral_public": ek.public_key().to_bytes().hex(),
        "dh_outputs": [d.hex() for d in dh],
    }
    if bundle.kem_prekey is not None and m is not None:
        kem_secret, kem_ciphertext = bundle.kem_prekey.public_key.encapsulate(m)
        out["kem_ciphertext"] = kem_ciphertext.hex()
        out["kem_shared_secret"] = kem_secret.hex()
    out.update({
        "shared_secret": start.shared_secret.hex(),
        "associated_data": start.associated_data.hex(),
        "sealed_identity": start.header.sealed_identity.hex(),
        "replay_tag": replay_tag(suite, start.header.ephemeral_key,
                                 start.header.sealed_identity,
                                 start.header.kem_ciphertext).hex(),
        "ratchet_message": ratchet_message.hex(),
        "initial_message": message.hex(),
    })
    return out


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
        initiate_with_ephemeral(alice, bundle, ek, _kem_randomness(suite, inputs))
    else:
        raise AssertionError(f"unknown operation {op!r}")


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def generate() -> dict[str, dict[str, Any]]:
    cases = _classical_cases()
    for suite in HYBRID_SUITES:
        cases += _hybrid_cases(suite, cases)
    return {FILE: document(KIND, "The X3DH-style handshake with a sealed initiator identity "
                                 "(spec/04-handshake.md); PQXDH-shaped in the hybrid suites",
                           cases)}


def _classical_cases() -> list[dict[str, Any]]:
    """The classical suites' cases, exactly as before the hybrid suites existed."""
    cases: list[dict[str, Any]] = []
    for suite in CLASSICAL_SUITES:
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
        other = next(s for s in CLASSICAL_SUITES if s.name != case["suite"])
        target = next(c for c in cases if c["suite"] == other.name
                      and c["inputs"]["operation"] == "handshake")
        cases.append({"description": "initial message of another suite", "suite": other.name,
                      "inputs": {"operation": "accept",
                                 "responder": target["inputs"]["responder"],
                                 "initial_message": case["outputs"]["initial_message"],
                                 "deliveries": 1},
                      "error": {"type": "ProtocolError"}})
    return cases


def _message_with(message: str, index: int, value: cbor.CborEncodable | None = None, *,
                  remove: tuple[int, int] | None = None) -> str:
    fields: list[cbor.CborEncodable] = list(cbor.as_list(cbor.decode(bytes.fromhex(message)),
                                                         "message"))
    if remove is not None:
        del fields[remove[0]:remove[1]]
    else:
        fields[index] = value
    return cbor.encode(fields).hex()


def _later_ratchet_message(suite: Suite, inputs: dict[str, Any]) -> str:
    """The case's initial message around the initiator's second ratchet message (N = 1)."""
    alice = keypair(suite, inputs["initiator"])
    _, bundle = _responder(suite, inputs["responder"])
    start = initiate_with_ephemeral(
        alice, bundle, suite.dh_private_from_bytes(bytes.fromhex(inputs["ephemeral_private"])),
        _kem_randomness(suite, inputs))
    ratchet = DoubleRatchet.initiate(
        suite, start.shared_secret, start.responder_ratchet_key, start.associated_data,
        rng=DeterministicRandom(bytes.fromhex(inputs["ratchet_rng_seed"])))
    ratchet.encrypt(bytes.fromhex(inputs["plaintext"]))
    return start.initial_message(ratchet.encrypt(b"second")).hex()


def _hybrid_cases(suite: Suite, classical_cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A hybrid suite's handshakes (PQXDH-shaped, spec 04) and their refusals."""
    cases: list[dict[str, Any]] = []
    rng = DeterministicRandom(b"handshake vectors " + suite.name.encode())
    # The third bundle (one-time KEM prekey, no one-time DH prekey) appears only in "accept"
    # cases: two "handshake" cases per suite, as for the classical suites.
    for description, opk_id, kem_id in (
            ("hybrid handshake with one-time prekeys (DH and KEM)", 5, 11),
            ("hybrid handshake with last-resort prekeys only", None, None),
            ("a one-time KEM prekey and no one-time DH prekey", None, 12)):
        responder = bundle_inputs(suite, rng, 3, opk_id, kem_id)
        del responder["operation"]
        if kem_id is not None:
            responder["last_resort_kem_prekey_seed"] = MlKemPrivateKey.generate(
                rng).to_bytes().hex()
        responder["next_signed_prekey_id"] = 4
        responder["next_one_time_prekey_id"] = 0 if opk_id is None else opk_id + 1
        responder["next_one_time_kem_prekey_id"] = 0 if kem_id is None else kem_id + 1
        inputs: dict[str, Any] = {
            "operation": "handshake", "initiator": identity_keys(suite, rng),
            "responder": responder,
            "ephemeral_private": suite.generate_dh(rng).to_bytes().hex(),
            "kem_randomness": rng(32).hex(),
            "ratchet_rng_seed": rng(16).hex(),
            "plaintext": b"the first message (a welcome travels here)".hex()}
        outputs = _initiator_outputs(suite, inputs)
        handshake_case = opk_id is not None or kem_id is None
        if handshake_case:
            cases.append({"description": description, "suite": suite.name, "inputs": inputs,
                          "outputs": outputs})
        message = outputs["initial_message"]

        def refused(what: str, data: str, error: str, deliveries: int = 1,
                    to: dict[str, Any] = responder) -> None:
            cases.append({"description": what, "suite": suite.name,
                          "inputs": {"operation": "accept", "responder": to,
                                     "initial_message": data, "deliveries": deliveries},
                          "error": {"type": error}})

        kind = {(5, 11): "one-time prekeys", (None, None): "last-resort prekeys",
                (None, 12): "one-time KEM prekey only"}[(opk_id, kem_id)]
        refused(f"replayed hybrid initial message ({kind})", message, "ReplayError", 2)
        if not handshake_case:
            continue
        refused(f"a later ratchet message in the hybrid initial message ({kind})",
                _later_ratchet_message(suite, inputs), "ProtocolError")
        if kem_id is None:
            continue
        ct = bytearray(bytes.fromhex(outputs["kem_ciphertext"]))
        ct[100] ^= 0x04
        # Implicit rejection: another KEM secret, so the sealed identity does not open.
        refused("tampered KEM ciphertext", _message_with(message, 6, bytes(ct)),
                "AuthenticationError")
        refused("KEM ciphertext one byte short", _message_with(message, 6, bytes(ct[:-1])),
                "DecodeError")
        refused("KEM prekey id and ciphertext removed (a classical-shaped message)",
                _message_with(message, 0, remove=(5, 7)), "DecodeError")
        refused("unknown one-time KEM prekey id", _message_with(message, 5, kem_id + 100),
                "ProtocolError")
        refused("one-time KEM prekey id replaced by the last-resort one (null)",
                _message_with(message, 5, None), "AuthenticationError")
        sealed = bytearray(bytes.fromhex(outputs["sealed_identity"]))
        sealed[3] ^= 0x10
        refused("tampered sealed identity (hybrid)", _message_with(message, 7, bytes(sealed)),
                "AuthenticationError")
        bundle_fields = cbor.as_list(cbor.decode(bytes.fromhex(outputs["bundle"])), "bundle")
        kem_sig = bytearray(cbor.as_bytes(bundle_fields[12], "KEM prekey signature"))
        kem_sig[10] ^= 0x01
        bad_bundle = list(bundle_fields)
        bad_bundle[12] = bytes(kem_sig)
        stripped = [*bundle_fields[:10], bundle_fields[13]]
        for what, bundle, error in (
                ("bundle with a bad KEM prekey signature", bad_bundle, "InvalidSignature"),
                ("bundle stripped of its KEM prekey (downgrade)", stripped, "ProtocolError")):
            cases.append({"description": what, "suite": suite.name,
                          "inputs": {"operation": "initiate", "initiator": inputs["initiator"],
                                     "bundle": cbor.encode(bundle).hex(),
                                     "ephemeral_private": inputs["ephemeral_private"],
                                     "kem_randomness": inputs["kem_randomness"]},
                          "error": {"type": error}})
        # The classical twin suite's message to this responder, and this one to the twin's.
        twin = classical_twin(suite)
        twin_case = next(c for c in classical_cases if c["suite"] == twin.name
                         and c["inputs"]["operation"] == "handshake")
        refused("classical initial message to a hybrid responder",
                twin_case["outputs"]["initial_message"], "ProtocolError")
        cases.append({"description": "hybrid initial message to a classical responder",
                      "suite": twin.name,
                      "inputs": {"operation": "accept",
                                 "responder": twin_case["inputs"]["responder"],
                                 "initial_message": message, "deliveries": 1},
                      "error": {"type": "ProtocolError"}})
    return cases


register(lambda: {KIND: verify})
register_generator(generate)
