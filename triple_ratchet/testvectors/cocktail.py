"""Reader for the published COCKTAIL-DKG vector files (C2SP/CCTV cocktail-dkg/*.json).

COCKTAIL(Ed25519, SHA-512) files are checked byte for byte, in two directions:

* from the seed: static keys, context, and every round-1 value (commitments, ephemeral keys, PoPs
  with their intermediate nonce and challenge, encrypted shares) are regenerated with our
  `Participant`, fed the vectors' RNG stream (below);
* from the file: round 2 (secret and verification shares), round 3 (transcript hash, signatures),
  the group key and recovery are computed from the file's own round-1 data and keys, so an altered
  ciphertext or commitment also fails there.

Every group of fields is one case; a mismatch names each differing field. Other ciphersuites
(e.g. the P-256 file) are recognised and each vector is reported as skipped: our DKG is fixed to
COCKTAIL(Ed25519, SHA-512).

RNG stream (not written in the spec; established by reproducing the vectors): block k of
participant i's stream is SHA-512(seed || ciphersuite id || u32le(t) || u32le(n) ||
"round1_participant_{i}" || u64le(k)), k = 0, 1, ...; each 64-byte block is one scalar (reduced
mod L), drawn as a_0 .. a_{t-1} then e_i — exactly how `Participant.round1` consumes 64 bytes per
scalar. Static secrets and payloads are one labelled hash each, without a counter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from triple_ratchet.dkg.cocktail import (
    CIPHERSUITE_ID,
    MAX_PARTICIPANTS,
    Polynomial,
    SessionParams,
    VssCommitment,
    pop_message,
    schnorr_sign_traced,
    u32le,
)
from triple_ratchet.dkg.cocktail_messages import Round1Message, SuccessCertificate
from triple_ratchet.dkg.cocktail_participant import Participant, recover
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.errors import TripleRatchetError
from triple_ratchet.testvectors import CaseResult, Verifier, register_detector

CIPHERSUITE_NAME = CIPHERSUITE_ID.decode()


class VectorRng:
    """The vectors' per-participant RNG stream (a RandomSource handing out 64-byte blocks)."""

    def __init__(self, seed: bytes, t: int, n: int, label: bytes) -> None:
        self._prefix = seed + CIPHERSUITE_ID + u32le(t) + u32le(n) + label
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = hashlib.sha512(self._prefix + self._counter.to_bytes(8, "little")).digest()
            self._buffer += block
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def __repr__(self) -> str:
        return "VectorRng(<seed redacted>)"


def labelled_hash(seed: bytes, t: int, n: int, label: str) -> bytes:
    """H(seed || ciphersuite id || u32le(t) || u32le(n) || label), the vectors' derivation."""
    return hashlib.sha512(seed + CIPHERSUITE_ID + u32le(t) + u32le(n) + label.encode()).digest()


def participant_rng(seed: bytes, t: int, n: int, i: int) -> VectorRng:
    return VectorRng(seed, t, n, f"round1_participant_{i}".encode())


def static_secret(seed: bytes, t: int, n: int, i: int) -> Scalar:
    return Scalar.from_bytes_wide(labelled_hash(seed, t, n, f"static_secret_key_{i}"))


def payload(seed: bytes, t: int, n: int, i: int) -> bytes:
    return labelled_hash(seed, t, n, f"payload_{i}")


class _Case:
    """Collects field comparisons for one case; all mismatches are reported together."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def eq(self, label: str, got: object, want: object) -> None:
        if got != want:
            self.problems.append(f"{label}: got {str(got)[:80]}, want {str(want)[:80]}")

    def result(self, name: str) -> CaseResult:
        if self.problems:
            return CaseResult(name, "failed", "; ".join(self.problems))
        return CaseResult(name, "passed")


def _run(name: str, body: Callable[[_Case], None]) -> CaseResult:
    case = _Case()
    try:
        body(case)
    except Exception as exc:  # a malformed file fails the case, never crashes the command
        return CaseResult(name, "failed", f"{type(exc).__name__}: {str(exc)[:200]}")
    return case.result(name)


def _check_shape(v: object) -> tuple[int, int]:
    """(n, t) of one vector, after checking every count the verifier loops over against
    MAX_PARTICIPANTS and n: a hostile file must not make it allocate or loop without bound."""
    if not isinstance(v, dict):
        raise ValueError("vector is not an object")
    n, t = v.get("n"), v.get("t")
    if type(n) is not int or type(t) is not int:
        raise ValueError("n and t must be integers")
    if not 1 <= t <= n <= MAX_PARTICIPANTS:
        raise ValueError(f"need 1 <= t <= n <= {MAX_PARTICIPANTS}, got t = {t}, n = {n}")

    def sized(value: object, what: str, length: int) -> list[Any]:
        if not isinstance(value, list) or len(value) != length:
            raise ValueError(f"{what} must be a list of {length}")
        return value

    def obj(value: object, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"{what} must be an object")
        return value

    config = obj(v.get("config"), "config")
    sized(config.get("static_public_keys"), "config.static_public_keys", n)
    sized(config.get("static_secret_keys"), "config.static_secret_keys", n)
    if "payloads" in v:
        sized(v["payloads"], "payloads", n)
    for r1 in sized(v.get("round1"), "round1", n):
        r1 = obj(r1, "round1 entry")
        sized(r1.get("vss_commitment"), "round1 vss_commitment", t)
        sized(r1.get("encrypted_shares"), "round1 encrypted_shares", n)
        obj(r1.get("pop_intermediate"), "round1 pop_intermediate")
    for r2 in sized(v.get("round2"), "round2", n):
        obj(r2, "round2 entry")
    for sig in sized(obj(v.get("round3"), "round3").get("signatures"), "round3 signatures", n):
        obj(sig, "round3 signature")
    if "recovery" in v:
        rec = obj(v["recovery"], "recovery")
        i = rec.get("participant_id")
        if type(i) is not int or not 1 <= i <= n:
            raise ValueError("recovery participant_id must be an integer in 1..n")
        sized(rec.get("ciphertexts"), "recovery ciphertexts", n)
    return n, t


def _hex(b: bytes) -> str:
    return b.hex()


def _verify_vector(seed: bytes, v: dict[str, Any], label: str) -> Iterator[CaseResult]:
    n, t = _check_shape(v)
    extension = bytes.fromhex(v["extension"])
    payloads = [bytes.fromhex(p) for p in v["payloads"]] if "payloads" in v else None
    secrets = [static_secret(seed, t, n, i) for i in range(1, n + 1)]

    # File values used as inputs for the later rounds.
    file_keys = [bytes.fromhex(k) for k in v["config"]["static_public_keys"]]
    file_secrets = [Scalar.from_bytes(bytes.fromhex(k)) for k in v["config"]["static_secret_keys"]]

    def setup(c: _Case) -> None:
        c.eq(
            "static_secret_keys",
            [_hex(s.to_bytes()) for s in secrets],
            v["config"]["static_secret_keys"],
        )
        publics = [Point.base_mul(s).to_bytes() for s in file_secrets]
        c.eq("static_public_keys", [_hex(p) for p in publics], v["config"]["static_public_keys"])
        params = SessionParams.create(bytes.fromhex(v["session_tag"]), file_keys, t)
        c.eq("context", _hex(params.context), v["context"])
        if payloads is not None:
            want = [_hex(payload(seed, t, n, i)) for i in range(1, n + 1)]
            c.eq("payloads", want, v["payloads"])

    yield _run(f"{label} setup", setup)

    params = SessionParams.create(bytes.fromhex(v["session_tag"]), file_keys, t)
    file_context = bytes.fromhex(v["context"])

    for i in range(1, n + 1):

        def round1(c: _Case, i: int = i) -> None:
            r1 = v["round1"][i - 1]
            c.eq("participant_id", r1["participant_id"], i)
            p = Participant(
                params,
                secrets[i - 1],
                payload=payloads[i - 1] if payloads is not None else b"",
                rng=participant_rng(seed, t, n, i),
            )
            msg = p.round1()
            c.eq("ephemeral_public_key", _hex(msg.ephemeral.to_bytes()), r1["ephemeral_public_key"])
            c.eq(
                "vss_commitment",
                [_hex(x.to_bytes()) for x in msg.commitment.points],
                r1["vss_commitment"],
            )
            c.eq("pop", _hex(msg.pop), r1["pop"])
            c.eq("encrypted_shares", [_hex(x) for x in msg.ciphertexts], r1["encrypted_shares"])
            # Intermediate values, from the same stream: a_0 is the first scalar drawn.
            a0 = Polynomial.random(t, participant_rng(seed, t, n, i)).secret
            trace = schnorr_sign_traced(
                a0, pop_message(file_context, msg.commitment, msg.ephemeral)
            )
            mid = r1["pop_intermediate"]
            message = pop_message(file_context, msg.commitment, msg.ephemeral)
            c.eq("pop_intermediate.message", _hex(message), mid["message"])
            c.eq("pop_intermediate.nonce_input", _hex(trace.nonce_input), mid["nonce_input"])
            c.eq("pop_intermediate.nonce", _hex(trace.nonce.to_bytes()), mid["nonce"])
            c.eq(
                "pop_intermediate.nonce_commitment",
                _hex(trace.nonce_commitment.to_bytes()),
                mid["nonce_commitment"],
            )
            c.eq(
                "pop_intermediate.challenge_input",
                _hex(trace.challenge_input),
                mid["challenge_input"],
            )
            c.eq("pop_intermediate.challenge", _hex(trace.challenge.to_bytes()), mid["challenge"])

        yield _run(f"{label} round1 participant {i}", round1)

    # Rounds 2 and 3 from the file's round-1 data.
    def file_round1() -> list[Round1Message]:
        out = []
        for r1 in v["round1"]:
            commitment = VssCommitment.from_bytes(
                b"".join(bytes.fromhex(x) for x in r1["vss_commitment"]), t
            )
            out.append(
                Round1Message(
                    commitment,
                    bytes.fromhex(r1["pop"]),
                    Point.from_bytes(bytes.fromhex(r1["ephemeral_public_key"])),
                    tuple(bytes.fromhex(x) for x in r1["encrypted_shares"]),
                )
            )
        return out

    finished: list[Participant] = []

    def round2(c: _Case) -> None:
        messages = file_round1()
        c.eq("round2 entries", len(v["round2"]), n)
        for i in range(1, n + 1):
            p = Participant(params, file_secrets[i - 1], rng=participant_rng(seed, t, n, i))
            p.round1()
            shares = p.receive_round1(messages)
            r2 = v["round2"][i - 1]
            c.eq(f"P{i} participant_id", r2["participant_id"], i)
            c.eq(f"P{i} secret_share", _hex(shares.secret_share.to_bytes()), r2["secret_share"])
            c.eq(
                f"P{i} verification_share",
                _hex(shares.verification_share.to_bytes()),
                r2["verification_share"],
            )
            if payloads is not None:
                c.eq(f"P{i} received payloads", [_hex(x) for x in shares.payloads], v["payloads"])
            finished.append(p)
        c.eq(
            "group_public_key",
            _hex(finished[0].shares.group_public_key.to_bytes()),
            v["group_public_key"],
        )

    yield _run(f"{label} round2", round2)

    def round3(c: _Case) -> None:
        if len(finished) != n:
            raise ValueError("round 2 did not complete")
        sigs = [p.sign_transcript(extension) for p in finished]
        r3 = v["round3"]
        c.eq("signer_ids", [s["signer_id"] for s in r3["signatures"]], list(range(1, n + 1)))
        c.eq("signatures", [_hex(s) for s in sigs], [s["signature"] for s in r3["signatures"]])
        file_sigs = [bytes.fromhex(s["signature"]) for s in r3["signatures"]]
        outputs = [p.receive_signatures(file_sigs) for p in finished]
        c.eq("transcript_hash", _hex(outputs[0].transcript_hash), r3["transcript_hash"])

    yield _run(f"{label} round3", round3)

    if "recovery" in v:

        def recovery(c: _Case) -> None:
            rec = v["recovery"]
            i = int(rec["participant_id"])
            messages = file_round1()
            ciphertexts = [bytes.fromhex(x) for x in rec["ciphertexts"]]
            c.eq("ciphertexts", [_hex(m.ciphertexts[i - 1]) for m in messages], rec["ciphertexts"])
            # Certificate from the file's round-1 data and signatures.
            p = Participant(params, file_secrets[i - 1], rng=participant_rng(seed, t, n, i))
            p.round1()
            p.receive_round1(messages)
            p.sign_transcript(extension)
            sigs = tuple(bytes.fromhex(s["signature"]) for s in v["round3"]["signatures"])
            cert = SuccessCertificate(p.transcript.to_bytes(), sigs)
            got = recover(file_secrets[i - 1], cert, ciphertexts)
            c.eq("participant", got.index, i)
            c.eq(
                "recovered_secret_share",
                _hex(got.secret_share.to_bytes()),
                rec["recovered_secret_share"],
            )
            c.eq(
                "recovered_verification_share",
                _hex(got.verification_share.to_bytes()),
                rec["recovered_verification_share"],
            )

        yield _run(f"{label} recovery", recovery)


def _label(index: int, v: object) -> str:
    if not isinstance(v, dict):
        return f"#{index}"
    label = f"#{index} {str(v.get('t'))[:12]}-of-{str(v.get('n'))[:12]}"
    return label + " payload" if "payloads" in v else label


def _vectors(doc: dict[str, Any]) -> list[Any]:
    vectors = doc.get("vectors")
    if not isinstance(vectors, list):
        raise ValueError("\"vectors\" is not a list")
    return vectors


def verify_cocktail(doc: dict[str, Any]) -> Iterator[CaseResult]:
    seed_hex = doc.get("seed")
    if not isinstance(seed_hex, str):
        raise ValueError("\"seed\" is not a hex string")
    seed = bytes.fromhex(seed_hex)
    for index, v in enumerate(_vectors(doc)):
        label = _label(index, v)
        try:
            yield from _verify_vector(seed, v, label)
        except (TripleRatchetError, KeyError, ValueError, TypeError, AttributeError,
                IndexError, RecursionError) as exc:
            yield CaseResult(label, "failed", f"{type(exc).__name__}: {str(exc)[:200]}")


def skip_other_suite(doc: dict[str, Any]) -> Iterator[CaseResult]:
    reason = (
        f"ciphersuite {str(doc.get('ciphersuite'))[:60]!r} not supported: "
        f"our DKG is fixed to {CIPHERSUITE_NAME}"
    )
    for index, v in enumerate(_vectors(doc)):
        yield CaseResult(_label(index, v), "skipped", reason)


def detect(doc: dict[str, Any]) -> Verifier | None:
    suite = doc.get("ciphersuite")
    if not isinstance(suite, str) or not suite.startswith("COCKTAIL(") or "vectors" not in doc:
        return None
    if suite == CIPHERSUITE_NAME:
        return verify_cocktail
    return skip_other_suite


register_detector(detect)

__all__ = [
    "VectorRng",
    "detect",
    "labelled_hash",
    "participant_rng",
    "payload",
    "static_secret",
    "verify_cocktail",
]
