"""Vectors for the COCKTAIL-DKG core (spec 06), valid and negative cases in one file.

vectors/dkg-cocktail.json (kind "dkg-cocktail"). Every case carries the session parameters
(`session_id`, `static_keys` in roster order, `threshold`; the context is derived as §6.3 says)
and an `operation`:

- "params": `SessionParams.create`; output `context`. Negative cases: bad t or n, invalid,
  identity or repeated static keys.
- "participant": one participant's view, run through `Participant` exactly as a member runs it.
  Inputs: `participant` (i), `static_secret` (d_i), `payload` (what i sends everyone),
  `randomness` (the 64-byte chunks i's round 1 draws: a_0 .. a_{t-1}, then e_i), and either
  `round2` (the coordinator's msg_{2|i}) or `round1` (all n msg1 in participant order); then
  optionally `extension` and `signatures` (sig_1 || ... || sig_n) for round 3. Outputs: i's own
  `round1`, `secret_share`, `group_public_key`, `verification_shares` (Y_1 .. Y_n), `payloads`
  received, and with round 3 `transcript`, `signature` (sig_i) and `transcript_hash`.
- "coordinator": `Coordinator` fed `round1` (a list of {sender, message} in arrival order), then
  optionally `extension` and `signatures`. Outputs: `round2` (msg_{2|m} for m = 1..n) and with
  round 3 `transcript`, `transcript_hash`, and `group_public_key` / `verification_shares` read
  back from the verified certificate.

A negative case's error is {"type": class name, "culprit": index (absent = none), "reason":
`DkgError.reason`}; the checker requires the exact class, the exact culprit (absent means the
error must name no one) and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nacl import bindings as _sodium

from triple_ratchet.dkg.cocktail import (
    MAX_PARTICIPANTS,
    Polynomial,
    SessionParams,
    VssCommitment,
    aggregate_commitments,
    encrypt_share,
    h6,
    payload_extension,
    pop_message,
    schnorr_sign,
    sender_ecdh,
)
from triple_ratchet.dkg.cocktail_messages import (
    Round1Message,
    Round2Message,
    decode_signatures,
    encode_signatures,
)
from triple_ratchet.dkg.cocktail_participant import Coordinator, Participant
from triple_ratchet.dkg.ed25519 import IDENTITY, Point, Scalar
from triple_ratchet.errors import TripleRatchetError
from triple_ratchet.random import DeterministicRandom, RandomSource
from triple_ratchet.testvectors import (
    CaseResult,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)
from triple_ratchet.testvectors.dkg_additions import FixedRandom, Recording

KIND = "dkg-cocktail"
FILE = "dkg-cocktail.json"

_SCALAR_CHUNK = 64  # Scalar.random draws 64 bytes per scalar (spec §6.5)


# --- Checking -----------------------------------------------------------------------------------


def _params(inputs: dict[str, Any]) -> SessionParams:
    return SessionParams.create(
        bytes.fromhex(inputs["session_id"]),
        [bytes.fromhex(k) for k in inputs["static_keys"]],
        int(inputs["threshold"]),
    )


def _points_hex(points: Sequence[Point]) -> list[str]:
    return [p.to_bytes().hex() for p in points]


def _op_params(inputs: dict[str, Any]) -> dict[str, Any]:
    params = _params(inputs)
    return {"context": params.context.hex()}


def _op_participant(inputs: dict[str, Any]) -> dict[str, Any]:
    params = _params(inputs)
    index = int(inputs["participant"])
    if not 1 <= index <= params.n:
        raise AssertionError(f"participant {index} is not in the session")
    secret = Scalar.from_bytes(bytes.fromhex(inputs["static_secret"]))
    if Point.base_mul(secret) != params.static_keys[index - 1]:
        raise AssertionError("static_secret does not belong to the named participant")
    chunks = [bytes.fromhex(r) for r in inputs["randomness"]]
    rng = FixedRandom(chunks)
    p = Participant(params, secret, payload=bytes.fromhex(inputs["payload"]), rng=rng)
    if p.index != index:
        raise AssertionError(f"static key sits at index {p.index}, not {index}")
    got: dict[str, Any] = {"round1": p.round1().to_bytes().hex()}
    if len(rng.drawn) != len(chunks):
        raise AssertionError(f"round 1 drew {len(rng.drawn)} of {len(chunks)} chunks")
    if "round2" in inputs:
        shares = p.receive_round2(bytes.fromhex(inputs["round2"]))
    else:
        shares = p.receive_round1([bytes.fromhex(m) for m in inputs["round1"]])
    got["secret_share"] = shares.secret_share.to_bytes().hex()
    got["group_public_key"] = shares.group_public_key.to_bytes().hex()
    got["verification_shares"] = _points_hex(
        [shares.verification_share_of(m) for m in range(1, params.n + 1)]
    )
    got["payloads"] = [x.hex() for x in shares.payloads]
    if "signatures" in inputs:
        got["signature"] = p.sign_transcript(bytes.fromhex(inputs["extension"])).hex()
        got["transcript"] = p.transcript.to_bytes().hex()
        output = p.receive_signatures(bytes.fromhex(inputs["signatures"]))
        got["transcript_hash"] = output.transcript_hash.hex()
    return got


def _op_coordinator(inputs: dict[str, Any]) -> dict[str, Any]:
    params = _params(inputs)
    c = Coordinator(params)
    for item in inputs["round1"]:
        c.receive_round1(int(item["sender"]), bytes.fromhex(item["message"]))
    got: dict[str, Any] = {
        "round2": [c.round2_message(m).to_bytes().hex() for m in range(1, params.n + 1)]
    }
    if "signatures" in inputs:
        transcript = c.begin_certification(bytes.fromhex(inputs["extension"]))
        got["transcript"] = transcript.hex()
        for j, sig in enumerate(
            decode_signatures(bytes.fromhex(inputs["signatures"]), params.n), start=1
        ):
            c.receive_signature(j, sig)
        certificate = c.certificate()
        parsed = certificate.verify()
        agg = aggregate_commitments(parsed.commitments)
        got["transcript_hash"] = certificate.transcript_hash().hex()
        got["group_public_key"] = agg.public_key.to_bytes().hex()
        got["verification_shares"] = _points_hex(
            [agg.evaluate(m) for m in range(1, params.n + 1)]
        )
    return got


_OPERATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "params": _op_params,
    "participant": _op_participant,
    "coordinator": _op_coordinator,
}


def _match_error(exc: TripleRatchetError, expected: dict[str, Any]) -> None:
    """Stricter than `run_cases`: exact class, exact culprit (absent = none) and reason."""
    if type(exc).__name__ != expected.get("type"):
        raise AssertionError(f"raised {type(exc).__name__}, want {expected.get('type')}: {exc}")
    culprit = getattr(exc, "culprit", None)
    if culprit != expected.get("culprit"):
        raise AssertionError(f"culprit {culprit}, want {expected.get('culprit')}: {exc}")
    if "reason" in expected and getattr(exc, "reason", None) != expected["reason"]:
        raise AssertionError(f"reason {getattr(exc, 'reason', None)!r}, want "
                             f"{expected['reason']!r}")


def check_case(case: dict[str, Any]) -> None:
    """Run one case; raises AssertionError on a mismatch, or the case's expected error."""
    inputs = case["inputs"]
    operation = _OPERATIONS.get(inputs.get("operation"))
    if operation is None:
        raise AssertionError(f"unknown operation {inputs.get('operation')!r}")
    expected = case.get("error")
    try:
        got = operation(inputs)
    except TripleRatchetError as exc:
        if expected is not None:
            _match_error(exc, expected)
        raise
    if expected is not None:
        return  # run_cases reports the missing error
    outputs = case.get("outputs")
    if not outputs:
        raise AssertionError("a valid case must list outputs")
    for key, want in outputs.items():
        if key not in got:
            raise AssertionError(f"operation produces no output {key!r}")
        expect_equal(key, got[key], want)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, check_case)


# --- Generation ---------------------------------------------------------------------------------


class _Run:
    """One deterministic session: keys, payloads and every participant's honest round 1."""

    def __init__(self, label: str, n: int, t: int) -> None:
        rng = DeterministicRandom(b"dkg-cocktail vectors: " + label.encode())
        self.label = label
        self.session_id = rng(32)
        self.secrets = [Scalar.random_nonzero(rng) for _ in range(n)]
        self.keys = [Point.base_mul(d).to_bytes() for d in self.secrets]
        self.threshold = t
        self.params = SessionParams.create(self.session_id, self.keys, t)
        self.payloads = [rng(32) for _ in range(n)]
        self.extension = payload_extension(self.payloads)
        self.recordings: list[Recording] = []
        self.participants: list[Participant] = []
        self.msgs: list[Round1Message] = []
        for j in range(1, n + 1):
            rec = Recording(self.rng(f"round 1 of participant {j}"))
            p = Participant(self.params, self.secrets[j - 1], payload=self.payloads[j - 1],
                            rng=rec)
            self.msgs.append(p.round1())
            self.recordings.append(rec)
            self.participants.append(p)

    @property
    def n(self) -> int:
        return self.params.n

    def rng(self, purpose: str) -> DeterministicRandom:
        return DeterministicRandom(f"dkg-cocktail vectors: {self.label}: {purpose}".encode())

    def session(self) -> dict[str, Any]:
        return {"session_id": self.session_id.hex(), "static_keys": [k.hex() for k in self.keys],
                "threshold": self.threshold}

    def fresh(self, i: int) -> Participant:
        """Participant i again, in state ROUND1_SENT with the same round 1 (same randomness)."""
        p = Participant(self.params, self.secrets[i - 1], payload=self.payloads[i - 1],
                        rng=FixedRandom(self.recordings[i - 1].drawn))
        p.round1()
        return p

    def view(self, i: int, **round_inputs: Any) -> dict[str, Any]:
        return {
            "operation": "participant",
            **self.session(),
            "participant": i,
            "static_secret": self.secrets[i - 1].to_bytes().hex(),
            "payload": self.payloads[i - 1].hex(),
            "randomness": [r.hex() for r in self.recordings[i - 1].drawn],
            **round_inputs,
        }

    def msg2(self, msgs: Sequence[Round1Message], i: int) -> str:
        return Round2Message.project(msgs, i).to_bytes().hex()

    def with_msg(self, j: int, msg: Round1Message) -> list[Round1Message]:
        out = list(self.msgs)
        out[j - 1] = msg
        return out


@dataclass(frozen=True)
class _Fault:
    """One way a dealer can misbehave (each field defaults to honest)."""

    degree_delta: int = 0  # commitment of t + delta points (threshold elevation / lowering)
    identity_coefficient: int | None = None  # C_k replaced by the identity
    identity_ephemeral: bool = False
    bad_pop: bool = False  # z + 1
    bad_share_for: int | None = None  # s + 1
    garbage_for: int | None = None  # last tag byte flipped
    non_canonical_for: int | None = None  # share bytes ff..ff (>= L)
    short_for: int | None = None  # 47-byte ciphertext (one byte short of a bare share)


def _dealer(params: SessionParams, secret: Scalar, payload: bytes, rng: RandomSource,
            fault: _Fault) -> Round1Message:
    """msg_{1|j} built from explicit secrets with one chosen fault, signed as the faulty dealer
    would sign it (the PoP covers the faulty commitment), so only the named fault is wrong."""
    me = Point.base_mul(secret)
    poly = Polynomial.random(params.t + fault.degree_delta, rng)
    e = Scalar.random_nonzero(rng)
    ephemeral = IDENTITY if fault.identity_ephemeral else Point.base_mul(e)
    points = list(poly.commitment().points)
    if fault.identity_coefficient is not None:
        points[fault.identity_coefficient] = IDENTITY
    commitment = VssCommitment(tuple(points))
    pop = schnorr_sign(poly.secret, pop_message(params.context, commitment, ephemeral))
    if fault.bad_pop:
        pop = pop[:32] + (Scalar.from_bytes(pop[32:]) + Scalar(1)).to_bytes()
    ciphertexts = []
    for j, recipient in enumerate(params.static_keys, start=1):
        key = h6(sender_ecdh(e, secret, recipient), ephemeral, me, recipient, params.context)
        share = poly.evaluate(j) + (Scalar(1) if j == fault.bad_share_for else Scalar(0))
        if j == fault.non_canonical_for:
            ct = bytes(_sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
                b"\xff" * 32 + payload, None, key.nonce, key.key))
        else:
            ct = encrypt_share(key, share, payload)
        if j == fault.garbage_for:
            ct = ct[:-1] + bytes([ct[-1] ^ 1])
        if j == fault.short_for:
            ct = ct[:47]
        ciphertexts.append(ct)
    return Round1Message(commitment, pop, ephemeral, tuple(ciphertexts))


class _Cases:
    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []

    def valid(self, description: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        self._add({"description": description, "suite": None, "inputs": inputs,
                   "outputs": outputs})

    def error(self, description: str, inputs: dict[str, Any], reason: str,
              culprit: int | None) -> None:
        err: dict[str, Any] = {"type": "DkgError"}
        if culprit is not None:
            err["culprit"] = culprit
        err["reason"] = reason
        self._add({"description": description, "suite": None, "inputs": inputs, "error": err})

    def _add(self, case: dict[str, Any]) -> None:
        # Self-check: a generated case that does not behave as described is a generator bug.
        result = next(run_cases({"cases": [case]}, check_case))
        if result.status != "passed":
            raise AssertionError(f"generated case {case['description']!r}: {result.reason}")
        self.cases.append(case)


def _participant_outputs(run: _Run, i: int, p: Participant, signatures: bytes | None,
                         ) -> dict[str, Any]:
    s = p.shares
    out: dict[str, Any] = {
        "round1": run.msgs[i - 1].to_bytes().hex(),
        "secret_share": s.secret_share.to_bytes().hex(),
        "group_public_key": s.group_public_key.to_bytes().hex(),
        "verification_shares": _points_hex(
            [s.verification_share_of(m) for m in range(1, run.n + 1)]),
        "payloads": [x.hex() for x in s.payloads],
    }
    if signatures is not None:
        result = p.receive_signatures(signatures)
        out["transcript"] = result.transcript.to_bytes().hex()
        out["signature"] = signatures[64 * (i - 1): 64 * i].hex()
        out["transcript_hash"] = result.transcript_hash.hex()
    return out


def _full_run(cases: _Cases, run: _Run, *, via_round1: bool) -> bytes:
    """Every participant's view of an honest run; returns the aggregated signatures."""
    for p in run.participants:
        if via_round1:
            p.receive_round1(run.msgs)
        else:
            p.receive_round2(Round2Message.project(run.msgs, p.index))
    signatures = encode_signatures([p.sign_transcript(run.extension)
                                    for p in run.participants])
    n, t = run.n, run.threshold
    for p in run.participants:
        i = p.index
        rounds: dict[str, Any] = (
            {"round1": [m.to_bytes().hex() for m in run.msgs]} if via_round1
            else {"round2": run.msg2(run.msgs, i)}
        )
        how = "all msg1" if via_round1 else "msg2"
        cases.valid(f"{t}-of-{n} run, participant {i}'s view (round 2 from {how})",
                    run.view(i, **rounds, extension=run.extension.hex(),
                             signatures=signatures.hex()),
                    _participant_outputs(run, i, p, signatures))
    return signatures


def _params_cases(cases: _Cases, run: _Run, big: _Run) -> None:
    base = run.session()

    def setup(**changes: Any) -> dict[str, Any]:
        return {"operation": "params", **base, **changes}

    def keys_with(j: int, raw: bytes) -> list[str]:
        keys = list(base["static_keys"])
        keys[j - 1] = raw.hex()
        return keys

    cases.valid("2-of-3 session: context", setup(), {"context": run.params.context.hex()})
    cases.valid("3-of-5 session: context", {"operation": "params", **big.session()},
                {"context": big.params.context.hex()})
    rng = run.rng("many keys")
    many = [Point.base_mul(Scalar.random_nonzero(rng)).to_bytes().hex()
            for _ in range(MAX_PARTICIPANTS + 1)]
    at_max = SessionParams.create(run.session_id, [bytes.fromhex(k) for k in many[:-1]], 2)
    cases.valid(f"n = MAX_PARTICIPANTS = {MAX_PARTICIPANTS} is accepted",
                setup(static_keys=many[:-1], threshold=2), {"context": at_max.context.hex()})
    cases.error(f"n = {MAX_PARTICIPANTS + 1} exceeds MAX_PARTICIPANTS",
                setup(static_keys=many, threshold=2), "too-many-participants", None)
    cases.error("t = 0", setup(threshold=0), "bad-parameters", None)
    cases.error("t = n + 1", setup(threshold=4), "bad-parameters", None)
    cases.error("n = 0 (no static keys)", setup(static_keys=[], threshold=1), "bad-parameters",
                None)

    valid2 = bytes.fromhex(base["static_keys"][1])
    torsion8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
    p = 2**255 - 19
    bad_keys: list[tuple[str, int, bytes]] = [
        ("static key 2 is 31 bytes", 2, valid2[:31]),
        ("static key 2 is 33 bytes", 2, valid2 + b"\x00"),
        ("static key 3 is the identity (01 00..00)", 3, b"\x01" + bytes(31)),
        ("static key 1 is all zero (a point of order 4)", 1, bytes(32)),
        ("static key 2 is a point of order 8", 2, torsion8),
        ("static key 3 has a torsion component (P + T8, not in the subgroup)", 3,
         bytes(_sodium.crypto_core_ed25519_add(valid2, torsion8))),
        ("static key 2 is a non-canonical encoding (y = p + 2)", 2, (p + 2).to_bytes(32, "little")),
        ("static key 1 has y = 2 (not on the curve)", 1, (2).to_bytes(32, "little")),
    ]
    for description, j, raw in bad_keys:
        cases.error(description, setup(static_keys=keys_with(j, raw)), "invalid-static-key", j)
    cases.error("static key 3 repeats static key 1",
                setup(static_keys=keys_with(3, bytes.fromhex(base["static_keys"][0]))),
                "duplicate-static-key", 3)
    cases.error("static key 2 repeats static key 1 (two-member roster)",
                setup(static_keys=[base["static_keys"][0]] * 2, threshold=1),
                "duplicate-static-key", 2)


def _round2_cases(cases: _Cases, run: _Run, big: _Run) -> None:
    """Faulty dealers, relays and replays, as participant 1 of the 2-of-3 run sees them."""
    i = 1

    def faulty(j: int, fault: _Fault, target: _Run = run) -> Round1Message:
        return _dealer(target.params, target.secrets[j - 1], target.payloads[j - 1],
                       target.rng(f"faulty dealer {j}: {fault}"), fault)

    def bad_msg2(description: str, j: int, fault: _Fault, reason: str, *, target: _Run = run,
                 view: int = i) -> None:
        msgs = target.with_msg(j, faulty(j, fault, target))
        cases.error(description, target.view(view, round2=target.msg2(msgs, view)), reason, j)

    t = run.threshold
    bad_msg2(f"threshold elevation: dealer 3's commitment has {t + 1} points (t = {t}); the "
             "layout is fixed by t, so the extra point is read as the PoP's R and the PoP's z "
             "as E", 3, _Fault(degree_delta=1), "invalid-point")
    bad_msg2("commitment with t - 1 = 2 points in a 3-of-5 session (dealer 4); participant 2's "
             "view", 4, _Fault(degree_delta=-1), "invalid-point", target=big, view=2)
    bad_msg2("identity point as C_{2,1}", 2, _Fault(identity_coefficient=1), "invalid-point")
    bad_msg2("identity point as C_{3,0}", 3, _Fault(identity_coefficient=0), "invalid-point")
    bad_msg2("identity ephemeral key E_2", 2, _Fault(identity_ephemeral=True), "invalid-point")
    bad_msg2("dealer 2's PoP has z + 1", 2, _Fault(bad_pop=True), "bad-pop")
    bad_msg2("dealer 3's share to participant 1 is f_3(1) + 1 (fails C_3)", 3,
             _Fault(bad_share_for=1), "share-mismatch")
    bad_msg2("dealer 3's ciphertext to participant 1 does not decrypt (last tag byte flipped; "
             "it is the last byte of msg2)", 3, _Fault(garbage_for=1), "decryption-failed")
    bad_msg2("dealer 2's share to participant 1 decrypts to ff..ff (not a canonical scalar)", 2,
             _Fault(non_canonical_for=1), "non-canonical-plaintext")
    bad_msg2("dealer 2's ciphertext to participant 1 is framed as 47 bytes (< 48)", 2,
             _Fault(short_for=1), "bad-ciphertext-frame")
    bad_msg2("dealer 5's share to participant 3 fails C_5 (3-of-5, participant 3's view)", 5,
             _Fault(bad_share_for=3), "share-mismatch", target=big, view=3)

    # A round-1 message of participant 2 from another session (same keys, other session id, so
    # another context) replayed into this one: its PoP covers the other context.
    other_params = SessionParams.create(run.session_id[::-1], run.keys, run.threshold)
    other = Participant(other_params, run.secrets[1], payload=run.payloads[1],
                        rng=run.rng("other session"))
    replayed = run.with_msg(2, other.round1())
    cases.error("participant 2's round-1 message replayed from another session (all msg1)",
                run.view(i, round1=[m.to_bytes().hex() for m in replayed]), "bad-pop", 2)
    cases.error("participant 2's round-1 message replayed from another session (msg2)",
                run.view(i, round2=run.msg2(replayed, i)), "bad-pop", 2)

    # Our own entry replaced by another well-formed round 1 under our key: every public check
    # passes, so only the own-data check (§6.6 step 3) sees it; the relay is at fault, no one named.
    mine = Participant(run.params, run.secrets[i - 1], payload=run.payloads[i - 1],
                       rng=run.rng("substituted own message"))
    cases.error("our own round-1 data replaced in transit (no culprit)",
                run.view(i, round2=run.msg2(run.with_msg(i, mine.round1()), i)),
                "malformed-message", None)
    cases.error("msg2 with one trailing byte (no culprit)",
                run.view(i, round2=run.msg2(run.msgs, i) + "00"), "malformed-message", None)
    cases.error("only n - 1 round-1 messages (no culprit)",
                run.view(i, round1=[m.to_bytes().hex() for m in run.msgs[:-1]]),
                "malformed-message", None)


def _round3_cases(cases: _Cases, run: _Run, signatures: bytes) -> None:
    i = 1
    sigs = decode_signatures(signatures, run.n)
    bad = list(sigs)
    bad[2] = sigs[2][:32] + (Scalar.from_bytes(sigs[2][32:]) + Scalar(1)).to_bytes()
    honest = {"round2": run.msg2(run.msgs, i), "extension": run.extension.hex()}
    cases.error("certificate: sig_3 has z + 1", run.view(
        i, **honest, signatures=encode_signatures(bad).hex()), "bad-transcript-signature", 3)
    swapped = [sigs[0], sigs[2], sigs[1]]
    cases.error("certificate: sig_2 and sig_3 swapped", run.view(
        i, **honest, signatures=encode_signatures(swapped).hex()), "bad-transcript-signature", 2)
    cases.error("certificate: signatures one byte short (no culprit)", run.view(
        i, **honest, signatures=signatures[:-1].hex()), "malformed-message", None)

    # Split view: dealer 3 made two round-1 messages and the coordinator gave version A to
    # participant 1 and version B to participants 2 and 3. Round 2 succeeds everywhere; CertEq
    # catches it: participant 1 finds sig_2 (made over T_B) invalid on its T_A.
    version_b = Participant(run.params, run.secrets[2], payload=run.payloads[2],
                            rng=run.rng("dealer 3, second version"))
    msgs_b = run.with_msg(3, version_b.round1())
    p1 = run.fresh(1)
    p1.receive_round2(Round2Message.project(run.msgs, 1))
    p2 = run.fresh(2)
    p2.receive_round2(Round2Message.project(msgs_b, 2))
    version_b.receive_round2(Round2Message.project(msgs_b, 3))
    split = encode_signatures([p.sign_transcript(run.extension) for p in (p1, p2, version_b)])
    cases.error("split view: dealer 3's version A to participant 1, version B to 2 and 3; "
                "sig_2 does not verify on participant 1's transcript",
                run.view(1, **honest, signatures=split.hex()), "bad-transcript-signature", 2)


def _coordinator_cases(cases: _Cases, run: _Run, signatures: bytes) -> None:
    def arrivals(msgs: Sequence[tuple[int, Round1Message]]) -> list[dict[str, Any]]:
        return [{"sender": j, "message": m.to_bytes().hex()} for j, m in msgs]

    in_order = [(j, m) for j, m in enumerate(run.msgs, start=1)]
    ordered = {"operation": "coordinator", **run.session(), "round1": arrivals(in_order)}
    c = Coordinator(run.params)
    for j, m in in_order:
        c.receive_round1(j, m)
    transcript = c.begin_certification(run.extension)
    for j, sig in enumerate(decode_signatures(signatures, run.n), start=1):
        c.receive_signature(j, sig)
    cert = c.certificate()
    agg = aggregate_commitments(cert.verify().commitments)
    outputs = {
        "round2": [c.round2_message(m).to_bytes().hex() for m in range(1, run.n + 1)],
        "transcript": transcript.hex(),
        "transcript_hash": cert.transcript_hash().hex(),
        "group_public_key": agg.public_key.to_bytes().hex(),
        "verification_shares": _points_hex([agg.evaluate(m) for m in range(1, run.n + 1)]),
    }
    round3 = {"extension": run.extension.hex(), "signatures": signatures.hex()}
    cases.valid("coordinator: 2-of-3 run, msg2 per recipient and the certificate",
                {**ordered, **round3}, outputs)
    shuffled = [in_order[2], in_order[0], in_order[2], in_order[1]]
    cases.valid("coordinator: arrival order 3, 1, 3 (identical resend ignored), 2",
                {**ordered, "round1": arrivals(shuffled), **round3}, outputs)

    second = Participant(run.params, run.secrets[1], payload=run.payloads[1],
                         rng=run.rng("coordinator: second message of 2"))
    cases.error("coordinator: participant 2 sends two different round-1 messages",
                {**ordered, "round1": arrivals([*in_order, (2, second.round1())])},
                "malformed-message", 2)
    bad_pop = _dealer(run.params, run.secrets[1], run.payloads[1], run.rng("coordinator pop"),
                      _Fault(bad_pop=True))
    cases.error("coordinator: participant 2's PoP has z + 1",
                {**ordered, "round1": arrivals([in_order[0], (2, bad_pop)])}, "bad-pop", 2)
    other_params = SessionParams.create(run.session_id[::-1], run.keys, run.threshold)
    other = Participant(other_params, run.secrets[2], payload=run.payloads[2],
                        rng=run.rng("coordinator: other session"))
    cases.error("coordinator: participant 3's round-1 message from another session",
                {**ordered, "round1": arrivals([*in_order[:2], (3, other.round1())])},
                "bad-pop", 3)
    cases.error("coordinator: sender index 4 in a 3-member session (no culprit)",
                {**ordered, "round1": arrivals([(4, run.msgs[0])])}, "not-a-participant", None)
    sigs = list(decode_signatures(signatures, run.n))
    sigs[1] = sigs[2]
    cases.error("coordinator: participant 2 returns participant 3's signature",
                {**ordered, **round3, "signatures": encode_signatures(sigs).hex()},
                "bad-transcript-signature", 2)


def generate_cases() -> list[dict[str, Any]]:
    small = _Run("2-of-3", 3, 2)
    big = _Run("3-of-5", 5, 3)
    cases = _Cases()
    _params_cases(cases, small, big)
    sigs_small = _full_run(cases, small, via_round1=True)
    _full_run(cases, big, via_round1=False)
    _round2_cases(cases, small, big)
    _round3_cases(cases, small, sigs_small)
    _coordinator_cases(cases, small, sigs_small)
    return cases.cases


def generate() -> dict[str, dict[str, Any]]:
    return {FILE: document(
        KIND,
        "COCKTAIL(Ed25519, SHA-512) core (spec 06): session parameters, full runs from each "
        "participant's view, the coordinator, and negative cases naming the culprit",
        generate_cases(),
    )}


register(lambda: {KIND: verify})
register_generator(generate)
