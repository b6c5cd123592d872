"""Epoch changes through the DKG ratchet, end to end over an in-memory hub."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_group_support import Net, make_identities

from triple_ratchet.errors import (
    LimitExceeded,
    ProtocolError,
    RemoteError,
    ReplayError,
    StateError,
    UsageError,
)
from triple_ratchet.group.epoch import MAX_GROUP_SIZE
from triple_ratchet.group.epoch_change import PHASE_TIMEOUT_MS, _announce
from triple_ratchet.group.events import (
    AttemptAborted,
    EpochChanged,
    EpochChangeStarted,
    ForkDetected,
    Ignored,
    MembershipChanged,
    MessageReceived,
    Outgoing,
    RejoinNeeded,
    RemovedFromGroup,
)
from triple_ratchet.group.message import CONTENT_PROPOSAL
from triple_ratchet.group.session import GRACE_MS, GroupSession, encrypt_in_epoch
from triple_ratchet.group.welcome import Welcome
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE, Suite

NAMES = "abcdefgh"


def create(n: int, suite: Suite = DEFAULT_SUITE, extra: int = 0) -> Net:
    ids = make_identities(n + extra, suite, seed=b"net")
    net = Net()
    for name, ident in zip(NAMES, ids, strict=False):
        net.identities[name] = ident
    session, sends = GroupSession.create(ids[0], [i.public for i in ids[1:n]], net.now,
                                         rng=DeterministicRandom(b"creator"))
    net.members["a"] = session
    net.send("a", sends)
    net.run()
    return net


def texts(net: Net, name: str) -> list[bytes]:
    return [e.body for e in net.events[name] if isinstance(e, MessageReceived)]


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_create_group_of_three(suite: Suite) -> None:
    net = create(3, suite)
    sessions = [net.members[x] for x in "abc"]
    assert all(s.status == "active" and s.epoch == 1 for s in sessions)
    assert len({s.public_epoch_id for s in sessions}) == 1
    assert len({s.mailbox_id for s in sessions}) == 1
    assert [s.own_index for s in sessions] == [0, 1, 2]
    for name in "abc":
        (changed,) = [e for e in net.events[name] if isinstance(e, EpochChanged)]
        assert changed.public_epoch_id == sessions[0].public_epoch_id
    net.send("b", net.members["b"].encrypt(b"hi from b", net.now))
    net.run()
    assert texts(net, "a") == [b"hi from b"] and texts(net, "c") == [b"hi from b"]


def of(net: Net, name: str, kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in net.events[name] if isinstance(e, kind)]


def test_add_member_joiner_reads_only_the_new_epoch() -> None:
    net = create(3, extra=1)
    net.send("a", net.members["a"].encrypt(b"before d", net.now))
    net.run()
    old_blob = net.hub.logs[net.members["a"].mailbox_id][-1]
    net.send("b", net.members["b"].propose(net.now, add=[net.identities["d"].public]))
    net.run()
    sessions = [net.members[x] for x in "abcd"]
    assert all(s.epoch == 2 and s.status == "active" for s in sessions)
    assert len({s.public_epoch_id for s in sessions}) == 1
    for name in "abc":
        change = of(net, name, MembershipChanged)[-1]
        assert change.epoch == 2
        assert change.added == (net.identities["d"].public.to_bytes(),)
        assert change.proposer == net.identities["b"].public.to_bytes()
    net.send("d", net.members["d"].encrypt(b"hello from d", net.now))
    net.run()
    assert texts(net, "a")[-1] == b"hello from d"
    with pytest.raises(ProtocolError):
        net.members["d"].receive(old_blob, net.now, entry_time=net.now_ms)  # epoch 1 was never d's


def test_removed_member_is_locked_out() -> None:
    net = create(3)
    before = net.members["c"].to_bytes()
    net.send("a", net.members["a"].propose(net.now, remove=[net.identities["c"].public]))
    net.run()
    assert net.members["c"].status == "ended"
    (removed,) = of(net, "c", RemovedFromGroup)
    assert removed.proposer == net.identities["a"].public.to_bytes()
    with pytest.raises(StateError):
        net.members["c"].encrypt(b"x", net.now)
    assert net.members["a"].epoch == 2 and net.members["a"].roster == tuple(
        net.identities[x].public.to_bytes() for x in "ab")
    (blob,) = net.members["a"].encrypt(b"after c left", net.now)
    assert isinstance(blob, Outgoing)
    stale = GroupSession.from_bytes(before, net.identities["c"])
    with pytest.raises(ProtocolError):
        stale.receive(blob.blob, net.now, entry_time=net.now_ms)


def test_post_compromise_security_refresh_heals() -> None:
    """A thief with b's full state before a refresh, reading every blob, gets nothing new."""
    net = create(3)
    stolen = net.members["b"].to_bytes()
    net.send("c", net.members["c"].propose(net.now))
    net.run()
    assert {net.members[x].epoch for x in "abc"} == {2}
    net.send("a", net.members["a"].encrypt(b"after healing", net.now))
    net.run()
    thief = GroupSession.from_bytes(stolen, net.identities["b"],
                                    rng=DeterministicRandom(b"thief"))
    got: list[object] = []
    for blob in [b for log in net.hub.logs.values() for b in log]:
        if thief.status == "ended":
            break
        try:
            events, _ = thief.receive(blob, net.now, entry_time=net.now_ms)
            got += events
        except RemoteError:
            pass
    assert thief.epoch == 1 and thief.status == "ended"
    assert any(isinstance(e, RejoinNeeded) for e in got)
    assert b"after healing" not in [e.body for e in got if isinstance(e, MessageReceived)]
    assert any(isinstance(e, ForkDetected) for e in got)  # it notices b announced other keys


def test_messages_are_held_during_a_change_and_flushed_after() -> None:
    net = create(3)
    net.send("a", net.members["a"].propose(net.now))
    net.read("b", net.members["b"].mailbox_id)  # b reads the proposal and announces
    assert net.members["b"].attempt_phase == "announcing"
    assert net.members["b"].encrypt(b"held", net.now) == []
    net.run()
    assert net.members["b"].epoch == 2
    assert texts(net, "a") == [b"held"] and texts(net, "c") == [b"held"]
    assert [e.epoch for e in of(net, "c", MessageReceived)] == [2]


def test_grace_period_accepts_old_messages_up_to_the_announced_generation() -> None:
    net = create(3)
    a, b, c = (net.members[x] for x in "abc")
    old_box = a.mailbox_id
    net.send("a", a.propose(net.now))
    # b sends before reading the proposal: its message lands after the proposal.
    net.send("b", b.encrypt(b"late but valid", net.now))
    for name in "abc":
        net.read(name, old_box)
    # c runs the whole attempt before reading on in the old mailbox.
    net.run()
    assert c.epoch == 2
    assert b"late but valid" in texts(net, "c")
    assert old_box in c.mailboxes()  # still in grace
    net.tick(GRACE_MS / 1000 + 1)
    assert old_box not in c.mailboxes()


def test_old_epoch_message_beyond_announced_generation_is_reported_not_delivered() -> None:
    net = create(3)
    a, b, c = (net.members[x] for x in "abc")
    old_state = b.to_bytes()
    net.send("a", a.propose(net.now))
    net.run()
    # A copy of b still in epoch 1 (another branch, or a restored state) keeps sending there.
    old_b = GroupSession.from_bytes(old_state, net.identities["b"])
    (blob,) = old_b.encrypt(b"too late", net.now)
    assert isinstance(blob, Outgoing)
    events, _ = c.receive(blob.blob, net.now, entry_time=net.now_ms)
    assert not [e for e in events if isinstance(e, MessageReceived)]
    (fork,) = [e for e in events if isinstance(e, ForkDetected)]
    assert fork.kind == "member still in previous epoch"
    assert fork.member == net.identities["b"].public.to_bytes()
    with pytest.raises(ReplayError):
        c.receive(blob.blob, net.now, entry_time=net.now_ms)


def test_replayed_proposal_and_announcement_are_refused() -> None:
    net = create(3)
    a = net.members["a"]
    sends = a.propose(net.now)
    assert a._s.own_proposal is not None
    signed_old = a._s.own_proposal[1]
    net.send("a", sends)
    (proposal_blob,) = [s.blob for s in sends if isinstance(s, Outgoing)]
    net.read("b", a.mailbox_id)
    with pytest.raises(ReplayError):
        net.members["b"].receive(proposal_blob, net.now, entry_time=net.now_ms)
    attempt_box = net.members["b"].mailboxes()[-1]
    first_announcement = net.hub.logs[attempt_box][0]
    net.hub.append(attempt_box, first_announcement)  # the hub replays it
    net.strict = False
    net.run()
    errors = [e for errs in net.errors.values() for e in errs]
    assert len(errors) == 3 and all(isinstance(e, ReplayError) for e in errors)
    assert {net.members[x].epoch for x in "abc"} == {2}
    # The old signed proposal re-sent (by its own author) in the new epoch is refused.
    a, b = net.members["a"], net.members["b"]
    assert a._s.epoch is not None
    blob, _ = encrypt_in_epoch(a._s.epoch, CONTENT_PROPOSAL, signed_old,
                               DeterministicRandom(b"r"))
    events, _ = b.receive(blob, net.now, entry_time=net.now_ms)
    assert any(isinstance(e, Ignored) and "another epoch" in e.reason for e in events)
    assert b.attempt_phase is None


def test_unresponsive_member_is_removed_after_a_timeout_abort() -> None:
    net = create(3)
    c = net.members.pop("c")  # c goes offline
    net.send("a", net.members["a"].propose(net.now))
    net.run()
    assert net.members["a"].attempt_phase == "announcing"
    net.tick(PHASE_TIMEOUT_MS / 1000 + 1)
    net.run()
    a, b = net.members["a"], net.members["b"]
    assert a.epoch == b.epoch == 2
    c_id = net.identities["c"].public.to_bytes()
    assert a.roster == tuple(net.identities[x].public.to_bytes() for x in "ab")
    aborted = of(net, "b", AttemptAborted)
    assert len(aborted) == 1 and aborted[0].reason == "timeout" and aborted[0].named == (c_id,)
    change = of(net, "b", MembershipChanged)[-1]
    assert change.reason == "removed: unresponsive" and change.removed == (c_id,)
    # a already proposed in this epoch, so the next member in roster order proposes it.
    assert change.proposer == net.identities["b"].public.to_bytes()
    # Both timed out, but only the first abort in mailbox order counted: one abort event.
    assert len(of(net, "a", AttemptAborted)) == 1
    # c comes back: it learns it was removed.
    net.members["c"] = c
    net.run()
    assert c.status == "ended" or c.epoch == 1
    assert b"x" not in texts(net, "c")


def test_two_announcements_from_one_member_are_equivocation() -> None:
    net = create(3)
    net.send("b", net.members["b"].propose(net.now))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    c = net.members["c"]
    attempt = c._s.attempt
    assert attempt is not None
    # c's identity key signs a second announcement with another DKG key (c equivocates).
    forged = _announce(replace(attempt, seed=b"\x07" * 32), net.identities["c"],
                       DeterministicRandom(b"e"))
    net.hub.append(forged.mailbox_id, forged.blob)
    net.run()
    c_id = net.identities["c"].public.to_bytes()
    for name in "ab":
        forks = of(net, name, ForkDetected)
        assert any(f.kind == "equivocation" and f.member == c_id for f in forks)
        assert of(net, name, AttemptAborted)[-1].reason == "equivocation"
    assert {net.members[x].epoch for x in "abc"} == {1}


def test_joiner_with_a_wrong_welcome_fails_certification_and_it_is_reported() -> None:
    net = create(3, extra=1)
    net.send("a", net.members["a"].propose(net.now, add=[net.identities["d"].public]))
    net.step()  # a reads its proposal back and emits the welcome
    (recipient, welcome, welcomer) = net.pending_welcomes.pop()
    w = Welcome.from_bytes(welcome)
    wrong = Welcome(w.proposal, w.previous_roster, bytes(len(w.init_secret))).to_bytes()
    net.pending_welcomes.append((recipient, wrong, welcomer))
    net.run()
    forks = [f for x in "abc" for f in of(net, x, ForkDetected)]
    d_id = net.identities["d"].public.to_bytes()
    assert any(f.kind == "split view" and f.member == d_id for f in forks)
    assert any(f.kind == "split view" for f in of(net, "d", ForkDetected))
    assert net.members["a"].attempt_phase == "round3"  # d's signature never counted
    net.tick(PHASE_TIMEOUT_MS / 1000 + 1)
    net.run()
    aborted = of(net, "b", AttemptAborted)[-1]
    assert aborted.reason == "timeout" and aborted.named == (d_id,)
    assert {net.members[x].epoch for x in "abc"} == {1}
    assert net.members["d"].status == "ended"
    assert not [e for e in net.events["b"] if isinstance(e, MembershipChanged) and e.epoch > 1]


def test_a_forged_round3_cannot_abort_or_fake_a_certificate() -> None:
    from triple_ratchet.group.attempt_mailbox import KIND_ROUND3, Round3
    from triple_ratchet.group.epoch_change import _send

    net = create(3)
    net.send("a", net.members["a"].propose(net.now, remove=[net.identities["c"].public]))
    net.run()
    assert net.members["a"].epoch == 2
    # Again, but c (being removed) forges round-3 items before the real ones.
    net = create(3)
    net.send("a", net.members["a"].propose(net.now, remove=[net.identities["c"].public]))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    attempt = net.members["c"]._s.attempt
    assert attempt is not None
    box = attempt.mailbox()[0]
    for name in "abc":
        net.read(name, box)  # announcements: a and b send round 1
    # The fakes land after the round-1 messages, before the genuine round-3 ones.
    for index in (1, 2):
        fake = _send(attempt, KIND_ROUND3, Round3(index, bytes(64)).to_bytes(),
                     DeterministicRandom(b"f"))
        net.hub.append(fake.mailbox_id, fake.blob)
    net.run()
    assert {net.members[x].epoch for x in "ab"} == {2}
    assert net.members["c"].status == "ended"
    assert any(isinstance(e, RemovedFromGroup) for e in net.events["c"])
    assert not of(net, "a", AttemptAborted)
    assert len([f for f in of(net, "a", ForkDetected) if f.kind == "split view"]) == 2


def test_state_reloaded_after_every_step_of_an_epoch_change() -> None:
    net = create(3, extra=1)
    net.send("c", net.members["c"].propose(net.now, add=[net.identities["d"].public]))
    for _ in range(50):
        net.reload()
        if not net.step():
            break
    assert {net.members[x].epoch for x in "abcd"} == {2}
    assert len({net.members[x].public_epoch_id for x in "abcd"}) == 1


def test_restored_backup_stays_silent_and_asks_to_rejoin() -> None:
    net = create(3)
    backup = net.members["c"].to_bytes()
    net.send("a", net.members["a"].propose(net.now))
    net.run()
    assert net.members["c"].epoch == 2
    # c's device dies; it restores the backup from epoch 1 and reads the mailboxes again.
    restored = GroupSession.from_bytes(backup, net.identities["c"], restored_from_backup=True)
    net.members["c"] = restored
    for key in [k for k in net.hub.cursors if k[0] == "c"]:
        net.hub.cursors[key] = 0
    net.strict = False
    net.run()
    assert any(isinstance(e, RejoinNeeded) for e in net.events["c"])
    assert restored.status == "ended" or restored.epoch == 1


def test_policy_callback_refuses_removals() -> None:
    net = create(3)
    no_removals = lambda p: not p.removed  # noqa: E731
    for name in "abc":
        net.members[name]._driver._policy = no_removals
    net.send("a", net.members["a"].propose(net.now, remove=[net.identities["c"].public]))
    net.run()
    assert {net.members[x].epoch for x in "abc"} == {1}
    for name in "bc":
        assert any(isinstance(e, Ignored) and "policy" in e.reason for e in net.events[name])


def test_refresh_is_proposed_after_the_configured_number_of_messages() -> None:
    net = create(2)
    for name in "ab":
        s = net.members[name]
        s._s = replace(s._s, refresh_messages=3)
    for i in range(3):
        net.send("a", net.members["a"].encrypt(bytes([i]), net.now))
        net.run()
    assert {net.members[x].epoch for x in "ab"} == {2}
    assert of(net, "b", EpochChangeStarted)[-1].reason == "refresh"


def test_group_size_is_bounded() -> None:
    ids = make_identities(2)
    many = [ids[1].public] * 2
    with pytest.raises(UsageError):
        GroupSession.create(ids[0], many, 0.0)  # listed twice (the caller's mistake)
    with pytest.raises(UsageError):
        GroupSession.create(ids[0], [ids[0].public], 0.0)  # ourselves
    from triple_ratchet.group.proposal import next_roster
    with pytest.raises(LimitExceeded):
        next_roster([b"x"], [bytes([i]) * 3 for i in range(MAX_GROUP_SIZE)], [])


def test_bad_share_is_blamed_with_evidence_anyone_can_judge() -> None:
    from triple_ratchet.dkg.attempt import sign_round1
    from triple_ratchet.dkg.cocktail_messages import Round1Message
    from triple_ratchet.dkg.cocktail_participant import Participant
    from triple_ratchet.group.attempt_mailbox import KIND_ROUND1
    from triple_ratchet.group.epoch_change import _send, _Stream

    net = create(3)
    net.send("a", net.members["a"].propose(net.now))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    c = net.members["c"]
    attempt = c._s.attempt
    assert attempt is not None
    box = attempt.mailbox()[0]
    for name in "ab":
        net.read(name, box)
    # c reads the announcements itself; its genuine round 1 is not delivered...
    for blob in net.hub.unread("c", box):
        c.receive(blob, net.now, entry_time=net.now_ms)
    attempt = c._s.attempt
    assert attempt is not None and attempt.phase.value == "round1"
    params = attempt.params()
    good = Participant(params, attempt.dkg_secret(), payload=attempt.payload(),
                       rng=_Stream(attempt.suite, attempt.seed, b"round 1")).round1()
    cts = list(good.ciphertexts)
    cts[1] = cts[1][:-1] + bytes([cts[1][-1] ^ 1])  # b's share no longer decrypts
    bad = Round1Message(good.commitment, good.pop, good.ephemeral, tuple(cts))
    # ...c signs a bad one instead (its own, validly signed, dealing error).
    signed = sign_round1(params, attempt.dkg_secret(), bad, attempt.payload())
    forged = _send(attempt, KIND_ROUND1, signed.to_bytes(), DeterministicRandom(b"bad"))
    net.hub.append(forged.mailbox_id, forged.blob)
    net.run()
    c_id = net.identities["c"].public.to_bytes()
    for name in "abc":
        (aborted,) = of(net, name, AttemptAborted)
        assert aborted.reason == "blame" and aborted.by == net.identities["b"].public.to_bytes()
        assert aborted.named == (c_id,) and aborted.detail == "decryption-failed"
    assert {net.members[x].epoch for x in "abc"} == {1}


def test_forged_echo_of_our_proposal_does_not_start_the_attempt() -> None:
    from triple_ratchet.group.message import Content, seal

    net = create(3)
    a, c = net.members["a"], net.members["c"]
    assert a._s.epoch is not None and c._s.epoch is not None
    generation = a._s.epoch.sending.generation
    chain = c._s.epoch.receiving[0]
    assert chain is not None
    keys, _ = chain.keys_for(c.suite, generation)
    e = c._s.epoch
    fake = Content(e.suite_id, e.group_id, e.epoch, 0, generation, CONTENT_PROPOSAL, b"",
                   b"junk")
    forged = seal(c.suite, fake, e.own_signing_key(), keys, b"\x00" * 8, e.sender_data_secret,
                  e.mailbox_id)
    sends = a.propose(net.now)
    net.hub.append(e.mailbox_id, forged)  # lands first...
    net.send("b", net.members["b"].propose(net.now))  # ...then b's proposal, then a's
    net.send("a", sends)
    net.strict = False  # b and c reject the forgery (bad signature)
    net.run()
    b_id = net.identities["b"].public.to_bytes()
    # a did not take the forgery for its own proposal: b's came first for everyone.
    for name in "abc":
        started = [e for e in of(net, name, EpochChangeStarted) if e.epoch == 1]
        assert [e.proposer for e in started] == [b_id]
    assert {net.members[x].epoch for x in "abc"} == {2}
    assert len({net.members[x].public_epoch_id for x in "abc"}) == 1


def test_propose_takes_identities_for_add_and_remove() -> None:
    """add= and remove= both take `Identity` values (add= also a joiner's bundle); raw bytes,
    which remove= took before, are refused with a UsageError and change nothing."""
    net = create(3)
    a = net.members["a"]
    c_public = net.identities["c"].public
    before = a.to_bytes()
    for bad in ({"remove": [c_public.to_bytes()]}, {"add": [c_public.to_bytes()]},
                {"remove": ["c"]}):
        with pytest.raises(UsageError, match="takes"):
            a.propose(net.now, **bad)  # type: ignore[arg-type]
        assert a.to_bytes() == before
    other_suite = next(s for s in ALL_SUITES if s != DEFAULT_SUITE)
    (foreign,) = make_identities(1, other_suite, seed=b"foreign")
    with pytest.raises(UsageError, match="suite"):
        a.propose(net.now, remove=[foreign.public])
    net.send("a", a.propose(net.now, remove=[c_public]))
    net.run()
    assert net.members["a"].roster == tuple(net.identities[x].public.to_bytes() for x in "ab")
