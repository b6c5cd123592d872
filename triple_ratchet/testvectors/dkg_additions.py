"""Vectors for our DKG additions (spec 07).

- vectors/dkg-dleq.json (kind "dkg-dleq"): `operation` "prove" (inputs secret, bases, message and
  the 32 nonce-randomness bytes; outputs public key, values, proof) or "verify" (inputs public,
  bases, values, message, proof; negative cases name the error).
- vectors/dkg-additions.json (kind "dkg-additions"): every case carries the session (session_id,
  static_keys in order, threshold; the context is derived as COCKTAIL recommends) and an
  `operation`: "sign_round1", "verify_round1", "extension" or "judge_abort". Randomness that an
  operation consumes is listed in `randomness` (32-byte chunks, in the order they are drawn).
  A judged abort whose verdict convicts someone is a negative case: {"type": "DkgError",
  "culprit": i}; evidence that is rejected names the rejecting error and no culprit.

The `Dealer` helper builds COCKTAIL round-1 messages from explicit secrets, honest or with one
chosen fault; the tests use it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from triple_ratchet.dkg import abort as ab
from triple_ratchet.dkg import attempt, dleq
from triple_ratchet.dkg.cocktail import (
    Polynomial,
    SessionParams,
    encrypt_share,
    h6,
    pop_message,
    schnorr_sign,
    sender_ecdh,
)
from triple_ratchet.dkg.cocktail_messages import Round1Message
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.dkg.signature import dkg_sign
from triple_ratchet.errors import UsageError
from triple_ratchet.random import DeterministicRandom, RandomSource
from triple_ratchet.testvectors import (
    CaseResult,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

KIND_DLEQ = "dkg-dleq"
KIND_ADDITIONS = "dkg-additions"
FILE_DLEQ = "dkg-dleq.json"
FILE_ADDITIONS = "dkg-additions.json"


class FixedRandom:
    """Returns the given chunks in order (vectors list the randomness an operation draws)."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = list(chunks)
        self.drawn: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        if not self._chunks or len(self._chunks[0]) != n:
            raise UsageError("vector randomness exhausted or of the wrong size")
        chunk = self._chunks.pop(0)
        self.drawn.append(chunk)
        return chunk

    def __repr__(self) -> str:
        return "FixedRandom(<redacted>)"


class Recording:
    """Wraps a random source and records what was drawn (to write it into a vector)."""

    def __init__(self, rng: RandomSource) -> None:
        self._rng = rng
        self.drawn: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = self._rng(n)
        self.drawn.append(out)
        return out


# --- A deterministic session and dealers ---------------------------------------------------------


@dataclass(frozen=True)
class Session:
    session_id: bytes
    secrets: tuple[Scalar, ...]
    threshold: int

    @property
    def params(self) -> SessionParams:
        return SessionParams.create(self.session_id, self.static_keys, self.threshold)

    @property
    def static_keys(self) -> list[bytes]:
        return [Point.base_mul(d).to_bytes() for d in self.secrets]

    def inputs(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id.hex(),
            "static_keys": [k.hex() for k in self.static_keys],
            "threshold": self.threshold,
        }

    @classmethod
    def create(cls, seed: bytes, n: int = 3, t: int = 2) -> Session:
        rng = DeterministicRandom(seed)
        return cls(rng(64), tuple(Scalar.random_nonzero(rng) for _ in range(n)), t)


def session_from(inputs: dict[str, Any]) -> SessionParams:
    return SessionParams.create(
        bytes.fromhex(inputs["session_id"]),
        [bytes.fromhex(k) for k in inputs["static_keys"]],
        int(inputs["threshold"]),
    )


def dealer_round1(
    session: Session,
    dealer: int,
    payload: bytes,
    rng: RandomSource,
    *,
    bad_share_for: int | None = None,
    bad_payload_for: int | None = None,
    garbage_for: int | None = None,
    bad_pop: bool = False,
) -> Round1Message:
    """Participant `dealer`'s msg_{1|i}, honest unless one fault is asked for."""
    params = session.params
    d = session.secrets[dealer - 1]
    me = params.static_keys[dealer - 1]
    poly = Polynomial.random(params.t, rng)
    e = Scalar.random_nonzero(rng)
    ephemeral = Point.base_mul(e)
    commitment = poly.commitment()
    pop = schnorr_sign(poly.secret, pop_message(params.context, commitment, ephemeral))
    if bad_pop:
        pop = schnorr_sign(poly.secret, pop_message(params.context + b"x", commitment, ephemeral))
    ciphertexts = []
    for j, recipient in enumerate(params.static_keys, start=1):
        key = h6(sender_ecdh(e, d, recipient), ephemeral, me, recipient, params.context)
        share = poly.evaluate(j) + (Scalar(1) if j == bad_share_for else Scalar(0))
        body = bytes(32) if j == bad_payload_for else payload
        ct = encrypt_share(key, share, body)
        if j == garbage_for:
            ct = ct[:-1] + bytes([ct[-1] ^ 1])
        ciphertexts.append(ct)
    return Round1Message(commitment, pop, ephemeral, tuple(ciphertexts))


def signed(session: Session, dealer: int, message: Round1Message | bytes, payload: bytes,
           rng: RandomSource) -> attempt.SignedRound1:
    return attempt.sign_round1(session.params, session.secrets[dealer - 1], message, payload, rng)


def blame_evidence(session: Session, accuser: int, dealer: attempt.SignedRound1,
                   rng: RandomSource) -> ab.Blame:
    """Evidence with a real DLEQ proof, built without `make_blame`'s self-check (so it can
    also express false accusations and tampered messages)."""
    params = session.params
    msg = Round1Message.from_bytes(dealer.message, params.t, params.n)
    (s_e, s_d), proof = dleq.prove(
        session.secrets[accuser - 1], [msg.ephemeral, params.static_keys[dealer.sender - 1]],
        ab.blame_message(params, accuser, dealer.sender, dealer), rng,
    )
    return ab.Blame(dealer.sender, dealer.to_bytes(),
                    ab.EcdhEvidence(s_e.to_bytes(), s_d.to_bytes(), proof.to_bytes()))


# --- DLEQ vectors -------------------------------------------------------------------------------


def _points(hexes: Sequence[str]) -> list[Point]:
    return [Point.from_bytes(bytes.fromhex(h)) for h in hexes]


def _check_dleq(case: dict[str, Any]) -> None:
    i = case["inputs"]
    message = bytes.fromhex(i["message"])
    if i["operation"] == "prove":
        secret = Scalar.from_bytes(bytes.fromhex(i["secret"]))
        rng = FixedRandom([bytes.fromhex(i["randomness"])])
        values, proof = dleq.prove(secret, _points(i["bases"]), message, rng)
        got = {
            "public": Point.base_mul(secret).to_bytes().hex(),
            "values": [v.to_bytes().hex() for v in values],
            "proof": proof.to_bytes().hex(),
        }
        for key, want in case.get("outputs", {}).items():
            expect_equal(key, got[key], want)
        dleq.verify(Point.base_mul(secret), _points(i["bases"]), values, message, proof)
    elif i["operation"] == "verify":
        public = Point.from_bytes(bytes.fromhex(i["public"]))
        dleq.verify(public, _points(i["bases"]), _points(i["values"]), message,
                    dleq.DleqProof.from_bytes(bytes.fromhex(i["proof"])))
    else:
        raise AssertionError(f"unknown operation {i['operation']!r}")


def _dleq_cases() -> list[dict[str, Any]]:
    rng = DeterministicRandom(b"dkg-dleq vectors")
    cases: list[dict[str, Any]] = []

    def prove_case(description: str, n_bases: int, message: bytes) -> dict[str, Any]:
        d = Scalar.random_nonzero(rng)
        bases = [Point.base_mul(Scalar.random_nonzero(rng)) for _ in range(n_bases)]
        randomness = rng(dleq.NONCE_RANDOMNESS_LEN)
        values, proof = dleq.prove(d, bases, message, FixedRandom([randomness]))
        case = {
            "description": description, "suite": None,
            "inputs": {"operation": "prove", "secret": d.to_bytes().hex(),
                       "bases": [b.to_bytes().hex() for b in bases], "message": message.hex(),
                       "randomness": randomness.hex()},
            "outputs": {"public": Point.base_mul(d).to_bytes().hex(),
                        "values": [v.to_bytes().hex() for v in values],
                        "proof": proof.to_bytes().hex()},
        }
        cases.append(case)
        return case

    base = prove_case("two bases (the blame statement: E_j, P_j)", 2, b"blame binding")
    prove_case("one base", 1, b"")
    prove_case("three bases, long message", 3, bytes(range(256)) * 4)

    good = {
        "operation": "verify",
        "public": base["outputs"]["public"],
        "bases": base["inputs"]["bases"],
        "values": base["outputs"]["values"],
        "message": base["inputs"]["message"],
        "proof": base["outputs"]["proof"],
    }
    cases.append({"description": "valid proof verifies", "suite": None, "inputs": good,
                  "outputs": {}})
    proof = bytes.fromhex(good["proof"])
    other = Point.base_mul(Scalar.random_nonzero(rng)).to_bytes().hex()

    def negative(description: str, error: str, **changes: Any) -> None:
        cases.append({"description": description, "suite": None,
                      "inputs": {**good, **changes}, "error": {"type": error}})

    negative("challenge + 1", "AuthenticationError",
             proof=((Scalar.from_bytes(proof[:32]) + Scalar(1)).to_bytes() + proof[32:]).hex())
    negative("response + 1", "AuthenticationError",
             proof=(proof[:32] + (Scalar.from_bytes(proof[32:]) + Scalar(1)).to_bytes()).hex())
    negative("bases swapped", "AuthenticationError", bases=list(reversed(good["bases"])))
    negative("values swapped", "AuthenticationError", values=list(reversed(good["values"])))
    negative("wrong public key (another d)", "AuthenticationError", public=other)
    negative("one value from another secret", "AuthenticationError",
             values=[good["values"][0], other])
    negative("other message", "AuthenticationError", message=(b"other").hex())
    negative("proof one byte short", "DecodeError", proof=proof[:-1].hex())
    negative("non-canonical response (>= L)", "DecodeError",
             proof=(proof[:32] + b"\xff" * 32).hex())
    negative("value is the identity encoding", "InvalidKey",
             values=[good["values"][0], "01" + "00" * 31])
    negative("value is the all-zero encoding (order 4)", "InvalidKey",
             values=[good["values"][0], "00" * 32])
    return cases


# --- Additions vectors --------------------------------------------------------------------------


def _check_additions(case: dict[str, Any]) -> None:
    i = case["inputs"]
    op = i["operation"]
    got: dict[str, Any]
    if op == "extension":
        ann_hash = attempt.announcements_hash([bytes.fromhex(a) for a in i["announcements"]])
        got = {
            "payload_hashes": [attempt.payload_hash(bytes.fromhex(p)).hex()
                               for p in i["payloads"]],
            "announcements_hash": ann_hash.hex(),
        }
        got["extension"] = attempt.attempt_extension(
            [bytes.fromhex(h) for h in got["payload_hashes"]], ann_hash,
            bytes.fromhex(i["confirmation"])).hex()
    else:
        params = session_from(i)
        if op == "sign_round1":
            rng = FixedRandom([bytes.fromhex(r) for r in i["randomness"]])
            s = attempt.sign_round1(params, Scalar.from_bytes(bytes.fromhex(i["static_secret"])),
                                    bytes.fromhex(i["round1"]), bytes.fromhex(i["payload"]), rng)
            got = {"signed_round1": s.to_bytes().hex(), "payload_hash": s.payload_hash.hex()}
        elif op == "verify_round1":
            s = attempt.SignedRound1.from_bytes(bytes.fromhex(i["signed_round1"]))
            s.verify(params)
            got = {"sender": s.sender, "payload_hash": s.payload_hash.hex()}
        elif op == "judge_abort":
            verdict = ab.judge(params, ab.Abort.from_bytes(bytes.fromhex(i["abort"])))
            if verdict.culprit is not None:
                raise verdict.error()
            got = {"reason": verdict.fault, "aborter": verdict.aborter,
                   "unresponsive": list(verdict.unresponsive)}
        else:
            raise AssertionError(f"unknown operation {op!r}")
    for key, want in case.get("outputs", {}).items():
        expect_equal(key, got.get(key), want)


def _additions_cases() -> list[dict[str, Any]]:
    session = Session.create(b"dkg-additions vectors", n=3, t=2)
    params = session.params
    rng = DeterministicRandom(b"dkg-additions vector randomness")
    payloads = [rng(32) for _ in range(3)]
    cases: list[dict[str, Any]] = []

    def add(description: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None,
            error: str | None = None, culprit: int | None = None) -> None:
        case: dict[str, Any] = {"description": description, "suite": None,
                                "inputs": {**session.inputs(), **inputs}}
        if error is None:
            case["outputs"] = outputs or {}
        else:
            case["error"] = {"type": error}
            if culprit is not None:
                case["error"]["culprit"] = culprit
        cases.append(case)

    # Signed round 1.
    msgs = [dealer_round1(session, j, payloads[j - 1], rng) for j in (1, 2, 3)]
    rec = Recording(rng)
    s1 = signed(session, 1, msgs[0], payloads[0], rec)
    add("sign round 1 (participant 1)",
        {"operation": "sign_round1", "static_secret": session.secrets[0].to_bytes().hex(),
         "round1": msgs[0].to_bytes().hex(), "payload": payloads[0].hex(),
         "randomness": [r.hex() for r in rec.drawn]},
        {"signed_round1": s1.to_bytes().hex(), "payload_hash": s1.payload_hash.hex()})
    add("verify a signed round 1", {"operation": "verify_round1",
                                    "signed_round1": s1.to_bytes().hex()},
        {"sender": 1, "payload_hash": s1.payload_hash.hex()})
    flipped = bytearray(s1.message)
    flipped[-1] ^= 1
    tampered = attempt.SignedRound1(1, s1.payload_hash, bytes(flipped), s1.signature)
    add("relay flipped a ciphertext bit: signature fails, no one blamed",
        {"operation": "verify_round1", "signed_round1": tampered.to_bytes().hex()},
        error="InvalidSignature")
    relabelled = attempt.SignedRound1(2, s1.payload_hash, s1.message, s1.signature)
    add("relay relabelled the sender", {"operation": "verify_round1",
                                        "signed_round1": relabelled.to_bytes().hex()},
        error="InvalidSignature")
    cocktail_sig = schnorr_sign(session.secrets[0], s1.message)
    foreign = attempt.SignedRound1(1, s1.payload_hash, s1.message, cocktail_sig)
    add("a COCKTAIL-prefixed signature is not ours", {"operation": "verify_round1",
                                                      "signed_round1": foreign.to_bytes().hex()},
        error="InvalidSignature")
    short = dealer_round1(session, 2, payloads[1][:31], rng)
    add("signed msg1 with 79-byte ciphertexts (31-byte payload): dealer's fault",
        {"operation": "verify_round1",
         "signed_round1": _force_sign(session, 2, short.to_bytes(), payloads[1], rng).hex()},
        error="DkgError", culprit=2)
    add("signed msg1 that does not parse (one commitment point short): dealer's fault",
        {"operation": "verify_round1",
         "signed_round1": _force_sign(session, 3, msgs[2].to_bytes()[32:], payloads[2],
                                      rng).hex()},
        error="DkgError", culprit=3)
    zero_sender = s1.to_bytes().replace(bytes([0x18, attempt.MSG_DKG_SIGNED_ROUND1, 0x01]),
                                        bytes([0x18, attempt.MSG_DKG_SIGNED_ROUND1, 0x00]), 1)
    add("sender index 0", {"operation": "verify_round1", "signed_round1": zero_sender.hex()},
        error="DecodeError")

    # Extension.
    announcements = [rng(200), rng(180), rng(210)]
    confirmation = rng(32)
    hashes = [attempt.payload_hash(p) for p in payloads]
    ann = attempt.announcements_hash(announcements)
    add("extension over three payloads, announcements and a confirmation",
        {"operation": "extension", "payloads": [p.hex() for p in payloads],
         "announcements": [a.hex() for a in announcements], "confirmation": confirmation.hex()},
        {"payload_hashes": [h.hex() for h in hashes], "announcements_hash": ann.hex(),
         "extension": attempt.attempt_extension(hashes, ann, confirmation).hex()})

    # Aborts.
    timeout = ab.make_timeout(params, session.secrets[0], [3], rng)
    add("timeout naming participant 3", {"operation": "judge_abort",
                                         "abort": timeout.to_bytes().hex()},
        {"reason": "timeout", "aborter": 1, "unresponsive": [3]})
    forged = ab.Abort(2, timeout.evidence, timeout.signature)
    add("timeout re-attributed to participant 2: signature fails",
        {"operation": "judge_abort", "abort": forged.to_bytes().hex()}, error="InvalidSignature")
    s2a = signed(session, 2, msgs[1], payloads[1], rng)
    other2 = dealer_round1(session, 2, payloads[1], rng)
    s2b = signed(session, 2, other2, payloads[1], rng)
    eq = ab.make_equivocation(params, session.secrets[0], ab.EquivocationKind.ROUND1, 2,
                              s2a.to_bytes(), s2b.to_bytes(), rng)
    add("equivocation: two signed round-1 messages from participant 2",
        {"operation": "judge_abort", "abort": eq.to_bytes().hex()}, error="DkgError", culprit=2)
    s2a_again = signed(session, 2, msgs[1], payloads[1], rng)
    same = ab.sign_abort(params, session.secrets[0],
                         ab.Equivocation(ab.EquivocationKind.ROUND1, 2, s2a.to_bytes(),
                                         s2a_again.to_bytes()), rng)
    add("two signatures over the same content are not equivocation",
        {"operation": "judge_abort", "abort": same.to_bytes().hex()}, error="ProtocolError")

    def blame_case(description: str, accuser: int, dealer: attempt.SignedRound1, *,
                   culprit: int | None, error: str = "DkgError",
                   evidence: ab.Blame | None = None) -> None:
        ev = evidence or blame_evidence(session, accuser, dealer, rng)
        a = ab.sign_abort(params, session.secrets[accuser - 1], ev, rng)
        add(description, {"operation": "judge_abort", "abort": a.to_bytes().hex()},
            error=error, culprit=culprit)

    bad_share = signed(session, 2, dealer_round1(session, 2, payloads[1], rng, bad_share_for=3),
                       payloads[1], rng)
    blame_case("blame: share to 3 fails the VSS check -> dealer 2", 3, bad_share, culprit=2)
    garbage = signed(session, 2, dealer_round1(session, 2, payloads[1], rng, garbage_for=1),
                     payloads[1], rng)
    blame_case("blame: ciphertext to 1 does not decrypt -> dealer 2", 1, garbage, culprit=2)
    bad_payload = signed(session, 3,
                         dealer_round1(session, 3, payloads[2], rng, bad_payload_for=1),
                         payloads[2], rng)
    blame_case("blame: payload to 1 does not match the signed hash -> dealer 3", 1, bad_payload,
               culprit=3)
    bad_pop = signed(session, 2, dealer_round1(session, 2, payloads[1], rng, bad_pop=True),
                     payloads[1], rng)
    blame_case("blame: bad PoP, no ECDH evidence needed -> dealer 2", 1, bad_pop, culprit=2,
               evidence=ab.Blame(2, bad_pop.to_bytes(), None))
    honest = signed(session, 2, msgs[1], payloads[1], rng)
    blame_case("false accusation of an honest dealer -> accuser 3", 3, honest, culprit=3)
    blame_case("accusation without evidence of an honest dealer -> accuser 1", 1, honest,
               culprit=1, evidence=ab.Blame(2, honest.to_bytes(), None))
    relay = attempt.SignedRound1(2, bad_share.payload_hash,
                                 bad_share.message[:-1] + bytes([bad_share.message[-1] ^ 1]),
                                 bad_share.signature)
    blame_case("blame carrying a relay-tampered message (bad dealer signature): no one", 3,
               relay, culprit=None, error="InvalidSignature")
    good_ev = blame_evidence(session, 3, bad_share, rng)
    assert good_ev.ecdh is not None
    other_ev = blame_evidence(session, 1, bad_share, rng)
    assert other_ev.ecdh is not None
    wrong_proof = ab.Blame(2, good_ev.dealer_round1,
                           ab.EcdhEvidence(good_ev.ecdh.ephemeral, good_ev.ecdh.static,
                                           other_ev.ecdh.proof))
    blame_case("blame whose DLEQ proof is another member's: rejected", 3, bad_share,
               culprit=None, error="AuthenticationError", evidence=wrong_proof)
    swapped = ab.Blame(2, good_ev.dealer_round1,
                       ab.EcdhEvidence(good_ev.ecdh.static, good_ev.ecdh.ephemeral,
                                       good_ev.ecdh.proof))
    blame_case("blame with the two ECDH values swapped: rejected", 3, bad_share, culprit=None,
               error="AuthenticationError", evidence=swapped)
    misnamed = ab.Blame(1, good_ev.dealer_round1, good_ev.ecdh)
    blame_case("blame naming a dealer other than the message's sender: rejected", 3, bad_share,
               culprit=None, error="ProtocolError", evidence=misnamed)
    self_blame = ab.Blame(3, good_ev.dealer_round1, good_ev.ecdh)
    blame_case("an accuser blaming itself: rejected", 3, bad_share, culprit=None,
               error="ProtocolError", evidence=self_blame)
    return cases


def _force_sign(session: Session, dealer: int, raw: bytes, payload: bytes,
                rng: RandomSource) -> bytes:
    """Sign arbitrary msg1 bytes as `dealer` (a dealer that signs its own malformed message)."""
    p_hash = attempt.payload_hash(payload)
    body = dealer.to_bytes(4, "little") + p_hash + len(raw).to_bytes(8, "little") + raw
    sig = dkg_sign(session.secrets[dealer - 1], attempt.LABEL_DKG_ROUND1_SIGNATURE,
                   session.params.context, body, rng)
    return attempt.SignedRound1(dealer, p_hash, raw, sig).to_bytes()


def verify_dleq(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check_dleq)


def verify_additions(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check_additions)


def generate() -> dict[str, dict[str, Any]]:
    return {
        FILE_DLEQ: document(KIND_DLEQ, "DLEQ proofs over edwards25519 (spec 07)", _dleq_cases()),
        FILE_ADDITIONS: document(
            KIND_ADDITIONS,
            "Signed round-1 messages, the attempt extension, aborts and blame (spec 07)",
            _additions_cases(),
        ),
    }


register(lambda: {KIND_DLEQ: verify_dleq, KIND_ADDITIONS: verify_additions})
register_generator(generate)
