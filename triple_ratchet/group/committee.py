"""The private side of a committee run (spec 11.v2.18, 11.v2.22-26; 08 v2 §8.v2.6; R6, R8, R14),
and a recipient's opening of a commit.

A committee member draws one 32-byte **run seed** per run and stores it before announcing; its
DKG key, its payload and every random value of its round-1 and round-3 items derive from it:

    stream(purpose) = ExpandLabel(seed, "ks v2 run stream", purpose ‖ u32be(j), Nh), j = 0, 1, …
    d               = Scalar.random_nonzero(stream("dkg static key"))       DKG key P = d·B
    payload         = ExpandLabel(seed, "ks v2 run payload", "", 32)
    COCKTAIL round 1: stream("round 1"); its wrapper signature: stream("round 1 signature");
    round-3 DKG signature: stream("round 3 signature"); blame evidence: stream("blame")

so a member restored during the run re-sends byte-identical bodies (and never two different
round-1 items, which would be equivocation). The seed is deleted when the run ends.

The functions return entry **bodies** (`group/run.py` values); the session wraps them in control
entries signed with its record key. Public checks and the run's computations are in
`group/run_secrets.py`, shared with every reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from triple_ratchet.dkg.abort import Blame, make_blame
from triple_ratchet.dkg.attempt import PAYLOAD_LEN, SignedRound1, sign_round1
from triple_ratchet.dkg.cocktail import schnorr_sign
from triple_ratchet.dkg.cocktail_participant import Participant
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.errors import DkgError, UsageError
from triple_ratchet.group.run import (
    EVIDENCE_BLAME,
    Commit,
    Evidence,
    Reveal,
    Round1Item,
    Round3Item,
    RunAnnouncement,
)
from triple_ratchet.group.run_secrets import (
    RunInputs,
    RunOutcome,
    blame_evidence_bytes,
    outcome_from_opened,
    outcome_from_payloads,
    round1_transcript,
    verify_commit,
)
from triple_ratchet.group.sealing import Sealing, open_sealing
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import Suite

LABEL_KS2_RUN_STREAM = b"ks v2 run stream"
LABEL_KS2_RUN_PAYLOAD = b"ks v2 run payload"

RUN_SEED_LEN = 32

# Purposes of the run streams (08 v2 §8.v2.6); "blame" is ours: blame evidence is the one random
# value of a run the spec does not name, and it too must repeat after a restore.
PURPOSE_DKG_KEY = b"dkg static key"
PURPOSE_ROUND1 = b"round 1"
PURPOSE_ROUND1_SIGNATURE = b"round 1 signature"
PURPOSE_ROUND3_SIGNATURE = b"round 3 signature"
PURPOSE_BLAME = b"blame"


class _RunStream:
    """`stream(purpose)`: ExpandLabel blocks j = 0, 1, … concatenated, read front to back."""

    def __init__(self, suite: Suite, seed: bytes, purpose: bytes) -> None:
        self._suite, self._seed, self._purpose = suite, seed, purpose
        self._j = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += self._suite.expand_label(
                self._seed, LABEL_KS2_RUN_STREAM, self._purpose + self._j.to_bytes(4, "big"),
                self._suite.hash_len)
            self._j += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def __repr__(self) -> str:
        return "_RunStream(<seed redacted>)"


@dataclass(frozen=True, repr=False)
class RunSeed:
    """One run's seed (secret). Store `to_bytes()` before the announcement is sent; delete it
    when the run ends (R14)."""

    suite: Suite
    seed: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != RUN_SEED_LEN:
            raise UsageError(f"a run seed is {RUN_SEED_LEN} bytes")

    @classmethod
    def generate(cls, suite: Suite, rng: RandomSource = system_random) -> RunSeed:
        return cls(suite, rng(RUN_SEED_LEN))

    def to_bytes(self) -> bytes:
        return self.seed

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> RunSeed:
        return cls(suite, bytes(data) if isinstance(data, bytes | bytearray) else data)

    def stream(self, purpose: bytes) -> RandomSource:
        return _RunStream(self.suite, self.seed, purpose)

    def dkg_secret(self) -> Scalar:
        return Scalar.random_nonzero(self.stream(PURPOSE_DKG_KEY))

    def dkg_key(self) -> Point:
        return Point.base_mul(self.dkg_secret())

    def payload(self) -> bytes:
        return self.suite.expand_label(self.seed, LABEL_KS2_RUN_PAYLOAD, b"", PAYLOAD_LEN)

    def __repr__(self) -> str:
        return f"RunSeed({self.suite.name}, <secret>)"


def make_announcement(seed: RunSeed, *, group_id: bytes, epoch: int, run: int, identity: bytes,
                      applied_hash: bytes, roster_hash: bytes,
                      view_hash: bytes) -> RunAnnouncement:
    """The announcement body of run `run` (11.v2.9) with the seed's DKG key; `view_hash` is
    `run.view_hash` of our view of epoch `epoch`."""
    return RunAnnouncement.make(seed.suite, group_id=group_id, epoch=epoch, run=run,
                                identity=identity, dkg_key=seed.dkg_key(),
                                applied_proposals_hash=applied_hash, roster_hash=roster_hash,
                                view_hash=view_hash)


def _participant(seed: RunSeed, inputs: RunInputs) -> tuple[Participant, SignedRound1]:
    """Our COCKTAIL participant after round 1, re-created from the seed (deterministic)."""
    if seed.suite.suite_id != inputs.suite.suite_id:
        raise UsageError("run seed of another suite")
    d = seed.dkg_secret()
    inputs.position_of(Point.base_mul(d))  # UsageError when we are not on the committee
    params = inputs.params()
    participant = Participant(params, d, payload=seed.payload(), rng=seed.stream(PURPOSE_ROUND1))
    message = participant.round1()
    signed = sign_round1(params, d, message, seed.payload(),
                         rng=seed.stream(PURPOSE_ROUND1_SIGNATURE))
    return participant, signed


def make_round1(seed: RunSeed, inputs: RunInputs) -> Round1Item:
    """Our round-1 item: COCKTAIL msg1 (t = 1 among the k committee keys, our 32-byte payload to
    every member) in section 7.4's signed wrapper, sender = our committee position."""
    _, signed = _participant(seed, inputs)
    return Round1Item(inputs.run, signed.to_bytes())


@dataclass(frozen=True, repr=False)
class LocalRound2:
    """The outcome of our local round 2: the k payloads (committee order), or, when dealer
    `culprit` sent us a bad share or payload, the blame evidence body to post (kind 3, 11.v2.22)
    — `None` if no convicting evidence can be made (then we send nothing more in the run)."""

    payloads: tuple[bytes, ...] | None = field(default=None)
    culprit: int | None = None
    blame: Evidence | None = None

    def __repr__(self) -> str:
        if self.payloads is not None:
            return f"LocalRound2(payloads=<{len(self.payloads)} redacted>)"
        return f"LocalRound2(culprit={self.culprit}, blame={'yes' if self.blame else 'no'})"


def local_round2(seed: RunSeed, inputs: RunInputs,
                 round1: Sequence[SignedRound1]) -> LocalRound2:
    """Decrypt and check every share and payload addressed to us (§6.6, §7.4 step 4).

    `round1` are the k items `check_round1` accepted, committee order. Our own must be the one
    the seed makes (else `DkgError`: another copy of us sent it)."""
    participant, own = _participant(seed, inputs)
    params = inputs.params()
    if len(round1) != inputs.k:
        raise UsageError("need the k checked round-1 items in committee order")
    if round1[participant.index - 1].to_bytes() != own.to_bytes():
        raise DkgError("the round-1 item in our position is not ours", culprit=None)
    try:
        shares = participant.receive_round1([r.parse(params) for r in round1])
        payloads = tuple(r.check_payload(p)
                         for r, p in zip(round1, shares.payloads, strict=True))
    except DkgError as exc:
        if exc.culprit is None or exc.culprit == participant.index:
            raise
        try:
            abort = make_blame(params, seed.dkg_secret(), round1[exc.culprit - 1],
                               seed.stream(PURPOSE_BLAME))
        except UsageError:
            return LocalRound2(culprit=exc.culprit)
        if not isinstance(abort.evidence, Blame):  # make_blame always returns a blame
            raise UsageError("blame evidence expected") from None
        return LocalRound2(culprit=exc.culprit, blame=Evidence.make(
            inputs.run, EVIDENCE_BLAME, blame_evidence_bytes(abort.evidence)))
    return LocalRound2(payloads=payloads)


def make_round3(seed: RunSeed, inputs: RunInputs, round1: Sequence[SignedRound1],
                payloads: Sequence[bytes], init_secret: bytes) -> tuple[Round3Item, RunOutcome]:
    """Our round-3 item and the run's outcome: `commit_secret`, the bundle and its root, T with
    the extension over that root, `group_context`, `epoch_secret`, the tag; CertEq over T and the
    DKG-key signature over `(run_session_id, bundle_root, confirmation_tag)` (11.v2.10)."""
    outcome = outcome_from_payloads(inputs, round1, payloads, init_secret)
    d = seed.dkg_secret()
    inputs.position_of(Point.base_mul(d))
    transcript = round1_transcript(inputs, round1, outcome.bundle_root)
    item = Round3Item.sign(inputs.suite, d, run=inputs.run, context=inputs.params().context,
                           run_session_id=inputs.session_id(),
                           certeq_signature=schnorr_sign(d, transcript),
                           bundle_root=outcome.bundle_root,
                           confirmation_tag=outcome.confirmation_tag,
                           rng=seed.stream(PURPOSE_ROUND3_SIGNATURE))
    return item, outcome


def make_commit(inputs: RunInputs, outcome: RunOutcome) -> Commit:
    """The commit body: run r and the bundle the committee certified (11.v2.12)."""
    if outcome.bundle is None:
        raise UsageError("only a committee member (or a REVEAL reader) holds the bundle")
    return Commit.make(inputs.suite, inputs.run,
                       [(s.enc, s.ct) for s in outcome.bundle.sealings])


def make_reveal(inputs: RunInputs, payloads: Sequence[bytes]) -> Reveal:
    """REVEAL of run r's k payloads (only while two valid round-3 items differ, 11.v2.24)."""
    if len(payloads) != inputs.k:
        raise UsageError(f"a REVEAL carries the k = {inputs.k} payloads")
    return Reveal.make(inputs.run, payloads)


def open_commit(inputs: RunInputs, round1: Sequence[SignedRound1], commit: Commit, *,
                bundle_root: bytes, confirmation_tag: bytes, roster_index: int,
                receive_private_key: bytes, init_secret: bytes | None) -> RunOutcome:
    """A recipient's processing of the deciding commit (11.v2.26 step 4).

    `bundle_root` and `confirmation_tag` are the ones run r's round-3 items agree on;
    `roster_index` is ours in the new roster and `receive_private_key` the private half of the
    receive key the commit applies for us (join key for a joiner, resume record when resumed).
    Checks the commit (run, pair count, root: `ProtocolError`/`AuthenticationError`), opens our
    pair (`AuthenticationError`), derives the run's values and checks the tag
    (`AuthenticationError` → rejoin, 11.v2.25). `init_secret` is `init_secret(e)`, required
    unless we are sealed `member_base`. Use `RunOutcome.secrets()` for the epoch's values."""
    verify_commit(inputs, commit, bundle_root)
    position = inputs.bundle_position(roster_index)
    enc, ct = commit.bundle[position]
    identity = inputs.roster.entries[roster_index].identity
    opened = open_sealing(inputs.sealing_context(), identity, receive_private_key,
                          Sealing(enc, ct))
    return outcome_from_opened(inputs, round1, bundle_root, opened,
                               opened_is_member_base=inputs.seals_member_base(roster_index),
                               init_secret=init_secret, agreed_tag=confirmation_tag)


__all__ = [
    "LABEL_KS2_RUN_PAYLOAD",
    "LABEL_KS2_RUN_STREAM",
    "RUN_SEED_LEN",
    "LocalRound2",
    "RunSeed",
    "local_round2",
    "make_announcement",
    "make_commit",
    "make_reveal",
    "make_round1",
    "make_round3",
    "open_commit",
]
