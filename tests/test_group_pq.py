"""The group on a hybrid (post-quantum) suite (issue 11, item 3): member key records and join keys
carry a hybrid KEM receive key, every commit secret and joiner's secret is sealed with the hybrid
KEM, deterministically (so committee members agree and a wrong sealing is convicted), and a
recorded sealing stays closed to an attacker who holds every classical private key.

Groups run through the in-memory hub of tests/group_v2_sim.py; classical suites are the control
(the same attack on them succeeds)."""

from __future__ import annotations

import pytest
from group_v2_sim import Hub, Node, create, make_node, settle

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    InvalidKey,
    LimitExceeded,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.group.control import MAX_COMMIT_ENTRY_LEN, TYPE_COMMIT, sign_member_entry
from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.key_schedule import MAX_GROUP_SIZE_PQ, max_group_size
from triple_ratchet.group.notice import MAX_HEADER_LEN, MAX_HEADER_LEN_PQ, NoticeHeader
from triple_ratchet.group.records import (
    MAX_RECORD_LEN,
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    creator_anchor,
    is_hybrid,
    max_join_key_len,
    max_record_len,
    receive_kem,
)
from triple_ratchet.group.roster import Roster, RosterEntry
from triple_ratchet.group.run import Commit, sealing_sizes
from triple_ratchet.group.sealing import (
    Recipient,
    Sealing,
    SealingContext,
    open_sealing,
    seal_bundle,
)
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, HYBRID_SUITES, Suite
from triple_ratchet.suites.hpke import hpke_for_suite
from triple_ratchet.suites.mlkem import MlKemPrivateKey

HYBRID = list(HYBRID_SUITES)
CLASSICAL = list(CLASSICAL_SUITES)


def _names(suites: list[Suite]) -> list[str]:
    return [s.name for s in suites]


def _member(suite: Suite, name: bytes) -> tuple[IdentityKeyPair, RecordKeys]:
    rng = DeterministicRandom(b"pq member " + name + suite.name.encode())
    return IdentityKeyPair.generate(suite, rng), RecordKeys.generate(suite, rng)


# --- Records and join keys ---------------------------------------------------------------------


@pytest.mark.parametrize("suite", HYBRID, ids=_names(HYBRID))
def test_hybrid_records_and_join_keys_carry_the_kem_receive_key(suite: Suite) -> None:
    kem = receive_kem(suite)
    assert kem is hpke_for_suite(suite).kem and kem.n_pk in (1216, 1249)
    assert suite.post_quantum and is_hybrid(suite)
    identity, keys = _member(suite, b"A")
    assert len(keys.receive_public) == kem.n_pk
    assert kem.public_key_of(keys.receive_key.to_bytes()) == keys.receive_public
    # derived from the record seed: a restored state re-creates byte-identical keys
    seed = DeterministicRandom(b"seed")(32)
    assert RecordKeys.from_seed(suite, seed).receive_public == RecordKeys.from_seed(
        suite, seed).receive_public
    assert "<secret>" in repr(keys.receive_key) and keys.receive_key.to_bytes().hex() not in repr(
        keys)
    record = MemberKeyRecord.sign(identity, keys, group_id=b"G" * 64, counter=1,
                                  purpose=PURPOSE_ROTATE, anchor=creator_anchor(suite))
    raw = record.to_bytes()
    assert MAX_RECORD_LEN < len(raw) <= max_record_len(suite)
    assert MemberKeyRecord.from_bytes(suite, raw) == record
    join_key = JoinKey.sign(identity, keys, expiry=2**40, inbox_id=bytes(32))
    assert len(join_key.to_bytes()) <= max_join_key_len(suite)
    assert JoinKey.from_bytes(suite, join_key.to_bytes()) == join_key
    # a keyring of hybrid join keys saves and loads (the private side is the 32-byte seed)
    ring = JoinKeyring.empty(suite).generate(identity, one_time=3, last_resort=True,
                                             inbox_id=bytes(32), expiry=2**40,
                                             rng=DeterministicRandom(b"ring"))
    assert JoinKeyring.from_bytes(ring.to_bytes()).to_bytes() == ring.to_bytes()


def _with_receive_key(record: MemberKeyRecord, receive: bytes) -> bytes:
    """The record's wire bytes with another receive key in its body (signatures unchanged)."""
    outer = cbor.decode(record.to_bytes())
    assert isinstance(outer, list) and isinstance(outer[0], bytes)
    body = cbor.decode(outer[0])
    assert isinstance(body, list)
    body[7] = receive
    return cbor.encode([cbor.encode(body), outer[1], outer[2]])


@pytest.mark.parametrize("suite", HYBRID, ids=_names(HYBRID))
def test_a_hybrid_record_with_a_classical_or_malformed_receive_key_is_refused(
        suite: Suite) -> None:
    identity, keys = _member(suite, b"B")
    record = MemberKeyRecord.sign(identity, keys, group_id=b"G", counter=1,
                                  purpose=PURPOSE_ROTATE, anchor=creator_anchor(suite))
    classical = suite.generate_dh(DeterministicRandom(b"dh")).public_key().to_bytes()
    with pytest.raises(DecodeError):  # a DH-sized key is not this suite's receive key
        MemberKeyRecord.from_bytes(suite, _with_receive_key(record, classical))
    with pytest.raises(DecodeError):
        MemberKeyRecord.from_bytes(suite, _with_receive_key(record, keys.receive_public[:-1]))
    # An ML-KEM coefficient >= q in the encapsulation key fails FIPS 203's modulus check; a
    # curve part off the curve (P-256) or of small order (X25519, all zero) fails the curve's.
    bad = b"\xff" * 3 + keys.receive_public[3:]
    n = suite.dh_public_len
    bad_curve = keys.receive_public[:-n] + (b"\x04" + bytes(n - 1) if n == 65 else bytes(n))
    for wrong in (bad, bad_curve):
        with pytest.raises(InvalidKey):
            MemberKeyRecord.from_bytes(suite, _with_receive_key(record, wrong))


@pytest.mark.parametrize("suite", CLASSICAL, ids=_names(CLASSICAL))
def test_classical_receive_keys_are_unchanged(suite: Suite) -> None:
    """A classical suite's receive key is still its DH key (the vectors pin the bytes)."""
    _, keys = _member(suite, b"C")
    assert len(keys.receive_public) == suite.dh_public_len
    assert keys.receive_key.to_bytes() == suite.dh_private_from_bytes(
        keys.receive_key.to_bytes()).to_bytes()
    assert max_record_len(suite) == max_join_key_len(suite) == 1024
    assert max_group_size(suite) == 1000
    assert not suite.post_quantum and not is_hybrid(suite)


# --- Sealing: deterministic, one per recipient, closed to everyone else ------------------------


def _sealing_inputs(suite: Suite, n: int = 3) -> tuple[SealingContext, bytes, list[Recipient],
                                                        list[RecordKeys]]:
    rng = DeterministicRandom(b"pq sealing " + suite.name.encode())
    context = SealingContext(suite, rng(16), 5, rng(suite.hash_len), rng(suite.hash_len))
    commit_secret = rng(suite.hash_len)
    keys = [RecordKeys.generate(suite, rng) for _ in range(n)]
    recipients = [Recipient(i + 1, b"member %d" % i, k.receive_public, commit_secret)
                  for i, k in enumerate(keys)]
    return context, commit_secret, recipients, keys


@pytest.mark.parametrize("suite", HYBRID, ids=_names(HYBRID))
def test_two_committee_members_seal_byte_identical_hybrid_bundles(suite: Suite) -> None:
    context, commit_secret, recipients, keys = _sealing_inputs(suite)
    # Two committee members: each builds its own context from the same public values.
    other = SealingContext(suite, context.group_id, context.epoch, context.run_session_id,
                           context.roster_hash)
    first = seal_bundle(context, commit_secret, recipients)
    second = seal_bundle(other, commit_secret, list(recipients))
    assert first == second
    enc_len, ct_len = sealing_sizes(suite)
    assert all(len(s.enc) == enc_len > 1000 and len(s.ct) == ct_len for s in first.sealings)
    assert len({s.enc for s in first.sealings}) == len(recipients)  # one encapsulation each
    for r, k, s in zip(recipients, keys, first.sealings, strict=True):
        assert open_sealing(context, r.identity, k.receive_key.to_bytes(), s) == commit_secret
    # another commit_secret: other encapsulations (the randomness derives from seal_secret)
    moved = seal_bundle(context, bytes(suite.hash_len), recipients)
    assert not {s.enc for s in moved.sealings} & {s.enc for s in first.sealings}


@pytest.mark.parametrize("suite", HYBRID, ids=_names(HYBRID))
def test_only_the_recipient_opens_its_hybrid_sealing(suite: Suite) -> None:
    context, commit_secret, recipients, keys = _sealing_inputs(suite)
    bundle = seal_bundle(context, commit_secret, recipients)
    # another member's key, and a removed member's (not a recipient), open nothing
    outsider = RecordKeys.generate(suite, DeterministicRandom(b"removed"))
    for s in bundle.sealings:
        with pytest.raises(AuthenticationError):
            open_sealing(context, recipients[0].identity, outsider.receive_key.to_bytes(), s)
    with pytest.raises(AuthenticationError):
        open_sealing(context, recipients[1].identity, keys[0].receive_key.to_bytes(),
                     bundle.sealings[1])
    # an altered ciphertext of the ML-KEM part changes the shared secret: refused
    s = bundle.sealings[0]
    flipped = Sealing(bytes([s.enc[0] ^ 1]) + s.enc[1:], s.ct)
    with pytest.raises(TripleRatchetError):
        open_sealing(context, recipients[0].identity, keys[0].receive_key.to_bytes(), flipped)


# --- Sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", HYBRID, ids=_names(HYBRID))
def test_a_full_hybrid_groups_commit_fits_the_largest_bucket(suite: Suite) -> None:
    """MAX_GROUP_SIZE_PQ recipients (more than a commit ever seals to: the committee is not
    sealed to) fit one commit entry, with a 64-byte group id; 110 would not."""
    enc_len, ct_len = sealing_sizes(suite)
    _, keys = _member(suite, b"committee")

    def commit_entry(pairs: int) -> bytes:
        commit = Commit.make(suite, 2**32 - 1, [(bytes(enc_len), bytes(ct_len))] * pairs)
        return sign_member_entry(suite, keys.signing_key, TYPE_COMMIT, group_id=b"G" * 64,
                                 epoch=2**64 - 2, author=999, body=commit.to_bytes()).to_bytes()

    assert len(commit_entry(MAX_GROUP_SIZE_PQ)) <= MAX_COMMIT_ENTRY_LEN
    with pytest.raises(UsageError):  # larger than its bound: no committee could post it
        commit_entry(110)


@pytest.mark.parametrize("suite", HYBRID, ids=_names(HYBRID))
def test_a_hybrid_roster_holds_at_most_max_group_size_pq(suite: Suite) -> None:
    entries = []
    for i in range(MAX_GROUP_SIZE_PQ + 1):
        identity, keys = _member(suite, b"r%d" % i)
        entries.append(RosterEntry.of(JoinKey.sign(identity, keys, expiry=2**40,
                                                   inbox_id=bytes(32)), 0))
    roster = Roster(suite, tuple(entries[:-1]))
    assert Roster.from_bytes(suite, roster.to_bytes(), group_id=b"G").hash() == roster.hash()
    with pytest.raises(LimitExceeded):
        Roster(suite, tuple(entries))


# --- A hybrid group end to end -----------------------------------------------------------------


@pytest.mark.parametrize("suite", HYBRID, ids=_names(HYBRID))
def test_a_hybrid_group_creates_talks_adds_removes_refreshes_and_catches_up(
        suite: Suite) -> None:
    hub = Hub()
    a, b, c, d, e = (make_node(n, suite) for n in "ABCDE")
    for n in (c, d):  # saved and loaded after every step: hybrid keys and pairs in the state
        n.reload = True
    create(hub, a, [b, c, e])
    settle(hub, [a, b, c, e])
    assert a.session and b.session and c.session and e.session
    assert all(len(x.receive_key) == receive_kem(suite).n_pk
               for x in (entry.keys for entry in a.session.control_log.view.roster.entries))
    hub.post(a.session.encrypt(b"epoch 1", hub.now))
    settle(hub, [a, b, c, e])
    assert b.messages() == [b"epoch 1"] == e.messages()
    c.online = False
    # An add while C is offline: D opens its hybrid sealing (member_base) from its notice.
    hub.advance(61_000)
    hub.post(b.session.propose(hub.now, add=[d.take_join_key()]))
    settle(hub, [a, b, c, d, e])
    assert d.session is not None and d.session.epoch == 2 == a.session.epoch
    assert d.session.public_epoch_id == a.session.public_epoch_id
    hub.post(d.session.encrypt(b"hi from D", hub.now))
    settle(hub, [a, b, c, d, e])
    # A remove while C is offline: E is out, and cannot open the next epoch's sealings.
    hub.advance(61_000)
    hub.post(a.session.propose(hub.now, remove=[e.id]))
    settle(hub, [a, b, c, d, e])
    assert e.session is not None and e.session.status == "removed"
    assert a.session.epoch == 3 and e.id not in a.session.roster
    _removed_member_opens_nothing(a, c, e)  # C (offline) is the one recipient
    hub.post(b.session.encrypt(b"epoch 3", hub.now))
    settle(hub, [a, b, c, d, e])
    # A refresh while C is offline; committee members agree on one bundle byte for byte.
    hub.advance(3_601_000)
    hub.post(d.session.propose(hub.now, refresh=True))
    settle(hub, [a, b, c, d, e])
    assert a.session.epoch == 4 == d.session.epoch
    _committee_bundles_agree([a, b, d])
    hub.post(a.session.encrypt(b"epoch 4", hub.now))
    settle(hub, [a, b, c, d, e])
    # C comes back and catches up across the three changes (its sealings are hybrid).
    c.online = True
    settle(hub, [a, b, c, d, e])
    assert c.session.epoch == 4 and c.session.public_epoch_id == a.session.public_epoch_id
    assert c.messages() == [b"epoch 1", b"hi from D", b"epoch 3", b"epoch 4"]
    hub.post(c.session.encrypt(b"back", hub.now))
    settle(hub, [a, b, c, d, e])
    assert a.messages()[-1] == b"back" == d.messages()[-1]
    assert e.messages() == [b"epoch 1", b"hi from D"]


def _removed_member_opens_nothing(member: Node, recipient: Node, removed: Node) -> None:
    """The commit that removed `removed` sealed to every other member outside the committee;
    under that commit's own sealing context, `recipient` opens its sealing with its receive
    key, while every key pair `removed` still holds opens none, whoever's info it tries."""
    assert member.session and recipient.session and removed.session
    kept = member.session._s.sealing_inputs
    assert kept is not None and kept.certified
    context = kept._context()
    index = kept.roster.index_of(recipient.id)
    assert index is not None and index in kept.recipients
    enc, ct = kept.certified[kept.recipients.index(index)]
    opened = [open_sealing(context, recipient.id, k.receive_key.to_bytes(), Sealing(enc, ct))
              for k in recipient.session.resume_keys()
              if k.receive_public == kept.roster.entries[index].receive_key]
    assert opened == [kept.commit_secret]
    own = removed.session.resume_keys()
    assert own
    for enc, ct in kept.certified:
        for identity in (removed.id, *(e.identity for e in kept.roster.entries)):
            for k in own:
                with pytest.raises(AuthenticationError):
                    open_sealing(context, identity, k.receive_key.to_bytes(), Sealing(enc, ct))


def _committee_bundles_agree(nodes: list[Node]) -> None:
    """Every member that kept the deciding run's sealing inputs (committee members and members
    sealed commit_secret) recomputes the certified hybrid bundle byte for byte."""
    bundles = set()
    for n in nodes:
        assert n.session is not None
        kept = n.session._s.sealing_inputs
        assert kept is not None
        recipients = [kept._recipient(i) for i in kept.recipients]
        assert all(r is not None for r in recipients)
        bundle = seal_bundle(kept._context(), kept.commit_secret,
                             [r for r in recipients if r is not None])
        assert tuple((s.enc, s.ct) for s in bundle.sealings) == kept.certified
        bundles.add(kept.certified)
    assert len(bundles) == 1


# --- Harvest now, decrypt later -------------------------------------------------------------------


def _attack(context: SealingContext, identity: bytes, sealing: Sealing, ss_t: bytes,
            ek_t: bytes, ss_pq: bytes) -> bytes:
    """Open a recorded hybrid sealing from the combiner's inputs: the traditional shared secret
    (which a quantum attacker computes from the recorded ct_T and ek_T, modelled here by handing
    it the recipient's curve private key) and a value for the ML-KEM shared secret."""
    hpke = context.hpke
    kem = hpke.kem
    ct_t = sealing.enc[len(sealing.enc) - len(ek_t):]
    shared = kem._combine(ss_pq, ss_t, ct_t, ek_t)
    return hpke.key_schedule(shared, context.info(identity)).open(b"", sealing.ct)


@pytest.mark.parametrize("suite", CLASSICAL + HYBRID, ids=_names(CLASSICAL + HYBRID))
def test_every_classical_private_key_opens_a_classical_sealing_but_not_a_hybrid_one(
        suite: Suite) -> None:
    """Given every DH (X25519 / P-256) private key of the recipient, but not its ML-KEM seed, an
    attacker opens a recorded classical sealing and not a hybrid one."""
    context, commit_secret, recipients, keys = _sealing_inputs(suite, 1)
    sealing = seal_bundle(context, commit_secret, recipients).sealings[0]
    identity, key = recipients[0].identity, keys[0]
    if not is_hybrid(suite):
        # The receive key is a DH key: holding it is holding the sealing.
        stolen = suite.dh_private_from_bytes(key.receive_key.to_bytes()).to_bytes()
        assert open_sealing(context, identity, stolen, sealing) == commit_secret
        return
    kem = context.hpke.kem
    full = kem._expand(key.receive_key.to_bytes())
    dh = full.group  # the recipient's curve private key, all the attacker needs classically
    ek_t = dh.public_key().to_bytes()
    assert key.receive_public.endswith(ek_t)
    ct_t = sealing.enc[len(sealing.enc) - len(ek_t):]
    ss_t = dh.exchange(suite.dh_public_from_bytes(ct_t))
    ct_pq = sealing.enc[:len(sealing.enc) - len(ek_t)]
    # The attack is right: with the ML-KEM shared secret too, it opens the sealing.
    assert _attack(context, identity, sealing, ss_t, ek_t,
                   full.mlkem.decapsulate(ct_pq)) == commit_secret
    # Without it, no value it can compute opens: another ML-KEM key's (implicitly rejected)
    # decapsulation of the recorded ciphertext, zeros, hashes of what it recorded.
    own = MlKemPrivateKey.from_seed(DeterministicRandom(b"attacker")(64))
    guesses = [own.decapsulate(ct_pq), bytes(32), suite.hash(ct_pq)[:32],
               suite.hash(sealing.enc + key.receive_public)[:32], ss_t]
    for guess in guesses:
        with pytest.raises(AuthenticationError):
            _attack(context, identity, sealing, ss_t, ek_t, guess)
    # nor does a hybrid private key of its own
    with pytest.raises(AuthenticationError):
        open_sealing(context, identity, DeterministicRandom(b"other seed")(32), sealing)


@pytest.mark.parametrize("suite", CLASSICAL + HYBRID, ids=_names(CLASSICAL + HYBRID))
def test_a_notice_header_is_bounded_by_its_suite_before_decoding(suite: Suite) -> None:
    """A hybrid header carries a 1,120 / 1,153-byte enc: its bound is 3072; a classical one's
    stays 1024, checked before any decoding as before."""
    bound = MAX_HEADER_LEN_PQ if is_hybrid(suite) else MAX_HEADER_LEN
    head = bytes([0x8A, suite.suite_id])
    with pytest.raises(LimitExceeded):
        NoticeHeader.from_bytes(head + bytes(bound - 1))
    with pytest.raises(DecodeError):  # within the bound: decoded, and refused as malformed
        NoticeHeader.from_bytes(head + bytes(bound - 2))
