"""Every Wycheproof file in ../shared/vectors-external/wycheproof/, through our suite code.

Besides the zero-failure run, tampered copies check that the verifier really compares outputs
and verdicts, and the strict DER signature decoder is tested on its own.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.errors import InvalidSignature
from triple_ratchet.testvectors import (
    CaseResult,
    third_party_verifier,
    verify_document,
    verify_paths,
    wycheproof,
)
from triple_ratchet.testvectors.wycheproof import der_signature_to_p1363, verify_wycheproof

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WYCHEPROOF = SHARED / "vectors-external" / "wycheproof"

# Least number of cases each file must pass: everything we run, as measured when this was
# written. A drop means cases stopped running (or started being skipped), not just failing.
MIN_PASSED = {
    "aes_gcm_test.json": 68,
    "chacha20_poly1305_test.json": 325,
    "ecdh_secp256r1_ecpoint_test.json": 355,
    "ecdh_secp256r1_webcrypto_test.json": 353,
    "ecdsa_secp256r1_sha256_p1363_test.json": 262,
    "ecdsa_secp256r1_sha256_test.json": 484,
    "ed25519_test.json": 151,
    "hkdf_sha256_test.json": 86,
    "hkdf_sha512_test.json": 83,
    "hmac_sha256_test.json": 87,
    "x25519_test.json": 518,
    "xchacha20_poly1305_test.json": 315,
}


def _files() -> list[Path]:
    return sorted(WYCHEPROOF.glob("*.json")) if WYCHEPROOF.is_dir() else []


@pytest.fixture(autouse=True)
def _need_vectors() -> None:
    if not WYCHEPROOF.is_dir():
        pytest.skip(f"Wycheproof vectors not present at {WYCHEPROOF}")


@cache
def _load(name: str) -> dict[str, Any]:
    with (WYCHEPROOF / name).open("rb") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def _doc(name: str) -> dict[str, Any]:
    """A private deep copy, so a test may tamper with it."""
    return copy.deepcopy(_load(name))


def _results(doc: dict[str, Any]) -> dict[int | str, CaseResult]:
    out: dict[int | str, CaseResult] = {}
    for r in verify_wycheproof(doc):
        key: int | str = int(r.case.split()[1]) if r.case.startswith("tcId ") else r.case
        out[key] = r
    return out


def _case(doc: dict[str, Any], where: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for group in doc["testGroups"]:
        for test in group["tests"]:
            if where(test):
                return test  # type: ignore[no-any-return]
    raise LookupError("no such case in the file")


# --- The real files ------------------------------------------------------------------------------


def test_every_expected_file_is_present() -> None:
    assert {p.name for p in _files()} >= set(MIN_PASSED)


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_file_has_no_failures(path: Path) -> None:
    doc = _load(path.name)
    results = list(verify_document(doc))
    counts = Counter(r.status for r in results)
    failures = [f"{r.case}: {r.reason}" for r in results if r.status == "failed"]
    assert not failures, "\n".join(failures[:20])
    assert counts["passed"] + counts["skipped"] == doc["numberOfTests"] == len(results)
    assert counts["passed"] >= MIN_PASSED.get(path.name, 1)
    assert all(r.reason for r in results if r.status == "skipped")


def test_verify_paths_reports_per_file_totals() -> None:
    lines: list[str] = []
    passed, failed, skipped = verify_paths(_files(), out=lines.append)
    assert failed == 0 and skipped < passed
    assert passed >= sum(MIN_PASSED.values())
    totals = [line for line in lines if not line.startswith("  ")]
    assert len(totals) == len(_files())
    assert all(line.endswith(" skipped") and ", 0 failed," in line for line in totals)
    # Every skip is explained, once per reason, under its file's line.
    explained = [line for line in lines if line.startswith("  skipped ")]
    assert sum(int(line.split()[1].rstrip(":")) for line in explained) == skipped


def test_skip_reasons_are_the_documented_ones() -> None:
    reasons: Counter[str] = Counter()
    for path in _files():
        reasons.update(r.reason for r in verify_document(_load(path.name))
                       if r.status == "skipped")
    assert set(reasons) <= {
        "AES-GCM key size other than 256 bits: not used",
        "AES-GCM nonce size other than 96 bits: not used",
        "HMAC-SHA256 truncated tag: not used",
    }
    assert reasons["HMAC-SHA256 truncated tag: not used"] == 87


def test_detector_recognises_wycheproof_and_nothing_else() -> None:
    assert third_party_verifier(_load("x25519_test.json")) is verify_wycheproof
    assert third_party_verifier({"algorithm": "XDH", "testGroups": []}) is None
    assert third_party_verifier({"format": "triple-ratchet-vectors"}) is None


def test_acceptable_x25519_cases_follow_our_policy() -> None:
    results = _results(_doc("x25519_test.json"))
    doc = _load("x25519_test.json")
    for group in doc["testGroups"]:
        for test in group["tests"]:
            r = results[test["tcId"]]
            flags = set(test["flags"])
            if flags & {"LowOrderPublic", "NonCanonicalPublic", "ZeroSharedSecret"}:
                assert r.reason.startswith("rejected (InvalidKey"), r
            elif test["result"] == "acceptable":  # twist points: computed, and correctly
                assert r.status == "passed" and r.reason == "accepted", r


def test_webcrypto_wrong_curve_is_refused_although_the_point_is_on_p256() -> None:
    # tcId 347: crv "P-256K", but x, y happen to be a valid P-256 point.
    r = _results(_doc("ecdh_secp256r1_webcrypto_test.json"))[347]
    assert r.status == "passed" and "another curve" in r.reason


def test_compressed_points_are_refused() -> None:
    r = _results(_doc("ecdh_secp256r1_ecpoint_test.json"))[2]
    assert r.status == "passed" and r.reason.startswith("rejected (InvalidKey"), r


def test_der_cases_are_refused_by_the_strict_decoder() -> None:
    doc = _load("ecdsa_secp256r1_sha256_test.json")
    results = _results(_doc("ecdsa_secp256r1_sha256_test.json"))
    ber = [t["tcId"] for g in doc["testGroups"] for t in g["tests"]
           if "BerEncodedSignature" in t["flags"]]
    assert ber
    for tc in ber:
        assert "DER" in results[tc].reason, results[tc]


# --- Tampered copies must fail -------------------------------------------------------------------


def _flip(hex_string: str) -> str:
    data = bytearray(bytes.fromhex(hex_string))
    data[len(data) // 2] ^= 0x01
    return data.hex()


Case = dict[str, Any]
TAMPERINGS: list[tuple[str, str, Callable[[Case], bool], Callable[[Case], None]]] = [
    ("x25519 shared secret", "x25519_test.json",
     lambda t: t["result"] == "valid", lambda t: t.update(shared=_flip(t["shared"]))),
    ("x25519 twist output (acceptable, accepted)", "x25519_test.json",
     lambda t: t["flags"] == ["Twist"], lambda t: t.update(shared=_flip(t["shared"]))),
    ("x25519 low-order key claimed valid", "x25519_test.json",
     lambda t: "LowOrderPublic" in t["flags"], lambda t: t.update(result="valid")),
    ("AES-GCM modified tag claimed valid", "aes_gcm_test.json",
     lambda t: "ModifiedTag" in t["flags"] and len(t["key"]) == 64,
     lambda t: t.update(result="valid")),
    ("AES-GCM ciphertext", "aes_gcm_test.json",
     lambda t: t["result"] == "valid" and len(t["key"]) == 64 and t["ct"],
     lambda t: t.update(ct=_flip(t["ct"]))),
    ("AES-GCM plaintext", "aes_gcm_test.json",
     lambda t: t["result"] == "valid" and len(t["key"]) == 64 and t["msg"],
     lambda t: t.update(msg=_flip(t["msg"]))),
    ("ChaCha20-Poly1305 tag", "chacha20_poly1305_test.json",
     lambda t: t["result"] == "valid", lambda t: t.update(tag=_flip(t["tag"]))),
    ("XChaCha20-Poly1305 tag", "xchacha20_poly1305_test.json",
     lambda t: t["result"] == "valid", lambda t: t.update(tag=_flip(t["tag"]))),
    ("HKDF-SHA-256 output", "hkdf_sha256_test.json",
     lambda t: t["result"] == "valid", lambda t: t.update(okm=_flip(t["okm"]))),
    ("HKDF-SHA-512 oversize claimed valid", "hkdf_sha512_test.json",
     lambda t: t["result"] == "invalid", lambda t: t.update(result="valid")),
    ("HMAC tag", "hmac_sha256_test.json",
     lambda t: t["result"] == "valid" and len(t["tag"]) == 64,
     lambda t: t.update(tag=_flip(t["tag"]))),
    ("ECDSA P1363 valid claimed invalid", "ecdsa_secp256r1_sha256_p1363_test.json",
     lambda t: t["result"] == "valid", lambda t: t.update(result="invalid")),
    ("ECDSA DER message", "ecdsa_secp256r1_sha256_test.json",
     lambda t: t["result"] == "valid", lambda t: t.update(msg=t["msg"] + "00")),
    ("Ed25519 malleated signature claimed valid", "ed25519_test.json",
     lambda t: "SignatureMalleability" in t["flags"], lambda t: t.update(result="valid")),
    ("ECDH P-256 shared secret", "ecdh_secp256r1_ecpoint_test.json",
     lambda t: t["result"] == "valid", lambda t: t.update(shared=_flip(t["shared"]))),
    ("ECDH JWK off-curve key claimed valid", "ecdh_secp256r1_webcrypto_test.json",
     lambda t: "InvalidCurveAttack" in t["flags"], lambda t: t.update(result="valid")),
    ("unknown verdict", "hkdf_sha256_test.json",
     lambda t: True, lambda t: t.update(result="maybe")),
    ("malformed hex", "hmac_sha256_test.json",
     lambda t: True, lambda t: t.update(msg="zz")),
]


@pytest.mark.parametrize("what,name,where,change", TAMPERINGS, ids=[t[0] for t in TAMPERINGS])
def test_tampered_case_is_reported_failed(
    what: str, name: str, where: Callable[[dict[str, Any]], bool],
    change: Callable[[dict[str, Any]], None],
) -> None:
    doc = _doc(name)
    test = _case(doc, where)
    change(test)
    results = _results(doc)
    assert results[test["tcId"]].status == "failed", results[test["tcId"]]
    assert [k for k, r in results.items() if r.status == "failed"] == [test["tcId"]]


def test_an_aead_that_ignores_bad_nonce_sizes_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def lenient_open(key: bytes, nonce: bytes, ct: bytes, aad: bytes) -> bytes:
        return ct[:-16]

    def seal(key: bytes, nonce: bytes, pt: bytes, aad: bytes) -> bytes:
        return pt + bytes(16)

    family = wycheproof._aead("XChaCha20-Poly1305", 32, 24, seal, lenient_open)
    monkeypatch.setitem(wycheproof.FAMILIES, ("XCHACHA20-POLY1305", wycheproof._AEAD), family)
    doc = _load("xchacha20_poly1305_test.json")
    results = _results(_doc("xchacha20_poly1305_test.json"))
    bad_nonce = [t["tcId"] for g in doc["testGroups"] for t in g["tests"]
                 if "InvalidNonceSize" in t["flags"]]
    assert len(bad_nonce) == 9
    assert all(results[tc].status == "failed" for tc in bad_nonce)


def test_missing_cases_are_reported() -> None:
    doc = _doc("hkdf_sha256_test.json")
    doc["testGroups"][0]["tests"].pop()
    failed = [r for r in verify_wycheproof(doc) if r.status == "failed"]
    assert [r.case for r in failed] == ["numberOfTests"]


def test_malformed_group_is_a_failure() -> None:
    doc = _doc("ed25519_test.json")
    del doc["testGroups"][0]["publicKey"]
    failed = [r for r in verify_wycheproof(doc) if r.status == "failed"]
    assert len(failed) == len(doc["testGroups"][0]["tests"]) > 0
    assert "crashed" in failed[0].reason


def test_unknown_algorithm_is_skipped_with_a_reason() -> None:
    doc = {"algorithm": "RSASSA-PSS", "schema": "rsassa_pss_verify_schema_v1.json",
           "numberOfTests": 1, "testGroups": [{"tests": [{"tcId": 1, "result": "valid"}]}]}
    [r] = verify_wycheproof(doc)
    assert r.status == "skipped" and "RSASSA-PSS" in r.reason


def test_other_curves_in_a_known_family_are_skipped() -> None:
    doc = _doc("x25519_test.json")
    doc["testGroups"][0]["curve"] = "curve448"
    statuses = {r.status for r in verify_wycheproof(doc)}
    assert statuses == {"skipped"}


# --- Strict DER ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(r=st.integers(0, 2**256 - 1), s=st.integers(0, 2**256 - 1))
def test_der_round_trip(r: int, s: int) -> None:
    der = encode_dss_signature(r, s)
    assert der_signature_to_p1363(der) == r.to_bytes(32, "big") + s.to_bytes(32, "big")


@settings(max_examples=300, deadline=None)
@given(r=st.integers(1, 2**256 - 1), s=st.integers(1, 2**256 - 1),
       mutations=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=3),
       cut=st.integers(0, 4), extra=st.binary(max_size=2))
def test_der_accepts_only_the_unique_encoding(
    r: int, s: int, mutations: list[tuple[int, int]], cut: int, extra: bytes
) -> None:
    data = bytearray(encode_dss_signature(r, s))
    for pos, value in mutations:
        if pos < len(data):
            data[pos] = value
    blob = bytes(data[: len(data) - cut]) + extra
    try:
        p1363 = der_signature_to_p1363(blob)
    except InvalidSignature:
        return
    rr, ss = int.from_bytes(p1363[:32], "big"), int.from_bytes(p1363[32:], "big")
    assert encode_dss_signature(rr, ss) == blob


@pytest.mark.parametrize("blob", [
    "",
    "30060201010201",          # truncated
    "3007020101020101",        # SEQUENCE longer than the input
    "300602010102010100",      # trailing byte
    "3080020101020101" "0000", # indefinite length (BER)
    "308106020101020101",      # long-form length for 6
    "31060201010201" "01",     # SET instead of SEQUENCE
    "3006020101030101",        # BIT STRING instead of INTEGER
    "300702020001020101",      # integer with a needless leading zero
    "3006020181020101",        # negative integer
    "30050200020101",          # empty integer
    "3009020101020101020101",  # three integers
    # r = 2**256 does not fit 32 bytes
    "30260221010000000000000000000000000000000000000000000000000000000000000000020101",
])
def test_der_rejections(blob: str) -> None:
    with pytest.raises(InvalidSignature):
        der_signature_to_p1363(bytes.fromhex(blob))


def test_der_smallest_signature() -> None:
    assert der_signature_to_p1363(bytes.fromhex("3006020101020101")) == _rs(1, 1)
    assert der_signature_to_p1363(bytes.fromhex("30070202008002017f")) == _rs(128, 127)


def _rs(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
