"""Vectors for identities, prekey bundles and safety numbers (vectors/identity.json, "identity").

Each case names an `operation` (spec/03-identity.md, "Test vectors"):
- "bundle": from the private keys and prekey ids, the identity encoding, the three signatures
  and the bundle encoding (signatures are deterministic: RFC 6979 ECDSA, RFC 8032 Ed25519).
- "caller_signature": a signature under a caller label (proposal / announcement).
- "safety_number": from two identity encodings, both fingerprints, the 60 digits and the raw
  fingerprint for QR codes.
- "parse_bundle": decoding a bundle (with an optional expected suite); negative cases name the
  error (bad signature, signature of another kind, invalid key, wrong or unknown suite).

Hybrid suites (spec 03, "KEM prekeys"): their "bundle" cases also take the bundle's ML-KEM-768
prekey (`kem_prekey_id`: a one-time KEM prekey's id, or null for the signed prekey's last-resort
one; `kem_prekey_seed`: its 64-byte seed) and give its public key and signature; their
"parse_bundle" cases add the refusals of a KEM prekey that is missing (stripped), badly signed,
signed under the other kind's label, of the wrong length or failing FIPS 203's modulus check.
The classical suites' cases are generated first and are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.identity import (
    LABEL_IDENTITY_ANNOUNCEMENT,
    LABEL_IDENTITY_BUNDLE,
    LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY,
    LABEL_IDENTITY_ONE_TIME_KEM_PREKEY,
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
    CLASSICAL_SUITES,
    HYBRID_SUITES,
    P256_SHA256_AES256GCM,
    X25519_SHA512_XCHACHA20,
    Suite,
    suite_by_name,
)
from triple_ratchet.suites.mlkem import MlKemPrivateKey
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
    return suite_by_name(name)


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
    kem = None
    if suite.post_quantum:
        kem_key = MlKemPrivateKey.from_seed(bytes.fromhex(inputs["kem_prekey_seed"]))
        one_time = inputs["kem_prekey_id"] is not None
        kem = kp.sign_kem_prekey(inputs["kem_prekey_id"] if one_time else signed.prekey_id,
                                 kem_key.public_key(), one_time)
    return kp, kp.sign_bundle(signed, opk, kem)


def _bundle_outputs(kp: IdentityKeyPair, bundle: PrekeyBundle) -> dict[str, Any]:
    out = {
        "identity": kp.public.to_bytes().hex(),
        "dh_key_signature": kp.public.dh_key_signature.hex(),
        "signed_prekey_public": bundle.signed_prekey.public_key.to_bytes().hex(),
        "signed_prekey_signature": bundle.signed_prekey.signature.hex(),
        "one_time_prekey_public": (None if bundle.one_time_prekey is None
                                   else bundle.one_time_prekey.public_key.to_bytes().hex()),
    }
    if bundle.kem_prekey is not None:
        out["kem_prekey_public"] = bundle.kem_prekey.public_key.to_bytes().hex()
        out["kem_prekey_signature"] = bundle.kem_prekey.signature.hex()
    out["bundle_signature"] = bundle.signature.hex()
    out["bundle"] = bundle.to_bytes().hex()
    return out


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
                  opk_id: int | None, kem_id: int | None = None) -> dict[str, Any]:
    """Inputs of a "bundle" case; a hybrid suite's also name its KEM prekey (`kem_id` None: the
    signed prekey's last-resort one)."""
    inputs: dict[str, Any] = {"operation": "bundle", **identity_keys(suite, rng),
                              "signed_prekey_id": spk_id,
                              "signed_prekey_private": suite.generate_dh(rng).to_bytes().hex(),
                              "one_time_prekey_id": opk_id, "one_time_prekey_private": None}
    if opk_id is not None:
        inputs["one_time_prekey_private"] = suite.generate_dh(rng).to_bytes().hex()
    if suite.post_quantum:
        inputs["kem_prekey_id"] = kem_id
        inputs["kem_prekey_seed"] = MlKemPrivateKey.generate(rng).to_bytes().hex()
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
    """The bundle fields (all but the signature) with a valid bundle signature."""
    sig = kp._sign_internal(LABEL_IDENTITY_BUNDLE, cbor.encode(fields[:-1]))
    return cbor.encode([*fields[:-1], sig])


def classical_twin(suite: Suite) -> Suite:
    """The classical suite a hybrid one extends (same DH, signature, hash and AEAD)."""
    return suite.classical


def _hybrid_cases(suite: Suite) -> list[dict[str, Any]]:
    """A hybrid suite's bundles and the refusals of a bad KEM prekey (spec 03)."""
    cases: list[dict[str, Any]] = []
    rng = DeterministicRandom(b"identity vectors " + suite.name.encode())
    for description, spk_id, opk_id, kem_id in (
            ("hybrid bundle with one-time prekeys (DH and KEM)", 7, 42, 9),
            ("hybrid last-resort bundle (last-resort KEM prekey, no one-time prekey)", 0, None,
             None)):
        inputs = bundle_inputs(suite, rng, spk_id, opk_id, kem_id)
        kp, bundle = build_bundle(suite, inputs)
        cases.append({"description": description, "suite": suite.name, "inputs": inputs,
                      "outputs": _bundle_outputs(kp, bundle)})
        data = bundle.to_bytes()
        kem = bundle.kem_prekey
        if kem is None:
            raise AssertionError("a hybrid bundle without its KEM prekey")
        kind = "one-time" if kem.one_time else "last-resort"
        stripped = [*_replace(data, 10, None)[:10], bundle.signature]
        cases.append(_negative(suite, f"KEM prekey stripped ({kind}; bundle re-signed)",
                               _resigned(kp, stripped), "ProtocolError"))
        bad_sig = bytearray(kem.signature)
        bad_sig[1] ^= 0x20
        cases.append(_negative(suite, f"bad {kind} KEM prekey signature (bundle re-signed)",
                               _resigned(kp, _replace(data, 12, bytes(bad_sig))),
                               "InvalidSignature"))
        other_label = (LABEL_IDENTITY_LAST_RESORT_KEM_PREKEY if kem.one_time
                       else LABEL_IDENTITY_ONE_TIME_KEM_PREKEY)
        content = cbor.encode([kp.public.signing_key.to_bytes(), kem.prekey_id,
                               kem.public_key.to_bytes()])
        cases.append(_negative(suite, f"{kind} KEM prekey signed under the other KEM label "
                                      "(bundle re-signed)",
                               _resigned(kp, _replace(data, 12, kp._sign_internal(
                                   other_label, content))), "InvalidSignature"))
        if not kem.one_time:
            continue
        key = kem.public_key.to_bytes()
        cases.append(_negative(suite, "KEM prekey one byte short (bundle re-signed)",
                               _resigned(kp, _replace(data, 11, key[:-1])), "DecodeError"))
        # FIPS 203's modulus check: the first 12-bit coefficient made 0xfff >= q = 3329.
        cases.append(_negative(suite, "KEM prekey with a coefficient >= q (bundle re-signed)",
                               _resigned(kp, _replace(data, 11, b"\xff\x0f" + key[2:])),
                               "InvalidKey"))
        classical = classical_twin(suite)
        cases.append(_negative(suite, "hybrid bundle where the classical suite is expected",
                               data, "ProtocolError", classical))
        twin_inputs = bundle_inputs(classical, rng, spk_id, opk_id)
        _, twin_bundle = build_bundle(classical, twin_inputs)
        cases.append(_negative(classical, "classical bundle where the hybrid suite is expected",
                               twin_bundle.to_bytes(), "ProtocolError", suite))
        # A last-resort KEM prekey signature presented for the one-time KEM prekey of that id.
        last_resort_signature = kp.sign_kem_prekey(kem.prekey_id, kem.public_key,
                                                   one_time=False).signature
        cases.append(_negative(suite, "one-time KEM prekey carrying a last-resort signature "
                                      "(bundle re-signed)",
                               _resigned(kp, _replace(data, 12, last_resort_signature)),
                               "InvalidSignature"))
    return cases


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    # The classical suites' cases come first, exactly as before the hybrid suites existed.
    for suite in CLASSICAL_SUITES:
        rng = DeterministicRandom(b"identity vectors " + suite.name.encode())
        other = next(s for s in CLASSICAL_SUITES if s is not suite)
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
    for suite in HYBRID_SUITES:
        cases += _hybrid_cases(suite)
    return {FILE: document(KIND, "Identities, prekey bundles, labelled identity signatures and "
                                 "safety numbers (spec/03-identity.md)", cases)}


register(lambda: {KIND: verify})
register_generator(generate)
