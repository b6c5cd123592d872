"""A rejoin without a session (11.v2.31): a member's membership hint is never trusted — the
members' check of the request and the resume notice's certificate decide — and the pending
rejoin a requester keeps opens only the notice that resumes its own record."""

from __future__ import annotations

import dataclasses

import pytest
from group_v2_sim import Hub, Node, create, make_node, open_from_hub, settle

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    LimitExceeded,
    ProtocolError,
    StateError,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.group.events import Ignored
from triple_ratchet.group.notice import (
    MembershipHint,
    NoticeAssembler,
    PendingRejoin,
)
from triple_ratchet.group.session import GroupSession
from triple_ratchet.suites import CLASSICAL_SUITES, Suite


def _s(node: Node) -> GroupSession:
    assert node.session is not None
    return node.session


def _groups() -> tuple[Hub, Node, Node, Node, Node]:
    """Group 1: P and J. Group 2: X and Y (J is no member of it)."""
    hub = Hub()
    p, j, x, y = (make_node(n) for n in "PJXY")
    create(hub, p, [j])
    settle(hub, [p, j])
    x.session, out = GroupSession.create(x.identity, [y.take_join_key()], hub.now,
                                           group_id=b"group 2", rng=x.rng)
    hub.post(out)
    settle(hub, [x, y])
    return hub, p, j, x, y


def _notice_from(hub: Hub, node: Node, start: int) -> bytes:
    asm, notice = NoticeAssembler(node.identity.suite), None
    for blob, _ in hub.boxes[node.inbox][start:]:
        asm, notice = asm.receive(blob)
    assert notice is not None
    return notice


def test_a_hint_for_a_group_that_did_not_add_us_gets_a_refused_request() -> None:
    """A hint naming group 2 (J is no member; the anchor is Y's, say) makes J send a request
    that X refuses (`Ignored`, nothing posted, state unchanged); the same request to a member
    of another group (P) is refused too."""
    hub, p, j, x, y = _groups()
    forged = _s(x).membership_hint(y.id)  # the right group, another member's entry
    request, _ = GroupSession.request_rejoin(j.identity, forged, j.inbox, rng=j.rng)
    before = _s(x).to_bytes()
    events, out = _s(x).on_rejoin_request(request, j.identity.public, hub.now)
    assert out == [] and [type(e) for e in events] == [Ignored]
    assert "not in the current roster" in events[0].reason  # type: ignore[attr-defined]
    assert _s(x).to_bytes() == before
    events, out = _s(p).on_rejoin_request(request, j.identity.public, hub.now)
    assert out == [] and "another group" in events[0].reason  # type: ignore[attr-defined]


def test_a_hint_with_another_memberships_anchor_gets_a_refused_request() -> None:
    """J is a member of group 1, but a hint carrying Y's anchor of group 2 relabelled for group
    1 names a membership J does not have: P refuses the request it brings."""
    hub, p, j, x, y = _groups()
    theirs = MembershipHint.from_bytes(x.identity.suite, _s(x).membership_hint(y.id))
    forged = dataclasses.replace(theirs, group_id=_s(p).group_id).to_bytes()
    request, _ = GroupSession.request_rejoin(j.identity, forged, j.inbox, rng=j.rng)
    before = _s(p).to_bytes()
    events, out = _s(p).on_rejoin_request(request, j.identity.public, hub.now)
    assert out == [] and "another membership" in events[0].reason  # type: ignore[attr-defined]
    assert _s(p).to_bytes() == before


def test_a_request_forwarded_by_another_peer_is_refused() -> None:
    """The request is the requester's own: X forwarding J's request to P over its pairwise
    session is refused (the resume record's identity must be the pairwise peer's)."""
    hub, p, j, x, _ = _groups()
    request, _ = GroupSession.request_rejoin(j.identity, _s(p).membership_hint(j.id),
                                               j.inbox, rng=j.rng)
    events, out = _s(p).on_rejoin_request(request, x.identity.public, hub.now)
    assert out == [] and "pairwise peer" in events[0].reason  # type: ignore[attr-defined]


def test_a_resume_notice_for_another_record_is_not_opened() -> None:
    """J keeps two pending rejoins; P resumes the first. The notice opens with the first's keys
    only, and starts a session only with the first (UsageError for the other); a notice that
    resumed nobody (J's add) is refused by `from_rejoin` too."""
    hub, p, j, _, _ = _groups()
    hint = _s(p).membership_hint(j.identity.public)
    request, first = GroupSession.request_rejoin(j.identity, hint, j.inbox, rng=j.rng)
    _, second = GroupSession.request_rejoin(j.identity, hint, j.inbox, rng=j.rng)
    assert first.record.counter == second.record.counter == 1 and first != second
    start_at = len(hub.boxes[j.inbox])
    events, out = _s(p).on_rejoin_request(request, j.identity.public, hub.now)
    assert events == [] and out
    hub.post(out)
    settle(hub, [p])
    assert _s(p).epoch == 2
    suite = j.identity.suite
    notice = _notice_from(hub, j, start_at)
    with pytest.raises(AuthenticationError):
        open_from_hub(hub, suite, notice, identity=j.id, keys=[second.keys()])
    # The resume notice's body is the change's common part, in its common mailbox (11.v2.13).
    start = open_from_hub(hub, suite, notice, identity=j.id, keys=[first.keys()])
    with pytest.raises(UsageError, match="another record"):
        GroupSession.from_rejoin(j.identity, start, second, rng=j.rng)
    with pytest.raises(UsageError, match="not a notice for a resume"):
        GroupSession.from_rejoin(j.identity, dataclasses.replace(start, resumed=False),
                                   first, rng=j.rng)
    with pytest.raises(UsageError, match="another identity"):
        GroupSession.from_rejoin(p.identity, start, first, rng=p.rng)
    resumed = GroupSession.from_rejoin(j.identity, start, first, rng=j.rng)
    assert resumed.public_epoch_id == _s(p).public_epoch_id


def test_a_hint_only_for_a_member_of_our_roster() -> None:
    _, p, _, x, _ = _groups()
    with pytest.raises(UsageError):
        _s(x).membership_hint(p.id)


def test_a_removed_member_gives_no_hint() -> None:
    hub, p, j, _, _ = _groups()
    hub.advance(61_000)
    hub.post(_s(p).propose(hub.now, remove=[j.id]))
    settle(hub, [p, j])
    assert _s(j).status == "removed"
    with pytest.raises(StateError):
        _s(j).membership_hint(p.id)


def test_membership_hints_decode_strictly() -> None:
    _, p, j, _, _ = _groups()
    suite = j.identity.suite
    hint = _s(p).membership_hint(j.id)
    decoded = MembershipHint.from_bytes(suite, hint)
    assert decoded.to_bytes() == hint and decoded.counter == 0
    for cut in range(len(hint)):
        with pytest.raises(TripleRatchetError):
            MembershipHint.from_bytes(suite, hint[:cut])
    fields = cbor.decode(hint)
    assert isinstance(fields, list)

    def variant(i: int, value: cbor.CborValue) -> bytes:
        return cbor.encode([*fields[:i], value, *fields[i + 1:]])

    for bad, error in ((variant(0, 0x54), DecodeError), (variant(3, b""), DecodeError),
                       (variant(4, b"\x00" * 5), DecodeError),
                       (variant(5, 2**64 - 1), DecodeError),  # no counter above it
                       (variant(2, 0xFFFF), TripleRatchetError),
                       (hint + b"\x00" * 300, LimitExceeded)):
        with pytest.raises(error):
            MembershipHint.from_bytes(suite, bad)
    with pytest.raises(UsageError):
        MembershipHint.from_bytes(suite, "text")  # type: ignore[arg-type]


def test_a_pending_rejoin_is_saved_strictly() -> None:
    _, p, j, _, _ = _groups()
    _, pending = GroupSession.request_rejoin(j.identity, _s(p).membership_hint(j.id),
                                               j.inbox, rng=j.rng)
    _, other = GroupSession.request_rejoin(j.identity, _s(p).membership_hint(j.id),
                                             j.inbox, rng=j.rng)
    data = pending.to_bytes()
    assert PendingRejoin.from_bytes(data, j.identity) == pending
    assert pending.seed.hex() not in repr(pending) and repr(pending.seed) not in repr(pending)
    with pytest.raises(UsageError):
        PendingRejoin.from_bytes(data, p.identity)
    fields = cbor.decode(data)
    assert isinstance(fields, list)
    swapped = cbor.encode([*fields[:4], other.seed])
    with pytest.raises(DecodeError):
        PendingRejoin.from_bytes(swapped, j.identity)
    for cut in range(0, len(data), 7):
        with pytest.raises(TripleRatchetError):
            PendingRejoin.from_bytes(data[:cut], j.identity)


def test_a_request_from_a_hint_with_a_bad_inbox_is_a_usage_error() -> None:
    _, p, j, _, _ = _groups()
    with pytest.raises(UsageError):
        GroupSession.request_rejoin(j.identity, _s(p).membership_hint(j.id), b"short",
                                      rng=j.rng)
    other = make_node("Q", suite=_other_suite(j))
    with pytest.raises(ProtocolError):  # a hint of another suite than ours
        GroupSession.request_rejoin(other.identity, _s(p).membership_hint(j.id),
                                      other.inbox, rng=other.rng)


def _other_suite(node: Node) -> Suite:
    return next(s for s in CLASSICAL_SUITES if s.suite_id != node.identity.suite.suite_id)
