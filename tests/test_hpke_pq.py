"""Post-quantum and hybrid HPKE KEMs (suites/hpke.py): ML-KEM-768 (0x0041), X-Wing
(MLKEM768-X25519, 0x647A) and MLKEM768-P256 (0x0050) against draft-ietf-hpke-pq's vectors through
`vectors verify`, round trips, tampering, and key validation."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.errors import AuthenticationError, InvalidKey, UsageError
from triple_ratchet.suites import (
    HYBRID_SUITES,
    P256_MLKEM768_SHA256_AES256GCM,
    X25519_MLKEM768_SHA512_XCHACHA20,
)
from triple_ratchet.suites.hpke import (
    AES_256_GCM,
    CHACHA20_POLY1305,
    HKDF_SHA256,
    HPKE_MLKEM768_P256_AES256GCM,
    HPKE_XWING_CHACHA20POLY1305,
    KEMS,
    MLKEM768,
    MLKEM768_P256,
    XWING,
    HpkeSuite,
    Kem,
    hpke_for_suite,
)
from triple_ratchet.testvectors import verify_document, verify_paths

HPKE_MLKEM768 = HpkeSuite(MLKEM768, HKDF_SHA256, AES_256_GCM)
ALL = (HPKE_MLKEM768, HPKE_XWING_CHACHA20POLY1305, HPKE_MLKEM768_P256_AES256GCM)
_IDS = [h.kem.name for h in ALL]
# The cases of draft-ietf-hpke-pq's file whose KEM, KDF and AEAD we all have.
RUNNABLE = {(0x0041, 1, 1), (0x0050, 1, 1), (0x647A, 1, 3)}


def _pq_file(shared_vectors: Path) -> Path:
    path = shared_vectors / "hpke" / "hpke-pq-test-vectors.json"
    if not path.is_file():
        pytest.skip(f"draft-ietf-hpke-pq vectors not present at {path}")
    return path


def _cases(shared_vectors: Path) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(_pq_file(shared_vectors).read_text())
    return cases


def test_sizes_and_ids() -> None:
    assert (MLKEM768.kem_id, XWING.kem_id, MLKEM768_P256.kem_id) == (0x0041, 0x647A, 0x0050)
    assert (XWING.n_pk, XWING.n_enc, XWING.n_sk, XWING.n_ikm) == (1216, 1120, 32, 64)
    assert (MLKEM768_P256.n_pk, MLKEM768_P256.n_enc, MLKEM768_P256.n_sk,
            MLKEM768_P256.n_ikm) == (1249, 1153, 32, 160)
    assert (MLKEM768.n_pk, MLKEM768.n_enc, MLKEM768.n_sk, MLKEM768.n_ikm) == (1184, 1088, 64, 32)
    assert all(KEMS[k.kem_id] is k for k in (MLKEM768, XWING, MLKEM768_P256))


def test_hybrid_suites_seal_with_the_hybrid_kem() -> None:
    assert hpke_for_suite(X25519_MLKEM768_SHA512_XCHACHA20) is HPKE_XWING_CHACHA20POLY1305
    assert hpke_for_suite(P256_MLKEM768_SHA256_AES256GCM) is HPKE_MLKEM768_P256_AES256GCM
    assert HPKE_XWING_CHACHA20POLY1305.aead is CHACHA20_POLY1305
    assert HPKE_MLKEM768_P256_AES256GCM.aead is AES_256_GCM
    assert {hpke_for_suite(s).kdf for s in HYBRID_SUITES} == {HKDF_SHA256}


# --- draft-ietf-hpke-pq vectors -------------------------------------------------------------------


def test_pq_draft_vectors_pass_for_every_kem_we_have(shared_vectors: Path) -> None:
    cases = _cases(shared_vectors)
    results = list(verify_document(cases))
    assert len(results) == len(cases) and not [r for r in results if r.status == "failed"]
    passed = {(c["kem_id"], c["kdf_id"], c["aead_id"])
              for c, r in zip(cases, results, strict=True) if r.status == "passed"}
    assert passed == RUNNABLE
    lines: list[str] = []
    assert verify_paths([_pq_file(shared_vectors)], lines.append) == (3, 0, len(cases) - 3)
    assert any("SHAKE256" in line for line in lines)  # skips say why


def _runnable_index(cases: list[dict[str, Any]], kem_id: int) -> int:
    return next(i for i, c in enumerate(cases)
                if (c["kem_id"], c["kdf_id"], c["aead_id"]) in RUNNABLE and c["kem_id"] == kem_id)


def _flip(hex_value: str, at: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_value))
    raw[at] ^= 1
    return raw.hex()


@pytest.mark.parametrize("kem_id", [0x0041, 0x0050, 0x647A])
@pytest.mark.parametrize("field", ["ikmR", "skRm", "pkRm", "ikmE", "enc", "shared_secret",
                                   "key", "base_nonce", "exporter_secret", "suite_id",
                                   "encryption ct", "encryption pt", "export"])
def test_an_altered_pq_case_fails(shared_vectors: Path, kem_id: int, field: str) -> None:
    cases = copy.deepcopy(_cases(shared_vectors))
    index = _runnable_index(cases, kem_id)
    c = cases[index]
    if field == "encryption ct":
        c["encryptions"][-1]["ct"] = _flip(c["encryptions"][-1]["ct"])
    elif field == "encryption pt":
        c["encryptions"][0]["pt"] = _flip(c["encryptions"][0]["pt"])
    elif field == "export":
        c["exports"][-1]["exported_value"] = _flip(c["exports"][-1]["exported_value"])
    else:
        c[field] = _flip(c[field], 1)  # early: P-256 randomness ends in unused spare bytes
    results = list(verify_document(cases))
    failed = [i for i, r in enumerate(results) if r.status == "failed"]
    assert failed == [index]


# --- Round trips and tampering ------------------------------------------------------------------


@settings(max_examples=8)
@given(ikm_r=st.binary(min_size=64, max_size=64), e_seed=st.binary(max_size=32),
       pt=st.binary(max_size=64), info=st.binary(max_size=16))
@pytest.mark.parametrize("hpke", ALL, ids=_IDS)
def test_round_trip(hpke: HpkeSuite, ikm_r: bytes, e_seed: bytes, pt: bytes, info: bytes) -> None:
    pair = hpke.kem.derive_key_pair(ikm_r)
    assert hpke.kem.public_key_of(pair.private_key) == pair.public_key
    assert hpke.kem.deserialize_public_key(pair.public_key) == pair.public_key
    # Uniform randomness, as the protocol derives it (an all-zero P-256 seed has no scalar).
    ikm_e = hashlib.shake_256(e_seed).digest(hpke.kem.n_ikm)
    enc, ct = hpke.seal(pair.public_key, info, b"aad", pt, ikm_e)
    assert len(enc) == hpke.kem.n_enc
    assert hpke.seal(pair.public_key, info, b"aad", pt, ikm_e) == (enc, ct)  # deterministic
    assert hpke.open(pair.private_key, enc, info, b"aad", ct) == pt
    with pytest.raises(AuthenticationError):
        hpke.open(pair.private_key, enc, info + b"!", b"aad", ct)


@pytest.mark.parametrize("hpke", ALL, ids=_IDS)
def test_altered_enc(hpke: HpkeSuite) -> None:
    pair = hpke.kem.derive_key_pair(b"r" * 64)
    enc, ct = hpke.seal(pair.public_key, b"", b"", b"secret", b"e" * hpke.kem.n_ikm)
    # The ML-KEM ciphertext: implicit rejection, so another key and a failed tag.
    altered = bytearray(enc)
    altered[10] ^= 1
    with pytest.raises(AuthenticationError):
        hpke.open(pair.private_key, bytes(altered), b"", b"", ct)
    for bad in (enc[:-1], enc + b"\x00", b""):
        with pytest.raises(InvalidKey):
            hpke.open(pair.private_key, bad, b"", b"", ct)


@pytest.mark.parametrize("kem", [XWING, MLKEM768_P256], ids=lambda k: k.name)
def test_hybrid_group_part_is_validated(kem: Kem) -> None:
    hpke = HpkeSuite(kem, HKDF_SHA256, AES_256_GCM)
    pair = kem.derive_key_pair(b"r" * 32)
    enc, ct = hpke.seal(pair.public_key, b"", b"", b"pt", b"e" * kem.n_ikm)
    # Small order (X25519) or off the curve (P-256), in the key and in the enc.
    bad_group = bytes(32) if kem is XWING else b"\x04" + bytes(64)
    with pytest.raises(InvalidKey):
        kem.deserialize_public_key(pair.public_key[:1184] + bad_group)
    with pytest.raises(InvalidKey):
        hpke.seal(pair.public_key[:1184] + bad_group, b"", b"", b"pt", b"e" * kem.n_ikm)
    with pytest.raises(InvalidKey):
        hpke.open(pair.private_key, enc[:1088] + bad_group, b"", b"", ct)


@pytest.mark.parametrize("hpke", ALL, ids=_IDS)
def test_bad_keys_and_randomness(hpke: HpkeSuite) -> None:
    kem = hpke.kem
    pair = kem.derive_key_pair(b"r" * 64)
    unreduced = b"\xff\xff" + pair.public_key[2:]  # first coefficient 4095 >= q
    for bad in (unreduced, pair.public_key[:-1], pair.public_key + b"\x00", b""):
        with pytest.raises(InvalidKey):
            kem.deserialize_public_key(bad)
        with pytest.raises(InvalidKey):
            hpke.seal(bad, b"", b"", b"pt", b"e" * kem.n_ikm)
    enc, ct = hpke.seal(pair.public_key, b"", b"", b"pt", b"e" * kem.n_ikm)
    for bad_sk in (pair.private_key[:-1], pair.private_key + b"\x00", b""):
        with pytest.raises(InvalidKey):
            hpke.open(bad_sk, enc, b"", b"", ct)
    least = kem.n_ikm_min or kem.n_ikm
    for bad_ikm in (b"e" * (least - 1), b"e" * (kem.n_ikm + 1)):
        with pytest.raises(UsageError):
            hpke.seal(pair.public_key, b"", b"", b"pt", bad_ikm)
    with pytest.raises(UsageError):
        kem.derive_key_pair(b"r" * (kem.n_sk - 1))


def test_p256_randomness_may_carry_fewer_spare_candidates() -> None:
    # The draft's vectors give 128 bytes (m and three candidates); our protocol derives 160.
    pair = MLKEM768_P256.derive_key_pair(b"r" * 32)
    randomness = bytes(range(160))
    short = MLKEM768_P256.encap(pair.public_key, randomness[:64])
    assert MLKEM768_P256.encap(pair.public_key, randomness) == short
    # A first candidate of zero (not a scalar) is skipped for the next one.
    skipped = MLKEM768_P256.encap(pair.public_key, randomness[:32] + bytes(32) + randomness[32:64])
    assert skipped == short
    with pytest.raises(InvalidKey, match="no valid scalar"):
        MLKEM768_P256.encap(pair.public_key, randomness[:32] + b"\xff" * 128)


# --- Through the command line ---------------------------------------------------------------------


def test_cli_verifies_the_published_pq_files_and_fails_an_altered_one(
        shared_vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`triple-ratchet vectors verify <file>` on draft-ietf-hpke-pq's file and Wycheproof's
    ML-KEM-768 files: exit 0; on a copy with one altered case: exit 1, the case named."""
    from triple_ratchet.cli import main

    mlkem_dir = shared_vectors / "wycheproof-mlkem"
    if not mlkem_dir.is_dir():
        pytest.skip(f"Wycheproof ML-KEM vectors not present at {mlkem_dir}")
    files = [_pq_file(shared_vectors), *sorted(mlkem_dir.glob("mlkem_768_*.json"))]
    assert main(["vectors", "verify", *map(str, files)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "561 passed, 0 failed, 10 skipped"

    cases = _cases(shared_vectors)
    index = _runnable_index(cases, 0x647A)
    cases[index]["shared_secret"] = _flip(cases[index]["shared_secret"])
    altered = tmp_path / "altered-pq.json"
    altered.write_text(json.dumps(cases))
    encaps = json.loads((mlkem_dir / "mlkem_768_encaps_test.json").read_text())
    test = next(t for g in encaps["testGroups"] for t in g["tests"] if t["result"] == "valid")
    test["c"] = _flip(test["c"], 1000)
    altered_mlkem = tmp_path / "altered-mlkem.json"
    altered_mlkem.write_text(json.dumps(encaps))
    for path in (altered, altered_mlkem):
        assert main(["vectors", "verify", str(path)]) == 1
        out = capsys.readouterr().out
        assert "FAIL" in out and "1 failed" in out.strip().splitlines()[-1]
