"""Group creation from prekey bundles, welcomes carried by real pairwise sessions."""

from __future__ import annotations

from test_group_support import Hub

from triple_ratchet.group.events import MessageReceived, Outgoing, WelcomeOut
from triple_ratchet.group.session import GroupSession, Send
from triple_ratchet.identity import Account
from triple_ratchet.pairwise import PairwiseSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import DEFAULT_SUITE

T0 = 1_700_000_000.0
T0_MS = int(T0 * 1000)  # the hub's acceptance time of the entries these tests read


def test_create_from_bundles_with_welcomes_over_pairwise_sessions() -> None:
    rng = DeterministicRandom(b"pairwise")
    accounts = [Account.generate(DEFAULT_SUITE, rng) for _ in range(3)]
    bundles = [acc.new_bundles(1, rng)[0] for acc in accounts[1:]]
    creator = accounts[0].identity
    group, sends = GroupSession.create(creator, bundles, T0, rng=rng)
    hub = Hub()
    inboxes: dict[bytes, list[bytes]] = {}

    def route(sends: list[Send], who: int) -> None:
        for s in sends:
            if isinstance(s, Outgoing):
                hub.append(s.mailbox_id, s.blob)
            elif isinstance(s, WelcomeOut):
                bundle = next(b for b in bundles if b.identity.to_bytes() == s.recipient)
                _, first = PairwiseSession.initiate(accounts[who].identity, bundle, rng,
                                                    plaintext=s.welcome)
                inboxes.setdefault(s.recipient, []).append(first)

    route(sends, 0)
    sessions = {0: group}
    for i, acc in enumerate(accounts[1:], start=1):
        (first,) = inboxes[acc.public_identity.to_bytes()]
        pairwise, welcome, peer = PairwiseSession.respond(acc, first, rng)
        assert peer == creator.public and pairwise.peer_identity == creator.public
        joined, _, out = GroupSession.join(acc.identity, welcome, peer, T0, rng=rng)
        sessions[i] = joined
        route(out, i)
    for _ in range(20):
        moved = False
        for i, s in sessions.items():
            for box in s.mailboxes():
                for blob in hub.unread(str(i), box):
                    moved = True
                    _, out = s.receive(blob, T0, entry_time=T0_MS)
                    route(out, i)
        if not moved:
            break
    assert {s.epoch for s in sessions.values()} == {1}
    assert len({s.public_epoch_id for s in sessions.values()}) == 1
    (msg,) = sessions[2].encrypt(b"over the group", T0)
    assert isinstance(msg, Outgoing)
    events, _ = sessions[1].receive(msg.blob, T0, entry_time=T0_MS)
    assert [e.body for e in events if isinstance(e, MessageReceived)] == [b"over the group"]
