"""Equivocation aborts at the group layer (spec 11.5, 11.8; brief step 5): an accusation names
someone only when its evidence proves it, judged the same way in every phase of the attempt.

Announcement equivocation evidence is the accused's two identity-signed announcements for one
attempt and one slot with different content; round-1 equivocation is section 7's signed abort.
Missing or invalid evidence still ends the attempt (any participant's signed abort does) but
names no one, and the event's `detail` says why. A malformed abort changes nothing.

Roster of every test: a = 1, b = 2 (the accused), c = 3 (the accuser); b proposes a refresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from test_group_support import Net, make_identities

from triple_ratchet import cbor
from triple_ratchet.dkg import abort as dkg_abort
from triple_ratchet.dkg.attempt import SignedRound1, sign_round1
from triple_ratchet.dkg.cocktail_participant import Participant
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.errors import (
    DecodeError,
    InvalidSignature,
    ProtocolError,
    RemoteError,
    ReplayError,
)
from triple_ratchet.group import announcement as ann
from triple_ratchet.group.announcement import Announcement, SignedAnnouncement
from triple_ratchet.group.attempt_mailbox import (
    ABORT_BLAME,
    ABORT_EQUIVOCATION,
    KIND_ABORT,
    KIND_ANNOUNCEMENT,
    KIND_ROUND1,
    Abort,
    open_item,
)
from triple_ratchet.group.epoch_change import (
    EVIDENCE_INVALID,
    EVIDENCE_MISSING,
    PHASE_TIMEOUT_MS,
    Attempt,
    _send,
)
from triple_ratchet.group.events import AttemptAborted, ForkDetected, Outgoing
from triple_ratchet.group.session import GroupSession, Send
from triple_ratchet.identity import LABEL_IDENTITY_ANNOUNCEMENT
from triple_ratchet.random import DeterministicRandom

PHASES = ("announcing", "round1", "round3")
A, B, C = 1, 2, 3
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _create() -> Net:
    ids = make_identities(3, seed=b"equivocation")
    net = Net()
    for name, ident in zip("abc", ids, strict=True):
        net.identities[name] = ident
    session, sends = GroupSession.create(ids[0], [i.public for i in ids[1:]], net.now,
                                         rng=DeterministicRandom(b"creator"))
    net.members["a"] = session
    net.send("a", sends)
    net.run()
    return net


def _read_holding(net: Net, name: str, box: bytes) -> list[Send]:
    """`name` reads `box`; what it sends is returned instead of reaching the hub."""
    held: list[Send] = []
    for blob in net.hub.unread(name, box):
        events, sends = net.members[name].receive(blob, net.now, entry_time=net.now_ms)
        net.events[name] += events
        held += sends
    return held


@dataclass
class World:
    """A refresh attempt by b, stopped where every member is in `phase`."""

    net: Net
    phase: str
    box: bytes
    held: list[Send]  # what the members sent in reaction to the last items (not yet relayed)
    announcements: dict[int, bytes]  # each participant's signed announcement, as sent

    def attempt(self, name: str) -> Attempt:
        attempt = self.net.members[name]._s.attempt
        assert attempt is not None
        return attempt

    def identity(self, name: str) -> bytes:
        return self.net.identities[name].public.to_bytes()

    def items(self, kind: int) -> list[bytes]:
        attempt = self.attempt("a")
        _, key = attempt.mailbox()
        opened = [open_item(attempt.suite, key, self.box, b) for b in self.net.hub.logs[self.box]]
        return [p for k, p in opened if k == kind]

    def post(self, payload: bytes, kind: int = KIND_ABORT, by: str = "c") -> None:
        out = _send(self.attempt(by), kind, payload, DeterministicRandom(b"post" + payload[:8]))
        self.net.hub.append(out.mailbox_id, out.blob)

    def abort(self, evidence: bytes, *, reason: int = ABORT_EQUIVOCATION, by: str = "c",
              named: tuple[int, ...] = (B,)) -> bytes:
        attempt = self.attempt(by)
        assert attempt.own_index is not None
        return Abort.sign(attempt.dkg_secret(), attempt.session_id, attempt.own_index, reason,
                          named, evidence, DeterministicRandom(b"abort" + evidence[:16])).to_bytes()

    def release(self) -> None:
        self.net.send("a", self.held)  # the sender's name only matters for welcomes
        self.held = []

    def finish(self) -> None:
        self.release()
        self.net.run()

    def aborted(self, name: str) -> AttemptAborted:
        (event,) = [e for e in self.net.events[name] if isinstance(e, AttemptAborted)]
        return event


def world(phase: str, withhold: str = "b") -> World:
    """announcing: every announcement but `withhold`'s was read (so an abort read now is read in
    ANNOUNCING); round1 / round3: every member read every item of the previous phase and holds
    what it sent in reply."""
    net = _create()
    net.send("b", net.members["b"].propose(net.now))
    group_box = net.members["a"].mailbox_id
    sent: list[Send] = []
    for name in "abc":
        sent += _read_holding(net, name, group_box)
    first = net.members["a"]._s.attempt
    assert first is not None
    box, key = first.mailbox()
    w = World(net, phase, box, [], {})
    for out in sent:
        assert isinstance(out, Outgoing) and out.mailbox_id == box
        payload = open_item(first.suite, key, box, out.blob)[1]
        index = SignedAnnouncement.from_bytes(first.suite, payload).announcement.index
        w.announcements[index] = payload
        if phase != "announcing" or index != " abc".index(withhold):
            net.hub.append(box, out.blob)
    for name in "abc":
        w.held += _read_holding(net, name, box)
    if phase == "round3":
        w.release()
        for name in "abc":
            w.held += _read_holding(net, name, box)
    assert {net.members[x].attempt_phase for x in "abc"} == {phase}
    return w


def second_announcement(w: World, name: str = "b", seed: bytes = b"\x07" * 32,
                        session_id: bytes | None = None) -> bytes:
    """`name`'s identity key signs another announcement for its slot (another DKG key)."""
    first = SignedAnnouncement.from_bytes(w.attempt("a").suite,
                                          w.announcements[" abc".index(name)]).announcement
    other = replace(w.attempt(name), seed=seed)
    a = replace(first, dkg_key=Point.base_mul(other.dkg_secret()).to_bytes(),
                session_id=first.session_id if session_id is None else session_id)
    return SignedAnnouncement.sign(w.net.identities[name], a).encoded


def signed_by(w: World, signer: str, a: Announcement) -> bytes:
    body = a.body()
    return cbor.encode([body, w.net.identities[signer].sign(LABEL_IDENTITY_ANNOUNCEMENT, body)])


def genuine(w: World) -> bytes:
    return ann.equivocation_evidence(w.announcements[B], second_announcement(w))


# --- the judge itself ---------------------------------------------------------------------------


def test_judge_convicts_only_two_different_announcements_for_one_slot_and_attempt() -> None:
    w = world("round1")
    attempt = w.attempt("a")
    roster = attempt.proposal.proposal.new_roster

    def judge(evidence: bytes, session_id: bytes = attempt.session_id) -> int:
        return ann.judge_equivocation(attempt.suite, session_id, roster, evidence)

    assert judge(genuine(w)) == B
    assert judge(ann.equivocation_evidence(second_announcement(w), w.announcements[B])) == B
    with pytest.raises(ProtocolError, match="another attempt"):
        judge(genuine(w), session_id=bytes(len(attempt.session_id)))
    with pytest.raises(ProtocolError, match="same content"):
        judge(ann.equivocation_evidence(w.announcements[B], w.announcements[B]))
    with pytest.raises(ProtocolError, match="different slots"):
        judge(ann.equivocation_evidence(w.announcements[B], w.announcements[C]))
    assert ann.is_equivocation_evidence(genuine(w))
    assert not ann.is_equivocation_evidence(cbor.encode([0x37, 1, 2]))
    assert not ann.is_equivocation_evidence(b"\xff")


# --- forged and missing evidence names no one, in every phase -----------------------------------


def _forgeries() -> dict[str, Callable[[World], bytes]]:
    def not_signed_by_accused(w: World) -> bytes:
        # b's slot and identity, but c's identity key signed it.
        first = SignedAnnouncement.from_bytes(w.attempt("a").suite, w.announcements[B])
        second = SignedAnnouncement.from_bytes(w.attempt("a").suite, second_announcement(w))
        return ann.equivocation_evidence(first.encoded,
                                         signed_by(w, "c", second.announcement))

    def accuser_signs_for_accused_slot(w: World) -> bytes:
        # c's identity signs an announcement for b's slot naming c's own identity.
        forged = replace(SignedAnnouncement.from_bytes(
            w.attempt("a").suite, second_announcement(w)).announcement, identity=w.identity("c"))
        return ann.equivocation_evidence(w.announcements[B], signed_by(w, "c", forged))

    def identical(w: World) -> bytes:
        return ann.equivocation_evidence(w.announcements[B], w.announcements[B])

    def same_content_signed_twice(w: World) -> bytes:
        # ECDSA is malleable: (r, n - s) is another valid signature over the same content.
        body, sig = cbor.as_list(cbor.decode(w.announcements[B]), "announcement", length=2)
        assert isinstance(body, bytes) and isinstance(sig, bytes) and len(sig) == 64
        s = int.from_bytes(sig[32:], "big")
        again = cbor.encode([body, sig[:32] + (P256_ORDER - s).to_bytes(32, "big")])
        assert SignedAnnouncement.from_bytes(w.attempt("a").suite, again).same_as(
            SignedAnnouncement.from_bytes(w.attempt("a").suite, w.announcements[B]))
        return ann.equivocation_evidence(w.announcements[B], again)

    def another_attempt(w: World) -> bytes:
        other = bytes(len(w.attempt("a").session_id))
        return ann.equivocation_evidence(second_announcement(w, session_id=other),
                                         second_announcement(w, seed=b"\x08" * 32,
                                                             session_id=other))

    def two_members(w: World) -> bytes:
        return ann.equivocation_evidence(w.announcements[B], w.announcements[C])

    def one_announcement(w: World) -> bytes:
        return cbor.encode([ann.EVIDENCE_ANNOUNCEMENTS, w.announcements[B]])

    def garbage(w: World) -> bytes:
        return b"\x83\x01\x02"

    def section7_by_another_participant(w: World) -> bytes:
        if w.phase == "announcing":
            return cbor.encode([0x37, 1, 2, [], bytes(64)])  # no DKG session yet to judge in
        params = w.attempt("a").params()
        return dkg_abort.make_equivocation(
            params, w.attempt("a").dkg_secret(), dkg_abort.EquivocationKind.ANNOUNCEMENT, B,
            w.announcements[B], second_announcement(w), DeterministicRandom(b"s7"),
            check_announcement=_check(w)).to_bytes()

    return {f.__name__: f for f in (
        not_signed_by_accused, accuser_signs_for_accused_slot, identical,
        same_content_signed_twice, another_attempt, two_members, one_announcement, garbage,
        section7_by_another_participant)}


def _check(w: World) -> dkg_abort.AnnouncementCheck:
    from triple_ratchet.group.epoch_change import _check_announcement
    return lambda data: _check_announcement(w.attempt("a"), data)


FORGERIES = _forgeries()


@pytest.mark.parametrize("phase", PHASES)
def test_an_accusation_without_evidence_names_no_one(phase: str) -> None:
    """The reproduced bug: c aborted with empty evidence and a named b an equivocator."""
    w = world(phase)
    w.post(w.abort(b""))
    w.finish()
    for name in "abc":
        event = w.aborted(name)
        assert (event.reason, event.by, event.named) == ("equivocation", w.identity("c"), ())
        assert event.detail == EVIDENCE_MISSING
    assert {w.net.members[x].epoch for x in "abc"} == {1}  # the abort still ended the attempt


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
@pytest.mark.parametrize("phase", PHASES)
def test_forged_equivocation_evidence_names_no_one(phase: str, forgery: str) -> None:
    w = world(phase)
    w.post(w.abort(FORGERIES[forgery](w)))
    w.finish()
    for name in "abc":
        event = w.aborted(name)
        assert event.reason == "equivocation" and event.named == ()
        assert event.detail.startswith(EVIDENCE_INVALID), event.detail


# --- genuine evidence names the equivocator, in every phase ---------------------------------------


@pytest.mark.parametrize("phase", PHASES)
def test_genuine_announcement_evidence_names_the_equivocator(phase: str) -> None:
    w = world(phase)
    w.post(w.abort(genuine(w), named=(A,)))  # whom the aborter names is not what counts
    w.finish()
    for name in "abc":
        event = w.aborted(name)
        assert (event.reason, event.named, event.detail) == (
            "equivocation", (w.identity("b"),), "equivocation")


@pytest.mark.parametrize("phase", PHASES)
def test_honest_members_report_a_second_announcement_and_name_its_author(phase: str) -> None:
    """Bug 2: a second announcement read after the announcing phase was answered with evidence
    nobody could judge. Now the honest readers' own aborts name b in every phase."""
    w = world(phase, withhold="c")  # announcing: b's first announcement was read, c's was not
    w.post(second_announcement(w), kind=KIND_ANNOUNCEMENT)
    aborts: list[Send] = []
    for name in "abc":
        aborts += _read_holding(w.net, name, w.box)
    assert aborts  # the readers that announced abort at once ...
    w.net.send("a", aborts)  # ... and their aborts come before anything they held
    w.finish()
    for name in "ac":
        assert any(isinstance(e, ForkDetected) and e.kind == "equivocation"
                   and e.member == w.identity("b") for e in w.net.events[name])
    for name in "abc":
        event = w.aborted(name)
        assert event.reason == "equivocation" and event.named == (w.identity("b"),)
        assert event.detail == "equivocation"
        assert event.by != w.identity("b")


def _second_round1(w: World) -> tuple[bytes, bytes]:
    """b's round-1 message as sent, and a second one with other content, both signed by b."""
    params = w.attempt("a").params()
    (first,) = [r for r in w.items(KIND_ROUND1) if SignedRound1.from_bytes(r).sender == B]
    secret = w.attempt("b").dkg_secret()
    payload = bytes(range(32))
    msg = Participant(params, secret, payload=payload, rng=DeterministicRandom(b"r1")).round1()
    return first, sign_round1(params, secret, msg, payload, DeterministicRandom(b"s")).to_bytes()


def test_genuine_round1_evidence_names_the_equivocator_after_round1() -> None:
    w = world("round3")
    first, second = _second_round1(w)
    evidence = dkg_abort.make_equivocation(
        w.attempt("c").params(), w.attempt("c").dkg_secret(), dkg_abort.EquivocationKind.ROUND1,
        B, first, second, DeterministicRandom(b"eq")).to_bytes()
    w.post(w.abort(evidence))
    w.finish()
    for name in "abc":
        assert w.aborted(name).named == (w.identity("b"),)
        assert w.aborted(name).detail == "equivocation"


def test_section7_announcement_evidence_is_judged_too() -> None:
    """Section 7's kind-2 equivocation (announcements) convicts through the group's check."""
    w = world("round3")
    evidence = dkg_abort.make_equivocation(
        w.attempt("c").params(), w.attempt("c").dkg_secret(),
        dkg_abort.EquivocationKind.ANNOUNCEMENT, B, w.announcements[B], second_announcement(w),
        DeterministicRandom(b"k2"), check_announcement=_check(w)).to_bytes()
    w.post(w.abort(evidence))
    w.finish()
    assert all(w.aborted(x).named == (w.identity("b"),) for x in "abc")


def test_section7_evidence_of_another_reason_names_no_one() -> None:
    w = world("round3")
    first, second = _second_round1(w)
    evidence = dkg_abort.make_equivocation(
        w.attempt("c").params(), w.attempt("c").dkg_secret(), dkg_abort.EquivocationKind.ROUND1,
        B, first, second, DeterministicRandom(b"eq")).to_bytes()
    w.post(w.abort(evidence, reason=ABORT_BLAME))  # equivocation evidence under "blame"
    w.finish()
    for name in "abc":
        event = w.aborted(name)
        assert (event.reason, event.named) == ("blame", ())
        assert event.detail == f"{EVIDENCE_INVALID} (ProtocolError)"


def test_round1_content_signed_twice_is_a_duplicate_not_equivocation() -> None:
    """DKG signatures are randomized: b re-signing its own round-1 content proves nothing, so
    no one aborts over it (an abort would have had no evidence that convicts)."""
    w = world("round1")
    held, w.held = w.held, []
    w.net.send("a", held[:2])  # a's and b's round-1 messages; c's comes after the copy
    first = SignedRound1.from_bytes(
        next(r for r in w.items(KIND_ROUND1) if SignedRound1.from_bytes(r).sender == B))
    again = sign_round1(w.attempt("b").params(), w.attempt("b").dkg_secret(), first.message,
                        w.attempt("b").payload(), DeterministicRandom(b"again"))
    assert again.to_bytes() != first.to_bytes() and again.payload_hash == first.payload_hash
    w.post(again.to_bytes(), kind=KIND_ROUND1, by="b")
    w.net.send("a", held[2:])
    w.net.strict = False
    w.net.run()
    assert all(any(isinstance(e, ReplayError) for e in w.net.errors[x]) for x in "abc")
    assert not any(isinstance(e, AttemptAborted) for x in "abc" for e in w.net.events[x])
    assert {w.net.members[x].epoch for x in "abc"} == {2}


# --- malformed aborts change nothing -------------------------------------------------------------


def _malformed() -> dict[str, Callable[[World], bytes]]:
    def signed_with_another_key(w: World) -> bytes:
        a = w.attempt("c")
        return Abort.sign(w.attempt("a").dkg_secret(), a.session_id, C, ABORT_EQUIVOCATION,
                          (B,), genuine(w), DeterministicRandom(b"k")).to_bytes()

    def evidence_altered_after_signing(w: World) -> bytes:
        abort = Abort.from_bytes(w.abort(genuine(w)))
        return replace(abort, evidence=ann.equivocation_evidence(
            w.announcements[B], w.announcements[B])).to_bytes()

    def sender_outside_roster(w: World) -> bytes:
        a = w.attempt("c")
        return Abort.sign(a.dkg_secret(), a.session_id, 9, ABORT_EQUIVOCATION, (B,), b"",
                          DeterministicRandom(b"k")).to_bytes()

    def names_outside_roster(w: World) -> bytes:
        return w.abort(genuine(w), named=(7,))

    def truncated(w: World) -> bytes:
        return w.abort(genuine(w))[:-5]

    def for_another_attempt(w: World) -> bytes:
        a = w.attempt("c")
        return Abort.sign(a.dkg_secret(), bytes(len(a.session_id)), C, ABORT_EQUIVOCATION,
                          (B,), genuine(w), DeterministicRandom(b"k")).to_bytes()

    def random_dkg_key(w: World) -> bytes:
        a = w.attempt("c")
        return Abort.sign(Scalar.random_nonzero(DeterministicRandom(b"x")), a.session_id, C,
                          ABORT_EQUIVOCATION, (B,), genuine(w),
                          DeterministicRandom(b"k")).to_bytes()

    return {f.__name__: f for f in (
        signed_with_another_key, evidence_altered_after_signing, sender_outside_roster,
        names_outside_roster, truncated, for_another_attempt, random_dkg_key)}


MALFORMED = _malformed()


@pytest.mark.parametrize("what", sorted(MALFORMED))
@pytest.mark.parametrize("phase", PHASES)
def test_malformed_abort_raises_and_leaves_the_state_unchanged(phase: str, what: str) -> None:
    w = world(phase)
    w.post(MALFORMED[what](w))
    (blob,) = w.net.hub.unread("a", w.box)
    session = w.net.members["a"]
    before = session.to_bytes()
    with pytest.raises(RemoteError) as info:
        session.receive(blob, w.net.now, entry_time=w.net.now_ms)
    assert isinstance(info.value, DecodeError | InvalidSignature | ProtocolError)
    assert session.to_bytes() == before
    # Nothing was used up: c's one abort of the epoch still counts, and names b.
    w.post(w.abort(genuine(w)))
    (blob,) = w.net.hub.unread("a", w.box)
    events, _ = session.receive(blob, w.net.now, entry_time=w.net.now_ms)
    (event,) = [e for e in events if isinstance(e, AttemptAborted)]
    assert event.named == (w.identity("b"),)


def test_abort_from_a_participant_that_never_announced_changes_nothing() -> None:
    w = world("announcing")  # b's announcement was withheld
    w.post(w.abort(genuine(w), by="b"), by="b")
    (blob,) = w.net.hub.unread("a", w.box)
    session = w.net.members["a"]
    before = session.to_bytes()
    with pytest.raises(ProtocolError, match="never announced"):
        session.receive(blob, w.net.now, entry_time=w.net.now_ms)
    assert session.to_bytes() == before


# --- timeouts name only who is still missing ---------------------------------------------------


def test_timeout_names_only_members_still_missing_when_it_is_read() -> None:
    """A timeout has nothing to prove, but the mailbox can refute it: a member whose answer is
    before the abort in the one mailbox order answered, and the aborter answers by aborting.
    Listing a member twice names it once (a removal proposal may not list a member twice)."""
    from triple_ratchet.group.attempt_mailbox import ABORT_TIMEOUT
    from triple_ratchet.group.epoch_change import TIMEOUT_REFUTED
    from triple_ratchet.group.events import MembershipChanged

    w = world("round1")
    held, w.held = w.held, []
    w.net.send("a", held[:1])  # a's round-1 message is read before the abort
    w.net.hub.now_ms += PHASE_TIMEOUT_MS  # the abort is posted once the phase timed out
    w.post(w.abort(b"", reason=ABORT_TIMEOUT, named=(A, B, B, C)))
    w.net.run()
    for name in "abc":
        event = w.aborted(name)
        assert (event.reason, event.named, event.detail) == (
            "timeout", (w.identity("b"),), TIMEOUT_REFUTED)
    # c is an old member: the group goes on to remove b (proposed by a, the first old member
    # that neither proposed in this epoch nor was named), and everyone processed the abort.
    for name in "ac":
        (change,) = [e for e in w.net.events[name] if isinstance(e, MembershipChanged)
                     and e.removed]
        assert change.removed == (w.identity("b"),) and change.proposer == w.identity("a")
        assert w.net.members[name].epoch == 2


def test_timeout_naming_exactly_the_missing_members_is_taken_as_is() -> None:
    from triple_ratchet.group.attempt_mailbox import ABORT_TIMEOUT

    w = world("announcing")  # b never announced
    w.net.hub.now_ms += PHASE_TIMEOUT_MS
    w.post(w.abort(b"", reason=ABORT_TIMEOUT, named=(B,)))
    w.net.run()
    for name in "abc":
        event = w.aborted(name)
        assert (event.named, event.detail) == ((w.identity("b"),), "")
