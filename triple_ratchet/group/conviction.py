"""Bad sealings after the commit (spec 11.v2.25): what a member keeps of the commit that started
its epoch, to repair a requester's sealing and to judge convictions; and a requester's opening of
a repaired sealing.

A member of epoch e+1 that held `commit_secret` of C(e) (a committee member, or a recipient
sealed `commit_secret`) keeps `SealingInputs` while it is in e+1: `commit_secret`, the run's
session id, who the commit sealed to and the certified pairs. The roster is e+1's own. It is
dropped when e+2 begins (forward secrecy of the next epochs).

`member_base` is not kept: with it a captured state would re-derive every chain root of e+1 and
read the epoch's messages already processed (section 13, forward secrecy mid-epoch). So the
sealings of `member_base` (joiners, resumed members, members dormant at S(e-1)) are neither
repaired nor judged here: such a requester is resumed instead (11.v2.31), and a conviction about
one is not checkable.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from triple_ratchet import cbor
from triple_ratchet.dkg.attempt import SignedRound1
from triple_ratchet.errors import DecodeError, ProtocolError, UsageError
from triple_ratchet.group.events import Event, MisbehaviourReported, SealingConvicted
from triple_ratchet.group.key_schedule import MAX_EPOCH, MAX_RUN
from triple_ratchet.group.notice import Repair, ResumeInstead, answer_rejoin
from triple_ratchet.group.records import RejoinRequest
from triple_ratchet.group.roster import Roster
from triple_ratchet.group.run import Commit, Conviction, RepairedSealing, sealing_sizes
from triple_ratchet.group.run_secrets import RunInputs, RunOutcome, outcome_from_opened
from triple_ratchet.group.sealing import (
    Recipient,
    Sealing,
    SealingContext,
    open_sealing,
    seal_secret,
    seal_to,
)
from triple_ratchet.suites import Suite

FALSE_CONVICTION = "false conviction"
NOT_CHECKABLE = "conviction not checkable here"


@dataclass(frozen=True, repr=False)
class SealingInputs:
    """What recomputes the sealings of C(e), the commit that started epoch e+1 = `roster`'s
    epoch: `decided_epoch` = e, its run, `run_session_id`, the committee and the recipients
    (indices in `roster`, increasing), those of them sealed `member_base`, `commit_secret`, and
    the certified pairs (bundle order). Secret: never in `repr`."""

    suite: Suite
    group_id: bytes
    roster: Roster
    decided_epoch: int
    run: int
    run_session_id: bytes
    committee: tuple[int, ...]
    recipients: tuple[int, ...]
    member_base_to: frozenset[int]
    commit_secret: bytes = field(repr=False)
    certified: tuple[tuple[bytes, bytes], ...] = ()  # public: the commit's bundle

    def __post_init__(self) -> None:
        nh = self.suite.hash_len
        n = len(self.roster)
        if type(self.decided_epoch) is not int or not 0 <= self.decided_epoch < MAX_EPOCH:
            raise UsageError("decided epoch out of range")
        if type(self.run) is not int or not 1 <= self.run <= MAX_RUN:
            raise UsageError("run out of range")
        for what, value in (("run_session_id", self.run_session_id),
                            ("commit_secret", self.commit_secret)):
            if not isinstance(value, bytes) or len(value) != nh:
                raise UsageError(f"{what} must be {nh} bytes")
        for what, indices in (("committee", self.committee), ("recipients", self.recipients)):
            if any(type(i) is not int or not 0 <= i < n for i in indices):
                raise UsageError(f"{what}: roster indices expected")
        if not self.committee or len(set(self.committee)) != len(self.committee):
            raise UsageError("a committee of distinct members expected")
        if any(b <= a for a, b in pairwise(self.recipients)) or (
                set(self.recipients) & set(self.committee)):
            raise UsageError("recipients: increasing, never on the committee")
        if not self.member_base_to <= set(self.recipients):
            raise UsageError("member_base goes only to recipients")
        enc_len, ct_len = sealing_sizes(self.suite)
        if len(self.certified) != len(self.recipients) or any(
                not isinstance(enc, bytes) or not isinstance(ct, bytes) or len(enc) != enc_len
                or len(ct) != ct_len for enc, ct in self.certified):
            raise UsageError("one certified pair of exact lengths per recipient")

    @classmethod
    def keep(cls, inputs: RunInputs, commit: Commit, outcome: RunOutcome
             ) -> SealingInputs | None:
        """What a member keeps of the deciding run it processed; None when it holds no
        `commit_secret` (it was sealed `member_base`: it cannot recompute a sealing)."""
        if outcome.commit_secret is None:
            return None
        roster = inputs.roster
        lacking = frozenset(i for i in inputs.recipients
                            if roster.entries[i].identity in inputs.member_base_to)
        return cls(inputs.suite, inputs.group_id, roster, inputs.epoch, inputs.run,
                   inputs.session_id(), inputs.committee_indices, inputs.recipients, lacking,
                   outcome.commit_secret, tuple(commit.bundle))

    def committee_identities(self) -> tuple[bytes, ...]:
        return tuple(self.roster.entries[i].identity for i in self.committee)

    def _context(self) -> SealingContext:
        return SealingContext(self.suite, self.group_id, self.decided_epoch + 1,
                              self.run_session_id, self.roster.hash())

    def _recipient(self, index: int) -> Recipient | None:
        """Recipient `index` with its plaintext, None when we cannot seal to it (it is no
        recipient, or it was sealed `member_base`, which we do not keep)."""
        if index not in self.recipients or index in self.member_base_to:
            return None
        entry = self.roster.entries[index]
        return Recipient(index, entry.identity, entry.receive_key, self.commit_secret)

    def _certified(self, index: int) -> Sealing:
        enc, ct = self.certified[self.recipients.index(index)]
        return Sealing(enc, ct)

    def answer(self, request: RejoinRequest, *, author: bytes, current_epoch_id: bytes
               ) -> Repair | ResumeInstead | None:
        """`answer_rejoin` for a checked rejoin request (11.v2.25); None when the requester's
        sealing cannot be recomputed here (it was no recipient, or was sealed `member_base`):
        resume it (11.v2.31)."""
        index = self.roster.index_of(request.record.identity)
        recipient = None if index is None else self._recipient(index)
        if index is None or recipient is None:
            return None
        return answer_rejoin(request, decided=self._context(), decided_run=self.run,
                             commit_secret=self.commit_secret, recipient=recipient,
                             certified=self._certified(index), author=author,
                             current_epoch=self.decided_epoch + 1,
                             current_epoch_id=current_epoch_id)

    def judge(self, author: bytes, conviction: Conviction) -> list[Event] | None:
        """A conviction entry by `author` (11.v2.25): `SealingConvicted` when its pair is the
        recomputed one and differs from the certified one; `MisbehaviourReported(author, "false
        conviction")` when its pair is not the recomputed one or is the certified one; None
        when it is not checkable here (another commit, or a sealing of `member_base`)."""
        if (conviction.decided_epoch, conviction.run) != (self.decided_epoch, self.run):
            return None
        index = conviction.recipient
        recipient = self._recipient(index) if index < len(self.roster) else None
        if recipient is None:
            return None
        secret = seal_secret(self.suite, self.commit_secret, self.run_session_id)
        correct = seal_to(self._context(), secret, recipient)
        certified = self._certified(index)
        named = Sealing(conviction.enc, conviction.ct)
        if _same(named, correct) and not _same(named, certified):
            return [SealingConvicted(self.decided_epoch + 1, self.run, recipient.identity,
                                     self.committee_identities())]
        return [MisbehaviourReported(author, FALSE_CONVICTION)]

    def to_bytes(self) -> bytes:
        return cbor.encode([self.decided_epoch, self.run, self.run_session_id,
                            list(self.committee), list(self.recipients),
                            sorted(self.member_base_to), self.commit_secret,
                            [[enc, ct] for enc, ct in self.certified]])

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes, *, group_id: bytes, roster: Roster,
                   epoch: int) -> SealingInputs:
        """Strict: the inputs of the commit that started `epoch`, whose roster is `roster`;
        anything else is a `DecodeError`."""
        n = len(roster)
        f = cbor.as_list(cbor.decode(data, max_size=len(data), max_items=16 + 8 * n,
                                     max_depth=3), "kept sealing inputs", 8)

        def indices(value: cbor.CborValue, what: str) -> tuple[int, ...]:
            items = cbor.as_list(value, what)
            if len(items) > n:
                raise DecodeError(f"{what}: more than the roster")
            return tuple(cbor.as_int(i, what, maximum=n - 1) for i in items)

        pairs = []
        # a hybrid KEM's enc is over 1 KB; exact lengths are checked when the value is built
        enc_bound = max(256, sealing_sizes(suite)[0])
        for p in cbor.as_list(f[7], "certified pairs"):
            x = cbor.as_list(p, "certified pair", 2)
            pairs.append((cbor.as_bytes(x[0], "enc", max_length=enc_bound),
                          cbor.as_bytes(x[1], "ct", max_length=256)))
        decided = cbor.as_int(f[0], "decided epoch", maximum=MAX_EPOCH)
        if decided + 1 != epoch:
            raise DecodeError("kept sealing inputs of another epoch's commit")
        try:
            return cls(suite, group_id, roster, decided, cbor.as_int(f[1], "run"),
                       cbor.as_bytes(f[2], "run_session_id", length=suite.hash_len),
                       indices(f[3], "committee"), indices(f[4], "recipients"),
                       frozenset(indices(f[5], "sealed member_base")),
                       cbor.as_bytes(f[6], "commit_secret", length=suite.hash_len),
                       tuple(pairs))
        except UsageError as exc:
            raise DecodeError(f"kept sealing inputs: {exc}") from None

    def __repr__(self) -> str:
        return (f"SealingInputs(epoch={self.decided_epoch + 1}, run={self.run}, "
                f"{len(self.recipients)} recipients, <secrets redacted>)")


def _same(a: Sealing, b: Sealing) -> bool:
    return hmac.compare_digest(a.enc, b.enc) and hmac.compare_digest(a.ct, b.ct)


def open_repaired_sealing(data: bytes, inputs: RunInputs, round1: Sequence[SignedRound1], *,
                          bundle_root: bytes, confirmation_tag: bytes, roster_index: int,
                          receive_private_key: bytes, init_secret: bytes | None) -> RunOutcome:
    """The requester's check of a `RepairedSealing` (11.v2.25) for the deciding run whose
    public `inputs` and checked `round1` items it holds (the run-level form of
    `accept_repaired_sealing`, giving the run's outcome): it names that commit
    (`ProtocolError`), opens with our receive private key of that commit
    (`AuthenticationError`), and leads to the certified confirmation tag
    (`AuthenticationError`)."""
    suite = inputs.suite
    repaired = RepairedSealing.from_bytes(suite, data)
    if not hmac.compare_digest(repaired.group_id, inputs.group_id):
        raise ProtocolError("repaired sealing for another group")
    if (repaired.decided_epoch, repaired.run) != (inputs.epoch, inputs.run):
        raise ProtocolError("repaired sealing for another commit")
    if roster_index not in inputs.recipients:
        raise ProtocolError("we were no recipient of that commit")
    identity = inputs.roster.entries[roster_index].identity
    opened = open_sealing(inputs.sealing_context(), identity, receive_private_key,
                          Sealing(repaired.enc, repaired.ct))
    return outcome_from_opened(inputs, round1, bundle_root, opened,
                               opened_is_member_base=inputs.seals_member_base(roster_index),
                               init_secret=init_secret, agreed_tag=confirmation_tag)


__all__ = ["FALSE_CONVICTION", "NOT_CHECKABLE", "SealingInputs", "open_repaired_sealing"]
