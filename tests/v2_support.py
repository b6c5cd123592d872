"""Builders for version-2 control mailboxes in tests: a group of members with records, its epoch
view, and every entry of an epoch change made with the v2 value constructors (and committee.py
for the run's items), sealed into control blobs with increasing cursors.

`World.honest_run(log, members, t)` plays a whole run among `members` and returns the entries;
everything is deterministic given the world's seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from triple_ratchet import cbor
from triple_ratchet.group.change_proposal import (
    KIND_ADD,
    KIND_REFRESH,
    KIND_REMOVE,
    KIND_RESUME,
    ChangeProposal,
)
from triple_ratchet.group.committee import (
    RunSeed,
    local_round2,
    make_announcement,
    make_commit,
    make_reveal,
    make_round1,
    make_round3,
)
from triple_ratchet.group.control import (
    TYPE_ANNOUNCEMENT,
    TYPE_COMMIT,
    TYPE_EVIDENCE,
    TYPE_PROPOSAL,
    TYPE_RECORD,
    TYPE_REVEAL,
    TYPE_ROUND1,
    TYPE_ROUND3,
    TYPE_TICK,
    ControlEntry,
    seal_entry,
    sign_identity_entry,
    sign_member_entry,
)
from triple_ratchet.group.control_log import (
    CLOSE_WINDOW,
    ControlLog,
    Entry,
    EpochView,
)
from triple_ratchet.group.records import (
    PURPOSE_RESUME,
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
)
from triple_ratchet.group.roster import Roster, RosterEntry
from triple_ratchet.group.run import (
    EVIDENCE_ANNOUNCEMENT_EQUIVOCATION,
    Evidence,
    Round3Item,
)
from triple_ratchet.group.run_secrets import RunOutcome
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite

GROUP = b"control log group"
T0 = 1_700_000_000_000
DAY = 24 * 3_600_000


@dataclass
class Member:
    name: str
    identity: IdentityKeyPair
    keys: RecordKeys
    record: MemberKeyRecord
    counter: int = 1

    @property
    def id(self) -> bytes:
        return self.identity.public.to_bytes()


class World:
    """n members (named A, B, C, … then M<i>) of epoch `epoch` with T0(e) = `t0`."""

    def __init__(self, n: int = 3, *, suite: Suite | None = None, epoch: int = 5,
                 t0: int | None = T0, seed: bytes = b"world", posted_at: int | None = None,
                 carried: Sequence[bytes] = ()) -> None:
        self.suite = suite or CLASSICAL_SUITES[-1]
        self.rng = DeterministicRandom(b"control log " + seed)
        self.epoch = epoch
        self.members: list[Member] = []
        for i in range(n):
            name = chr(ord("A") + i) if i < 26 else f"M{i}"
            self.members.append(self.new_member(name))
        at = posted_at if posted_at is not None else (t0 or 0)
        roster = Roster(self.suite, tuple(RosterEntry.of(m.record, at) for m in self.members))
        self.view = EpochView(
            self.suite, GROUP, epoch, self.rng(32), roster, t0, tuple(carried),
            self.rng(self.suite.hash_len), self.rng(self.suite.aead_key_len), self.rng(32))
        self.cursor = 100
        self.seeds: dict[tuple[str, int], RunSeed] = {}

    def new_member(self, name: str) -> Member:
        identity = IdentityKeyPair.generate(self.suite, self.rng)
        keys = RecordKeys.from_seed(self.suite, self.rng(32))
        anchor = self.suite.hash(b"membership " + name.encode())
        record = MemberKeyRecord.sign(identity, keys, group_id=GROUP, counter=1,
                                      purpose=PURPOSE_ROTATE, anchor=anchor)
        return Member(name, identity, keys, record)

    def __getitem__(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def index(self, m: Member) -> int:
        i = self.view.roster.index_of(m.id)
        return 0 if i is None else i

    def start(self) -> ControlLog:
        return ControlLog.start(self.view)

    # -- entries --

    def entry(self, t: int, ce: ControlEntry | bytes) -> Entry:
        self.cursor += 1
        blob = ce if isinstance(ce, bytes) else seal_entry(
            self.suite, self.view.traffic_key, self.view.mailbox_id, ce, self.rng)
        return Entry(self.cursor, t, blob)

    def identity_entry(self, m: Member, entry_type: int, body: bytes, *,
                       epoch: int | None = None) -> ControlEntry:
        return sign_identity_entry(m.identity, entry_type, group_id=GROUP,
                                   epoch=self.epoch if epoch is None else epoch,
                                   author=self.index(m), body=body)

    def member_entry(self, m: Member, entry_type: int, body: bytes) -> ControlEntry:
        return sign_member_entry(self.suite, m.keys.signing_key, entry_type, group_id=GROUP,
                                 epoch=self.epoch, author=self.index(m), body=body)

    def proposal(self, author: Member, kind: int, change: object, *,
                 epoch: int | None = None, epoch_id: bytes | None = None) -> ControlEntry:
        e = self.epoch if epoch is None else epoch
        p = ChangeProposal.make(self.suite, kind, group_id=GROUP, epoch=e,
                                epoch_id=self.view.epoch_id if epoch_id is None else epoch_id,
                                author=author.id, change=change)  # type: ignore[arg-type]
        return self.identity_entry(author, TYPE_PROPOSAL, p.to_bytes(), epoch=e)

    def remove(self, author: Member, subject: Member, **kw: object) -> ControlEntry:
        return self.proposal(author, KIND_REMOVE, subject.id, **kw)  # type: ignore[arg-type]

    def refresh(self, author: Member) -> ControlEntry:
        return self.proposal(author, KIND_REFRESH, None)

    def join_key(self, name: str, expiry: int = T0 + 30 * DAY,
                 keys: RecordKeys | None = None) -> tuple[IdentityKeyPair, JoinKey]:
        identity = IdentityKeyPair.generate(self.suite, self.rng)
        jk = JoinKey.sign(identity, keys or RecordKeys.from_seed(self.suite, self.rng(32)),
                          expiry=expiry, inbox_id=self.rng(32))
        return identity, jk

    def add(self, author: Member, jk: JoinKey) -> ControlEntry:
        return self.proposal(author, KIND_ADD, jk)

    def resume_record(self, m: Member, *, purpose: int = PURPOSE_RESUME,
                      counter: int | None = None) -> MemberKeyRecord:
        return MemberKeyRecord.sign(
            m.identity, RecordKeys.from_seed(self.suite, self.rng(32)), group_id=GROUP,
            counter=counter if counter is not None else m.counter + 1, purpose=purpose,
            anchor=m.record.anchor)

    def resume(self, author: Member, record: MemberKeyRecord) -> ControlEntry:
        return self.proposal(author, KIND_RESUME, record)

    def rotation(self, m: Member, *, counter: int | None = None,
                 keys: RecordKeys | None = None, anchor: bytes | None = None,
                 purpose: int = PURPOSE_ROTATE) -> tuple[MemberKeyRecord, ControlEntry]:
        keys = keys or RecordKeys.from_seed(self.suite, self.rng(32))
        record = MemberKeyRecord.sign(
            m.identity, keys, group_id=GROUP, counter=counter or m.counter + 1,
            purpose=purpose, anchor=m.record.anchor if anchor is None else anchor)
        return record, self.identity_entry(m, TYPE_RECORD, record.to_bytes())

    def tick(self, m: Member) -> ControlEntry:
        return self.member_entry(m, TYPE_TICK, b"")

    # -- runs --

    def seed(self, m: Member, run: int, variant: int = 0) -> RunSeed:
        key = (m.name + "/" * variant, run)
        if key not in self.seeds:
            self.seeds[key] = RunSeed.generate(self.suite, self.rng)
        return self.seeds[key]

    def announcement(self, log: ControlLog, m: Member, run: int | None = None, *,
                     variant: int = 0, roster_hash: bytes | None = None,
                     view_hash: bytes | None = None) -> ControlEntry:
        attempt = log.attempt
        assert attempt is not None
        r = log.run.run if run is None else run
        a = make_announcement(self.seed(m, r, variant), group_id=GROUP, epoch=self.epoch, run=r,
                              identity=m.id, applied_hash=attempt.applied_hash,
                              roster_hash=roster_hash or attempt.roster_hash,
                              view_hash=view_hash or log.view.view_hash)
        return self.identity_entry(m, TYPE_ANNOUNCEMENT, a.to_bytes())

    def announcement_evidence(self, run: int, first: ControlEntry,
                              second: ControlEntry) -> bytes:
        return Evidence.make(run, EVIDENCE_ANNOUNCEMENT_EQUIVOCATION,
                             cbor.encode([first.to_bytes(), second.to_bytes()])).to_bytes()

    def evidence(self, m: Member, body: bytes) -> ControlEntry:
        return self.member_entry(m, TYPE_EVIDENCE, body)

    def round1(self, log: ControlLog, m: Member) -> ControlEntry:
        inputs = log.run_inputs()
        assert inputs is not None
        item = make_round1(self.seed(m, inputs.run), inputs)
        return self.member_entry(m, TYPE_ROUND1, item.to_bytes())

    def round3(self, log: ControlLog, m: Member) -> tuple[ControlEntry, Round3Item, RunOutcome]:
        inputs = log.run_inputs()
        assert inputs is not None
        round1 = [r[2] for r in log.run.round1 if r is not None]
        seed = self.seed(m, inputs.run)
        local = local_round2(seed, inputs, round1)
        assert local.payloads is not None
        item, outcome = make_round3(seed, inputs, round1, local.payloads,
                                    self.view.init_secret)
        return self.member_entry(m, TYPE_ROUND3, item.to_bytes()), item, outcome

    def commit(self, log: ControlLog, m: Member, outcome: RunOutcome) -> ControlEntry:
        inputs = log.run_inputs()
        assert inputs is not None
        return self.member_entry(m, TYPE_COMMIT, make_commit(inputs, outcome).to_bytes())

    def reveal(self, log: ControlLog, m: Member) -> ControlEntry:
        inputs = log.run_inputs()
        assert inputs is not None
        payloads = [self.seed(self._by_index(i), inputs.run).payload()
                    for i in log.run.committee]
        return self.member_entry(m, TYPE_REVEAL, make_reveal(inputs, payloads).to_bytes())

    def _by_index(self, index: int) -> Member:
        identity = self.view.roster.entries[index].identity
        return next(m for m in self.members if m.id == identity)

    def honest_run(self, log: ControlLog, members: Sequence[Member], t: int,
                   *, feed: list[Entry] | None = None) -> tuple[ControlLog, list[Entry]]:
        """Play run `log.run.run` among `members` from hub time `t`: announcements, a TICK at
        the close window, round 1, round 3, the commit by position 1. Returns the log and the
        entries (appended to `feed` too)."""
        out: list[Entry] = []

        def post(at: int, ce: ControlEntry) -> None:
            nonlocal log
            e = self.entry(at, ce)
            out.append(e)
            log, _ = log.judge(e)

        for i, m in enumerate(members):
            post(t + i, self.announcement(log, m))
        if len(members) < 8:
            post(t + CLOSE_WINDOW, self.tick(members[0]))
        t = t + CLOSE_WINDOW + 1
        committee = [self._by_index(i) for i in log.run.committee]
        for i, m in enumerate(committee):
            post(t + i, self.round1(log, m))
        t += len(committee)
        outcome = None
        for i, m in enumerate(committee):
            ce, _, outcome = self.round3(log, m)
            post(t + i, ce)
        t += len(committee)
        assert outcome is not None
        post(t, self.commit(log, committee[0], outcome))
        if feed is not None:
            feed.extend(out)
        return log, out


def feed(log: ControlLog, entries: Sequence[Entry]) -> tuple[ControlLog, list[object]]:
    events: list[object] = []
    for e in entries:
        log, more = log.judge(e)
        events += more
    return log, events


__all__ = ["DAY", "GROUP", "T0", "Member", "World", "feed"]
