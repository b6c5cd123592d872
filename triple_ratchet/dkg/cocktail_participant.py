"""COCKTAIL-DKG participant (sans-IO state machine), coordinator, and share recovery.

States and transitions (all checked here, nowhere else):

    READY --round1()--> ROUND1_SENT --receive_round1()/receive_round2()--> SHARES_VERIFIED
          --sign_transcript(ext)--> SIGNED --receive_signatures()--> DONE

A failed step raises (DkgError naming the culprit where one can be named) and leaves the
participant exactly as it was: the caller (the epoch-change layer) decides whether to abort the
attempt. A participant is single-use: one DKG session, one set of secrets.

The coordinator holds no secrets. In our system every member aggregates the round messages itself
(the hub only relays), so `Coordinator` is also what a member uses to collect round-1 messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from ..errors import DkgError, StateError, UsageError
from ..random import RandomSource, system_random
from .cocktail import (
    MAX_PAYLOAD_SIZE,
    SIGNATURE_SIZE,
    Fault,
    OpenedShare,
    Polynomial,
    SessionParams,
    VssCommitment,
    _fail,
    aggregate_commitments,
    encrypt_share,
    h6,
    open_share,
    pop_message,
    recipient_ecdh,
    schnorr_sign,
    schnorr_verify,
    sender_ecdh,
)
from .cocktail_messages import (
    Round1Message,
    Round2Entry,
    Round2Message,
    SuccessCertificate,
    Transcript,
    decode_recovery_bundle,
    decode_signatures,
    verify_transcript_signatures,
)
from .ed25519 import Point, Scalar


class State(Enum):
    READY = "ready"
    ROUND1_SENT = "round1-sent"
    SHARES_VERIFIED = "shares-verified"
    SIGNED = "signed"
    DONE = "done"


@dataclass(frozen=True)
class SharesVerified:
    """Round-2 result: participant i's secret share and the group's public outputs."""

    index: int
    secret_share: Scalar  # x_i (its repr is redacted)
    group_public_key: Point  # Y
    verification_share: Point  # Y_i
    aggregate_commitment: VssCommitment  # C_agg; Y_m = C_agg evaluated at m
    payloads: tuple[bytes, ...] = field(repr=False)  # payload_{j,i}, j = 1..n (may be secret)
    entries: tuple[Round2Entry, ...] = field(repr=False)

    def verification_share_of(self, m: int) -> Point:
        if not 1 <= m <= len(self.entries):
            raise UsageError("participant index out of range")
        return self.aggregate_commitment.evaluate(m)


@dataclass(frozen=True)
class DkgOutput:
    """A certified DKG result. `certificate` is the public success certificate."""

    shares: SharesVerified
    transcript: Transcript
    certificate: SuccessCertificate

    @property
    def secret_share(self) -> Scalar:
        return self.shares.secret_share

    @property
    def group_public_key(self) -> Point:
        return self.shares.group_public_key

    @property
    def verification_share(self) -> Point:
        return self.shares.verification_share

    @property
    def payloads(self) -> tuple[bytes, ...]:
        return self.shares.payloads

    @property
    def transcript_hash(self) -> bytes:
        return self.certificate.transcript_hash()


def _check_payloads(payload: bytes | Mapping[int, bytes], n: int) -> dict[int, bytes]:
    if isinstance(payload, bytes | bytearray):
        table = {j: bytes(payload) for j in range(1, n + 1)}
    else:
        if any(not 1 <= j <= n for j in payload):
            raise UsageError("payload recipient index out of range")
        table = {j: bytes(payload.get(j, b"")) for j in range(1, n + 1)}
    if any(len(p) > MAX_PAYLOAD_SIZE for p in table.values()):
        raise UsageError(f"payload larger than {MAX_PAYLOAD_SIZE} bytes")
    return table


class Participant:
    """Participant i of one COCKTAIL-DKG session."""

    def __init__(
        self,
        params: SessionParams,
        static_secret: Scalar,
        *,
        payload: bytes | Mapping[int, bytes] = b"",
        rng: RandomSource = system_random,
    ) -> None:
        if static_secret.is_zero():
            raise UsageError("static secret must be nonzero")
        public = Point.base_mul(static_secret)
        try:
            index = params.index_of(public)
        except DkgError as exc:
            raise UsageError("static key is not in the session's participant list") from exc
        self._params = params
        self._index = index
        self._d = static_secret
        self._public = public
        self._payloads = _check_payloads(payload, params.n)
        self._rng = rng
        self._state = State.READY
        self._round1: Round1Message | None = None
        self._shares: SharesVerified | None = None
        self._transcript: Transcript | None = None
        self._signature: bytes | None = None
        self._output: DkgOutput | None = None

    # --- inspection ------------------------------------------------------------------------------

    @property
    def index(self) -> int:
        return self._index

    @property
    def params(self) -> SessionParams:
        return self._params

    @property
    def state(self) -> State:
        return self._state

    @property
    def static_public_key(self) -> Point:
        return self._public

    @property
    def round1_message(self) -> Round1Message:
        if self._round1 is None:
            raise StateError("round 1 has not been run")
        return self._round1

    @property
    def shares(self) -> SharesVerified:
        if self._shares is None:
            raise StateError("shares are not verified yet")
        return self._shares

    @property
    def transcript(self) -> Transcript:
        if self._transcript is None:
            raise StateError("transcript not signed yet")
        return self._transcript

    @property
    def output(self) -> DkgOutput:
        if self._output is None:
            raise StateError("DKG not complete")
        return self._output

    def __repr__(self) -> str:
        return f"Participant(index={self._index}, n={self._params.n}, state={self._state.value})"

    def _expect(self, state: State) -> None:
        if self._state is not state:
            raise StateError(f"expected state {state.value}, in {self._state.value}")

    # --- round 1 ---------------------------------------------------------------------------------

    def round1(self) -> Round1Message:
        """Polynomial, commitment, ephemeral key, PoP and the n encrypted shares (msg_{1|i}).

        Randomness: t coefficients then the ephemeral secret, 64 rng bytes each (zero resampled).
        """
        self._expect(State.READY)
        p = self._params
        poly = Polynomial.random(p.t, self._rng)
        e = Scalar.random_nonzero(self._rng)
        ephemeral = Point.base_mul(e)
        commitment = poly.commitment()
        pop = schnorr_sign(poly.secret, pop_message(p.context, commitment, ephemeral))
        ciphertexts = []
        for j, recipient in enumerate(p.static_keys, start=1):
            key = h6(
                sender_ecdh(e, self._d, recipient), ephemeral, self._public, recipient, p.context
            )
            ciphertexts.append(encrypt_share(key, poly.evaluate(j), self._payloads[j]))
        msg = Round1Message(commitment, pop, ephemeral, tuple(ciphertexts))
        # The polynomial and e_i are dropped here: nothing later needs them (recovery works from
        # d_i and the ciphertexts), so they never outlive this call.
        self._round1 = msg
        self._state = State.ROUND1_SENT
        return msg

    # --- round 2 ---------------------------------------------------------------------------------

    def receive_round1(self, messages: Sequence[Round1Message | bytes]) -> SharesVerified:
        """Process the full ordered list of round-1 messages (what our members aggregate)."""
        self._expect(State.ROUND1_SENT)
        p = self._params
        if len(messages) != p.n:
            raise _fail(Fault.MALFORMED_MESSAGE, None, f"need {p.n} round-1 messages")
        entries: list[Round2Entry] = []
        for j, m in enumerate(messages, start=1):
            msg = m if isinstance(m, Round1Message) else Round1Message.from_bytes(m, p.t, p.n, j)
            if len(msg.ciphertexts) != p.n:
                raise _fail(Fault.MALFORMED_MESSAGE, j, "wrong number of ciphertexts")
            entries.append(msg.for_recipient(self._index))
        return self._receive_entries(entries)

    def receive_round2(self, message: Round2Message | bytes) -> SharesVerified:
        """Process the coordinator's msg_{2|i} (the recipient-specific projection)."""
        self._expect(State.ROUND1_SENT)
        p = self._params
        msg = (
            message
            if isinstance(message, Round2Message)
            else Round2Message.from_bytes(message, p.t, p.n)
        )
        if len(msg.entries) != p.n:
            raise _fail(Fault.MALFORMED_MESSAGE, None, f"need {p.n} round-2 entries")
        return self._receive_entries(list(msg.entries))

    def _receive_entries(self, entries: Sequence[Round2Entry]) -> SharesVerified:
        self._expect(State.ROUND1_SENT)
        p = self._params
        i = self._index
        # Public checks first (commitment length, points, PoP) so a blame for them never depends
        # on our secret key; then the ciphertexts.
        for j, entry in enumerate(entries, start=1):
            check_public_entry(p, j, entry)
        mine = entries[i - 1]
        sent = self.round1_message
        if (mine.commitment, mine.pop, mine.ephemeral) != (
            sent.commitment,
            sent.pop,
            sent.ephemeral,
        ):
            raise _fail(
                Fault.MALFORMED_MESSAGE, None, "our own round-1 data was altered in transit"
            )
        opened: list[OpenedShare] = []
        for j, entry in enumerate(entries, start=1):
            sender = p.static_keys[j - 1]
            key = h6(
                recipient_ecdh(self._d, entry.ephemeral, sender),
                entry.ephemeral,
                sender,
                self._public,
                p.context,
            )
            opened.append(open_share(key, entry.ciphertext, entry.commitment, i, j))
        result = finalize_shares(i, [e.commitment for e in entries], opened, entries)
        self._shares = result
        self._state = State.SHARES_VERIFIED
        return result

    # --- round 3 ---------------------------------------------------------------------------------

    def sign_transcript(self, extension: bytes = b"") -> bytes:
        """Build T (with the application extension) and return sig_i = Sign(d_i, T)."""
        self._expect(State.SHARES_VERIFIED)
        transcript = Transcript.build(self._params, self.shares.entries, extension)
        signature = schnorr_sign(self._d, transcript.to_bytes())
        self._transcript = transcript
        self._signature = signature
        self._state = State.SIGNED
        return signature

    def receive_signatures(self, signatures: Sequence[bytes] | bytes) -> DkgOutput:
        """Verify all n CertEq signatures on our T. A coordinator that showed participants
        different round-2 data (split view) is caught here: the others signed another T."""
        self._expect(State.SIGNED)

        sigs = (
            decode_signatures(signatures, self._params.n)
            if isinstance(signatures, bytes)
            else tuple(signatures)
        )
        t_bytes = self.transcript.to_bytes()
        verify_transcript_signatures(t_bytes, self._params.static_keys, sigs)
        output = DkgOutput(self.shares, self.transcript, SuccessCertificate(t_bytes, sigs))
        self._output = output
        self._state = State.DONE
        return output


def check_public_entry(params: SessionParams, j: int, entry: Round2Entry) -> None:
    """Checks anyone can make on participant j's public round-1 data: exactly t non-identity
    commitment points (no threshold elevation), a non-identity ephemeral key, a valid PoP
    over this session's context (a message replayed from another session fails here)."""
    if entry.commitment.threshold != params.t:
        raise _fail(
            Fault.COMMITMENT_LENGTH,
            j,
            f"commitment has {entry.commitment.threshold} points, not {params.t}",
        )
    if any(c.is_identity() for c in entry.commitment.points) or entry.ephemeral.is_identity():
        raise _fail(Fault.INVALID_POINT, j, "identity point in round-1 data")
    if len(entry.pop) != SIGNATURE_SIZE or not schnorr_verify(
        entry.commitment.public_key,
        pop_message(params.context, entry.commitment, entry.ephemeral),
        entry.pop,
    ):
        raise _fail(Fault.BAD_POP, j, "proof of possession does not verify")


def finalize_shares(
    index: int,
    commitments: Sequence[VssCommitment],
    opened: Sequence[OpenedShare],
    entries: Sequence[Round2Entry],
) -> SharesVerified:
    """x_i = sum s_{j,i}, Y = sum C_{j,0}, Y_i = C_agg(i); then (defence in depth) x_i B == Y_i."""
    x = Scalar.from_int(0)
    for o in opened:
        x = x + o.share
    agg = aggregate_commitments(commitments)
    y_i = agg.evaluate(index)
    if Point.base_mul(x) != y_i:
        raise _fail(Fault.FINAL_CHECK_FAILED, None, "x_i * B != Y_i")
    return SharesVerified(
        index, x, agg.public_key, y_i, agg, tuple(o.payload for o in opened), tuple(entries)
    )


# --- Coordinator --------------------------------------------------------------------------------


class Coordinator:
    """Collects round-1 messages and signatures; holds no secrets.

    It checks what it can publicly (format, commitment length, PoP) so a bad message is named
    early, and it refuses a second, different round-1 message from the same sender.
    """

    def __init__(self, params: SessionParams) -> None:
        self._params = params
        self._round1: dict[int, Round1Message] = {}
        self._transcript: bytes | None = None
        self._signatures: dict[int, bytes] = {}

    def __repr__(self) -> str:
        return f"Coordinator(n={self._params.n}, received={len(self._round1)})"

    def _check_sender(self, sender: int) -> None:
        if not 1 <= sender <= self._params.n:
            raise _fail(Fault.NOT_A_PARTICIPANT, None, f"sender index {sender} out of range")

    def receive_round1(self, sender: int, message: Round1Message | bytes) -> None:
        self._check_sender(sender)
        p = self._params
        msg = (
            message
            if isinstance(message, Round1Message)
            else Round1Message.from_bytes(message, p.t, p.n, sender)
        )
        if len(msg.ciphertexts) != p.n:
            raise _fail(Fault.MALFORMED_MESSAGE, sender, "wrong number of ciphertexts")
        check_public_entry(p, sender, msg.for_recipient(1))
        previous = self._round1.get(sender)
        if previous is not None:
            if previous != msg:
                raise _fail(Fault.MALFORMED_MESSAGE, sender, "two different round-1 messages")
            return
        self._round1[sender] = msg

    @property
    def round1_complete(self) -> bool:
        return len(self._round1) == self._params.n

    def missing(self) -> tuple[int, ...]:
        """Indices that have not sent round 1 (for a timeout abort)."""
        return tuple(j for j in range(1, self._params.n + 1) if j not in self._round1)

    def round1_messages(self) -> tuple[Round1Message, ...]:
        if not self.round1_complete:
            raise StateError("round 1 incomplete")
        return tuple(self._round1[j] for j in range(1, self._params.n + 1))

    def round2_message(self, recipient: int) -> Round2Message:
        self._check_sender(recipient)
        return Round2Message.project(self.round1_messages(), recipient)

    def begin_certification(self, extension: bytes = b"") -> bytes:
        """Fix T (the extension is application data the coordinator is told); returns T."""
        messages = self.round1_messages()
        t = Transcript.build(self._params, [m.for_recipient(1) for m in messages], extension)
        self._transcript = t.to_bytes()
        self._signatures = {}
        return self._transcript

    def receive_signature(self, sender: int, signature: bytes) -> None:
        self._check_sender(sender)
        if self._transcript is None:
            raise StateError("begin_certification() first")
        if not schnorr_verify(self._params.static_keys[sender - 1], self._transcript, signature):
            raise _fail(
                Fault.BAD_TRANSCRIPT_SIGNATURE, sender, "transcript signature does not verify"
            )
        self._signatures[sender] = signature

    def certificate(self) -> SuccessCertificate:
        if self._transcript is None or len(self._signatures) != self._params.n:
            raise StateError("not all signatures received")
        return SuccessCertificate(
            self._transcript, tuple(self._signatures[j] for j in range(1, self._params.n + 1))
        )


# --- Recovery -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recovered:
    """What recovery reconstructs from d_i, the certificate and C^rec_i."""

    index: int
    secret_share: Scalar
    group_public_key: Point
    verification_shares: tuple[Point, ...]  # Y_1 .. Y_n
    payloads: tuple[bytes, ...] = field(repr=False)
    transcript: Transcript

    @property
    def verification_share(self) -> Point:
        return self.verification_shares[self.index - 1]


def recover(
    static_secret: Scalar, certificate: SuccessCertificate, bundle: bytes | Sequence[bytes]
) -> Recovered:
    """The spec's Recovery Algorithm: verify the certificate, find our index, decrypt and verify
    every share, recompute x_i, Y and every Y_m."""
    transcript = certificate.verify()
    public = Point.base_mul(static_secret)
    matches = [j for j, p in enumerate(transcript.static_keys, start=1) if p == public]
    if len(matches) != 1:
        raise _fail(Fault.NOT_A_PARTICIPANT, None, "static key not (uniquely) in the transcript")
    i = matches[0]
    n = transcript.n
    if isinstance(bundle, bytes):
        ciphertexts = decode_recovery_bundle(bundle, n)
    else:
        ciphertexts = tuple(bundle)
        if len(ciphertexts) != n:
            raise _fail(Fault.MALFORMED_MESSAGE, None, f"need {n} ciphertexts")
    opened = []
    for j in range(1, n + 1):
        sender = transcript.static_keys[j - 1]
        ephemeral = transcript.ephemerals[j - 1]
        key = h6(
            recipient_ecdh(static_secret, ephemeral, sender),
            ephemeral,
            sender,
            public,
            transcript.context,
        )
        opened.append(open_share(key, ciphertexts[j - 1], transcript.commitments[j - 1], i, j))
    x = Scalar.from_int(0)
    for o in opened:
        x = x + o.share
    agg = aggregate_commitments(transcript.commitments)
    shares = tuple(agg.evaluate(m) for m in range(1, n + 1))
    if Point.base_mul(x) != shares[i - 1]:
        raise _fail(Fault.FINAL_CHECK_FAILED, None, "x_i * B != Y_i")
    return Recovered(i, x, agg.public_key, shares, tuple(o.payload for o in opened), transcript)


__all__ = [
    "Coordinator",
    "DkgOutput",
    "Participant",
    "Recovered",
    "SharesVerified",
    "State",
    "check_public_entry",
    "finalize_shares",
    "recover",
]
