"""Vectors for identities, prekey bundles and safety numbers (vectors/identity.json, "identity").

Each case names an `operation` (spec/03-identity.md, "Test vectors"):
- "bundle": from the private keys and prekey ids, the identity encoding, the three signatures
  and the bundle encoding (signatures are deterministic: RFC 6979 ECDSA, RFC 8032 Ed25519).
- "caller_signature": a signature under a caller label (proposal / announcement).
- "safety_number": from two identity encodings, both fingerprints, the 60 digits and the raw
  fingerprint for QR codes.
- "parse_bundle": decoding a bundle (with an optional expected suite); negative cases name the
  error (bad signature, signature of another kind, invalid key, wrong or unknown suite).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.errors import UnsupportedError
from triple_ratchet.identity import (
    LABEL_IDENTITY_ANNOUNCEMENT,
    LABEL_IDENTITY_BUNDLE,
    LABEL_IDENTITY_PROPOSAL,
    LABEL_IDENTITY_SIGNED_PREKEY,
    P256_ORDER,
    Identity,
    IdentityKeyPair,
    OneTimePrekey,
    PrekeyBundle,
    safety_number,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import (
    ALL_SUITES,
    P256_SHA256_AES256GCM,
    X25519_SHA512_XCHACHA20,
    Suite,
)
from triple_ratchet.testvectors import (
    CaseResult,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

KIND = "identity"
FILE = "identity.json"
_CALLER_LABELS = {"proposal": LABEL_IDENTITY_PROPOSAL,
                  "announcement": LABEL_IDENTITY_ANNOUNCEMENT}


def suite_named(name: str) -> Suite:
    for suite in ALL_SUITES:
        if suite.name == name:
            return suite
    raise UnsupportedError(f"unknown suite {name!r}")


def keypair(suite: Suite, keys: dict[str, str]) -> IdentityKeyPair:
    return IdentityKeyPair(
        suite,
        suite.signing_from_bytes(bytes.fromhex(keys["signing_private"])),
        suite.dh_private_from_bytes(bytes.fromhex(keys["dh_private"])),
    )


def build_bundle(suite: Suite, inputs: dict[str, Any]) -> tuple[IdentityKeyPair, PrekeyBundle]:
    kp = keypair(suite, inputs)
    spk = suite.dh_private_from_bytes(bytes.fromhex(inputs["signed_prekey_private"]))
    signed = kp.sign_prekey(inputs["signed_prekey_id"], spk.public_key())
    opk = None
    if inputs.get("one_time_prekey_private") is not None:
        opk_key = suite.dh_private_from_bytes(bytes.fromhex(inputs["one_time_prekey_private"]))
        opk = OneTimePrekey(inputs["one_time_prekey_id"], opk_key.public_key())
    return kp, kp.sign_bundle(signed, opk)


def _bundle_outputs(kp: IdentityKeyPair, bundle: PrekeyBundle) -> dict[str, Any]:
    return {
        "identity": kp.public.to_bytes().hex(),
        "dh_key_signature": kp.public.dh_key_signature.hex(),
        "signed_prekey_public": bundle.signed_prekey.public_key.to_bytes().hex(),
        "signed_prekey_signature": bundle.signed_prekey.signature.hex(),
        "one_time_prekey_public": (None if bundle.one_time_prekey is None
                                   else bundle.one_time_prekey.public_key.to_bytes().hex()),
        "bundle_signature": bundle.signature.hex(),
        "bundle": bundle.to_bytes().hex(),
    }


def _check(case: dict[str, Any]) -> None:
    suite = suite_named(case["suite"])
    inputs = case["inputs"]
    op = inputs["operation"]
    got: dict[str, Any]
    if op == "bundle":
        kp, bundle = build_bundle(suite, inputs)
        got = _bundle_outputs(kp, bundle)
        expect_equal("decoded bundle", PrekeyBundle.from_bytes(bundle.to_bytes(), suite), bundle)
    elif op == "caller_signature":
        kp = keypair(suite, inputs)
        content = bytes.fromhex(inputs["content"])
        label = _CALLER_LABELS[inputs["label"]]
        sig = kp.sign(label, content)
        kp.public.verify(label, content, sig)
        got = {"signature": sig.hex()}
    elif op == "safety_number":
        a = Identity.from_bytes(bytes.fromhex(inputs["identity_a"]), suite)
        b = Identity.from_bytes(bytes.fromhex(inputs["identity_b"]), suite)
        number = safety_number(a, b)
        expect_equal("symmetric", safety_number(b, a), number)
        got = {"fingerprint_a": a.fingerprint.hex(), "fingerprint_b": b.fingerprint.hex(),
               "digits": number.digits, "fingerprint": number.fingerprint.hex()}
    elif op == "parse_bundle":
        expected = inputs.get("expected_suite")
        bundle = PrekeyBundle.from_bytes(bytes.fromhex(inputs["bundle"]),
                                         None if expected is None else suite_named(expected))
        got = {"identity": bundle.identity.to_bytes().hex()}
    else:
        raise AssertionError(f"unknown operation {op!r}")
    for key, want in case.get("outputs", {}).items():
        expect_equal(key, got.get(key), want)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def identity_keys(suite: Suite, rng: DeterministicRandom) -> dict[str, str]:
    """Private keys of a deterministic identity, as vector inputs."""
    return {"signing_private": suite.generate_signing(rng).to_bytes().hex(),
            "dh_private": suite.generate_dh(rng).to_bytes().hex()}


def bundle_inputs(suite: Suite, rng: DeterministicRandom, spk_id: int,
                  opk_id: int | None) -> dict[str, Any]:
    inputs: dict[str, Any] = {"operation": "bundle", **identity_keys(suite, rng),
                              "signed_prekey_id": spk_id,
                              "signed_prekey_private": suite.generate_dh(rng).to_bytes().hex(),
                              "one_time_prekey_id": opk_id, "one_time_prekey_private": None}
    if opk_id is not None:
        inputs["one_time_prekey_private"] = suite.generate_dh(rng).to_bytes().hex()
    return inputs


def _negative(suite: Suite, description: str, bundle: bytes, error: str,
              expected_suite: Suite | None = None) -> dict[str, Any]:
    return {"description": description, "suite": suite.name,
            "inputs": {"operation": "parse_bundle", "bundle": bundle.hex(),
                       "expected_suite": None if expected_suite is None else expected_suite.name},
            "error": {"type": error}}


def _replace(bundle: bytes, index: int, value: cbor.CborEncodable) -> list[cbor.CborEncodable]:
    fields: list[cbor.CborEncodable] = list(cbor.as_list(cbor.decode(bundle), "bundle"))
    fields[index] = value
    return fields


def _resigned(kp: IdentityKeyPair, fields: list[cbor.CborEncodable]) -> bytes:
    sig = kp._sign_internal(LABEL_IDENTITY_BUNDLE, cbor.encode(fields[:10]))
    return cbor.encode([*fields[:10], sig])


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for suite in ALL_SUITES:
        rng = DeterministicRandom(b"identity vectors " + suite.name.encode())
        other = next(s for s in ALL_SUITES if s is not suite)
        identities = []
        for description, spk_id, opk_id in (("bundle with a one-time prekey", 7, 42),
                                            ("last-resort bundle (no one-time prekey)", 0, None)):
            inputs = bundle_inputs(suite, rng, spk_id, opk_id)
            kp, bundle = build_bundle(suite, inputs)
            identities.append(kp.public)
            cases.append({"description": description, "suite": suite.name, "inputs": inputs,
                          "outputs": _bundle_outputs(kp, bundle)})
            if opk_id is None:
                continue
            data = bundle.to_bytes()
            spk_sig = bytearray(bundle.signed_prekey.signature)
            spk_sig[0] ^= 1
            cases.append(_negative(suite, "bad signed-prekey signature (bundle re-signed)",
                                   _resigned(kp, _replace(data, 7, bytes(spk_sig))),
                                   "InvalidSignature"))
            bad = bytearray(bundle.signature)
            bad[-1] ^= 1
            cases.append(_negative(suite, "bad bundle signature",
                                   cbor.encode(_replace(data, 10, bytes(bad))),
                                   "InvalidSignature"))
            relabelled = kp._sign_internal(LABEL_IDENTITY_SIGNED_PREKEY, bundle.signed_content())
            cases.append(_negative(suite, "bundle signed under the signed-prekey label",
                                   cbor.encode(_replace(data, 10, relabelled)),
                                   "InvalidSignature"))
            proposal = kp.sign(LABEL_IDENTITY_PROPOSAL, bundle.signed_content())
            cases.append(_negative(suite, "bundle signed under the proposal label",
                                   cbor.encode(_replace(data, 10, proposal)),
                                   "InvalidSignature"))
            spk = bundle.signed_prekey.public_key.to_bytes()
            if suite is X25519_SHA512_XCHACHA20:
                bad_key = bytes.fromhex(
                    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
                what = "low-order signed prekey"
            else:
                bad_key = spk[:-1] + bytes([spk[-1] ^ 1])
                what = "off-curve signed prekey"
            cases.append(_negative(suite, what + " (bundle re-signed)",
                                   _resigned(kp, _replace(data, 6, bad_key)), "InvalidKey"))
            if suite is P256_SHA256_AES256GCM:
                # ECDSA's (r, n - s) verifies too; only the low-s form is an identity (spec 03).
                sig = kp.public.dh_key_signature
                twin = sig[:32] + (P256_ORDER - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
                cases.append(_negative(suite, "identity with the high-s twin of its DH key "
                                              "signature (bundle re-signed)",
                                       _resigned(kp, _replace(data, 4, twin)), "DecodeError"))
            cases.append(_negative(suite, "bundle of another suite than expected", data,
                                   "ProtocolError", other))
            cases.append(_negative(suite, "unknown suite id",
                                   cbor.encode(_replace(data, 1, 0x7777)), "UnsupportedError"))
        cases.append({"description": "safety number", "suite": suite.name,
                      "inputs": {"operation": "safety_number",
                                 "identity_a": identities[0].to_bytes().hex(),
                                 "identity_b": identities[1].to_bytes().hex()}})
        a, b = identities
        number = safety_number(a, b)
        cases[-1]["outputs"] = {"fingerprint_a": a.fingerprint.hex(),
                                "fingerprint_b": b.fingerprint.hex(),
                                "digits": number.digits, "fingerprint": number.fingerprint.hex()}
        for label in ("proposal", "announcement"):
            inputs = {"operation": "caller_signature", **identity_keys(suite, rng),
                      "label": label, "content": rng(24).hex()}
            sig = keypair(suite, inputs).sign(_CALLER_LABELS[label],
                                              bytes.fromhex(inputs["content"]))
            cases.append({"description": f"identity signature under the {label} label",
                          "suite": suite.name, "inputs": inputs,
                          "outputs": {"signature": sig.hex()}})
    return {FILE: document(KIND, "Identities, prekey bundles, labelled identity signatures and "
                                 "safety numbers (spec/03-identity.md)", cases)}


register(lambda: {KIND: verify})
register_generator(generate)
