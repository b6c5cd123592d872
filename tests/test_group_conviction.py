"""A wrong sealing is convicted and repaired (issue 8; spec 11.v2.25), end to end in
GroupSession through the in-memory hub (tests/group_v2_sim.py).

A committee of one (A, alone online for an add) certifies a bundle whose sealing for D holds a
wrong secret. D reports RejoinNeeded and asks B; B recomputes D's sealing from what it kept of
the commit, sends D the correct pair and posts a conviction; D enters the epoch with it; every
reader holding the commit's sealing inputs sees the committee convicted, the joiner cannot
check, and every reader's control log stays the same."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from group_v2_sim import Hub, Node, create, make_node, settle

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    ProtocolError,
    StateError,
    TripleRatchetError,
)
from triple_ratchet.group import run_secrets
from triple_ratchet.group.control import TYPE_CONVICTION
from triple_ratchet.group.conviction import SealingInputs
from triple_ratchet.group.events import (
    EpochChanged,
    Ignored,
    MisbehaviourReported,
    Outgoing,
    PairwiseOut,
    RejoinNeeded,
    SealingConvicted,
)
from triple_ratchet.group.run import Conviction, RepairedSealing
from triple_ratchet.group.session import GroupSession
from triple_ratchet.suites import DEFAULT_SUITE, HYBRID_SUITES, Suite

WRONG = b"\x5a" * 32


@dataclass
class Wronged:
    hub: Hub
    a: Node  # the committee of one that sealed D a wrong secret
    b: Node
    c: Node
    d: Node  # the wronged recipient
    e: Node  # joined in the same commit (sealed member_base)

    @property
    def members(self) -> list[Node]:
        return [self.a, self.b, self.c, self.d, self.e]


def _wronged(monkeypatch: pytest.MonkeyPatch, suite: Suite = DEFAULT_SUITE) -> Wronged:
    hub = Hub()
    a, b, c, d, e = (make_node(n, suite) for n in "ABCDE")
    create(hub, a, [b, c, d])
    settle(hub, [a, b, c, d])
    assert a.session and b.session and c.session and d.session
    for n in (b, c, d):
        n.online = False
    real = run_secrets.seal_bundle

    def seal_wrong(context, commit_secret, recipients):  # type: ignore[no-untyped-def]
        # A's bundle seals D another secret; its root (so the certificate) covers that pair.
        recipients = [replace(r, plaintext=WRONG[:1] * len(r.plaintext))
                      if r.identity == d.id else r for r in recipients]
        return real(context, commit_secret, recipients)

    with monkeypatch.context() as m:
        m.setattr(run_secrets, "seal_bundle", seal_wrong)
        hub.advance(61_000)
        hub.post(a.session.propose(hub.now, add=[e.take_join_key()]))
        settle(hub, [a, e])
    assert a.session.epoch == 2 and e.session is not None and e.session.epoch == 2
    for n in (b, c, d):
        n.online = True
    settle(hub, [a, b, c, d, e])
    assert b.session.epoch == 2 == c.session.epoch
    return Wronged(hub, a, b, c, d, e)


def _kept(n: Node) -> SealingInputs | None:
    assert n.session is not None
    return n.session._s.sealing_inputs


def _repair(w: Wronged) -> tuple[bytes, list[Outgoing]]:
    """D asks B; B answers with the repaired pair for D and a conviction entry."""
    assert w.b.session and w.d.session
    request = w.d.session.rejoin_request(w.d.inbox)
    events, out = w.b.session.on_rejoin_request(request, w.d.identity.public, w.hub.now)
    assert events == []
    to_peer = [o for o in out if isinstance(o, PairwiseOut)]
    posted = [o for o in out if isinstance(o, Outgoing)]
    assert len(to_peer) == 1 and to_peer[0].peer == w.d.id and len(posted) == 1
    assert posted[0].mailbox_id == w.b.session.control_mailbox_id
    return to_peer[0].payload, posted


# A hybrid suite's sealings are deterministic too (ML-KEM encapsulation from ikmE_i): a wrong one
# is recomputed and convicted alike (issue 11).
@pytest.mark.parametrize("suite", [DEFAULT_SUITE, *HYBRID_SUITES], ids=lambda s: s.name)
def test_a_wrong_sealing_is_convicted_and_repaired(monkeypatch: pytest.MonkeyPatch,
                                                   suite: Suite) -> None:
    w = _wronged(monkeypatch, suite)
    a, b, c, d, e = w.members
    assert d.session is not None and d.session.status == "rejoin needed"
    assert any(isinstance(x, RejoinNeeded) and x.epoch == 1 for x in d.events)
    payload, posted = _repair(w)
    repaired = RepairedSealing.from_bytes(d.identity.suite, payload)
    assert (repaired.decided_epoch, repaired.run) == (1, 1)
    w.hub.post(posted)
    # D waits in a saved state: what it kept of the commit it could not open survives it.
    d.session = GroupSession.from_bytes(d.session.to_bytes(), d.identity, rng=d.rng)
    events, out = d.session.on_repaired_sealing(payload, b.identity.public, w.hub.now)
    w.hub.post(out)
    assert d.session.status == "active" and d.session.epoch == 2
    assert [x for x in events if isinstance(x, EpochChanged)] == [
        EpochChanged(2, a.session.public_epoch_id, a.session.roster)]
    d.events += events
    settle(w.hub, w.members)
    # D reads the group's next message in epoch 2, and the others read D's.
    w.hub.post(b.session.encrypt(b"after the repair", w.hub.now))
    settle(w.hub, w.members)
    assert d.messages()[-1] == b"after the repair"
    w.hub.post(d.session.encrypt(b"D is back", w.hub.now))
    settle(w.hub, w.members)
    assert a.messages()[-1] == b"D is back" == e.messages()[-1] == c.messages()[-1]
    # Every reader holding the commit's sealing inputs (committee, recipients sealed
    # commit_secret, the repaired D) convicts the committee of one: A.
    convicted = SealingConvicted(2, 1, d.id, (a.id,))
    for n in (a, b, c, d):
        assert [x for x in n.events if isinstance(x, SealingConvicted)] == [convicted], n.name
        assert not any(isinstance(x, MisbehaviourReported) for x in n.events), n.name
    # The joiner of epoch 2 was sealed member_base: it cannot check the conviction.
    assert _kept(e) is None
    assert not any(isinstance(x, SealingConvicted) for x in e.events)
    assert any(isinstance(x, Ignored) and x.reason == "conviction not checkable here"
               and x.member == b.id for x in e.events)
    # A conviction is advisory: every reader's log is the same, whatever it could check.
    logs = {n.session.control_log.to_bytes() for n in w.members if n.session}
    assert len(logs) == 1


def test_a_false_conviction_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    w = _wronged(monkeypatch)
    a, b, c, _, e = w.members
    assert b.session and c.session
    kept = _kept(b)
    assert kept is not None
    # B names C's certified pair, which is C's correct one, as the correct one.
    index = b.session.control_log.view.roster.index_of(c.id)
    assert index is not None
    enc, ct = kept.certified[kept.recipients.index(index)]
    body = Conviction(1, kept.run, index, enc, ct).to_bytes()
    signing = b.session._signing_key()
    assert signing is not None
    w.hub.post([b.session._member_out(signing, TYPE_CONVICTION, body)])
    settle(w.hub, w.members)
    for n in (a, b, c):
        assert MisbehaviourReported(b.id, "false conviction") in n.events, n.name
        assert not any(isinstance(x, SealingConvicted) for x in n.events)
    assert any(isinstance(x, Ignored) and x.reason == "conviction not checkable here"
               for x in e.events)
    assert len({n.session.control_log.to_bytes() for n in (a, b, c, e) if n.session}) == 1


def test_a_right_or_unrecomputable_sealing_gets_a_resume_proposal_not_a_repair(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """C's certified sealing is right; E's (a joiner's) was member_base, which nobody keeps;
    A was on the committee (no sealing): each is answered with a resume proposal."""
    w = _wronged(monkeypatch)
    a, b, c, e = w.a, w.b, w.c, w.e
    assert a.session and b.session and c.session and e.session
    for requester, answerer in ((c, b), (e, b), (a, c)):
        assert requester.session and answerer.session
        request = requester.session.rejoin_request(requester.inbox)
        events, out = answerer.session.on_rejoin_request(request, requester.identity.public,
                                                         w.hub.now)
        assert events == [] and len(out) == 1 and isinstance(out[0], Outgoing), requester.name
        w.hub.post([out[0]])
    # They are resume proposals (pending once judged), not convictions.
    b.pump(w.hub)
    assert len(b.session.control_log.pending) == 3
    assert not any(isinstance(x, Ignored) and "conviction" in x.reason for x in b.events)


def test_a_tampered_repaired_sealing_is_refused_and_changes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = _wronged(monkeypatch)
    b, c, d = w.b, w.c, w.d
    assert b.session and c.session and d.session
    payload, _ = _repair(w)
    good = RepairedSealing.from_bytes(d.identity.suite, payload)
    before = d.session.to_bytes()
    flipped = bytes([good.ct[0] ^ 1]) + good.ct[1:]
    cases: list[tuple[bytes, type[TripleRatchetError]]] = [
        (replace(good, ct=flipped).to_bytes(), AuthenticationError),
        (replace(good, enc=good.enc[:-1] + bytes([good.enc[-1] ^ 1])).to_bytes(),
         TripleRatchetError),
        (replace(good, run=2).to_bytes(), ProtocolError),
        (replace(good, decided_epoch=0).to_bytes(), ProtocolError),
        (replace(good, group_id=b"another group").to_bytes(), ProtocolError),
        (payload[:-1], DecodeError),
        (cbor.encode([0x55, 2]), DecodeError),
    ]
    # The pair certified for C (right for C, not for D) does not open for D.
    kept = _kept(b)
    assert kept is not None
    index = b.session.control_log.view.roster.index_of(c.id)
    enc, ct = kept.certified[kept.recipients.index(index)]  # type: ignore[arg-type]
    cases.append((replace(good, enc=enc, ct=ct).to_bytes(), AuthenticationError))
    for data, error in cases:
        with pytest.raises(error):
            d.session.on_repaired_sealing(data, b.identity.public, w.hub.now)
        assert d.session.to_bytes() == before
    # From a peer not in the roster of the epoch: refused before opening.
    outsider = make_node("X")
    with pytest.raises(ProtocolError):
        d.session.on_repaired_sealing(payload, outsider.identity.public, w.hub.now)
    assert d.session.to_bytes() == before
    # An active session is not waiting for one.
    with pytest.raises(StateError):
        c.session.on_repaired_sealing(payload, b.identity.public, w.hub.now)
    # The right one still works after all that.
    d.session.on_repaired_sealing(payload, b.identity.public, w.hub.now)
    assert d.session.status == "active" and d.session.epoch == 2


def test_the_kept_sealing_inputs_are_saved_strictly_and_dropped_at_the_next_epoch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = _wronged(monkeypatch)
    a, b, c = w.a, w.b, w.c
    assert a.session and b.session and c.session
    kept = _kept(b)
    assert kept is not None and kept.decided_epoch == 1 and kept.committee_identities() == (
        a.id,)
    assert _kept(a) is not None and _kept(c) is not None  # committee and a recipient
    secret = kept.commit_secret
    assert secret.hex() not in repr(kept) and secret.hex() not in repr(b.session)
    data = b.session.to_bytes()
    assert secret in data
    again = GroupSession.from_bytes(data, b.identity, rng=b.rng)
    assert again.to_bytes() == data and again._s.sealing_inputs == kept
    # A saved state whose kept inputs do not hold together is refused.
    f = cbor.decode(data, max_size=len(data), max_items=10**7, max_depth=8)
    assert isinstance(f, list)
    k = cbor.decode(f[17], max_size=len(f[17]), max_items=10**6, max_depth=4)
    assert isinstance(k, list)
    bad = [
        [2, *k[1:]],  # another epoch's commit
        [*k[:6], k[6][:-1], k[7]],  # a short commit_secret
        [*k[:4], [*k[4], 0], *k[5:]],  # a recipient also on the committee
        [*k[:7], k[7][:-1]],  # a pair missing
        [*k[:3], [], *k[4:]],  # no committee
    ]
    for value in bad:
        with pytest.raises(DecodeError):
            GroupSession.from_bytes(cbor.encode([*f[:17], cbor.encode(value)]), b.identity)
    # The next epoch begins: the inputs of C(1) are gone (forward secrecy), C(2)'s kept.
    w.hub.advance(3_601_000)
    w.hub.post(c.session.propose(w.hub.now, refresh=True))
    settle(w.hub, w.members)
    assert b.session.epoch == 3
    kept3 = _kept(b)
    assert kept3 is not None and kept3.decided_epoch == 2
    assert secret not in b.session.to_bytes()
    # A conviction of C(1) in epoch 3 is no longer checkable by anyone.
    signing = b.session._signing_key()
    assert signing is not None
    w.hub.post([b.session._member_out(signing, TYPE_CONVICTION,
                                      Conviction(1, 1, 0, *kept.certified[0]).to_bytes())])
    settle(w.hub, w.members)
    assert any(isinstance(x, Ignored) and x.reason == "conviction not checkable here"
               for x in a.events[-10:])


def test_sealing_inputs_judge_only_what_they_can_recompute(
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = _wronged(monkeypatch)
    kept = _kept(w.b)
    assert kept is not None and w.b.session is not None
    roster = w.b.session.control_log.view.roster
    e_index = roster.index_of(w.e.id)
    d_index = roster.index_of(w.d.id)
    assert e_index is not None and d_index is not None
    enc, ct = kept.certified[0]
    # Another commit, a member_base recipient (the joiner), the committee: not checkable.
    assert kept.judge(w.b.id, Conviction(0, 1, d_index, enc, ct)) is None
    assert kept.judge(w.b.id, Conviction(1, 2, d_index, enc, ct)) is None
    assert e_index in kept.member_base_to
    assert kept.judge(w.b.id, Conviction(1, 1, e_index, enc, ct)) is None
    assert kept.judge(w.b.id, Conviction(1, 1, roster.index_of(w.a.id) or 0, enc, ct)) is None
    # A pair that is neither certified nor correct for D is false too.
    assert kept.judge(w.b.id, Conviction(1, 1, d_index, enc, ct)) == [
        MisbehaviourReported(w.b.id, "false conviction")]
