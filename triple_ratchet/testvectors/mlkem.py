"""Our vectors for ML-KEM-768 and the hybrid HPKE KEMs (vectors/hybrid-kem.json, kind
"hybrid-kem"; spec 02 "Hybrid suites", schema in spec 14).

Everything is deterministic: ML-KEM keys from their 64-byte seed and encapsulation from its `m`
(FIPS 203 KeyGen_internal / Encaps_internal); HPKE KEM key pairs from `ikm_r` (DeriveKeyPair)
and encapsulation from `ikm_e` (EncapsDerand randomness); single-shot HPKE through the hybrid
protocol suites' HPKE suites. Negative cases: keys failing the modulus check or the group's
validation, wrong lengths, altered ciphertexts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import HYBRID_SUITES, Suite, suite_by_name
from triple_ratchet.suites.hpke import KEMS, MLKEM768, MLKEM768_P256, XWING, Kem, hpke_for_suite
from triple_ratchet.suites.mlkem import MlKemPrivateKey, MlKemPublicKey
from triple_ratchet.testvectors import (
    CaseResult,
    case,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)
from triple_ratchet.testvectors.hpke import _hpke_outputs

KIND = "hybrid-kem"
FILE = "hybrid-kem.json"


def _b(inputs: dict[str, Any], name: str) -> bytes:
    value = inputs[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a hex string")
    return bytes.fromhex(value)


def _kem(inputs: dict[str, Any]) -> Kem:
    kem_id = inputs["kem_id"]
    if type(kem_id) is not int or kem_id not in KEMS:
        raise ValueError(f"unknown KEM id {kem_id!r}")
    return KEMS[kem_id]


def _mlkem_encaps(_suite: Suite | None, inputs: dict[str, Any]) -> dict[str, Any]:
    key = MlKemPrivateKey.from_seed(_b(inputs, "seed"))
    public = (MlKemPublicKey.from_bytes(_b(inputs, "public_key")) if "public_key" in inputs
              else key.public_key())
    shared, ciphertext = public.encapsulate(_b(inputs, "m"))
    expect_equal("decapsulated shared_secret", key.decapsulate(ciphertext).hex(), shared.hex())
    return {"public_key": public.to_bytes().hex(), "shared_secret": shared.hex(),
            "ciphertext": ciphertext.hex()}


def _mlkem_decaps(_suite: Suite | None, inputs: dict[str, Any]) -> dict[str, Any]:
    key = MlKemPrivateKey.from_seed(_b(inputs, "seed"))
    return {"shared_secret": key.decapsulate(_b(inputs, "ciphertext")).hex()}


def _kem_encap(_suite: Suite | None, inputs: dict[str, Any]) -> dict[str, Any]:
    kem = _kem(inputs)
    pair = kem.derive_key_pair(_b(inputs, "ikm_r"))
    public_key = _b(inputs, "public_key") if "public_key" in inputs else pair.public_key
    shared, enc = kem.encap(public_key, _b(inputs, "ikm_e"))
    expect_equal("decapsulated shared_secret", kem.decap(enc, pair.private_key).hex(),
                 shared.hex())
    return {"private_key": pair.private_key.hex(), "public_key": pair.public_key.hex(),
            "enc": enc.hex(), "shared_secret": shared.hex()}


def _kem_decap(_suite: Suite | None, inputs: dict[str, Any]) -> dict[str, Any]:
    kem = _kem(inputs)
    pair = kem.derive_key_pair(_b(inputs, "ikm_r"))
    return {"shared_secret": kem.decap(_b(inputs, "enc"), pair.private_key).hex()}


def _hpke(suite: Suite | None, inputs: dict[str, Any]) -> dict[str, Any]:
    if suite is None:
        raise ValueError("an hpke case names its protocol suite")
    return _hpke_outputs(hpke_for_suite(suite), inputs)


_OPERATIONS: dict[str, Callable[[Suite | None, dict[str, Any]], dict[str, Any]]] = {
    "mlkem_encaps": _mlkem_encaps,
    "mlkem_decaps": _mlkem_decaps,
    "kem_encap": _kem_encap,
    "kem_decap": _kem_decap,
    "hpke": _hpke,
}


def _check(c: dict[str, Any]) -> None:
    suite = None if c.get("suite") is None else suite_by_name(c["suite"])
    inputs = c["inputs"]
    operation = _OPERATIONS.get(inputs["operation"])
    if operation is None:
        raise AssertionError(f"unknown operation {inputs['operation']!r}")
    got = operation(suite, inputs)
    if "outputs" in c:
        expect_equal("output names", sorted(got), sorted(c["outputs"]))
        for key, want in c["outputs"].items():
            expect_equal(key, got[key], want)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def _flip(data: bytes, at: int) -> bytes:
    raw = bytearray(data)
    raw[at] ^= 0x01
    return bytes(raw)


def _unreduced(public_key: bytes) -> bytes:
    """The key with its first 12-bit coefficient set to 4095 (fails FIPS 203's modulus check)."""
    return b"\xff" + bytes((public_key[1] | 0x0F,)) + public_key[2:]


def _mlkem_cases(rng: DeterministicRandom) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    seeds = [rng(64) for _ in range(3)]
    for n, seed in enumerate(seeds):
        inputs = {"operation": "mlkem_encaps", "seed": seed.hex(), "m": rng(32).hex()}
        outputs = _mlkem_encaps(None, inputs)
        cases.append(case(f"ML-KEM-768 key {n}: KeyGen_internal(seed), Encaps_internal(ek, m)",
                          None, inputs, outputs))
    seed = seeds[0]
    inputs = {"operation": "mlkem_encaps", "seed": seed.hex(), "m": rng(32).hex()}
    ciphertext = bytes.fromhex(_mlkem_encaps(None, inputs)["ciphertext"])
    altered = {"operation": "mlkem_decaps", "seed": seed.hex(),
               "ciphertext": _flip(ciphertext, 17).hex()}
    cases.append(case("ML-KEM-768 decapsulation of an altered ciphertext: implicit rejection "
                      "(J(z ‖ c)), no error", None, altered, _mlkem_decaps(None, altered)))
    public = MlKemPrivateKey.from_seed(seed).public_key().to_bytes()
    for what, bad in (("a coefficient not reduced mod q", _unreduced(public)),
                      ("truncated", public[:-1]), ("one byte too long", public + b"\x00")):
        cases.append(case(f"ML-KEM-768 encapsulation key {what}", None,
                          {**inputs, "public_key": bad.hex()}, error="InvalidKey"))
    cases.append(case("ML-KEM-768 encapsulation randomness m of 31 bytes", None,
                      {**inputs, "m": rng(31).hex()}, error="UsageError"))
    for what, bad in (("truncated", ciphertext[:-1]), ("one byte too long", ciphertext + b"\x00")):
        cases.append(case(f"ML-KEM-768 ciphertext {what}", None,
                          {"operation": "mlkem_decaps", "seed": seed.hex(),
                           "ciphertext": bad.hex()}, error="DecodeError"))
    cases.append(case("ML-KEM-768 seed of 63 bytes", None,
                      {"operation": "mlkem_decaps", "seed": seed[:-1].hex(),
                       "ciphertext": ciphertext.hex()}, error="InvalidKey"))
    return cases


def _kem_cases(rng: DeterministicRandom, kem: Kem) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    label = f"{kem.name} (0x{kem.kem_id:04x})"
    inputs: dict[str, Any] = {}
    for n in range(2):
        inputs = {"operation": "kem_encap", "kem_id": kem.kem_id, "ikm_r": rng(kem.n_sk).hex(),
                  "ikm_e": rng(kem.n_ikm).hex()}
        cases.append(case(f"{label}: DeriveKeyPair(ikm_r), encapsulation from ikm_e ({n})",
                          None, inputs, _kem_encap(None, inputs)))
    outputs = _kem_encap(None, inputs)
    enc, public = bytes.fromhex(outputs["enc"]), bytes.fromhex(outputs["public_key"])
    decap = {"operation": "kem_decap", "kem_id": kem.kem_id, "ikm_r": inputs["ikm_r"]}
    altered = {**decap, "enc": _flip(enc, 5).hex()}
    cases.append(case(f"{label}: decapsulation of an enc whose ML-KEM ciphertext is altered "
                      "(implicit rejection: another secret, no error)", None, altered,
                      _kem_decap(None, altered)))
    bad_keys = [("a coefficient not reduced mod q", _unreduced(public)),
                ("truncated", public[:-1])]
    bad_encs = [("truncated", enc[:-1])]
    if kem is XWING:
        bad_keys.append(("X25519 part of small order", public[:1184] + bytes(32)))
        bad_encs.append(("X25519 part of small order", enc[:1088] + bytes(32)))
    if kem is MLKEM768_P256:
        off_curve = b"\x04" + bytes(64)
        bad_keys.append(("P-256 part off the curve", public[:1184] + off_curve))
        bad_encs.append(("P-256 part off the curve", enc[:1088] + off_curve))
    for what, bad in bad_keys:
        cases.append(case(f"{label}: public key {what}", None,
                          {**inputs, "public_key": bad.hex()}, error="InvalidKey"))
    for what, bad in bad_encs:
        cases.append(case(f"{label}: enc {what}", None, {**decap, "enc": bad.hex()},
                          error="InvalidKey"))
    least = kem.n_ikm_min or kem.n_ikm
    cases.append(case(f"{label}: encapsulation randomness of {least - 1} bytes", None,
                      {**inputs, "ikm_e": rng(least - 1).hex()}, error="UsageError"))
    return cases


def _hpke_cases(rng: DeterministicRandom, suite: Suite) -> list[dict[str, Any]]:
    hpke = hpke_for_suite(suite)
    cases: list[dict[str, Any]] = []
    for description, info, aad, pt in (
        ("single-shot, empty info and aad", b"", b"", b"sealed secret"),
        ("single-shot with info and aad", rng(40), rng(16), rng(suite.hash_len)),
    ):
        inputs = {"operation": "hpke", "ikm_r": rng(hpke.kem.n_sk).hex(),
                  "ikm_e": rng(hpke.kem.n_ikm).hex(), "info": info.hex(), "aad": aad.hex(),
                  "plaintext": pt.hex()}
        cases.append(case(f"HPKE {hpke.name}: {description}", suite.name, inputs,
                          _hpke(suite, inputs)))
    return cases


def generate() -> dict[str, dict[str, Any]]:
    rng = DeterministicRandom(b"hybrid kem vectors")
    cases = _mlkem_cases(rng)
    for kem in (MLKEM768, XWING, MLKEM768_P256):
        cases += _kem_cases(rng, kem)
    for suite in HYBRID_SUITES:
        cases += _hpke_cases(rng, suite)
    return {FILE: document(KIND, "ML-KEM-768 (FIPS 203, derandomised encapsulation) and the "
                                 "hybrid HPKE KEMs X-Wing and MLKEM768-P256 (spec 02)", cases)}


register(lambda: {KIND: verify})
register_generator(generate)
