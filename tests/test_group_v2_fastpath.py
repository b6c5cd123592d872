"""The reader path's fast forms (issue 8, item 7) equal the general ones they replace.

Every fast path of the version-2 epoch change is checked here against a reference written the
general way (the code it replaced, kept in this file): the chain roots against `expand_label`,
the roster hash against the general CBOR encoder, the bundle's leaves against `leaf_hash`, the
Merkle root against the level-by-level construction, and the cached record values against fresh
ones (a changed value never sees an old cache)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from triple_ratchet import cbor
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.errors import (
    DecodeError,
    InvalidKey,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    UsageError,
)
from triple_ratchet.group import key_schedule as ks
from triple_ratchet.group import roster as roster_module
from triple_ratchet.group import run as run_module
from triple_ratchet.group import run_secrets
from triple_ratchet.group.control import TYPE_ANNOUNCEMENT, ControlEntry, sign_identity_entry
from triple_ratchet.group.key_schedule import (
    MAX_ANNOUNCEMENT_ENTRY_LEN,
    MAX_GROUP_SIZE_V2,
    MAX_RUN,
)
from triple_ratchet.group.records import (
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    creator_anchor,
)
from triple_ratchet.group.roster import LABEL_ROSTER_HASH, Roster, RosterEntry
from triple_ratchet.group.run import Commit, RunAnnouncement, sealing_sizes
from triple_ratchet.group.run_secrets import decode_announcement_entry
from triple_ratchet.group.sealing import (
    MAX_SEALINGS,
    MERKLE_EMPTY,
    MERKLE_NODE,
    Sealing,
    leaf_hash,
    merkle_root,
    pair_leaves,
)
from triple_ratchet.identity import Identity, IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite

SUITES = pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
GROUP_ID = b"G" * 16


# --- References: the general forms --------------------------------------------------------------


def reference_chain_roots(suite: Suite, secret: bytes, n: int) -> tuple[bytes, ...]:
    return tuple(suite.expand_label(secret, ks.LABEL_KS2_CHAIN_ROOT, i.to_bytes(4, "big"),
                                    suite.hash_len) for i in range(n))


def reference_roster_hash(roster: Roster) -> bytes:
    return roster.suite.hash(LABEL_ROSTER_HASH + cbor.encode(
        [[e.identity, e.keys.body(), e.posted_at, e.anchor] for e in roster.entries]))


def reference_merkle_root(suite: Suite, leaves: list[bytes]) -> bytes:
    if not leaves:
        return suite.hash(MERKLE_EMPTY)
    level = list(leaves)
    while len(level) > 1:
        nxt = [suite.hash(MERKLE_NODE + level[j] + level[j + 1])
               for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# --- Chain roots ------------------------------------------------------------------------------


@SUITES
@settings(max_examples=30, deadline=None)
@given(secret_seed=st.binary(min_size=1, max_size=64), n=st.integers(1, 300))
def test_chain_roots_equal_expand_label(suite: Suite, secret_seed: bytes, n: int) -> None:
    secret = suite.hash(secret_seed)
    assert ks._chain_roots_v2(suite, secret, n) == reference_chain_roots(suite, secret, n)


@SUITES
def test_derive_epoch_v2_roots_at_the_bound(suite: Suite) -> None:
    """All 1,000 roots of a full roster, through the public function, equal the general form
    (the other values come from the unchanged code and are pinned by the vectors)."""
    member_base, context = suite.hash(b"member base"), suite.hash(b"group context")
    out = ks.derive_epoch_v2(suite, member_base, context, ks.MAX_GROUP_SIZE_V2)
    secret = ks.expand_epoch_secret(suite, member_base, context)
    assert out.chain_roots == reference_chain_roots(suite, secret, ks.MAX_GROUP_SIZE_V2)
    assert len(set(out.chain_roots)) == ks.MAX_GROUP_SIZE_V2


# --- Roster hash ------------------------------------------------------------------------------


@given(n=st.integers(0, 0xFFFF))
def test_array_head_is_the_general_encoders(n: int) -> None:
    assert roster_module._array_head(n) == cbor.encode([0] * n)[:-n or None]


def test_array_head_bounds() -> None:
    for n in (0, 23, 24, 255, 256, ks.MAX_GROUP_SIZE_V2, 0xFFFF):
        assert roster_module._array_head(n) == cbor.encode([0] * n)[:-n or None]
    with pytest.raises(UsageError):
        roster_module._array_head(0x10000)


def _entries(suite: Suite, n: int, seed: bytes) -> list[RosterEntry]:
    rng = DeterministicRandom(seed + suite.name.encode())
    out = []
    for i in range(n):
        identity = IdentityKeyPair.generate(suite, rng)
        keys = RecordKeys.from_seed(suite, rng(32))
        if i % 5 == 4:  # some join keys among the records
            out.append(RosterEntry.of(JoinKey.sign(identity, keys, expiry=2**40 + i,
                                                   inbox_id=rng(32)), 7 * i))
        else:
            record = MemberKeyRecord.sign(identity, keys, group_id=GROUP_ID, counter=1 + i,
                                          purpose=PURPOSE_ROTATE, anchor=creator_anchor(suite))
            out.append(RosterEntry.of(record, 1000 + i))
    return out


@pytest.fixture(scope="module", params=CLASSICAL_SUITES, ids=lambda s: s.name)
def pool(request: pytest.FixtureRequest) -> tuple[Suite, list[RosterEntry]]:
    suite: Suite = request.param
    return suite, _entries(suite, 30, b"fast path pool")


def test_roster_hash_equals_general_encoding(
        pool: tuple[Suite, list[RosterEntry]]) -> None:
    """Every size up to 30 (array heads of one and two bytes: 23, 24), in two orders."""
    suite, entries = pool
    for n in range(1, len(entries) + 1):
        for chosen in (entries[:n], entries[-n:][::-1]):
            roster = Roster(suite, tuple(chosen))
            assert roster.hash() == reference_roster_hash(roster)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_roster_hash_after_changes_equals_general_encoding(
        pool: tuple[Suite, list[RosterEntry]], data: st.DataObject) -> None:
    """A roster that changed by a few entries (some cached, some new) hashes as if encoded from
    scratch; a changed field of an entry changes the hash (no stale cache)."""
    suite, entries = pool
    chosen = data.draw(st.lists(st.sampled_from(range(len(entries))), min_size=1, max_size=12,
                                unique=True))
    roster = Roster(suite, tuple(entries[i] for i in chosen))
    before = roster.hash()
    assert before == reference_roster_hash(roster)
    position = data.draw(st.integers(0, len(chosen) - 1))
    old = roster.entries[position]
    moved = replace(old, posted_at=old.posted_at + data.draw(st.integers(1, 2**40)))
    changed = Roster(suite, (*roster.entries[:position], moved, *roster.entries[position + 1:]))
    assert changed.hash() == reference_roster_hash(changed) != before
    assert roster.hash() == before


def test_roster_entry_cache_is_outside_equality(pool: tuple[Suite, list[RosterEntry]]) -> None:
    _, entries = pool
    entry = entries[0]
    fresh = RosterEntry(entry.identity, entry.keys, entry.posted_at, entry.anchor)
    entry.hash_item()
    assert fresh == entry and hash(fresh) == hash(entry)
    assert "_hash_item" not in repr(entry)
    assert fresh.hash_item() == entry.hash_item()


# --- Record caches ----------------------------------------------------------------------------


@SUITES
def test_record_caches_equal_fresh_values(suite: Suite) -> None:
    rng = DeterministicRandom(b"record caches" + suite.name.encode())
    identity = IdentityKeyPair.generate(suite, rng)
    keys = RecordKeys.from_seed(suite, rng(32))
    record = MemberKeyRecord.sign(identity, keys, group_id=GROUP_ID, counter=3,
                                  purpose=PURPOSE_ROTATE, anchor=creator_anchor(suite))
    body = record.body()
    assert record.body() is body  # encoded once
    assert body == cbor.encode([0x50, 2, suite.suite_id, GROUP_ID, record.identity, 3,
                                PURPOSE_ROTATE, record.receive_key, record.signing_key,
                                record.anchor])
    assert record.verifying_key() is record.verifying_key()
    assert record.verifying_key().to_bytes() == record.signing_key
    assert record.owner() is record.owner()
    assert record.owner().to_bytes() == record.identity
    # A changed record never sees the old cache; equality ignores the caches.
    bumped = replace(record, counter=4)
    assert bumped.body() != body and bumped.body() == cbor.encode(
        [0x50, 2, suite.suite_id, GROUP_ID, record.identity, 4, PURPOSE_ROTATE,
         record.receive_key, record.signing_key, record.anchor])
    twin = MemberKeyRecord.from_bytes(suite, record.to_bytes())
    assert twin == record and hash(twin) == hash(record)
    join = JoinKey.sign(identity, keys, expiry=2**40, inbox_id=bytes(32))
    assert join.body() is join.body()
    assert replace(join, expiry=2**41).body() != join.body()
    assert JoinKey.from_bytes(suite, join.to_bytes()) == join


@SUITES
def test_record_decoding_validates_each_key_once_and_keeps_it(
        suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    """`from_bytes` (the load path of every roster entry) decodes the owner's identity and
    validates each signing key once, and keeps them and the wire body: its own `verify` and later
    readers reuse them (the old code decoded the identity and validated both signing keys twice
    and re-encoded the body). Nothing is skipped: a bad signature or key is still refused."""
    rng = DeterministicRandom(b"record decoding once" + suite.name.encode())
    identity = IdentityKeyPair.generate(suite, rng)
    keys = RecordKeys.from_seed(suite, rng(32))
    record = MemberKeyRecord.sign(identity, keys, group_id=GROUP_ID, counter=3,
                                  purpose=PURPOSE_ROTATE, anchor=creator_anchor(suite))
    join = JoinKey.sign(identity, keys, expiry=2**40, inbox_id=bytes(32))
    calls = {"identity": 0, "verifying": 0}
    from_bytes = Identity.from_bytes
    verifying_from_bytes = type(suite).verifying_from_bytes

    def counted_identity(data: bytes, s: Suite | None = None) -> object:
        calls["identity"] += 1
        return from_bytes(data, s)

    def counted_verifying(self: Suite, data: bytes) -> object:
        calls["verifying"] += 1
        return verifying_from_bytes(self, data)

    monkeypatch.setattr(Identity, "from_bytes", staticmethod(counted_identity))
    monkeypatch.setattr(type(suite), "verifying_from_bytes", counted_verifying)
    for value, decode in ((record, MemberKeyRecord.from_bytes), (join, JoinKey.from_bytes)):
        calls.update(identity=0, verifying=0)
        twin = decode(suite, value.to_bytes())
        # one identity decoding, which validates the identity's signing key; one record key
        assert calls == {"identity": 1, "verifying": 2}
        assert twin._body is not None and twin._owner is not None
        assert twin._verifying_key is not None
        twin.verify()
        twin.verifying_key()
        assert calls == {"identity": 1, "verifying": 2}
        assert twin == value and twin.body() == value.body() == replace(value).body()
        assert twin.verifying_key().to_bytes() == value.signing_key
        assert twin.owner().to_bytes() == value.identity
    monkeypatch.undo()
    # still refused: either signature altered, a signing key that is not a valid point
    for value, decode in ((record, MemberKeyRecord.from_bytes), (join, JoinKey.from_bytes)):
        for which in ("identity_signature", "possession_signature"):
            sig = bytearray(getattr(value, which))
            sig[-1] ^= 1
            with pytest.raises((InvalidSignature, DecodeError)):
                decode(suite, replace(value, **{which: bytes(sig)}).to_bytes())
        bad = bytes(suite.sign_public_len) if suite.sign_public_len != 65 else (
            b"\x04" + bytes(64))
        with pytest.raises(InvalidKey):
            decode(suite, replace(value, signing_key=bad).to_bytes())


# --- Bundle leaves and Merkle root ------------------------------------------------------------

identities = st.binary(min_size=1, max_size=512)
members = st.tuples(st.integers(0, MAX_SEALINGS - 1), identities)
pairs = st.tuples(st.binary(max_size=300), st.binary(max_size=300))


@SUITES
@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.tuples(members, pairs), max_size=12))
def test_pair_leaves_equal_leaf_hash(suite: Suite,
                                     data: list[tuple[tuple[int, bytes],
                                                      tuple[bytes, bytes]]]) -> None:
    who = [m for m, _ in data]
    what = [p for _, p in data]
    expected = [leaf_hash(suite, i, identity, Sealing(enc, ct))
                for (i, identity), (enc, ct) in data]
    assert pair_leaves(suite, who, what) == expected
    # other bytes-like values take the general path and hash alike
    loose: list[tuple[int, bytes]] = [(i, bytearray(identity))  # type: ignore[misc]
                                      for i, identity in who]
    loose_pairs: list[tuple[bytes, bytes]] = [(bytearray(enc), ct)  # type: ignore[misc]
                                              for enc, ct in what]
    assert pair_leaves(suite, loose, loose_pairs) == expected


@SUITES
def test_pair_leaves_refuses_what_leaf_hash_refuses(suite: Suite) -> None:
    for index in (-1, MAX_SEALINGS, True, 1.0):
        with pytest.raises(UsageError):
            leaf_hash(suite, index, b"id", Sealing(b"e", b"c"))  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            pair_leaves(suite, [(index, b"id")], [(b"e", b"c")])  # type: ignore[list-item]
    with pytest.raises(UsageError):
        pair_leaves(suite, [(0, b"id")], [])


@SUITES
@settings(max_examples=60, deadline=None)
@given(seeds=st.lists(st.binary(max_size=8), max_size=70))
def test_merkle_root_equals_reference(suite: Suite, seeds: list[bytes]) -> None:
    leaves = [suite.hash(s) for s in seeds]
    assert merkle_root(suite, leaves) == reference_merkle_root(suite, leaves)


@SUITES
def test_merkle_root_at_the_bound(suite: Suite) -> None:
    for n in (MAX_SEALINGS - 1, MAX_SEALINGS):
        leaves = [suite.hash(i.to_bytes(2, "big")) for i in range(n)]
        assert merkle_root(suite, leaves) == reference_merkle_root(suite, leaves)


# --- Commit decoding --------------------------------------------------------------------------


def _general_commit(suite: Suite, body: bytes) -> object:
    """What the general decoder makes of `body`: the Commit, or the exception (type, text)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "_canonical_commit", lambda *_: None)
        return _outcome(suite, body)


def _outcome(suite: Suite, body: bytes) -> object:
    try:
        return Commit.from_bytes(suite, body)
    except Exception as exc:  # compared, type and text, with the general path
        return type(exc), str(exc)


runs = st.one_of(st.sampled_from([1, 23, 24, 255, 256, 0xFFFF, 0x10000, MAX_RUN]),
                 st.integers(1, MAX_RUN))


def _commit_body(suite: Suite, run: int, n: int, seed: int) -> bytes:
    enc_len, ct_len = sealing_sizes(suite)
    rng = DeterministicRandom(seed.to_bytes(8, "big"))
    return Commit.make(suite, run, [(rng(enc_len), rng(ct_len)) for _ in range(n)]).to_bytes()


@SUITES
@settings(max_examples=60, deadline=None)
@given(run=runs, n=st.integers(0, 30), seed=st.integers(0, 2**32))
def test_commit_decoding_equals_general(suite: Suite, run: int, n: int, seed: int) -> None:
    body = _commit_body(suite, run, n, seed)
    decoded = Commit.from_bytes(suite, body)
    assert run_module._canonical_commit(body, *sealing_sizes(suite)) is not None  # fast path
    assert decoded == _general_commit(suite, body)
    assert decoded.to_bytes() == body and len(decoded.bundle) == n


@SUITES
def test_commit_decoding_at_the_bound(suite: Suite) -> None:
    for n in (23, 24, 255, 256, MAX_GROUP_SIZE_V2):
        body = _commit_body(suite, 7, n, n)
        assert Commit.from_bytes(suite, body) == _general_commit(suite, body)
    # one pair too many: the general decoder refuses it, as before
    enc_len, ct_len = sealing_sizes(suite)
    pair = [bytes(enc_len), bytes(ct_len)]
    body = cbor.encode([7, [pair] * (MAX_GROUP_SIZE_V2 + 1)])
    assert run_module._canonical_commit(body, enc_len, ct_len) is None
    with pytest.raises(LimitExceeded):
        Commit.from_bytes(suite, body)


edits = st.lists(st.tuples(st.sampled_from(["flip", "cut", "add", "drop"]),
                           st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=3)


@SUITES
@settings(max_examples=200, deadline=None)
@given(run=runs, n=st.integers(0, 4), seed=st.integers(0, 2**32), changes=edits)
def test_altered_commits_decode_as_the_general_path_says(
        suite: Suite, run: int, n: int, seed: int,
        changes: list[tuple[str, int, int]]) -> None:
    """Flipped, cut, extended or shortened bodies (heads most often hit: bodies are short):
    the same Commit or the same error, type and text, as the general decoder's."""
    body = bytearray(_commit_body(suite, run, n, seed))
    for kind, at, value in changes:
        at %= len(body) + 1
        if kind == "flip" and at < len(body):
            body[at] ^= value or 1
        elif kind == "cut":
            del body[at:]
        elif kind == "add":
            body[at:at] = bytes((value,))
        elif kind == "drop" and at < len(body):
            del body[at]
    data = bytes(body)
    assert _outcome(suite, data) == _general_commit(suite, data)


@SUITES
def test_non_bytes_commit_bodies_take_the_general_path(suite: Suite) -> None:
    body = _commit_body(suite, 3, 2, 1)
    assert run_module._canonical_commit(bytearray(body), *sealing_sizes(suite)) is None
    loose: bytes = bytearray(body)  # type: ignore[assignment]
    assert Commit.from_bytes(suite, loose) == Commit.from_bytes(suite, body)


def _head(major: int, value: int, info: int) -> bytes:
    """A head of `major` for `value` in the form `info` (< 24: direct; 24..27: 1..8 bytes),
    canonical or not."""
    if info < 24:
        return bytes((major << 5 | value,))
    return bytes((major << 5 | info,)) + value.to_bytes(1 << (info - 24), "big")


@SUITES
@settings(max_examples=150, deadline=None)
@given(run=st.integers(0, 300), n=st.integers(0, 30), seed=st.integers(0, 2**16),
       run_info=st.sampled_from([0, 24, 25, 26, 27]),
       count_info=st.sampled_from([0, 24, 25, 26, 27]))
def test_commit_heads_in_every_form(suite: Suite, run: int, n: int, run_info: int,
                                    count_info: int, seed: int) -> None:
    """The run and the bundle's length in the shortest and in every longer form (and run 0):
    only the canonical form decodes, on both paths, to the same value or the same error."""
    holds = {0: 24, 24: 256}  # what a direct or one-byte argument can hold
    assume(run < holds.get(run_info, 2**64) and n < holds.get(count_info, 2**64))
    canonical = _commit_body(suite, max(run, 1), n, seed)
    items = canonical[1 + len(cbor.encode(max(run, 1))) + len(roster_module._array_head(n)):]
    body = b"\x82" + _head(0, run, run_info) + _head(4, n, count_info) + items
    assert _outcome(suite, body) == _general_commit(suite, body)
    if body != canonical or run == 0:
        assert isinstance(_general_commit(suite, body), tuple)  # refused


# --- Announcements and control entries --------------------------------------------------------


def _announcement_entry(suite: Suite, seed: bytes) -> tuple[IdentityKeyPair, bytes]:
    rng = DeterministicRandom(seed + suite.name.encode())
    identity = IdentityKeyPair.generate(suite, rng)
    body = RunAnnouncement.make(
        suite, group_id=GROUP_ID, epoch=5, run=1, identity=identity.public.to_bytes(),
        dkg_key=Point.base_mul(Scalar.random_nonzero(rng)),
        applied_proposals_hash=suite.hash(b"applied"), roster_hash=suite.hash(b"roster"),
        view_hash=suite.hash(b"view"))
    entry = sign_identity_entry(identity, TYPE_ANNOUNCEMENT, group_id=GROUP_ID, epoch=5,
                                author=2, body=body.to_bytes())
    return identity, entry.entry_bytes()


@SUITES
def test_announcement_decoding_memo_equals_decoding(suite: Suite) -> None:
    """A kept decoding is the decoding (of bytes or a bytearray); a refusal is never kept."""
    _, entry = _announcement_entry(suite, b"memo")
    uncached = run_secrets._decode_announcement_entry.__wrapped__
    first = decode_announcement_entry(suite, entry)
    assert first == uncached(suite, entry) and first[0] == 2
    assert decode_announcement_entry(suite, bytearray(entry)) == first  # type: ignore[arg-type]
    assert first[1].dkg_point() is first[1].dkg_point()
    assert first[1].dkg_point() == Point.from_bytes(first[1].dkg_key)
    # another suite's decoding is not this suite's
    other = next(s for s in CLASSICAL_SUITES if s.suite_id != suite.suite_id)
    with pytest.raises(ProtocolError):
        decode_announcement_entry(other, entry)
    bad = entry[:-1] + bytes((entry[-1] ^ 1,))  # view hash's last byte: still decodes
    assert decode_announcement_entry(suite, bad)[1].view_hash != first[1].view_hash
    broken = entry[:-3]
    kept = run_secrets._decode_announcement_entry.cache_info().currsize
    for _ in range(2):  # raised both times: refusals are not kept
        with pytest.raises(DecodeError):
            decode_announcement_entry(suite, broken)
        with pytest.raises(LimitExceeded):  # oversized: refused before the memo
            decode_announcement_entry(suite, entry + bytes(MAX_ANNOUNCEMENT_ENTRY_LEN))
    assert run_secrets._decode_announcement_entry.cache_info().currsize == kept


@SUITES
def test_announcement_point_cache(suite: Suite) -> None:
    _, entry = _announcement_entry(suite, b"point")
    a = decode_announcement_entry(suite, entry)[1]
    moved = replace(a, dkg_key=Point.base_mul(Scalar.from_int(7)).to_bytes())
    assert moved.dkg_point() != a.dkg_point()
    assert moved.dkg_point().to_bytes() == moved.dkg_key
    assert replace(a, dkg_key=bytes(32)) != a
    with pytest.raises(InvalidKey):  # a cache never stands in for validation
        replace(a, dkg_key=bytes(32)).dkg_point()


@SUITES
def test_control_entry_bytes_cache(suite: Suite) -> None:
    identity, raw = _announcement_entry(suite, b"entry")
    entry = sign_identity_entry(identity, TYPE_ANNOUNCEMENT, group_id=GROUP_ID, epoch=5,
                                author=2, body=cbor.decode(raw)[6])  # type: ignore[index,arg-type]
    assert entry.entry_bytes() is entry.entry_bytes() and entry.entry_bytes() == raw
    decoded = ControlEntry.from_bytes(suite, entry.to_bytes(), group_id=GROUP_ID, epoch=5)
    assert decoded == entry and decoded.entry_bytes() == raw
    decoded.verify(identity.public, None)
    moved = replace(decoded, author=3)
    assert moved.entry_bytes() == cbor.encode([TYPE_ANNOUNCEMENT, 2, suite.suite_id, GROUP_ID,
                                               5, 3, entry.body])
    with pytest.raises(InvalidSignature):  # the changed entry is verified as changed
        moved.verify(identity.public, None)
