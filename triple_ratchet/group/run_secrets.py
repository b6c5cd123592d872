"""The public, deterministic computations of one committee run (spec 11.v2.10-12, 11.v2.22-26;
08 v2 §8.v2.2-8.v2.5; rules R2, R4, R8, R9).

Everything here is a pure function of public run data (`RunInputs`: the attempt, the new roster,
the committee's announcements and DKG keys, the recipients) plus, where named, secrets:

- `check_round1`: the public checks of a round-1 item (§7.4 signature, §6.6 steps 1-2);
- `round1_transcript`: COCKTAIL's transcript T of the run, its extension (§8.v2.4) built with a
  given `bundle_root` (a reader checks each round-3 item against T with *that item's* root);
- `verify_round3`: both signatures of a round-3 item;
- `verify_commit`: the commit's run, pair count and Merkle root against the agreed root;
- `outcome_from_payloads`: from the k payloads (a committee member's local round 2, or a REVEAL)
  and `init_secret(e)` to `commit_secret`, the bundle, `group_context`, `epoch_secret` and tag;
- `outcome_from_opened`: from what a recipient opened (`commit_secret` or `member_base`) to the
  same values, the tag checked against the agreed one (`AuthenticationError`).

The committee's private side (run seed, DKG key, payload, items) is `group/committee.py`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import TypeVar

from triple_ratchet import cbor
from triple_ratchet.dkg.abort import Blame, EcdhEvidence, Verdict, judge_blame
from triple_ratchet.dkg.attempt import PAYLOAD_LEN, SignedRound1, check_payloads
from triple_ratchet.dkg.cocktail import SessionParams, make_context
from triple_ratchet.dkg.cocktail_messages import Round2Entry, Transcript
from triple_ratchet.dkg.cocktail_participant import check_public_entry
from triple_ratchet.dkg.dleq import PROOF_SIZE as DLEQ_PROOF_SIZE
from triple_ratchet.dkg.ed25519 import POINT_SIZE, Point
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidKey,
    LimitExceeded,
    ProtocolError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.group.control import TYPE_ANNOUNCEMENT, VERSION
from triple_ratchet.group.key_schedule import (
    EPOCH_ID_LEN,
    MAX_ANNOUNCEMENT_ENTRY_LEN,
    MAX_COMMITTEE,
    MAX_EPOCH,
    MAX_RUN,
    EpochSecretsV2,
    confirmation_tag,
    derive_epoch_v2,
    expand_epoch_secret,
    extract_commit_secret,
    extract_member_base,
    group_context,
    run_extension,
    run_session_id,
)
from triple_ratchet.group.roster import Roster
from triple_ratchet.group.run import (
    EVIDENCE_BLAME,
    MAX_EVIDENCE_LEN,
    Commit,
    Evidence,
    Reveal,
    Round1Item,
    Round3Item,
    RunAnnouncement,
)
from triple_ratchet.group.sealing import (
    Bundle,
    Recipient,
    SealingContext,
    merkle_root,
    pair_leaves,
    seal_bundle,
)
from triple_ratchet.suites import Suite

_K = TypeVar("_K")
_V = TypeVar("_V")

COCKTAIL_THRESHOLD = 1
"""A run's DKG threshold (R6): any one honest committee member keeps `commit_secret` secret."""


def decode_announcement_entry(suite: Suite, entry: bytes) -> tuple[int, RunAnnouncement]:
    """(author index, announcement) of an announcement's `entry` bytes (the signed content, not
    the `SignedEntry`): 7 elements, type 0x42, version 2, the announcement body decoded strictly."""
    if not isinstance(entry, bytes | bytearray):
        raise UsageError("expected bytes")
    # The same k entries are decoded by whoever judged them and again by `RunInputs` (and by
    # every notice and catch-up): the last few decodings are kept (immutable, public values;
    # a refusal is never kept, it raises again). Oversized input is refused without the memo.
    data = bytes(entry)
    if len(data) > MAX_ANNOUNCEMENT_ENTRY_LEN:
        return _decode_announcement_entry.__wrapped__(suite, data)
    return _decode_announcement_entry(suite, data)


@functools.lru_cache(maxsize=4 * MAX_COMMITTEE)
def _decode_announcement_entry(suite: Suite, entry: bytes) -> tuple[int, RunAnnouncement]:
    f = cbor.as_list(cbor.decode(entry, max_size=MAX_ANNOUNCEMENT_ENTRY_LEN, max_items=10,
                                 max_depth=2),
                     "announcement entry", 7)
    if cbor.as_int(f[0], "entry type") != TYPE_ANNOUNCEMENT:
        raise DecodeError("not an announcement entry")
    if cbor.as_int(f[1], "entry version") != VERSION:
        raise DecodeError("announcement entry of another version")
    if cbor.as_int(f[2], "suite", maximum=0xFFFF) != suite.suite_id:
        raise ProtocolError("announcement entry of another suite")
    author = cbor.as_int(f[5], "author index")
    announcement = RunAnnouncement.from_bytes(suite, cbor.as_bytes(f[6], "announcement body"))
    if cbor.as_bytes(f[3], "group id") != announcement.group_id or (
            cbor.as_int(f[4], "epoch") != announcement.epoch):
        raise ProtocolError("announcement for another group or epoch than its entry")
    return author, announcement


@dataclass(frozen=True)
class RunInputs:
    """Everything public that fixes run `run` of epoch `epoch`'s attempt (all readers agree on it
    once the committee is fixed).

    `announcements` are the committee's announcement `entry` bytes in committee order; each must
    be for this group, epoch and run, carry `applied_hash` and the new roster's hash, and announce
    `dkg_keys[j]`. `recipients` are the new-roster indices (increasing) of every member sealed to:
    neither on the committee nor dormant at S(e) (11.v2.12); `member_base_to` the identities among
    them that lack `init_secret(e)` (joiners, resumed members, members dormant at S(e-1)).
    Inconsistent inputs are a `UsageError` (the caller judged the entries already)."""

    suite: Suite
    group_id: bytes
    epoch: int
    epoch_id: bytes
    run: int
    applied_hash: bytes
    roster: Roster
    announcements: tuple[bytes, ...]
    dkg_keys: tuple[Point, ...]
    recipients: tuple[int, ...]
    member_base_to: frozenset[bytes] = frozenset()
    committee_indices: tuple[int, ...] = field(init=False, repr=False, compare=False)
    # Memos of pure functions of these inputs (parsing a round-1 message validates its points,
    # tens of µs each; T is built by every round-3 check and again after the commit): bounded,
    # invisible to callers.
    _parsed: dict[bytes, Round2Entry] = field(init=False, repr=False, compare=False)
    _transcripts: dict[tuple[tuple[bytes, ...], bytes], bytes] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nh = self.suite.hash_len
        if not isinstance(self.group_id, bytes) or not 1 <= len(self.group_id) <= 64:
            raise UsageError("group id must be 1..64 bytes")
        if type(self.epoch) is not int or not 0 <= self.epoch <= MAX_EPOCH:
            raise UsageError("epoch out of range")
        want = 0 if self.epoch == 0 else EPOCH_ID_LEN
        if not isinstance(self.epoch_id, bytes) or len(self.epoch_id) != want:
            raise UsageError(f"epoch_id({self.epoch}) must be {want} bytes")
        if type(self.run) is not int or not 1 <= self.run <= MAX_RUN:
            raise UsageError(f"run must be 1..{MAX_RUN}")
        if not isinstance(self.applied_hash, bytes) or len(self.applied_hash) != nh:
            raise UsageError(f"applied-proposals hash must be {nh} bytes")
        if not isinstance(self.roster, Roster) or self.roster.suite.suite_id != (
                self.suite.suite_id):
            raise UsageError("the new roster must be a Roster of the run's suite")
        k = len(self.announcements)
        if not 1 <= k <= MAX_COMMITTEE or len(self.dkg_keys) != k:
            raise UsageError(f"a committee has 1..{MAX_COMMITTEE} members, one DKG key each")
        if any(not isinstance(p, Point) for p in self.dkg_keys):
            raise UsageError("DKG keys must be Points")
        roster_hash = self.roster_hash
        # one dict instead of k linear scans of a roster of up to 1,000 members
        by_identity = {e.identity: i for i, e in enumerate(self.roster.entries)}
        committee: list[int] = []
        for j, entry in enumerate(self.announcements):
            try:
                _author, a = decode_announcement_entry(self.suite, entry)
            except (DecodeError, ProtocolError, LimitExceeded, InvalidKey,
                    UnsupportedError) as exc:
                raise UsageError(f"committee announcement {j + 1} does not decode: {exc}") from None
            if (a.group_id, a.epoch, a.run) != (self.group_id, self.epoch, self.run):
                raise UsageError(f"committee announcement {j + 1} is for another run")
            if not (hmac.compare_digest(a.applied_proposals_hash, self.applied_hash)
                    and hmac.compare_digest(a.roster_hash, roster_hash)):
                raise UsageError(f"committee announcement {j + 1} is for another view")
            if a.dkg_key != self.dkg_keys[j].to_bytes():
                raise UsageError(f"DKG key {j + 1} is not the one its announcement carries")
            index = by_identity.get(a.identity)
            if index is None:
                raise UsageError(f"committee member {j + 1} is not in the new roster")
            committee.append(index)
        if len(set(committee)) != k:
            raise UsageError("a member is twice on the committee")
        object.__setattr__(self, "committee_indices", tuple(committee))
        object.__setattr__(self, "_parsed", {})
        object.__setattr__(self, "_transcripts", {})
        n = len(self.roster)
        if any(type(i) is not int or not 0 <= i < n for i in self.recipients) or any(
                b <= a for a, b in pairwise(self.recipients)):
            raise UsageError("recipients must be increasing new-roster indices")
        if set(self.recipients) & set(committee):
            raise UsageError("a committee member is never a recipient")
        ids = {self.roster.entries[i].identity for i in self.recipients}
        if not self.member_base_to <= ids:
            raise UsageError("member_base goes only to recipients")

    @property
    def k(self) -> int:
        return len(self.announcements)

    @cached_property
    def roster_hash(self) -> bytes:
        return self.roster.hash()

    @cached_property
    def _session_id(self) -> bytes:
        return run_session_id(self.suite, self.group_id, self.epoch, self.epoch_id, self.run,
                              self.applied_hash, self.announcements)

    def session_id(self) -> bytes:
        """`run_session_id` (08 v2 §8.v2.2)."""
        return self._session_id

    @cached_property
    def _params(self) -> SessionParams:
        return SessionParams(COCKTAIL_THRESHOLD, self.dkg_keys,
                             make_context(self.session_id(), self.dkg_keys))

    def params(self) -> SessionParams:
        """The run's COCKTAIL session: t = 1, the k DKG keys, context from `run_session_id`."""
        return self._params

    def position_of(self, dkg_key: Point) -> int:
        """The committee position (1..k) of the member announcing `dkg_key`."""
        for j, p in enumerate(self.dkg_keys, start=1):
            if p == dkg_key:
                return j
        raise UsageError("this DKG key is not on the run's committee")

    def sealing_context(self) -> SealingContext:
        return SealingContext(self.suite, self.group_id, self.epoch + 1, self.session_id(),
                              self.roster_hash)

    def bundle_position(self, roster_index: int) -> int:
        """Where the recipient at new-roster index `roster_index` finds its pair."""
        try:
            return self.recipients.index(roster_index)
        except ValueError:
            raise UsageError("not a recipient of this run's commit") from None

    def seals_member_base(self, roster_index: int) -> bool:
        return self.roster.entries[roster_index].identity in self.member_base_to

    def seal_targets(self, commit_secret: bytes, member_base: bytes) -> tuple[Recipient, ...]:
        """The recipients with their plaintexts (secret: do not keep)."""
        out = []
        for i in self.recipients:
            entry = self.roster.entries[i]
            plaintext = member_base if entry.identity in self.member_base_to else commit_secret
            out.append(Recipient(i, entry.identity, entry.receive_key, plaintext))
        return tuple(out)


def recipients_of(roster: Roster, committee: Sequence[bytes],
                  dormant: frozenset[bytes] = frozenset()) -> tuple[int, ...]:
    """The new-roster indices of run r's recipients: every member of the new roster neither on
    the committee (identities) nor dormant at S(e), in roster order (11.v2.12)."""
    skip = set(committee) | set(dormant)
    return tuple(i for i, e in enumerate(roster.entries) if e.identity not in skip)


@dataclass(frozen=True, repr=False)
class RunOutcome:
    """The values of a finished run. A committee member (or a REVEAL reader) has them all; a
    recipient sealed `member_base` has no `commit_secret`, and no recipient has the `bundle`
    (only its root). Secrets are kept out of `repr`."""

    commit_secret: bytes | None
    member_base: bytes
    bundle: Bundle | None
    bundle_root: bytes
    transcript_hash: bytes
    group_context: bytes
    epoch_secret: bytes
    confirmation_tag: bytes
    roster_size: int

    def agrees_with(self, item: Round3Item) -> bool:
        """Whether a round-3 item carries this outcome's (bundle_root, confirmation_tag)."""
        return (hmac.compare_digest(item.bundle_root, self.bundle_root)
                and hmac.compare_digest(item.confirmation_tag, self.confirmation_tag))

    def secrets(self, suite: Suite) -> EpochSecretsV2:
        """Every value of the new epoch (08 v2 §8.v2.3)."""
        return derive_epoch_v2(suite, self.member_base, self.group_context, self.roster_size)

    def __repr__(self) -> str:
        return (f"RunOutcome(bundle_root={self.bundle_root.hex()}, "
                f"confirmation_tag={self.confirmation_tag.hex()}, <secrets redacted>)")


def check_round1(inputs: RunInputs, position: int, item: Round1Item) -> SignedRound1:
    """The public checks of committee position `position`'s round-1 item (11.v2.22): the item's
    run, `signed_round1` decoding (`DecodeError`/`LimitExceeded`), its sender = `position`
    (`ProtocolError`), the DKG signature under the announced key (`InvalidSignature`), msg1's
    strict parse with 80-byte ciphertexts, points and PoP (`DkgError` naming the position)."""
    if type(position) is not int or not 1 <= position <= inputs.k:
        raise UsageError(f"committee position must be 1..{inputs.k}")
    if item.run != inputs.run:
        raise ProtocolError("round-1 item for another run")
    signed = SignedRound1.from_bytes(item.signed_round1)
    if signed.sender != position:
        raise ProtocolError("round-1 item's sender is not its author's committee position")
    params = inputs.params()
    msg = signed.verify(params)
    entry = msg.for_recipient(1)
    check_public_entry(params, position, entry)
    _remember(inputs._parsed, signed.message, entry)
    return signed


_MAX_MEMO = 64


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> None:
    if len(memo) < _MAX_MEMO:
        memo[key] = value


def _public_entry(inputs: RunInputs, signed: SignedRound1) -> Round2Entry:
    """Sender's public round-1 data (commitment, PoP, ephemeral; recipient 1's ciphertext)."""
    entry = inputs._parsed.get(signed.message)
    if entry is None:
        entry = signed.parse(inputs.params()).for_recipient(1)
        _remember(inputs._parsed, signed.message, entry)
    return entry


def _check_round1_list(inputs: RunInputs, round1: Sequence[SignedRound1]) -> None:
    if len(round1) != inputs.k or any(r.sender != j for j, r in enumerate(round1, start=1)):
        raise UsageError("need the k checked round-1 items in committee order")


def round1_transcript(inputs: RunInputs, round1: Sequence[SignedRound1],
                      bundle_root: bytes) -> bytes:
    """COCKTAIL's transcript T of the run (what CertEq signs), its extension (§8.v2.4) built
    with `bundle_root`. `round1` are the k items `check_round1` returned, committee order."""
    _check_round1_list(inputs, round1)
    key = (tuple(r.payload_hash + r.message for r in round1), bytes(bundle_root))
    cached = inputs._transcripts.get(key)
    if cached is not None:
        return cached
    params = inputs.params()
    extension = run_extension(inputs.suite, [r.payload_hash for r in round1],
                              inputs.announcements, inputs.roster_hash, inputs.applied_hash,
                              bundle_root, inputs.epoch_id)
    # T holds commitments, PoPs and ephemerals, never ciphertexts: any recipient's view will do.
    entries = [_public_entry(inputs, r) for r in round1]
    transcript = Transcript.build(params, entries, extension).to_bytes()
    _remember(inputs._transcripts, key, transcript)
    return transcript


def verify_round3(inputs: RunInputs, round1: Sequence[SignedRound1], position: int,
                  item: Round3Item, *, transcript: bytes | None = None) -> None:
    """Committee position `position`'s round-3 item: its run (`ProtocolError`), its CertEq
    signature over T built with the item's own bundle root and its DKG signature over
    `(run_session_id, bundle_root, confirmation_tag)` (`InvalidSignature`: it counts as missing).

    `transcript` may pass `round1_transcript(inputs, round1, item.bundle_root)` when the caller
    already built it (readers check k items that normally share one root)."""
    if type(position) is not int or not 1 <= position <= inputs.k:
        raise UsageError(f"committee position must be 1..{inputs.k}")
    if item.run != inputs.run:
        raise ProtocolError("round-3 item for another run")
    if len(item.bundle_root) != inputs.suite.hash_len:
        raise DecodeError("round-3 item's bundle root has the wrong length")
    t = transcript if transcript is not None else round1_transcript(inputs, round1,
                                                                   item.bundle_root)
    item.verify(inputs.dkg_keys[position - 1], context=inputs.params().context,
                run_session_id=inputs.session_id(), transcript=t)


def bundle_root_of(inputs: RunInputs, pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The Merkle root of a commit's bundle, leaf p bound to recipient p's index and identity."""
    if len(pairs) != len(inputs.recipients):
        raise ProtocolError(f"the bundle must have one pair per recipient "
                            f"({len(inputs.recipients)}), not {len(pairs)}")
    suite = inputs.suite
    entries = inputs.roster.entries
    return merkle_root(suite, pair_leaves(
        suite, [(i, entries[i].identity) for i in inputs.recipients], pairs))


def verify_commit(inputs: RunInputs, commit: Commit, bundle_root: bytes) -> None:
    """A commit's public checks (11.v2.23, except phase and author): its run (`ProtocolError`),
    one pair per recipient (`ProtocolError`; exact pair lengths are the decoder's), and its
    Merkle root equal to the agreed `bundle_root` (`AuthenticationError`)."""
    if commit.run != inputs.run:
        raise ProtocolError("commit for another run")
    if not hmac.compare_digest(bundle_root_of(inputs, commit.bundle), bundle_root):
        raise AuthenticationError("the commit's bundle is not the certified one")


def _finish(inputs: RunInputs, round1: Sequence[SignedRound1], *, commit_secret: bytes | None,
            member_base: bytes, bundle: Bundle | None, bundle_root: bytes) -> RunOutcome:
    suite = inputs.suite
    t_hash = hashlib.sha512(round1_transcript(inputs, round1, bundle_root)).digest()
    context = group_context(suite, inputs.group_id, inputs.epoch + 1, inputs.epoch_id,
                            inputs.roster_hash, inputs.applied_hash, bundle_root, t_hash)
    epoch_secret = expand_epoch_secret(suite, member_base, context)
    return RunOutcome(commit_secret, member_base, bundle, bundle_root, t_hash, context,
                      epoch_secret, confirmation_tag(suite, epoch_secret, context),
                      len(inputs.roster))


def outcome_from_payloads(inputs: RunInputs, round1: Sequence[SignedRound1],
                          payloads: Sequence[bytes], init_secret: bytes) -> RunOutcome:
    """Everything of the run from its k payloads (committee order) and `init_secret(e)`: what a
    committee member computes after its round 2 and what every member of e recomputes from a
    REVEAL. A payload that does not match its signed hash is `DkgError(culprit = position)`."""
    _check_round1_list(inputs, round1)
    if len(payloads) != inputs.k or any(
            not isinstance(p, bytes) or len(p) != PAYLOAD_LEN for p in payloads):
        raise UsageError(f"need {inputs.k} payloads of {PAYLOAD_LEN} bytes")
    checked = check_payloads(round1, payloads)
    suite = inputs.suite
    commit_secret = extract_commit_secret(suite, inputs.session_id(), checked)
    member_base = extract_member_base(suite, init_secret, commit_secret)
    bundle = seal_bundle(inputs.sealing_context(), commit_secret,
                         inputs.seal_targets(commit_secret, member_base))
    return _finish(inputs, round1, commit_secret=commit_secret, member_base=member_base,
                   bundle=bundle, bundle_root=bundle.root)


def outcome_from_reveal(inputs: RunInputs, round1: Sequence[SignedRound1], reveal: Reveal,
                        init_secret: bytes) -> RunOutcome:
    """A REVEAL's recomputation (11.v2.24): `ProtocolError` for another run or a payload count
    other than k; `DkgError(culprit = j)` if payload j does not match its signed hash (the
    REVEAL's author is then excluded)."""
    if reveal.run != inputs.run:
        raise ProtocolError("REVEAL for another run")
    if len(reveal.payloads) != inputs.k:
        raise ProtocolError(f"a REVEAL carries exactly k = {inputs.k} payloads")
    return outcome_from_payloads(inputs, round1, reveal.payloads, init_secret)


def outcome_from_opened(inputs: RunInputs, round1: Sequence[SignedRound1], bundle_root: bytes,
                        opened: bytes, *, opened_is_member_base: bool, init_secret: bytes | None,
                        agreed_tag: bytes) -> RunOutcome:
    """A recipient's values from what its sealing held (11.v2.26 step 4): `commit_secret` (then
    `init_secret(e)` is required) or `member_base`; T rebuilt from the public round-1 data with
    the certified `bundle_root`; the confirmation tag checked, in constant time, against the
    agreed one (`AuthenticationError`: 11.v2.25, rejoin)."""
    suite = inputs.suite
    nh = suite.hash_len
    if not isinstance(opened, bytes) or len(opened) != nh:
        raise AuthenticationError("the sealing did not hold a secret of the right length")
    if opened_is_member_base:
        commit_secret, member_base = None, opened
    else:
        if init_secret is None:
            raise UsageError("a member sealed commit_secret needs init_secret(e)")
        commit_secret, member_base = opened, extract_member_base(suite, init_secret, opened)
    outcome = _finish(inputs, round1, commit_secret=commit_secret, member_base=member_base,
                      bundle=None, bundle_root=bundle_root)
    if not isinstance(agreed_tag, bytes) or not hmac.compare_digest(
            outcome.confirmation_tag, agreed_tag):
        raise AuthenticationError("confirmation tag does not match the opened secret")
    return outcome


def blame_evidence_bytes(blame: Blame) -> bytes:
    """Section 7.7's blame evidence `CBOR[culprit, dealer_round1, ecdh]` (evidence kind 3)."""
    ecdh = blame.ecdh
    return cbor.encode([blame.culprit, blame.dealer_round1,
                        None if ecdh is None else [ecdh.ephemeral, ecdh.static, ecdh.proof]])


def decode_blame_evidence(data: bytes) -> Blame:
    """Strict decoding of an evidence-kind-3 `evidence` (§7.7: `ecdh` null or [32, 32, 64])."""
    if not isinstance(data, bytes | bytearray):
        raise UsageError("expected bytes")
    if len(data) > MAX_EVIDENCE_LEN:
        raise LimitExceeded(f"evidence larger than {MAX_EVIDENCE_LEN} bytes")
    f = cbor.as_list(cbor.decode(bytes(data), max_size=MAX_EVIDENCE_LEN, max_items=16,
                                 max_depth=3), "blame evidence", 3)
    culprit = cbor.as_int(f[0], "culprit", minimum=1, maximum=MAX_COMMITTEE)
    dealer = cbor.as_bytes(f[1], "dealer round 1", max_length=MAX_EVIDENCE_LEN)
    ecdh = None
    if f[2] is not None:
        e = cbor.as_list(f[2], "ECDH evidence", 3)
        ecdh = EcdhEvidence(cbor.as_bytes(e[0], "ephemeral ECDH", length=POINT_SIZE),
                            cbor.as_bytes(e[1], "static ECDH", length=POINT_SIZE),
                            cbor.as_bytes(e[2], "DLEQ proof", length=DLEQ_PROOF_SIZE))
    return Blame(culprit, dealer, ecdh)


def judge_blame_evidence(inputs: RunInputs, accuser: int, evidence: Evidence) -> Verdict:
    """Evidence kind 3 posted by committee position `accuser` (11.v2.24): section 7.8's verdict
    (`verdict.culprit` is the dealer when the fault is real, else the accuser, reason
    `false-accusation`). Evidence that is not authentic raises (`DecodeError`, `ProtocolError`,
    `InvalidSignature`, `AuthenticationError`, `InvalidKey`): ignore it, convict no one."""
    if type(accuser) is not int or not 1 <= accuser <= inputs.k:
        raise ProtocolError("the accuser is not on the run's committee")
    if evidence.run != inputs.run:
        raise ProtocolError("evidence for another run")
    if evidence.kind != EVIDENCE_BLAME:
        raise UsageError("not blame evidence")
    return judge_blame(inputs.params(), accuser, decode_blame_evidence(evidence.evidence))


def disagreeing(outcome: RunOutcome, items: Sequence[Round3Item | None]) -> tuple[int, ...]:
    """Committee positions (1..k) whose round-3 item is missing (`None`) or carries another
    `(bundle_root, confirmation_tag)` than the recomputed outcome (REVEAL, 11.v2.24)."""
    return tuple(j for j, item in enumerate(items, start=1)
                 if item is None or not outcome.agrees_with(item))


__all__ = [
    "COCKTAIL_THRESHOLD",
    "RunInputs",
    "RunOutcome",
    "blame_evidence_bytes",
    "bundle_root_of",
    "check_round1",
    "decode_announcement_entry",
    "decode_blame_evidence",
    "disagreeing",
    "judge_blame_evidence",
    "outcome_from_opened",
    "outcome_from_payloads",
    "outcome_from_reveal",
    "recipients_of",
    "round1_transcript",
    "verify_commit",
    "verify_round3",
]
