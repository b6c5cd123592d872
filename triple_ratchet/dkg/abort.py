"""Aborts with evidence, and how anyone checks them (spec 07, "Aborts and blame").

An abort is signed by the aborter's DKG static key (own label) and gives one reason:

- timeout: names the participants that did not answer (nothing to prove; the app decides);
- equivocation: two conflicting messages, each validly signed by the same participant;
- blame: names a dealer and carries the dealer's signed round-1 message and, when the fault is in
  a ciphertext, the accuser's two ECDH values with the dealer plus a DLEQ proof that they use the
  accuser's DKG key. Anyone re-derives the H6 key, decrypts, and checks share and payload.

The rule for every kind: evidence that is not authentic (a bad dealer signature, a DLEQ proof
that fails, malformed bytes) is *rejected* and blames no one. Authentic evidence always convicts
someone: the accused if the fault is really there, otherwise the accuser (a false accusation).
Culprits are COCKTAIL participant indices (1..n).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import pairwise
from typing import NoReturn

from triple_ratchet import cbor
from triple_ratchet.dkg import dleq
from triple_ratchet.dkg.attempt import MAX_SIGNED_ROUND1_SIZE, SignedRound1
from triple_ratchet.dkg.cocktail import (
    MAX_PARTICIPANTS,
    EcdhValues,
    SessionParams,
    classify_share_with_ecdh,
)
from triple_ratchet.dkg.cocktail_participant import check_public_entry
from triple_ratchet.dkg.ed25519 import POINT_SIZE, Point, Scalar
from triple_ratchet.dkg.signature import DKG_SIGNATURE_SIZE, dkg_sign, dkg_verify
from triple_ratchet.errors import (
    DecodeError,
    DkgError,
    LimitExceeded,
    ProtocolError,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.random import RandomSource, system_random

LABEL_DKG_ABORT_SIGNATURE = b"triple-ratchet v1 dkg abort"
LABEL_DKG_BLAME_PROOF = b"triple-ratchet v1 dkg blame proof"

#: CBOR message type of an abort in the attempt's DKG mailbox.
MSG_DKG_ABORT = 0x37

MAX_EVIDENCE_MESSAGE_LEN = MAX_SIGNED_ROUND1_SIZE
"""An equivocation carries two messages, each at most a signed round-1 message."""
MAX_ABORT_SIZE = 2 * MAX_SIGNED_ROUND1_SIZE + 1024
"""Two evidence messages plus the envelope."""

REASON_FALSE_ACCUSATION = "false-accusation"
REASON_EQUIVOCATION = "equivocation"
REASON_TIMEOUT = "timeout"


class AbortReason(IntEnum):
    TIMEOUT = 1
    EQUIVOCATION = 2
    BLAME = 3


class EquivocationKind(IntEnum):
    ROUND1 = 1  # two signed round-1 messages (checked here)
    ANNOUNCEMENT = 2  # two key announcements (checked by the epoch layer's callback)


AnnouncementCheck = Callable[[bytes], tuple[int, bytes]]
"""Verify a signed key announcement for this attempt; return (participant index 1..n, the signed
content without the signature). Raise a `TripleRatchetError` if it does not verify."""


@dataclass(frozen=True)
class Timeout:
    missing: tuple[int, ...]


@dataclass(frozen=True, repr=False)
class Equivocation:
    kind: EquivocationKind
    accused: int
    first: bytes
    second: bytes

    def __repr__(self) -> str:
        return f"Equivocation(kind={self.kind.name}, accused={self.accused})"


@dataclass(frozen=True, repr=False)
class EcdhEvidence:
    """The accuser's d·E_j and d·P_j with dealer j, and the DLEQ proof tying them to its key.

    Publishing them reveals the one disputed share and payload, which the abort makes useless."""

    ephemeral: bytes
    static: bytes
    proof: bytes

    def __repr__(self) -> str:
        return "EcdhEvidence(...)"


@dataclass(frozen=True, repr=False)
class Blame:
    culprit: int
    dealer_round1: bytes  # the dealer's SignedRound1, exactly as received
    ecdh: EcdhEvidence | None

    def __repr__(self) -> str:
        return f"Blame(culprit={self.culprit}, ecdh={'yes' if self.ecdh else 'no'})"


Evidence = Timeout | Equivocation | Blame


def _reason_of(evidence: Evidence) -> AbortReason:
    if isinstance(evidence, Timeout):
        return AbortReason.TIMEOUT
    if isinstance(evidence, Equivocation):
        return AbortReason.EQUIVOCATION
    return AbortReason.BLAME


def _evidence_cbor(evidence: Evidence) -> list[cbor.CborEncodable]:
    if isinstance(evidence, Timeout):
        return list(evidence.missing)
    if isinstance(evidence, Equivocation):
        return [int(evidence.kind), evidence.accused, evidence.first, evidence.second]
    ecdh = evidence.ecdh
    return [
        evidence.culprit,
        evidence.dealer_round1,
        None if ecdh is None else [ecdh.ephemeral, ecdh.static, ecdh.proof],
    ]


@dataclass(frozen=True)
class Abort:
    """[MSG_DKG_ABORT, aborter, reason, evidence, signature]."""

    aborter: int
    evidence: Evidence
    signature: bytes

    @property
    def reason(self) -> AbortReason:
        return _reason_of(self.evidence)

    def body(self) -> bytes:
        """What the signature covers: the canonical encoding of the first four fields."""
        return _body(self.aborter, self.evidence)

    def to_bytes(self) -> bytes:
        return cbor.encode([MSG_DKG_ABORT, self.aborter, int(self.reason),
                            _evidence_cbor(self.evidence), self.signature])

    @classmethod
    def from_bytes(cls, data: bytes) -> Abort:
        """Strict structural decoding; `check_signature` / `judge` do the rest."""
        if not isinstance(data, bytes | bytearray) or len(data) > MAX_ABORT_SIZE:
            raise LimitExceeded("abort too large")
        items = cbor.as_list(
            cbor.decode(bytes(data), max_size=MAX_ABORT_SIZE,
                        max_items=MAX_PARTICIPANTS + 32, max_depth=4),
            "abort", length=5,
        )
        if cbor.as_int(items[0], "message type") != MSG_DKG_ABORT:
            raise DecodeError("not an abort")
        aborter = cbor.as_int(items[1], "aborter", minimum=1, maximum=MAX_PARTICIPANTS)
        reason_code = cbor.as_int(items[2], "reason", minimum=1, maximum=3)
        reason = AbortReason(reason_code)
        ev = items[3]
        evidence: Evidence
        if reason is AbortReason.TIMEOUT:
            raw = cbor.as_list(ev, "missing participants")
            if not 1 <= len(raw) <= MAX_PARTICIPANTS:
                raise DecodeError("a timeout names 1..MAX_PARTICIPANTS participants")
            missing = tuple(cbor.as_int(x, "participant", minimum=1, maximum=MAX_PARTICIPANTS)
                            for x in raw)
            if any(a >= b for a, b in pairwise(missing)):
                raise DecodeError("missing participants must be strictly ascending")
            evidence = Timeout(missing)
        elif reason is AbortReason.EQUIVOCATION:
            raw = cbor.as_list(ev, "equivocation", length=4)
            kind = EquivocationKind(cbor.as_int(raw[0], "equivocation kind", minimum=1,
                                                maximum=2))
            accused = cbor.as_int(raw[1], "accused", minimum=1, maximum=MAX_PARTICIPANTS)
            first = cbor.as_bytes(raw[2], "first message", max_length=MAX_EVIDENCE_MESSAGE_LEN)
            second = cbor.as_bytes(raw[3], "second message", max_length=MAX_EVIDENCE_MESSAGE_LEN)
            evidence = Equivocation(kind, accused, first, second)
        else:
            raw = cbor.as_list(ev, "blame", length=3)
            culprit = cbor.as_int(raw[0], "culprit", minimum=1, maximum=MAX_PARTICIPANTS)
            dealer = cbor.as_bytes(raw[1], "dealer round-1", max_length=MAX_SIGNED_ROUND1_SIZE)
            ecdh = None
            if raw[2] is not None:
                e = cbor.as_list(raw[2], "ECDH evidence", length=3)
                ecdh = EcdhEvidence(
                    cbor.as_bytes(e[0], "ephemeral ECDH", length=POINT_SIZE),
                    cbor.as_bytes(e[1], "static ECDH", length=POINT_SIZE),
                    cbor.as_bytes(e[2], "DLEQ proof", length=dleq.PROOF_SIZE),
                )
            evidence = Blame(culprit, dealer, ecdh)
        signature = cbor.as_bytes(items[4], "signature", length=DKG_SIGNATURE_SIZE)
        return cls(aborter, evidence, signature)

    def check_signature(self, params: SessionParams) -> None:
        """The aborter must be a participant (new roster) and have signed this abort."""
        if not 1 <= self.aborter <= params.n:
            raise ProtocolError(f"aborter {self.aborter} is not a participant of this attempt")
        dkg_verify(params.static_keys[self.aborter - 1], LABEL_DKG_ABORT_SIGNATURE,
                   params.context, self.body(), self.signature)


def _body(aborter: int, evidence: Evidence) -> bytes:
    return cbor.encode([MSG_DKG_ABORT, aborter, int(_reason_of(evidence)),
                        _evidence_cbor(evidence)])


# --- Verdicts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The outcome of an authentic abort. `culprit` is None only for a timeout."""

    reason: AbortReason
    aborter: int
    culprit: int | None
    fault: str
    unresponsive: tuple[int, ...] = ()

    @property
    def upheld(self) -> bool:
        """False when the aborter itself was convicted (a false accusation)."""
        return self.fault != REASON_FALSE_ACCUSATION

    def error(self) -> DkgError:
        if self.culprit is None:
            return DkgError(f"attempt aborted: {self.fault}", culprit=None, reason=self.fault)
        return DkgError(f"participant {self.culprit}: {self.fault}", culprit=self.culprit,
                        reason=self.fault)


def _check_index(params: SessionParams, index: int, what: str) -> None:
    if not 1 <= index <= params.n:
        raise ProtocolError(f"{what} {index} is not a participant of this attempt")


def blame_message(params: SessionParams, accuser: int, culprit: int, dealer: SignedRound1) -> bytes:
    """The message the DLEQ proof binds: session context, both indices, the disputed message."""
    return (
        LABEL_DKG_BLAME_PROOF
        + len(params.context).to_bytes(8, "little") + params.context
        + accuser.to_bytes(4, "little") + culprit.to_bytes(4, "little")
        + hashlib.sha512(dealer.message).digest()
    )


def judge_blame(params: SessionParams, accuser: int, blame: Blame) -> Verdict:
    """Check a blame's evidence; the aborter's signature must already be checked.

    Raises (rejected, no one blamed): `DecodeError` for malformed evidence, `InvalidSignature`
    for a dealer signature that does not verify (relay tampering), `AuthenticationError` for a
    DLEQ proof that fails, `ProtocolError` for indices that do not fit.
    """
    _check_index(params, accuser, "accuser")
    _check_index(params, blame.culprit, "culprit")
    if blame.culprit == accuser:
        raise ProtocolError("a participant cannot blame itself")
    dealer = SignedRound1.from_bytes(blame.dealer_round1)
    if dealer.sender != blame.culprit:
        raise ProtocolError("the evidence is not a message of the accused dealer")
    dealer.check_signature(params)

    def upheld(fault: str) -> Verdict:
        return Verdict(AbortReason.BLAME, accuser, blame.culprit, fault)

    refuted = Verdict(AbortReason.BLAME, accuser, accuser, REASON_FALSE_ACCUSATION)

    # Public checks first: malformed or with a bad PoP is the dealer's own signed fault.
    try:
        msg = dealer.parse(params)
        check_public_entry(params, blame.culprit, msg.for_recipient(accuser))
    except DkgError as exc:
        return upheld(exc.reason)
    if blame.ecdh is None:
        return refuted
    s_e = Point.from_bytes(blame.ecdh.ephemeral)
    s_d = Point.from_bytes(blame.ecdh.static)
    dealer_static = params.static_keys[blame.culprit - 1]
    accuser_static = params.static_keys[accuser - 1]
    dleq.verify(accuser_static, [msg.ephemeral, dealer_static], [s_e, s_d],
                blame_message(params, accuser, blame.culprit, dealer),
                dleq.DleqProof.from_bytes(blame.ecdh.proof))
    fault, opened = classify_share_with_ecdh(
        EcdhValues(s_e.to_bytes(), s_d.to_bytes()), params=params, sender_index=blame.culprit,
        recipient_index=accuser, ephemeral=msg.ephemeral,
        ciphertext=msg.ciphertexts[accuser - 1], commitment=msg.commitment,
    )
    if fault is not None:
        return upheld(fault.value)
    assert opened is not None
    try:
        dealer.check_payload(opened.payload)
    except DkgError as exc:
        return upheld(exc.reason)
    return refuted




def _signed_content(
    params: SessionParams, ev: Equivocation, check_announcement: AnnouncementCheck | None
) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    if ev.kind is EquivocationKind.ROUND1:
        out = []
        for raw in (ev.first, ev.second):
            m = SignedRound1.from_bytes(raw)
            m.check_signature(params)
            out.append((m.sender, m.payload_hash + m.message))
        return out[0], out[1]
    if check_announcement is None:
        raise UsageError("announcement equivocation needs the epoch layer's announcement check")
    return check_announcement(ev.first), check_announcement(ev.second)


def judge_equivocation(
    params: SessionParams, ev: Equivocation, check_announcement: AnnouncementCheck | None = None
) -> int:
    """Both messages must verify as the accused's and differ in what was signed (signatures are
    randomized, so two signatures over one content are not equivocation). A pair that does not
    qualify is rejected (`ProtocolError`), blaming no one. Returns the convicted index."""
    _check_index(params, ev.accused, "accused")
    (sender_a, content_a), (sender_b, content_b) = _signed_content(params, ev, check_announcement)
    if sender_a != ev.accused or sender_b != ev.accused:
        raise ProtocolError("the evidence messages are not both from the accused")
    if content_a == content_b:
        raise ProtocolError("the two messages sign the same content: not equivocation")
    return ev.accused


def judge(
    params: SessionParams, abort: Abort, *, check_announcement: AnnouncementCheck | None = None
) -> Verdict:
    """Check an abort completely (signature, then evidence) and return its verdict."""
    abort.check_signature(params)
    ev = abort.evidence
    if isinstance(ev, Timeout):
        for index in ev.missing:
            _check_index(params, index, "missing participant")
        if abort.aborter in ev.missing:
            raise ProtocolError("an aborter cannot name itself as unresponsive")
        return Verdict(AbortReason.TIMEOUT, abort.aborter, None, REASON_TIMEOUT, ev.missing)
    if isinstance(ev, Equivocation):
        culprit = judge_equivocation(params, ev, check_announcement)
        return Verdict(AbortReason.EQUIVOCATION, abort.aborter, culprit, REASON_EQUIVOCATION)
    return judge_blame(params, abort.aborter, ev)


def verify_blame(params: SessionParams, abort: Abort | bytes) -> NoReturn:
    """Check a blame abort and raise its outcome: `DkgError(culprit=dealer)` if the accusation
    holds, `DkgError(culprit=accuser, reason="false-accusation")` if it does not; evidence that is
    not authentic raises the rejecting error (no culprit)."""
    if not isinstance(abort, Abort):
        abort = Abort.from_bytes(abort)
    if not isinstance(abort.evidence, Blame):
        raise UsageError("not a blame abort")
    raise judge(params, abort).error()


# --- Making aborts ------------------------------------------------------------------------------


def _aborter_index(params: SessionParams, static_secret: Scalar) -> int:
    if not isinstance(static_secret, Scalar) or static_secret.is_zero():
        raise UsageError("static secret must be a non-zero scalar")
    try:
        return params.index_of(Point.base_mul(static_secret))
    except DkgError:
        raise UsageError("static key is not in the session's participant list") from None


def sign_abort(params: SessionParams, static_secret: Scalar, evidence: Evidence,
               rng: RandomSource = system_random) -> Abort:
    """Sign `evidence` as an abort. Checks nothing about the evidence: use the `make_*`
    functions, which refuse evidence that would be rejected or convict the sender."""
    aborter = _aborter_index(params, static_secret)
    signature = dkg_sign(static_secret, LABEL_DKG_ABORT_SIGNATURE, params.context,
                         _body(aborter, evidence), rng)
    return Abort(aborter, evidence, signature)


def make_timeout(params: SessionParams, static_secret: Scalar, missing: Sequence[int],
                 rng: RandomSource = system_random) -> Abort:
    aborter = _aborter_index(params, static_secret)
    names = tuple(sorted(set(missing)))
    if not names or any(not 1 <= m <= params.n or m == aborter for m in names):
        raise UsageError("name 1..n other participants that did not answer")
    return sign_abort(params, static_secret, Timeout(names), rng)


def make_equivocation(
    params: SessionParams,
    static_secret: Scalar,
    kind: EquivocationKind,
    accused: int,
    first: bytes,
    second: bytes,
    rng: RandomSource = system_random,
    *,
    check_announcement: AnnouncementCheck | None = None,
) -> Abort:
    """Refuses (`UsageError`) evidence that would not convict: never send a rejected abort."""
    evidence = Equivocation(kind, accused, bytes(first), bytes(second))
    try:
        judge_equivocation(params, evidence, check_announcement)
    except TripleRatchetError as exc:
        raise UsageError(f"this equivocation evidence would be rejected: {exc}") from exc
    return sign_abort(params, static_secret, evidence, rng)


def make_blame(params: SessionParams, static_secret: Scalar, dealer: SignedRound1,
               rng: RandomSource = system_random) -> Abort:
    """Accuse `dealer.sender` with evidence. Refuses (`UsageError`) when the dealer's signature
    does not verify (the relay tampered: wait or time out instead) and when the evidence would
    refute the accusation, so an honest member never convicts itself."""
    accuser = _aborter_index(params, static_secret)
    culprit = dealer.sender
    try:
        dealer.check_signature(params)
    except TripleRatchetError as exc:
        raise UsageError(f"not blaming: the dealer's signature does not verify ({exc})") from exc
    ecdh: EcdhEvidence | None = None
    try:
        msg = dealer.parse(params)
        check_public_entry(params, culprit, msg.for_recipient(accuser))
    except DkgError:
        pass  # a public fault: the signed message alone convicts
    else:
        dealer_static = params.static_keys[culprit - 1]
        (s_e, s_d), proof = dleq.prove(
            static_secret, [msg.ephemeral, dealer_static],
            blame_message(params, accuser, culprit, dealer), rng,
        )
        ecdh = EcdhEvidence(s_e.to_bytes(), s_d.to_bytes(), proof.to_bytes())
    evidence = Blame(culprit, dealer.to_bytes(), ecdh)
    verdict = judge_blame(params, accuser, evidence)
    if not verdict.upheld:
        raise UsageError("not blaming: the dealer's share and payload check out")
    return sign_abort(params, static_secret, evidence, rng)


__all__ = [
    "LABEL_DKG_ABORT_SIGNATURE",
    "LABEL_DKG_BLAME_PROOF",
    "MAX_ABORT_SIZE",
    "MSG_DKG_ABORT",
    "REASON_EQUIVOCATION",
    "REASON_FALSE_ACCUSATION",
    "REASON_TIMEOUT",
    "Abort",
    "AbortReason",
    "AnnouncementCheck",
    "Blame",
    "EcdhEvidence",
    "Equivocation",
    "EquivocationKind",
    "Timeout",
    "Verdict",
    "judge",
    "judge_blame",
    "judge_equivocation",
    "make_blame",
    "make_equivocation",
    "make_timeout",
    "sign_abort",
    "verify_blame",
]
