"""The epoch-change state machine: one DKG attempt as a member sees it (spec 11).

Everything that changes an attempt's state lives here, declared in one table (`TRANSITIONS`) and
checked by `_move`. An `Attempt` is an immutable value; `receive_item` returns a `Step` with the
new value, what to report and what to send, and the session commits it only if nothing raised.

The attempt advances only on items read from its DKG mailbox, our own included, so every member
goes through the same sequence in the hub's one order: the n-th announcement read starts round 1,
the n-th round-1 message read starts round 3, and for each member the first of {a valid abort,
the n-th round-3 signature} read decides the attempt.

A participant's secrets for the attempt (its DKG static key, its round-1 randomness, its payload
and its per-epoch signing key) all derive from one fresh seed kept in the attempt, so a state
restored from a backup taken during the attempt re-sends byte-identical messages (no
equivocation), and nothing but the seed needs to be stored. The seed, the payloads and the
transcript are dropped at activation or abort.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

from triple_ratchet import cbor
from triple_ratchet.dkg import abort as dkg_abort
from triple_ratchet.dkg.attempt import (
    PAYLOAD_LEN,
    SignedRound1,
    announcements_hash,
    attempt_extension,
    payload_hash,
    sign_round1,
)
from triple_ratchet.dkg.cocktail import SessionParams, schnorr_verify, transcript_hash
from triple_ratchet.dkg.cocktail_messages import Transcript
from triple_ratchet.dkg.cocktail_participant import Participant
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.errors import (
    DecodeError,
    DkgError,
    ProtocolError,
    ReplayError,
    StateError,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.group import announcement as announcements
from triple_ratchet.group.announcement import Announcement, SignedAnnouncement
from triple_ratchet.group.attempt_mailbox import (
    ABORT_BLAME,
    ABORT_EQUIVOCATION,
    ABORT_TIMEOUT,
    KIND_ABORT,
    KIND_ANNOUNCEMENT,
    KIND_ROUND1,
    KIND_ROUND3,
    MAX_ATTEMPT_BLOB_LEN,
    Abort,
    Round3,
    seal_item,
)
from triple_ratchet.group.epoch import MAX_GROUP_SIZE, EpochState, Member
from triple_ratchet.group.events import Event, ForkDetected, Ignored, Outgoing
from triple_ratchet.group.key_schedule import (
    AttemptSecrets,
    EpochSecrets,
    derive_attempt,
    derive_epoch,
    joiner_confirmation,
)
from triple_ratchet.group.proposal import MAX_IDENTITY_LEN, SignedProposal
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import RandomSource
from triple_ratchet.suites import SigningKey, Suite, suite_by_id

LABEL_GROUP_ATTEMPT_STREAM = b"group attempt stream"
LABEL_GROUP_ATTEMPT_PAYLOAD = b"group attempt payload"
LABEL_GROUP_ATTEMPT_SIGNING = b"group attempt epoch signing key"

SEED_LEN = 32
# CBOR items of one saved attempt at most: 16 fields, the previous roster, three slot arrays and
# the payloads (each one item per participant).
MAX_ATTEMPT_ITEMS = 32 + 5 * MAX_GROUP_SIZE
# Bound on one stored attempt item (the largest is a signed round-1 message, or a transcript).
MAX_ITEM_LEN = MAX_ATTEMPT_BLOB_LEN
# Milliseconds of hub time a phase may wait for its messages before a participant aborts naming
# the missing members: every member must be online for an epoch change, but not for ever.
PHASE_TIMEOUT_MS = 60_000


class Phase(Enum):
    ANNOUNCING = "announcing"
    ROUND1 = "round1"  # all announcements read; collecting signed round-1 messages
    ROUND3 = "round3"  # all round-1 messages read; collecting transcript signatures
    ACTIVATED = "activated"
    ABORTED = "aborted"


# (phase, what happened) -> next phase. Nothing else may change `Attempt.phase`.
TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.ANNOUNCING, "announcements complete"): Phase.ROUND1,
    (Phase.ROUND1, "round 1 complete"): Phase.ROUND3,
    (Phase.ROUND3, "certificate complete"): Phase.ACTIVATED,
    (Phase.ANNOUNCING, "abort read"): Phase.ABORTED,
    (Phase.ROUND1, "abort read"): Phase.ABORTED,
    (Phase.ROUND3, "abort read"): Phase.ABORTED,
}


def _move(attempt: Attempt, what: str, entry_ms: int) -> Attempt:
    """`entry_ms`: the hub's acceptance time of the item that completes the phase, the same for
    every reader; the next phase's timeout runs from it."""
    nxt = TRANSITIONS.get((attempt.phase, what))
    if nxt is None:
        raise StateError(f"no transition from {attempt.phase.value} on {what!r}")
    return replace(attempt, phase=nxt, phase_started_ms=entry_ms)


@functools.lru_cache(maxsize=64)
def _session_params(session_id: bytes, keys: tuple[bytes, ...], t: int) -> SessionParams:
    """COCKTAIL's session parameters (public; validating the n points is worth caching)."""
    return SessionParams.create(session_id, keys, t)


class _Stream:
    """A PRF stream keyed by the attempt seed: the participant's reproducible randomness."""

    def __init__(self, suite: Suite, seed: bytes, purpose: bytes) -> None:
        self._suite = suite
        self._seed = seed
        self._purpose = purpose
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += self._suite.expand_label(
                self._seed, LABEL_GROUP_ATTEMPT_STREAM,
                self._purpose + self._counter.to_bytes(4, "big"), self._suite.hash_len)
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def __repr__(self) -> str:
        return "_Stream(<secret>)"


@dataclass(frozen=True)
class Attempt:
    proposal: SignedProposal
    previous_roster: tuple[bytes, ...]
    init_secret: bytes = field(repr=False)  # init_secret(e)
    own_index: int | None = None  # 1..n in the new roster; None: we are being removed
    seed: bytes = field(default=b"", repr=False)
    phase: Phase = Phase.ANNOUNCING
    phase_started_ms: int = 0
    sent_count: int = 0  # what we announce: our messages in epoch e
    last_sent: bytes = b""
    announcements: tuple[bytes | None, ...] = ()
    round1: tuple[bytes | None, ...] = ()
    round3: tuple[bytes | None, ...] = ()
    payloads: tuple[bytes, ...] = field(default=(), repr=False)
    transcript: bytes = field(default=b"", repr=False)
    abort_sent: bool = False
    silent: bool = False  # restored from a backup: send nothing more for this attempt
    # derive_attempt's output, made on first use and kept with the proposal it came from (its
    # mailbox access key costs a P-256 scalar multiplication; the mailbox is asked for on
    # every attempt blob and by every `mailboxes()` call). Carried along by `replace`.
    derived: tuple[SignedProposal, AttemptSecrets] | None = field(
        default=None, compare=False, repr=False)

    # --- derived ---------------------------------------------------------------------------

    @property
    def suite(self) -> Suite:
        return suite_by_id(self.proposal.proposal.suite_id)

    @property
    def n(self) -> int:
        return len(self.proposal.proposal.new_roster)

    @property
    def session_id(self) -> bytes:
        return self.proposal.session_id()

    @property
    def is_participant(self) -> bool:
        return self.own_index is not None

    def _secrets(self) -> AttemptSecrets:
        cached = self.derived
        if cached is None or cached[0] is not self.proposal:
            cached = (self.proposal,
                      derive_attempt(self.suite, self.proposal.proposal.attempt_secret))
            object.__setattr__(self, "derived", cached)
        return cached[1]

    def mailbox(self) -> tuple[bytes, bytes]:
        """(mailbox id, traffic key) of the attempt's DKG mailbox."""
        secrets = self._secrets()
        return secrets.mailbox.mailbox_id, secrets.traffic_key

    def mailbox_access_key(self) -> SigningKey:
        return self._secrets().mailbox.access_key

    def dkg_secret(self) -> Scalar:
        return Scalar.random_nonzero(_Stream(self.suite, self.seed, b"dkg static key"))

    def payload(self) -> bytes:
        return self.suite.expand_label(self.seed, LABEL_GROUP_ATTEMPT_PAYLOAD, b"", PAYLOAD_LEN)

    def epoch_signing_key(self) -> SigningKey:
        return self.suite.signing_from_seed(
            self.suite.expand_label(self.seed, LABEL_GROUP_ATTEMPT_SIGNING, b"", 32))

    def announcement_of(self, index: int) -> Announcement:
        raw = self.announcements[index - 1]
        if raw is None:
            raise ProtocolError(f"no announcement from participant {index}")
        return SignedAnnouncement.from_bytes(self.suite, raw).announcement

    def params(self) -> SessionParams:
        keys = tuple(self.announcement_of(i).dkg_key for i in range(1, self.n + 1))
        return _session_params(self.session_id, keys, self.proposal.proposal.threshold)

    def missing(self) -> tuple[int, ...]:
        slots = {Phase.ANNOUNCING: self.announcements, Phase.ROUND1: self.round1,
                 Phase.ROUND3: self.round3}.get(self.phase, ())
        return tuple(i for i, s in enumerate(slots, start=1) if s is None)

    def __repr__(self) -> str:
        return (f"Attempt(epoch={self.proposal.proposal.epoch}, phase={self.phase.value}, "
                f"own_index={self.own_index}, n={self.n}, <secrets>)")

    # --- serialization -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def from_bytes(cls, data: bytes, *, max_size: int) -> Attempt:
        """A saved attempt, decoded within its own item budget (refused before it is built)."""
        return cls.from_cbor(cbor.decode(data, max_size=max_size,
                                         max_items=MAX_ATTEMPT_ITEMS, max_depth=2))

    def to_cbor(self) -> list[cbor.CborEncodable]:
        return [self.proposal.to_bytes(), list(self.previous_roster), self.init_secret,
                self.own_index, self.seed, self.phase.value, self.phase_started_ms,
                self.sent_count, self.last_sent, list(self.announcements), list(self.round1),
                list(self.round3), list(self.payloads), self.transcript, self.abort_sent,
                self.silent]

    @classmethod
    def from_cbor(cls, value: cbor.CborValue) -> Attempt:
        f = cbor.as_list(value, "attempt", length=16)
        proposal = SignedProposal.from_bytes(cbor.as_bytes(f[0], "proposal"))
        n = len(proposal.proposal.new_roster)

        def slots(v: cbor.CborValue, what: str) -> tuple[bytes | None, ...]:
            items = cbor.as_list(v, what)
            if len(items) != n:
                raise DecodeError(f"{what}: one slot per participant expected")
            return tuple(None if x is None else cbor.as_bytes(x, what, max_length=MAX_ITEM_LEN)
                         for x in items)

        phase_names = {p.value: p for p in Phase}
        phase = phase_names.get(cbor.as_str(f[5], "phase", max_length=32))
        if phase is None:
            raise DecodeError("unknown attempt phase")
        own = None if f[3] is None else cbor.as_int(f[3], "own index", minimum=1, maximum=n)
        payloads = tuple(cbor.as_bytes(p, "payload", length=PAYLOAD_LEN)
                         for p in cbor.as_list(f[12], "payloads"))
        if payloads and len(payloads) != n:
            raise DecodeError("one payload per participant expected")
        previous = cbor.as_list(f[1], "previous roster")
        if not 1 <= len(previous) <= MAX_GROUP_SIZE:
            raise DecodeError("previous roster size out of range")
        return cls(
            proposal,
            tuple(cbor.as_bytes(r, "roster entry", max_length=MAX_IDENTITY_LEN)
                  for r in previous),
            cbor.as_bytes(f[2], "init secret", length=len(proposal.proposal.attempt_secret)),
            own, cbor.as_bytes(f[4], "seed", max_length=SEED_LEN), phase,
            cbor.as_int(f[6], "phase start"), cbor.as_int(f[7], "sent count"),
            cbor.as_bytes(f[8], "last sent", max_length=64),
            slots(f[9], "announcements"), slots(f[10], "round 1"), slots(f[11], "round 3"),
            payloads, cbor.as_bytes(f[13], "transcript", max_length=MAX_ITEM_LEN),
            cbor.as_bool(f[14], "abort sent"),
            cbor.as_bool(f[15], "silent"))


@dataclass(frozen=True)
class Activation:
    """A certified attempt: the new epoch as we hold it."""

    state: EpochState
    grace_limits: tuple[int | None, ...]  # per old-roster index: announced sent count


@dataclass(frozen=True)
class Step:
    attempt: Attempt
    events: tuple[Event, ...] = ()
    outgoing: tuple[Outgoing, ...] = ()
    aborted: Abort | None = None
    activation: Activation | None = None
    named: tuple[int, ...] = ()  # with `aborted`: whom the (judged) abort names
    detail: str = ""  # with `aborted`: the verdict on its evidence
    removed: bool = False  # the certificate completed and we are not in the new roster
    lost: bool = False  # the certificate completed without us (a silent, displaced state)


def start(proposal: SignedProposal, previous_roster: tuple[bytes, ...], init_secret: bytes,
          identity: IdentityKeyPair, rng: RandomSource, *,
          sent_count: int = 0, last_sent: bytes = b"") -> Step:
    """Begin the attempt of `proposal` and, if we are in its new roster, announce our keys.

    The announcing phase's clock starts at the hub time of the first announcement read (every
    reader, joiners included, sees that entry; nobody can abort before it)."""
    p = proposal.proposal
    me = identity.public.to_bytes()
    n = len(p.new_roster)
    own = p.new_roster.index(me) + 1 if me in p.new_roster else None
    attempt = Attempt(proposal, previous_roster, init_secret, own,
                      rng(SEED_LEN) if own is not None else b"", Phase.ANNOUNCING, 0,
                      sent_count, last_sent, (None,) * n, (None,) * n, (None,) * n)
    if own is None:
        return Step(attempt)
    return Step(attempt, outgoing=(_announce(attempt, identity, rng),))


def _announce(attempt: Attempt, identity: IdentityKeyPair, rng: RandomSource) -> Outgoing:
    if attempt.own_index is None:
        raise StateError("not a participant of this attempt")
    a = Announcement(attempt.session_id, attempt.own_index, identity.public.to_bytes(),
                     Point.base_mul(attempt.dkg_secret()).to_bytes(),
                     attempt.epoch_signing_key().public_key().to_bytes(),
                     attempt.sent_count, attempt.last_sent)
    return _send(attempt, KIND_ANNOUNCEMENT, SignedAnnouncement.sign(identity, a).encoded, rng)


def _send(attempt: Attempt, kind: int, payload: bytes, rng: RandomSource) -> Outgoing:
    mailbox, key = attempt.mailbox()
    return Outgoing(mailbox, seal_item(attempt.suite, key, mailbox, kind, payload, rng))


def _with_slot(slots: tuple[bytes | None, ...], index: int, value: bytes
               ) -> tuple[bytes | None, ...]:
    return (*slots[:index - 1], value, *slots[index:])


def _check_index(attempt: Attempt, index: int) -> None:
    if not 1 <= index <= attempt.n:
        raise ProtocolError("participant index outside the new roster")


def receive_item(attempt: Attempt, kind: int, payload: bytes, identity: IdentityKeyPair,
                 entry_ms: int, rng: RandomSource) -> Step:
    """Process one item read from the attempt's DKG mailbox (in the hub's order); `entry_ms` is
    the hub's acceptance time of that item (Unix ms, the same for every reader)."""
    if attempt.phase in (Phase.ACTIVATED, Phase.ABORTED):
        raise StateError("the attempt is over")
    if kind == KIND_ANNOUNCEMENT:
        return _on_announcement(attempt, payload, identity, entry_ms, rng)
    if kind == KIND_ROUND1:
        return _on_round1(attempt, payload, entry_ms, rng)
    if kind == KIND_ROUND3:
        return _on_round3(attempt, payload, identity, entry_ms, rng)
    return _on_abort(attempt, payload, entry_ms)


def _announcement_equivocation(attempt: Attempt, index: int, first: bytes, second: bytes,
                               rng: RandomSource) -> Step:
    """Participant `index` announced twice: report it, and abort with both signed announcements
    as evidence (spec 11.8), which every reader judges the same way in any phase."""
    member = attempt.proposal.proposal.new_roster[index - 1]
    event = ForkDetected("equivocation", member,
                         f"two different announcements from participant {index}")
    evidence = announcements.equivocation_evidence(first, second)
    # As for section 7's make_*: never send evidence that would not convict.
    if _judge_announcements(attempt, evidence) != index:
        raise StateError("announcement equivocation evidence does not convict its sender")
    return Step(attempt, events=(event,),
                outgoing=_abort(attempt, ABORT_EQUIVOCATION, (index,), evidence, rng))


def _judge_announcements(attempt: Attempt, evidence: bytes) -> int:
    return announcements.judge_equivocation(attempt.suite, attempt.session_id,
                                            attempt.proposal.proposal.new_roster, evidence)


def _check_announcement(attempt: Attempt, data: bytes) -> tuple[int, bytes]:
    """Section 7's `AnnouncementCheck` for this attempt: (index, signed body)."""
    a = announcements.check_for_attempt(attempt.suite, attempt.session_id,
                                        attempt.proposal.proposal.new_roster, data).announcement
    return a.index, a.body()


def _abort(attempt: Attempt, reason: int, named: tuple[int, ...], evidence: bytes,
           rng: RandomSource) -> tuple[Outgoing, ...]:
    """Our abort, if we may still send one (participants only, once per attempt)."""
    own = attempt.own_index
    if own is None or attempt.abort_sent or attempt.silent:
        return ()
    if attempt.announcements[own - 1] is None:
        return ()  # our DKG key is not known to the others yet: they could not verify it
    abort = Abort.sign(attempt.dkg_secret(), attempt.session_id, own, reason,
                       named, evidence, rng)
    return (_send(attempt, KIND_ABORT, abort.to_bytes(), rng),)


def _dkg_evidence(attempt: Attempt, params: SessionParams,
                  make: Callable[[Scalar], dkg_abort.Abort]) -> bytes:
    """Evidence as section 7's signed abort (judged by anyone with `dkg_abort.judge`); empty if
    we are not a participant that could make it or it would not convict."""
    if not attempt.is_participant or attempt.silent:
        return b""
    try:
        return make(attempt.dkg_secret()).to_bytes()
    except UsageError:
        return b""


def _blame(attempt: Attempt, params: SessionParams, dealer: SignedRound1,
           rng: RandomSource) -> Step:
    """A dealer's round-1 data failed: abort with DLEQ-backed blame evidence (section 7)."""
    evidence = _dkg_evidence(attempt, params,
                             lambda d: dkg_abort.make_blame(params, d, dealer, rng))
    if not evidence:
        return Step(attempt)  # the evidence would not convict: let the phase time out
    return _mark_abort_sent(Step(attempt, outgoing=_abort(
        attempt, ABORT_BLAME, (dealer.sender,), evidence, rng)))


def _mark_abort_sent(step: Step) -> Step:
    if any(True for _ in step.outgoing) and step.aborted is None:
        return replace(step, attempt=replace(step.attempt, abort_sent=True))
    return step


def _on_announcement(attempt: Attempt, payload: bytes, identity: IdentityKeyPair, entry_ms: int,
                     rng: RandomSource) -> Step:
    signed = announcements.check_for_attempt(attempt.suite, attempt.session_id,
                                             attempt.proposal.proposal.new_roster, payload)
    a = signed.announcement
    existing = attempt.announcements[a.index - 1]
    if existing is not None:
        if SignedAnnouncement.from_bytes(attempt.suite, existing).same_as(signed):
            raise ReplayError("announcement already received")
        return _mark_abort_sent(
            _announcement_equivocation(attempt, a.index, existing, payload, rng))
    if any(s is not None and SignedAnnouncement.from_bytes(attempt.suite, s).announcement
           .dkg_key == a.dkg_key for s in attempt.announcements):
        raise ProtocolError("DKG key repeats another participant's")
    events: tuple[Event, ...] = ()
    if (a.index == attempt.own_index and attempt.seed and not attempt.silent
            and a.dkg_key != Point.base_mul(attempt.dkg_secret()).to_bytes()):
        # Our identity announced other keys: another copy of this member (a newer state, or a
        # stolen identity key) took our place. We can no longer take part.
        attempt = replace(attempt, silent=True)
        events = (ForkDetected("announcement not ours", a.identity,
                               "our identity announced a DKG key we do not hold"),)
    if all(x is None for x in attempt.announcements):
        # The first announcement starts the announcing phase's clock (see `start`).
        attempt = replace(attempt, phase_started_ms=entry_ms)
    attempt = replace(attempt, announcements=_with_slot(attempt.announcements, a.index, payload))
    if attempt.missing():
        return Step(attempt, events=events)
    attempt = _move(attempt, "announcements complete", entry_ms)
    if not attempt.is_participant or attempt.silent:
        return Step(attempt, events=events)
    # Everyone's keys are known: deal our shares.
    params = attempt.params()
    participant = Participant(params, attempt.dkg_secret(), payload=attempt.payload(),
                              rng=_Stream(attempt.suite, attempt.seed, b"round 1"))
    signed1 = sign_round1(params, attempt.dkg_secret(), participant.round1(), attempt.payload(),
                          rng=_Stream(attempt.suite, attempt.seed, b"round 1 signature"))
    return Step(attempt, outgoing=(_send(attempt, KIND_ROUND1, signed1.to_bytes(), rng),))


def _on_round1(attempt: Attempt, payload: bytes, entry_ms: int, rng: RandomSource) -> Step:
    if attempt.phase is Phase.ANNOUNCING:
        raise ProtocolError("round-1 message outside round 1")
    # In ROUND3 too, a round-1 item is compared with its filled slot first: a second one from
    # the last dealer (read once every slot is full) is equivocation, not a late item.
    signed = SignedRound1.from_bytes(payload)
    params = attempt.params()
    _check_index(attempt, signed.sender)
    signed.check_signature(params)  # a bad signature is the relay's doing: nobody is blamed
    existing = attempt.round1[signed.sender - 1]
    if existing is not None:
        if hmac.compare_digest(existing, payload):
            raise ReplayError("round-1 message already received")
        first = SignedRound1.from_bytes(existing)
        if (hmac.compare_digest(first.payload_hash, signed.payload_hash)
                and hmac.compare_digest(first.message, signed.message)):
            # The same content signed again (DKG signatures are randomized): a duplicate, not
            # equivocation, and no evidence could convict anyone for it.
            raise ReplayError("round-1 content already received")
        member = attempt.proposal.proposal.new_roster[signed.sender - 1]
        event = ForkDetected("equivocation", member,
                             f"two different round-1 messages from participant {signed.sender}")
        evidence = _dkg_evidence(attempt, params, lambda d: dkg_abort.make_equivocation(
            params, d, dkg_abort.EquivocationKind.ROUND1, signed.sender, existing, payload, rng))
        if not evidence:
            return Step(attempt, events=(event,))  # we cannot abort (not a participant, silent)
        return _mark_abort_sent(Step(attempt, events=(event,), outgoing=_abort(
            attempt, ABORT_EQUIVOCATION, (signed.sender,), evidence, rng)))
    if attempt.phase is not Phase.ROUND1:
        raise ProtocolError("round-1 message outside round 1")
    try:
        signed.parse(params)
    except DkgError:
        attempt = replace(attempt, round1=_with_slot(attempt.round1, signed.sender, payload))
        return _blame(attempt, params, signed, rng)
    attempt = replace(attempt, round1=_with_slot(attempt.round1, signed.sender, payload))
    if attempt.missing():
        return Step(attempt)
    attempt = _move(attempt, "round 1 complete", entry_ms)
    if not attempt.is_participant or attempt.silent:
        # Not dealing: still rebuild the (public) transcript, so that round-3 signatures are
        # verified before we conclude we were removed or left out.
        return Step(replace(attempt, transcript=_public_transcript(attempt, params)))
    return _deal_round3(attempt, params, rng)


def _extension(attempt: Attempt, rounds: list[SignedRound1]) -> bytes:
    confirmation = joiner_confirmation(attempt.suite, attempt.init_secret,
                                       attempt.previous_roster, attempt.session_id)
    announced = [a for a in attempt.announcements if a is not None]
    return attempt_extension([r.payload_hash for r in rounds], announcements_hash(announced),
                             confirmation)


def _public_transcript(attempt: Attempt, params: SessionParams) -> bytes:
    """The transcript T from public round-1 data, as every participant builds it (COCKTAIL's T
    holds commitments, PoPs and ephemeral keys, not ciphertexts)."""
    rounds = [SignedRound1.from_bytes(r) for r in attempt.round1 if r is not None]
    entries = [r.parse(params).for_recipient(1) for r in rounds]
    return Transcript.build(params, entries, _extension(attempt, rounds)).to_bytes()


def _deal_round3(attempt: Attempt, params: SessionParams, rng: RandomSource) -> Step:
    """Verify every share and payload, then sign the transcript with our extension."""
    rounds = [SignedRound1.from_bytes(r) for r in attempt.round1 if r is not None]
    participant = Participant(params, attempt.dkg_secret(), payload=attempt.payload(),
                              rng=_Stream(attempt.suite, attempt.seed, b"round 1"))
    participant.round1()
    try:
        shares = participant.receive_round1([r.parse(params) for r in rounds])
        payloads = shares.payloads
        for r, p in zip(rounds, payloads, strict=True):
            if len(p) != PAYLOAD_LEN or not hmac.compare_digest(payload_hash(p), r.payload_hash):
                raise DkgError("payload does not match its signed hash", culprit=r.sender,
                               reason="payload-mismatch")
    except DkgError as exc:
        # We cannot sign, but can still check the others' round-3 signatures.
        with contextlib.suppress(DkgError):
            attempt = replace(attempt, transcript=_public_transcript(attempt, params))
        dealer = attempt.round1[exc.culprit - 1] if exc.culprit is not None else None
        if dealer is None:
            return Step(attempt)  # nobody to name: the phase times out
        return _blame(attempt, params, SignedRound1.from_bytes(dealer), rng)
    signature = participant.sign_transcript(_extension(attempt, rounds))
    attempt = replace(attempt, payloads=tuple(payloads),
                      transcript=participant.transcript.to_bytes())
    if attempt.own_index is None:
        raise StateError("not a participant of this attempt")
    r3 = Round3(attempt.own_index, signature)
    return Step(attempt, outgoing=(_send(attempt, KIND_ROUND3, r3.to_bytes(), rng),))


def _on_round3(attempt: Attempt, payload: bytes, identity: IdentityKeyPair, entry_ms: int,
               rng: RandomSource) -> Step:
    if attempt.phase is not Phase.ROUND3:
        raise ProtocolError("round-3 message outside round 3")
    r3 = Round3.from_bytes(payload)
    _check_index(attempt, r3.sender)
    member = attempt.proposal.proposal.new_roster[r3.sender - 1]
    if not attempt.transcript:
        raise ProtocolError("round-3 message we cannot check: our round-1 view is broken")
    # A round-3 item is authenticated only by its CertEq signature, and anyone holding the
    # attempt's traffic key (a member being removed, too) could write one under any index.
    # So one that fails is reported, never a reason to abort: it counts as not received, and a
    # real split view ends in the phase's timeout.
    valid = schnorr_verify(attempt.announcement_of(r3.sender).dkg_point(), attempt.transcript,
                           r3.signature)
    existing = attempt.round3[r3.sender - 1]
    if existing is not None:
        if hmac.compare_digest(existing, payload) or valid:
            raise ReplayError("round-3 signature already received")
        return Step(attempt, events=(ForkDetected(
            "conflicting round 3", member,
            f"a second round-3 message for participant {r3.sender}, over another transcript"),))
    if not valid:
        return Step(attempt, events=(ForkDetected(
            "split view", member,
            f"participant {r3.sender}'s round-3 signature is not over our transcript"),))
    attempt = replace(attempt, round3=_with_slot(attempt.round3, r3.sender, payload))
    if attempt.missing():
        return Step(attempt)
    attempt = _move(attempt, "certificate complete", entry_ms)
    if not attempt.is_participant:
        return Step(attempt, removed=True)
    if not attempt.payloads:
        return Step(attempt, lost=True)  # silent: the epoch went on without us
    return Step(attempt, activation=_activate(attempt))


def _activate(attempt: Attempt) -> Activation:
    p = attempt.proposal.proposal
    suite = attempt.suite
    secrets: EpochSecrets = derive_epoch(suite, attempt.init_secret,
                                         transcript_hash(attempt.transcript), attempt.payloads)
    roster = []
    for i, identity in enumerate(p.new_roster, start=1):
        roster.append(Member(identity, attempt.announcement_of(i).signing_key))
    if attempt.own_index is None:
        raise StateError("not a participant of this attempt")
    state = EpochState.from_secrets(secrets, group_id=p.group_id, epoch=p.epoch + 1,
                                    roster=roster, own_index=attempt.own_index - 1,
                                    signing_key=attempt.epoch_signing_key())
    counts: dict[bytes, int] = {}
    for i, identity in enumerate(p.new_roster, start=1):
        counts[identity] = attempt.announcement_of(i).sent_count
    limits = tuple(counts.get(old) for old in attempt.previous_roster)
    return Activation(state, limits)


def _on_abort(attempt: Attempt, payload: bytes, entry_ms: int) -> Step:
    abort = Abort.from_bytes(payload)
    _check_index(attempt, abort.sender)
    if attempt.announcements[abort.sender - 1] is None:
        raise ProtocolError("abort from a participant that never announced its DKG key")
    abort.verify(attempt.announcement_of(abort.sender).dkg_point(), attempt.session_id)
    if any(not 1 <= i <= attempt.n for i in abort.named):
        raise ProtocolError("abort names a member outside the new roster")
    if abort.reason == ABORT_TIMEOUT and entry_ms < attempt.phase_started_ms + PHASE_TIMEOUT_MS:
        # Judged on the hub's times, the same for every reader: a timeout posted before the
        # phase's timeout passed ends nothing, names no one and spends no abort. Our own such
        # abort (our clock ahead of the hub's) leaves us free to time out again later.
        by = attempt.proposal.proposal.new_roster[abort.sender - 1]
        if abort.sender == attempt.own_index:
            attempt = replace(attempt, abort_sent=False)
        return Step(attempt, events=(Ignored(PREMATURE_TIMEOUT, by),))
    named, detail = _verdict(attempt, abort)
    return Step(_move(attempt, "abort read", entry_ms), aborted=abort, named=named,
                detail=detail)


PREMATURE_TIMEOUT = "timeout abort posted before the phase's timeout passed"
EVIDENCE_MISSING = "evidence missing: names no one"
EVIDENCE_INVALID = "evidence invalid: names no one"
TIMEOUT_REFUTED = "timeout names only members still missing when it was read"


def _verdict(attempt: Attempt, abort: Abort) -> tuple[tuple[int, ...], str]:
    """Whom a validly signed abort names, and the verdict on its evidence (spec 11.8).

    A timeout names those it lists that are still missing here, at the abort's place in the
    mailbox order (every reader sees the same): one that answered before it is refuted by the
    mailbox itself, and the aborter plainly answers. An equivocation or blame names only whom
    its evidence convicts, judged the same way in every phase: an accusation without authentic
    evidence names no one (the abort still ends the attempt, as any participant's abort does)."""
    if abort.reason == ABORT_TIMEOUT:
        missing = set(attempt.missing()) - {abort.sender}
        named = tuple(sorted(missing.intersection(abort.named)))  # each once, in roster order
        return named, ("" if set(named) == set(abort.named) else TIMEOUT_REFUTED)
    if not abort.evidence:
        return (), EVIDENCE_MISSING
    try:
        if abort.reason == ABORT_EQUIVOCATION and announcements.is_equivocation_evidence(
                abort.evidence):
            return (_judge_announcements(attempt, abort.evidence),), dkg_abort.REASON_EQUIVOCATION
        # Section 7's signed abort (round-1 equivocation, blame): only its verdict names anyone.
        evidence = dkg_abort.Abort.from_bytes(abort.evidence)
        if evidence.aborter != abort.sender:
            raise ProtocolError("evidence signed by another participant")
        expected = (dkg_abort.AbortReason.EQUIVOCATION if abort.reason == ABORT_EQUIVOCATION
                    else dkg_abort.AbortReason.BLAME)
        if evidence.reason is not expected:
            raise ProtocolError("evidence of another reason than the abort gives")
        verdict = dkg_abort.judge(attempt.params(), evidence,
                                  check_announcement=functools.partial(_check_announcement,
                                                                       attempt))
    except TripleRatchetError as exc:
        return (), f"{EVIDENCE_INVALID} ({type(exc).__name__})"
    return (() if verdict.culprit is None else (verdict.culprit,)), verdict.fault


def expire(attempt: Attempt, now_ms: int, rng: RandomSource) -> Step:
    """A participant whose phase waited too long aborts, naming who did not answer.

    `now_ms` is the local clock, compared with the phase's start in hub time: readers judge the
    abort on its own hub time, so one sent early (a local clock ahead of the hub's) is ignored
    and `abort_sent` is cleared when we read it back."""
    if (attempt.phase in (Phase.ACTIVATED, Phase.ABORTED) or attempt.abort_sent
            or now_ms - attempt.phase_started_ms < PHASE_TIMEOUT_MS or not attempt.missing()):
        return Step(attempt)
    return _mark_abort_sent(Step(attempt, outgoing=_abort(
        attempt, ABORT_TIMEOUT, attempt.missing(), b"", rng)))


__all__ = [
    "ABORT_BLAME",
    "ABORT_TIMEOUT",
    "PHASE_TIMEOUT_MS",
    "TRANSITIONS",
    "Activation",
    "Attempt",
    "Phase",
    "Step",
    "expire",
    "receive_item",
    "start",
]
