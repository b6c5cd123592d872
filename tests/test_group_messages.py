"""Group messages within one epoch: authentication before consumption, ordering, limits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_group_support import make_group

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    ReplayError,
    UsageError,
)
from triple_ratchet.group.events import GapDetected, MessageReceived, MessagesLost
from triple_ratchet.group.message import (
    CONTENT_APPLICATION,
    MAX_BLOB_LEN,
    MAX_BODY,
    PAD_BUCKETS,
    Content,
    GroupMessage,
    open_sender_data,
    seal,
)
from triple_ratchet.group.ordering import GAP_TIMEOUT_MS, MAX_HELD
from triple_ratchet.group.sender_chain import MAX_FORWARD, ReceivingChain, SendingChain
from triple_ratchet.group.session import GroupSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE

T0 = 1_700_000_000.0
T0_MS = int(T0 * 1000)  # the hub's acceptance time of the entries these tests read


def blob_of(session: GroupSession, text: bytes) -> bytes:
    (out,) = session.encrypt(text, T0)
    assert out.mailbox_id == session.mailbox_id
    return out.blob


def received(events: list[object]) -> list[MessageReceived]:
    return [e for e in events if isinstance(e, MessageReceived)]


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_every_member_decrypts_one_ciphertext(suite: object) -> None:
    sessions, identities = make_group(3, suite)  # type: ignore[arg-type]
    a, b, c = sessions
    blob = blob_of(a, b"hello group")
    for member in (b, c):
        events, out = member.receive(blob, T0, entry_time=T0_MS)
        (msg,) = received(events)
        assert out == []
        assert msg.body == b"hello group"
        assert msg.sender_index == 0
        assert msg.sender_identity == identities[0].public.to_bytes()
        assert msg.epoch == 1 and msg.generation == 0 and not msg.late


def test_own_echo_is_ignored_but_own_index_forgery_is_not() -> None:
    (a, b), _ = make_group(2)
    blob = blob_of(a, b"x")
    assert a.receive(blob, T0, entry_time=T0_MS) == ([], [])
    assert received(b.receive(blob, T0, entry_time=T0_MS)[0])[0].body == b"x"


def _forge(forger: GroupSession, victim_index: int, generation: int, body: bytes,
           garbage: bool = False) -> bytes:
    """What a malicious member can build: it knows every chain root and the sender-data key."""
    state = forger._s.epoch
    suite = state.suite
    root_chain = ReceivingChain(_root_of(forger, victim_index))
    keys, _ = root_chain.keys_for(suite, generation)
    content = Content(suite.suite_id, state.group_id, state.epoch, victim_index, generation,
                      CONTENT_APPLICATION, b"", body)
    blob = seal(suite, content, state.own_signing_key(), keys, b"\x01" * 8,
                state.sender_data_secret, state.mailbox_id)
    if garbage:
        msg = GroupMessage.from_bytes(suite, blob)
        flipped = bytes([msg.ciphertext[0] ^ 1]) + msg.ciphertext[1:]
        # Re-encrypt the sender data for the changed sample so it still opens.
        from triple_ratchet.group import message as m
        sd_key, sd_nonce = m._sender_data_key_nonce(suite, state.sender_data_secret, flipped)
        sd = m.SenderData(victim_index, generation, b"\x01" * 8).to_bytes()
        enc = suite.aead_encrypt(sd_key, sd_nonce, sd, m._aad(state.mailbox_id))
        blob = GroupMessage(msg.mailbox_id, enc, flipped).to_bytes()
    return blob


def _root_of(session: GroupSession, index: int) -> bytes:
    # The forger's own receiving chains still sit at their roots (it has received nothing).
    chain = session._s.epoch.receiving[index]
    assert chain is not None and chain.next_generation == 0
    return chain.chain_key


@pytest.mark.parametrize("garbage", [False, True])
def test_member_cannot_forge_or_burn_another_members_generation(garbage: bool) -> None:
    (a, b, c), _ = make_group(3)
    forged = _forge(c, victim_index=0, generation=0, body=b"I am A", garbage=garbage)
    before = b.to_bytes()
    with pytest.raises(InvalidSignature if not garbage else AuthenticationError):
        b.receive(forged, T0, entry_time=T0_MS)
    assert b.to_bytes() == before  # nothing consumed
    genuine = blob_of(a, b"really A")
    (msg,) = received(b.receive(genuine, T0, entry_time=T0_MS)[0])
    assert msg.body == b"really A" and msg.generation == 0


def test_duplicate_is_rejected_and_state_unchanged() -> None:
    (a, b), _ = make_group(2)
    blob = blob_of(a, b"once")
    b.receive(blob, T0, entry_time=T0_MS)
    before = b.to_bytes()
    with pytest.raises(ReplayError):
        b.receive(blob, T0, entry_time=T0_MS)
    assert b.to_bytes() == before


def test_out_of_order_is_delivered_in_order_with_gap_report() -> None:
    (a, b), _ = make_group(2)
    blobs = [blob_of(a, bytes([i])) for i in range(4)]
    events, _ = b.receive(blobs[2], T0, entry_time=T0_MS)
    assert [type(e) for e in events] == [GapDetected]
    assert (events[0].first, events[0].last) == (0, 1)  # type: ignore[attr-defined]
    assert received(b.receive(blobs[3], T0, entry_time=T0_MS)[0]) == []
    assert [m.body for m in received(b.receive(blobs[0], T0, entry_time=T0_MS)[0])] == [b"\x00"]
    got = received(b.receive(blobs[1], T0, entry_time=T0_MS)[0])
    assert [m.body for m in got] == [b"\x01", b"\x02", b"\x03"]


def test_gap_is_given_up_after_timeout_and_late_message_still_delivered() -> None:
    (a, b), _ = make_group(2)
    blobs = [blob_of(a, bytes([i])) for i in range(3)]
    b.receive(blobs[2], T0, entry_time=T0_MS)
    events, _ = b.tick(T0 + GAP_TIMEOUT_MS / 1000)
    lost = [e for e in events if isinstance(e, MessagesLost)]
    assert [(e.first, e.last) for e in lost] == [(0, 1)]
    assert [m.body for m in received(events)] == [b"\x02"]
    (late,) = received(b.receive(blobs[0], T0 + 200, entry_time=T0_MS + 200_000)[0])
    assert late.late and late.body == b"\x00"


def test_too_many_held_messages_release_the_gap() -> None:
    (a, b), _ = make_group(2)
    blobs = [blob_of(a, b"m") for _ in range(MAX_HELD + 3)]
    events = []
    for blob in blobs[1:]:
        events += b.receive(blob, T0, entry_time=T0_MS)[0]
    assert any(isinstance(e, MessagesLost) for e in events)
    assert len(received(events)) == MAX_HELD + 2


def test_causal_data_links_to_the_last_message_seen() -> None:
    (a, b, c), _ = make_group(3)
    m1 = blob_of(a, b"question")
    (q,) = received(b.receive(m1, T0, entry_time=T0_MS)[0])
    m2 = blob_of(b, b"answer")
    (ans_at_a,) = received(a.receive(m2, T0, entry_time=T0_MS)[0])
    assert ans_at_a.last_seen == q.digest and ans_at_a.predecessor_known
    # c has not seen the question: the answer is delivered anyway, flagged.
    (ans_at_c,) = received(c.receive(m2, T0, entry_time=T0_MS)[0])
    assert not ans_at_c.predecessor_known and ans_at_c.body == b"answer"


def test_reuse_guard_changes_nonce_when_an_old_state_is_restored() -> None:
    (a, b), identities = make_group(2)
    saved = a.to_bytes()
    first = GroupMessage.from_bytes(DEFAULT_SUITE, blob_of(a, b"one"))
    restored = GroupSession.from_bytes(saved, identities[0],
                                       rng=DeterministicRandom(b"other device run"))
    second = GroupMessage.from_bytes(DEFAULT_SUITE, blob_of(restored, b"two"))
    secret = a._s.epoch.sender_data_secret
    sd1 = open_sender_data(DEFAULT_SUITE, first, secret)
    sd2 = open_sender_data(DEFAULT_SUITE, second, secret)
    # Same chain key and generation (so the same key and nonce base), different nonce.
    assert sd1.generation == sd2.generation == 0
    keys, _ = SendingChain(_root_of(b, 0)).step(DEFAULT_SUITE)
    assert keys.nonce(sd1.reuse_guard) != keys.nonce(sd2.reuse_guard)
    # Both still decrypt (the receiver takes the guard from the sender data).
    assert received(b.receive(first.to_bytes(), T0, entry_time=T0_MS)[0])[0].body == b"one"


def test_forward_secrecy_mid_epoch() -> None:
    (a, b), identities = make_group(2)
    root = _root_of(b, 0)
    blob = blob_of(a, b"secret")
    b.receive(blob, T0, entry_time=T0_MS)
    captured = b.to_bytes()
    keys, _ = ReceivingChain(root).keys_for(DEFAULT_SUITE, 0)
    assert keys.key not in captured and root not in captured
    thief = GroupSession.from_bytes(captured, identities[1])
    with pytest.raises(ReplayError):
        thief.receive(blob, T0, entry_time=T0_MS)


def test_skipped_keys_are_deleted_once_used() -> None:
    (a, b), _ = make_group(2)
    blobs = [blob_of(a, b"m") for _ in range(3)]
    b.receive(blobs[2], T0, entry_time=T0_MS)
    b.receive(blobs[0], T0, entry_time=T0_MS)
    chain = b._s.epoch.receiving[0]
    assert chain is not None and [g for g, _, _ in chain.skipped] == [1]
    b.receive(blobs[1], T0, entry_time=T0_MS)
    chain = b._s.epoch.receiving[0]
    assert chain is not None and chain.skipped == ()


def _reject(session: GroupSession, blob: bytes, error: type[Exception]) -> None:
    before = session.to_bytes()
    with pytest.raises(error):
        session.receive(blob, T0, entry_time=T0_MS)
    assert session.to_bytes() == before


def test_wrong_group_and_wrong_epoch_are_rejected() -> None:
    (a, _), _ = make_group(2, seed=b"one", group_id=b"A" * 16)
    (_, other), _ = make_group(2, seed=b"two", group_id=b"B" * 16)
    _reject(other, blob_of(a, b"x"), ProtocolError)
    (_, b2), _ = make_group(2, seed=b"one", group_id=b"A" * 16, epoch=2)
    (a1, _), _ = make_group(2, seed=b"one", group_id=b"A" * 16, epoch=1)
    # Same keys, other epoch number: the signature binds the epoch.
    _reject(b2, blob_of(a1, b"x"), InvalidSignature)


def test_unknown_member_index_is_rejected() -> None:
    (a, b), _ = make_group(2)
    state = a._s.epoch
    suite = state.suite
    keys, _ = SendingChain(state.sending.chain_key).step(suite)
    content = Content(suite.suite_id, state.group_id, state.epoch, 7, 0, CONTENT_APPLICATION,
                      b"", b"x")
    blob = seal(suite, content, state.own_signing_key(), keys, b"\x00" * 8,
                state.sender_data_secret, state.mailbox_id)
    _reject(b, blob, ProtocolError)


def test_truncated_tampered_and_oversized_blobs_are_rejected() -> None:
    (a, b), _ = make_group(2)
    blob = blob_of(a, b"payload")
    for cut in (0, 1, 10, len(blob) // 2, len(blob) - 1):
        _reject(b, blob[:cut], DecodeError)
    for i in (len(blob) - 1, len(blob) - 40, len(blob) - 200, 60):
        tampered = bytearray(blob)
        tampered[i] ^= 0x40
        _reject(b, bytes(tampered), RemoteError)
    _reject(b, blob + b"\x00", DecodeError)
    _reject(b, b"\x00" * (MAX_BLOB_LEN + 1), LimitExceeded)
    msg = GroupMessage.from_bytes(DEFAULT_SUITE, blob)
    _reject(b, replace(msg, ciphertext=msg.ciphertext + b"\x00").to_bytes(), DecodeError)
    _reject(b, cbor.encode([0x20, 1, msg.mailbox_id]), DecodeError)
    # The genuine blob still decrypts after all that.
    assert received(b.receive(blob, T0, entry_time=T0_MS)[0])[0].body == b"payload"


def test_generation_too_far_ahead_is_rejected() -> None:
    (a, b), _ = make_group(2)
    state = a._s.epoch
    suite = state.suite
    chain = SendingChain(state.sending.chain_key)
    for _ in range(MAX_FORWARD + 2):
        keys, chain = chain.step(suite)
    assert keys.generation == MAX_FORWARD + 1
    content = Content(suite.suite_id, state.group_id, state.epoch, 0, MAX_FORWARD + 1,
                      CONTENT_APPLICATION, b"", b"x")
    blob = seal(suite, content, state.own_signing_key(), keys, b"\x00" * 8,
                state.sender_data_secret, state.mailbox_id)
    _reject(b, blob, LimitExceeded)


def test_blobs_are_padded_to_buckets() -> None:
    (a, b), _ = make_group(2)
    sizes = {len(GroupMessage.from_bytes(DEFAULT_SUITE, blob_of(a, b"x" * n)).ciphertext)
             for n in (0, 1, 50, 100)}
    assert sizes == {PAD_BUCKETS[0] + 16}
    big = GroupMessage.from_bytes(DEFAULT_SUITE, blob_of(a, b"x" * 300)).ciphertext
    assert len(big) == PAD_BUCKETS[1] + 16
    with pytest.raises(UsageError):
        a.encrypt(b"x" * (MAX_BODY + 1), T0)
    largest = blob_of(a, b"y" * MAX_BODY)
    assert len(largest) <= MAX_BLOB_LEN
    events = b.receive(largest, T0, entry_time=T0_MS)[0]
    assert isinstance(events[0], GapDetected)  # generations 0..4 went elsewhere


def test_state_round_trips_exactly_and_keeps_working() -> None:
    (a, b), identities = make_group(2)
    blobs = [blob_of(a, bytes([i])) for i in range(3)]
    b.receive(blobs[2], T0, entry_time=T0_MS)
    data = b.to_bytes()
    restored = GroupSession.from_bytes(data, identities[1])
    assert restored.to_bytes() == data
    got = [m.body for m in received(restored.receive(blobs[0], T0, entry_time=T0_MS)[0])]
    got += [m.body for m in received(restored.receive(blobs[1], T0, entry_time=T0_MS)[0])]
    assert got == [b"\x00", b"\x01", b"\x02"]


def test_corrupt_state_is_a_decode_error() -> None:
    (a, _), identities = make_group(2)
    data = a.to_bytes()
    with pytest.raises(DecodeError):
        GroupSession.from_bytes(data[:-1], identities[0])
    with pytest.raises(UsageError):
        GroupSession.from_bytes(data, identities[1])  # not our roster entry


def test_no_secret_in_repr() -> None:
    (a, b), _ = make_group(2)
    blob_of(a, b"x")
    state = a._s.epoch
    texts = [repr(a), repr(state), repr(state.sending), repr(b._s.epoch.receiving[0]),
             str(a), repr(state.sending.step(state.suite)[0])]
    secrets = [state.sender_data_secret, state.sending.chain_key, state.init_secret,
               state.signing_key, state.mailbox_access_key]
    for text in texts:
        for s in secrets:
            assert s.hex() not in text and s.hex()[:16] not in text


def test_two_gaps_expire_on_the_timer_of_their_own_notice() -> None:
    (a, b), _ = make_group(2)
    blobs = [blob_of(a, bytes([i])) for i in range(5)]
    b.receive(blobs[1], T0, entry_time=T0_MS)  # gap 0 noticed at T0
    b.receive(blobs[3], T0 + 100, entry_time=T0_MS + 100_000)  # gap 2 noticed at T0 + 100
    events, _ = b.tick(T0 + GAP_TIMEOUT_MS / 1000)
    assert [(e.first, e.last) for e in events if isinstance(e, MessagesLost)] == [(0, 0)]
    assert [m.body for m in received(events)] == [b"\x01"]
    events, _ = b.tick(T0 + 100 + GAP_TIMEOUT_MS / 1000)
    assert [(e.first, e.last) for e in events if isinstance(e, MessagesLost)] == [(2, 2)]
    assert [m.body for m in received(events)] == [b"\x03"]
    got = received(b.receive(blobs[4], T0 + 200, entry_time=T0_MS + 200_000)[0])
    assert [m.body for m in got] == [b"\x04"]
