"""DLEQ (Chaum–Pedersen) proofs: completeness, soundness against every tampering, encoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.dkg import dleq
from triple_ratchet.dkg.ed25519 import BASE, L, Point, Scalar
from triple_ratchet.errors import AuthenticationError, DecodeError, LimitExceeded, UsageError
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.testvectors import dkg_additions as vectors
from triple_ratchet.testvectors import verify_document

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "dkg-dleq.json"
MSG = b"bound message"


def _setup(seed: bytes = b"dleq") -> tuple[Scalar, Point, Point, DeterministicRandom]:
    rng = DeterministicRandom(seed)
    d = Scalar.random_nonzero(rng)
    e = Point.base_mul(Scalar.random_nonzero(rng))
    p = Point.base_mul(Scalar.random_nonzero(rng))
    return d, e, p, rng


def test_completeness() -> None:
    d, e, p, rng = _setup()
    values, proof = dleq.prove(d, [e, p], MSG, rng)
    assert values == (e * d, p * d)
    dleq.verify(Point.base_mul(d), [e, p], values, MSG, proof)
    # Round trip through the 64-byte encoding.
    encoded = proof.to_bytes()
    assert len(encoded) == dleq.PROOF_SIZE == 64
    dleq.verify(Point.base_mul(d), [e, p], values, MSG, dleq.DleqProof.from_bytes(encoded))


def test_single_base_and_hedged_nonce() -> None:
    d, e, _, rng = _setup()
    values, proof1 = dleq.prove(d, [e], MSG, rng)
    _, proof2 = dleq.prove(d, [e], MSG, rng)
    # Fresh randomness: two proofs of one statement differ, both verify.
    assert proof1.to_bytes() != proof2.to_bytes()
    for proof in (proof1, proof2):
        dleq.verify(Point.base_mul(d), [e], values, MSG, proof)


def test_wrong_secret_fails() -> None:
    d, e, p, rng = _setup()
    other = Scalar.random_nonzero(rng)
    # Values computed with another d: the prover's honest proof for `other` does not fit P.
    values, proof = dleq.prove(other, [e, p], MSG, rng)
    with pytest.raises(AuthenticationError):
        dleq.verify(Point.base_mul(d), [e, p], values, MSG, proof)
    # Mixed: one value with d, one with another scalar, proof made for d.
    good_values, good_proof = dleq.prove(d, [e, p], MSG, rng)
    with pytest.raises(AuthenticationError):
        dleq.verify(Point.base_mul(d), [e, p], (good_values[0], p * other), MSG, good_proof)


def test_swapped_points_fail() -> None:
    d, e, p, rng = _setup()
    (s_e, s_d), proof = dleq.prove(d, [e, p], MSG, rng)
    public = Point.base_mul(d)
    for bases, values in (
        ([p, e], (s_e, s_d)),  # bases swapped
        ([e, p], (s_d, s_e)),  # values swapped
        ([p, e], (s_d, s_e)),  # both swapped: same pairs, other order — still bound
    ):
        with pytest.raises(AuthenticationError):
            dleq.verify(public, bases, values, MSG, proof)
    with pytest.raises(AuthenticationError):
        dleq.verify(s_e, [e, p], (s_e, s_d), MSG, proof)  # wrong public key


def test_altered_challenge_or_response_fails() -> None:
    d, e, p, rng = _setup()
    values, proof = dleq.prove(d, [e, p], MSG, rng)
    public = Point.base_mul(d)
    one = Scalar(1)
    for altered in (
        dleq.DleqProof(proof.challenge + one, proof.response),
        dleq.DleqProof(proof.challenge, proof.response + one),
        dleq.DleqProof(proof.response, proof.challenge),
        dleq.DleqProof(Scalar(0), Scalar(0)),
    ):
        with pytest.raises(AuthenticationError):
            dleq.verify(public, [e, p], values, MSG, altered)


def test_message_is_bound() -> None:
    d, e, p, rng = _setup()
    values, proof = dleq.prove(d, [e, p], MSG, rng)
    with pytest.raises(AuthenticationError):
        dleq.verify(Point.base_mul(d), [e, p], values, MSG + b"!", proof)


def test_decoding_is_strict() -> None:
    d, e, p, rng = _setup()
    _, proof = dleq.prove(d, [e, p], MSG, rng)
    raw = proof.to_bytes()
    for bad in (raw[:-1], raw + b"\x00", b""):
        with pytest.raises(DecodeError):
            dleq.DleqProof.from_bytes(bad)
    # A non-canonical scalar (c + L) is refused, not silently reduced.
    c_plus_l = (proof.challenge.to_int() + L).to_bytes(32, "little")
    with pytest.raises(DecodeError):
        dleq.DleqProof.from_bytes(c_plus_l + raw[32:])
    with pytest.raises(DecodeError):
        dleq.DleqProof.from_bytes(raw[:32] + b"\xff" * 32)


def test_shape_checks() -> None:
    d, e, p, rng = _setup()
    with pytest.raises(UsageError):
        dleq.prove(Scalar(0), [e], MSG, rng)
    with pytest.raises(LimitExceeded):
        dleq.prove(d, [], MSG, rng)
    with pytest.raises(LimitExceeded):
        dleq.prove(d, [e] * (dleq.MAX_BASES + 1), MSG, rng)
    values, proof = dleq.prove(d, [e, p], MSG, rng)
    with pytest.raises(UsageError):
        dleq.verify(Point.base_mul(d), [e, p], values[:1], MSG, proof)
    with pytest.raises(UsageError):
        dleq.verify(Point.base_mul(d), [e, BASE - BASE], values, MSG, proof)


def test_repr_has_no_secret() -> None:
    d, e, p, rng = _setup()
    _, proof = dleq.prove(d, [e, p], MSG, rng)
    assert d.to_bytes().hex() not in repr(proof)


@settings(max_examples=15, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64))
def test_property_completeness_and_bit_flips(seed: bytes, message: bytes) -> None:
    d, e, p, rng = _setup(seed)
    values, proof = dleq.prove(d, [e, p], message, rng)
    public = Point.base_mul(d)
    dleq.verify(public, [e, p], values, message, proof)
    raw = bytearray(proof.to_bytes())
    raw[seed[0] % 64] ^= 1 << (seed[1] % 8)
    try:
        tampered = dleq.DleqProof.from_bytes(bytes(raw))
    except DecodeError:
        return  # a flip into a non-canonical scalar is refused at decoding
    with pytest.raises(AuthenticationError):
        dleq.verify(public, [e, p], values, message, tampered)


def test_vectors_file_matches_generator() -> None:
    if not VECTORS.exists():
        pytest.skip("vectors/dkg-dleq.json not generated yet")
    on_disk: dict[str, Any] = json.loads(VECTORS.read_text())
    assert on_disk == vectors.generate()["dkg-dleq.json"]
    results = list(verify_document(on_disk))
    assert len(results) >= 8
    assert all(r.status == "passed" for r in results), [r for r in results if r.status != "passed"]
