"""Cheap version-1 fixes from issue 8's list, each as the attack or mistake that now ends well."""

from __future__ import annotations

import pytest
from test_group_epoch_change import create, of, texts

from triple_ratchet.errors import StateError, UsageError
from triple_ratchet.group.events import GapDetected, Ignored
from triple_ratchet.group.message import CONTENT_PROPOSAL, MAX_BODY
from triple_ratchet.group.proposal import REASON_CHANGE, Proposal, SignedProposal
from triple_ratchet.group.session import MAX_HELD_BYTES, GroupSession, encrypt_in_epoch
from triple_ratchet.identity import LABEL_IDENTITY_PROPOSAL
from triple_ratchet.random import DeterministicRandom


def test_an_oversized_plaintext_during_an_attempt_is_refused_at_once() -> None:
    """Issue 8: it was held without error, then every later receive raised UsageError when the
    held plaintexts were flushed (and at 100,000 bytes the saved state no longer loaded)."""
    net = create(3)
    a = net.members["a"]
    net.send("b", net.members["b"].propose(net.now))
    net.read("a", a.mailbox_id)
    assert a.attempt_phase == "announcing"
    before = a.to_bytes()
    for size in (MAX_BODY + 1, 100_000):
        with pytest.raises(UsageError, match="larger than"):
            a.encrypt(bytes(size), net.now)
        assert a.to_bytes() == before
    assert a.encrypt(bytes(MAX_BODY), net.now) == []  # the largest body is held
    GroupSession.from_bytes(a.to_bytes(), net.identities["a"])  # and its state loads
    net.run()
    assert a.epoch == 2 and texts(net, "b") == [bytes(MAX_BODY)]


def test_held_plaintexts_are_bounded_in_bytes() -> None:
    net = create(3)
    a = net.members["a"]
    net.send("b", net.members["b"].propose(net.now))
    net.read("a", a.mailbox_id)
    for _ in range(MAX_HELD_BYTES // MAX_BODY):
        a.encrypt(bytes(MAX_BODY), net.now)
    with pytest.raises(StateError, match="bytes held"):
        a.encrypt(b"x", net.now)
    GroupSession.from_bytes(a.to_bytes(), net.identities["a"])


def test_a_proposal_with_an_empty_roster_is_ignored_and_leaves_no_gap() -> None:
    """Issue 8: receive raised LimitExceeded, the message's generation was not consumed, and
    the sender's next message then reported a false gap."""
    net = create(3)
    c = net.members["c"]
    e = c._s.epoch
    assert e is not None
    suite = c.suite
    rng = DeterministicRandom(b"empty")
    p = Proposal(suite.suite_id, e.group_id, e.epoch, e.public_epoch_id,
                 net.identities["c"].public.to_bytes(), REASON_CHANGE, (), c.roster, (), 1,
                 rng(32), rng(suite.hash_len))
    body = p.body()
    signed = SignedProposal(p, body, net.identities["c"].sign(LABEL_IDENTITY_PROPOSAL, body))
    blob, state = encrypt_in_epoch(e, CONTENT_PROPOSAL, signed.to_bytes(), rng)
    c._s = c._s.__class__(**{**c._s.__dict__, "epoch": state})
    net.hub.append(state.mailbox_id, blob)
    net.run()  # strict: any error raised by a receive fails the test
    net.send("c", c.encrypt(b"after", net.now))
    net.run()
    c_id = net.identities["c"].public.to_bytes()
    for name in "ab":
        assert any(isinstance(ev, Ignored) and "refused" in ev.reason and ev.member == c_id
                   for ev in net.events[name])
        assert not of(net, name, GapDetected)
        assert texts(net, name) == [b"after"]
        assert net.members[name].attempt_phase is None and net.members[name].epoch == 1


def test_a_corrupted_echo_of_our_own_message_is_reported() -> None:
    """Issue 8: the hub's echo of our own message was dropped unread, so a corrupted echo went
    unnoticed. It is now checked against the hash of what we sent (the last MAX_ECHO_CHECK
    messages): a differing echo raises AuthenticationError and changes nothing."""
    from test_group_support import T0, T0_MS, make_group

    from triple_ratchet.errors import AuthenticationError

    (a, b, _), _ = make_group(3)
    (out,) = a.encrypt(b"mine", T0)
    blob = out.blob
    bad = blob[:-1] + bytes([blob[-1] ^ 1])  # the AEAD tag's last byte; sender data still opens
    before = a.to_bytes()
    with pytest.raises(AuthenticationError, match="echo"):
        a.receive(bad, T0, entry_time=T0_MS)
    assert a.to_bytes() == before
    assert a.receive(blob, T0, entry_time=T0_MS) == ([], [])  # the genuine echo
    assert [e.body for e in b.receive(blob, T0, entry_time=T0_MS)[0]
            if hasattr(e, "body")] == [b"mine"]
    GroupSession.from_bytes(a.to_bytes(), a._identity)  # the hashes are saved and load


def test_an_honest_proposal_during_an_attempt_is_not_reported_as_a_fork() -> None:
    """Issue 8: a participant that proposes while an attempt runs sends an epoch-e message past
    the count it announced; once the attempt activates, readers reported that member as
    'still in previous epoch'. A proposal is the one epoch-e message an honest participant sends
    after announcing (its application messages are held): it is Ignored, never a fork."""
    from triple_ratchet.group.events import ForkDetected

    net = create(3)
    net.send("b", net.members["b"].propose(net.now))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    box = net.members["a"].mailboxes()[-1]
    for name in "abc":
        net.read(name, box)  # every announcement read: c has announced its count
    c = net.members["c"]
    late = c.propose(net.now)  # reaches the hub (or the readers) after the change completes
    net.run()
    assert {net.members[x].epoch for x in "abc"} == {2}
    net.send("c", late)
    net.run()
    c_id = net.identities["c"].public.to_bytes()
    for name in "ab":
        assert not of(net, name, ForkDetected)
        assert any(isinstance(ev, Ignored) and ev.member == c_id for ev in net.events[name])


def test_a_second_round1_read_in_round3_is_equivocation() -> None:
    """Issue 8: a round-1 equivocation read once every slot was full (the last dealer's) was
    refused as 'outside round 1' before the slots were compared, so it went unseen. It is now
    compared with the filled slot: reported, and the readers abort naming the dealer."""
    from test_group_equivocation import _second_round1, world

    from triple_ratchet.group.attempt_mailbox import KIND_ROUND1
    from triple_ratchet.group.events import AttemptAborted, ForkDetected

    w = world("round3")
    _, second = _second_round1(w)
    w.post(second, kind=KIND_ROUND1, by="b")
    w.net.run()  # read (and the aborts sent) before any round-3 item; strict: no refusal
    w.finish()
    b_id = w.identity("b")
    for name in "abc":
        assert any(f.kind == "equivocation" and f.member == b_id
                   for f in of(w.net, name, ForkDetected))
        (aborted,) = of(w.net, name, AttemptAborted)
        assert aborted.reason == "equivocation" and aborted.named == (b_id,)
        assert w.net.members[name].epoch == 1
