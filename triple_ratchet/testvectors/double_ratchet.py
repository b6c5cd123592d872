"""Vectors for the Double Ratchet (vectors/double-ratchet.json, kind "double-ratchet").

Each case names an `operation`:
- "kdf": the three derivations one by one (initial keys, KDF_RK, KDF_CK).
- "session": two parties built from a shared secret, the responder's ratchet private key and one
  DeterministicRandom seed each (spec 14) run a script of sends and receives. Outputs: every
  message blob with the keys used for it (header key, header plaintext, message key), every
  received plaintext, and both final serialized states. The verifier replays the script and also
  opens every message by hand from its keys, checking the byte layout independently of the class.
- "decrypt": a serialized state and one message; either the plaintext and the new state, or the
  error. For an error the verifier also checks the state is byte-for-byte unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.double_ratchet import (
    DoubleRatchet,
    Limits,
    initial_keys,
    kdf_chain,
    kdf_root,
)
from triple_ratchet.errors import TripleRatchetError
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite, suite_by_name
from triple_ratchet.testvectors import (
    CaseResult,
    case,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

KIND = "double-ratchet"
FILE = "double-ratchet.json"

# Indices into the serialized state (spec 05, "Serialized state").
_DHS, _CKS, _HKS, _NS, _PN = 4, 7, 9, 13, 15

# One session script: ("send", party, plaintext) or ("receive", message index). It covers
# in-order and out-of-order delivery, a skipped key in an old chain, and three DH ratchet steps.
SCRIPT: list[tuple[str, ...]] = [
    ("send", "alice", "a0"), ("send", "alice", "a1"), ("send", "alice", "a2"),
    ("receive", "1"), ("receive", "0"),
    ("send", "bob", "b0"), ("send", "bob", "b1"),
    ("receive", "4"), ("receive", "3"),
    ("send", "alice", "a3"),
    ("receive", "5"), ("receive", "2"),
    ("send", "bob", "b2"), ("receive", "6"),
]




def _send_keys(suite: Suite, state: bytes) -> dict[str, str]:
    """What the next encrypt uses, read from the documented state layout."""
    fields = cbor.as_list(cbor.decode(state), "state")
    cks = cbor.as_bytes(fields[_CKS], "CKs")
    dhs_public = suite.dh_private_from_bytes(cbor.as_bytes(fields[_DHS], "DHs")).public_key()
    pn = cbor.as_int(fields[_PN], "PN")
    ns = cbor.as_int(fields[_NS], "Ns")
    header = dhs_public.to_bytes() + pn.to_bytes(4, "big") + ns.to_bytes(4, "big")
    return {
        "header_key": cbor.as_bytes(fields[_HKS], "HKs").hex(),
        "header": header.hex(),
        "message_key": kdf_chain(suite, cks)[1].hex(),
    }


def _open_by_hand(suite: Suite, ad: bytes, blob: bytes, keys: dict[str, str]) -> bytes:
    """Open a message from its keys alone, per the spec's byte layout."""
    nn = suite.aead_nonce_len
    header_end = 1 + nn + len(keys["header"]) // 2 + suite.aead_tag_len
    expect_equal("version byte", blob[0], 1)
    nonce = blob[1:1 + nn]
    header = suite.aead_decrypt(bytes.fromhex(keys["header_key"]), nonce,
                                blob[1 + nn:header_end], b"\x01" + ad)
    expect_equal("header", header.hex(), keys["header"])
    return suite.aead_decrypt(bytes.fromhex(keys["message_key"]), nonce, blob[header_end:],
                              ad + blob[:header_end])


def _run_session(suite: Suite, inputs: dict[str, Any]) -> dict[str, Any]:
    secret = bytes.fromhex(inputs["shared_secret"])
    ad = bytes.fromhex(inputs["associated_data"])
    bob_key = suite.dh_private_from_bytes(bytes.fromhex(inputs["responder_ratchet_private"]))
    parties = {
        "alice": DoubleRatchet.initiate(
            suite, secret, bob_key.public_key(), ad,
            rng=DeterministicRandom(bytes.fromhex(inputs["initiator_rng_seed"]))),
        "bob": DoubleRatchet.respond(
            suite, secret, bob_key, ad,
            rng=DeterministicRandom(bytes.fromhex(inputs["responder_rng_seed"]))),
    }
    messages: list[dict[str, str]] = []
    receivers: list[str] = []
    received: list[str] = []
    for step in inputs["script"]:
        if step[0] == "send":
            sender, plaintext = step[1], bytes.fromhex(step[2])
            keys = _send_keys(suite, parties[sender].to_bytes())
            blob = parties[sender].encrypt(plaintext)
            messages.append({"blob": blob.hex(), **keys})
            receivers.append("bob" if sender == "alice" else "alice")
        elif step[0] == "receive":
            index = int(step[1])
            blob = bytes.fromhex(messages[index]["blob"])
            plaintext = parties[receivers[index]].decrypt(blob)
            expect_equal(f"message {index} opened by hand",
                         _open_by_hand(suite, ad, blob, messages[index]).hex(), plaintext.hex())
            received.append(plaintext.hex())
        else:
            raise AssertionError(f"unknown script step {step!r}")
    return {
        "messages": messages,
        "received": received,
        "initiator_state": parties["alice"].to_bytes().hex(),
        "responder_state": parties["bob"].to_bytes().hex(),
    }


def _check(case: dict[str, Any]) -> None:
    suite = suite_by_name(case["suite"])
    inputs = case["inputs"]
    op = inputs["operation"]
    got: dict[str, Any]
    if op == "kdf":
        got = _kdf_outputs(suite, inputs)
    elif op == "session":
        got = _run_session(suite, inputs)
    elif op == "decrypt":
        state = bytes.fromhex(inputs["state"])
        party = DoubleRatchet.from_bytes(
            state, rng=DeterministicRandom(bytes.fromhex(inputs["rng_seed"])))
        try:
            plaintext = party.decrypt(bytes.fromhex(inputs["message"]))
        except TripleRatchetError:
            expect_equal("state after a failed decrypt", party.to_bytes().hex(), state.hex())
            raise
        got = {"plaintext": plaintext.hex(), "state": party.to_bytes().hex()}
    else:
        raise AssertionError(f"unknown operation {op!r}")
    for key, want in case.get("outputs", {}).items():
        expect_equal(key, got.get(key), want)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def _case(description: str, suite: Suite, inputs: dict[str, Any],
          outputs: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    return case(description, suite.name, inputs, outputs, error)


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1:]


def _suite_cases(suite: Suite) -> list[dict[str, Any]]:
    rng = DeterministicRandom(b"double-ratchet vectors " + suite.name.encode())
    cases: list[dict[str, Any]] = []
    kdf_inputs = {
        "operation": "kdf",
        "shared_secret": rng(32).hex(),
        "associated_data": b"initiator and responder identities".hex(),
        "root_key": rng(suite.hash_len).hex(),
        "dh_out": rng(32).hex(),
        "chain_key": rng(suite.hash_len).hex(),
    }
    cases.append(_case("initial keys, KDF_RK, KDF_CK", suite, kdf_inputs,
                       _kdf_outputs(suite, kdf_inputs)))

    session_inputs = {
        "operation": "session",
        "shared_secret": rng(32).hex(),
        "associated_data": b"session associated data".hex(),
        "responder_ratchet_private": suite.generate_dh(rng).to_bytes().hex(),
        "initiator_rng_seed": rng(16).hex(),
        "responder_rng_seed": rng(16).hex(),
        "script": [
            [step[0], step[1], step[2].encode().hex()] if step[0] == "send" else list(step)
            for step in SCRIPT
        ],
    }
    session = _case("session: reordering, skipped keys in an old chain, three DH steps",
                    suite, session_inputs, {})
    cases.append(session)
    outputs = _run_session(suite, session_inputs)
    session["outputs"] = outputs

    # Decrypt cases, from the responder's final state and fresh messages of the initiator.
    alice = DoubleRatchet.from_bytes(bytes.fromhex(outputs["initiator_state"]),
                                     rng=DeterministicRandom(b"alice continues"))
    bob_state = outputs["responder_state"]
    rng_seed = rng(16).hex()
    fresh = alice.encrypt(b"fresh")  # Alice received b2, so this is a DH-ratchet message

    def decrypt_case(description: str, message: bytes, state: str = bob_state,
                     error: str | None = None) -> None:
        inputs = {"operation": "decrypt", "state": state, "rng_seed": rng_seed,
                  "message": message.hex()}
        if error is not None:
            cases.append(_case(description, suite, inputs, error=error))
            return
        party = DoubleRatchet.from_bytes(bytes.fromhex(state),
                                         rng=DeterministicRandom(bytes.fromhex(rng_seed)))
        plaintext = party.decrypt(message)
        cases.append(_case(description, suite, inputs,
                           {"plaintext": plaintext.hex(), "state": party.to_bytes().hex()}))

    header_end = len(fresh) - len(b"fresh") - suite.aead_tag_len
    decrypt_case("a DH-ratchet message", fresh)
    decrypt_case("header ciphertext byte flipped", _flip(fresh, header_end - 20),
                 error="AuthenticationError")
    decrypt_case("header nonce byte flipped", _flip(fresh, 1), error="AuthenticationError")
    decrypt_case("body byte flipped (header authentic)", _flip(fresh, len(fresh) - 1),
                 error="AuthenticationError")
    decrypt_case("replay of a consumed message (a3)",
                 bytes.fromhex(outputs["messages"][5]["blob"]), error="ReplayError")
    decrypt_case("truncated below the fixed header", fresh[:header_end], error="DecodeError")
    decrypt_case("unknown message version", b"\x02" + fresh[1:], error="UnsupportedError")
    decrypt_case("one byte appended", fresh + b"\x00", error="AuthenticationError")

    # Skip limits: a state whose stored Limits allow skipping at most 2 keys.
    bob_limited = cbor.as_list(cbor.decode(bytes.fromhex(bob_state)), "state")
    bob_limited[2] = list(astuple(Limits(max_skip=2, max_skipped_keys=10)))
    limited_state = cbor.encode(bob_limited).hex()
    far = [alice.encrypt(b"far %d" % i) for i in range(3)]
    decrypt_case("N = 3 in a new chain with max_skip = 2", far[2], limited_state,
                 error="LimitExceeded")
    decrypt_case("N = 2 in a new chain with max_skip = 2", far[1], limited_state)

    # A loss longer than max_skip before the peer's next chain (spec 05 5.7): Bob opened `fresh`
    # (N = 0), `far` (N = 1..3) never arrive, Bob answers, and Alice's next chain says PN = 4.
    # The chain is accepted; only max_skip = 2 keys of the old chain (N = 1, 2) are kept.
    bob = DoubleRatchet.from_bytes(bytes.fromhex(limited_state),
                                   rng=DeterministicRandom(b"bob after the loss"))
    bob.decrypt(fresh)
    alice.decrypt(bob.encrypt(b"reply"))
    after_loss = bob.to_bytes().hex()
    decrypt_case("new chain with PN - Nr = 3 > max_skip = 2: accepted, 2 old keys kept",
                 alice.encrypt(b"after the loss"), after_loss)
    accepted = cases[-1]["outputs"]["state"]
    decrypt_case("N = 2 of the chain before the loss, a kept key", far[1], accepted)
    decrypt_case("N = 3 of the chain before the loss, beyond the kept keys", far[2], accepted,
                 error="ReplayError")
    return cases


def _kdf_outputs(suite: Suite, inputs: dict[str, Any]) -> dict[str, Any]:
    rk, hka, nhkb = initial_keys(suite, bytes.fromhex(inputs["shared_secret"]),
                                 bytes.fromhex(inputs["associated_data"]))
    rk2, ck, nhk = kdf_root(suite, bytes.fromhex(inputs["root_key"]),
                            bytes.fromhex(inputs["dh_out"]))
    ck2, mk = kdf_chain(suite, bytes.fromhex(inputs["chain_key"]))
    return {
        "initial_root_key": rk.hex(), "initial_hka": hka.hex(), "initial_nhkb": nhkb.hex(),
        "kdf_rk_root_key": rk2.hex(), "kdf_rk_chain_key": ck.hex(),
        "kdf_rk_next_header_key": nhk.hex(),
        "kdf_ck_chain_key": ck2.hex(), "kdf_ck_message_key": mk.hex(),
    }


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for suite in CLASSICAL_SUITES:
        cases.extend(_suite_cases(suite))
    return {FILE: document(
        KIND, "Double Ratchet with header encryption (spec 05): KDFs, a scripted session with "
              "every blob and key, decrypts and rejected messages", cases)}


register(lambda: {KIND: verify})
register_generator(generate)
