"""Notices to joiners and resumed members (spec 11.v2.13, 11.v2.28; rule R7, Decision 3).

A joiner (or a resumed member) holds nothing of epoch e: it learns epoch e+1 from a **notice**, a
value every member of e+1 that held `init_secret(e)` can compute and send to its inbox:

    notice_key  = ExpandLabel(member_base, "ks v2 notice key", identity_i, Nk)
    header      = CBOR[suite_id, group_id, e+1, run_session_id, new_roster_hash, p, N, enc_i, ct_i,
                       merkle_path]
    Notice      = CBOR[0x52, 2, header (bytes), nonce, sealed_body]
    sealed_body = AEAD(notice_key, nonce, common_hash, "triple-ratchet v2 notice aad" ‖ header)
    common_key  = ExpandLabel(member_base, "ks v2 notice common key", "", Nk)
    Common      = CBOR[0x58, 2, nonce, AEAD(common_key, nonce, NoticeBody, "")]
    common_hash = H("triple-ratchet v2 notice id" ‖ Common)
    NoticeBody  = CBOR[e, epoch_id(e), r, announcements, round1, round3, applied, carried,
                       T0(e+1) | null, roster, dormant]

The body is the same for every recipient of a change, so it is encrypted once (`Common`) and
posted once, cut into `NoticeChunk`s named by `common_hash`, in the change's **common mailbox**
(a control-kind mailbox whose access key comes from `member_base`: every recipient can read it);
each recipient's notice only names it (11.v2.13: nothing per notice grows with n). The header in
the clear carries only what opening the sealing needs (no identity, roster or signature: the hub
learns the group id and the epoch). Notices travel cut into `NoticeChunk`s named by `notice_id =
H("triple-ratchet v2 notice id" ‖ Notice)`; `NoticeAssembler` keeps at most `MAX_PENDING_NOTICES`
incomplete ones, `CommonAssembler` the chunks of the one common part a notice names.
`open_notice_sealing` opens a notice (the common mailbox to read follows from it), `open_notice`
(or `OpenedNotice.complete`) runs the recipient's checks of 11.v2.28 on it and its common part
and returns a `JoinStart`, everything the member needs to start its first epoch.

Also here, as pure functions: creation of a group (11.v2.27), rejoin requests (11.v2.14, 11.v2.31)
and repaired sealings (11.v2.25).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import pairwise

from triple_ratchet import cbor
from triple_ratchet.dkg.attempt import SignedRound1
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    LimitExceeded,
    ProtocolError,
    RemoteError,
    ReplayError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.group.change_proposal import (
    KIND_ADD,
    KIND_RESUME,
    MAX_APPLIED,
    ChangeProposal,
    applied_proposals_hash,
)
from triple_ratchet.group.committee import (
    RunSeed,
    local_round2,
    make_announcement,
    make_commit,
    make_round1,
    make_round3,
)
from triple_ratchet.group.control import (
    TYPE_ANNOUNCEMENT,
    TYPE_COMMIT,
    TYPE_PROPOSAL,
    TYPE_RECORD,
    TYPE_ROUND1,
    TYPE_ROUND3,
    ControlEntry,
    sign_identity_entry,
    sign_member_entry,
)
from triple_ratchet.group.key_schedule import (
    EPOCH_ID_LEN,
    MAILBOX_SEED_LEN,
    MAX_COMMITTEE,
    MAX_EPOCH,
    MAX_GROUP_SIZE_V2,
    MAX_RUN,
    EpochSecretsV2,
    MailboxKeys,
    derive_epoch_v2,
    extract_member_base,
    initial_init_secret,
    run_session_id,
)
from triple_ratchet.group.records import (
    MAX_GROUP_ID_LEN,
    MAX_RECORD_COUNTER,
    PURPOSE_RESUME,
    PURPOSE_ROTATE,
    RECORD_SEED_LEN,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    RecordVerdict,
    RejoinRequest,
    creator_anchor,
    is_hybrid,
    judge_record,
    max_record_len,
)
from triple_ratchet.group.roster import MAX_ROSTER_LEN, Roster, RosterEntry
from triple_ratchet.group.run import (
    Commit,
    Conviction,
    RepairedSealing,
    Round1Item,
    Round3Item,
    RunAnnouncement,
    sealing_sizes,
    view_hash,
)
from triple_ratchet.group.run_secrets import (
    RunInputs,
    check_round1,
    outcome_from_opened,
    recipients_of,
    round1_transcript,
    verify_round3,
)
from triple_ratchet.group.sealing import (
    MERKLE_NODE,
    Recipient,
    Sealing,
    SealingContext,
    leaf_hash,
    open_sealing,
    seal_secret,
    seal_to,
    verify_merkle_path,
)
from triple_ratchet.identity import Identity, IdentityKeyPair
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import Suite, suite_by_id

LABEL_KS2_NOTICE_KEY = b"ks v2 notice key"
LABEL_NOTICE_AAD = b"triple-ratchet v2 notice aad"
LABEL_NOTICE_ID = b"triple-ratchet v2 notice id"
LABEL_KS2_NOTICE_COMMON_SEED = b"ks v2 notice common mailbox seed"
LABEL_KS2_NOTICE_COMMON_KEY = b"ks v2 notice common key"

WIRE_NOTICE = 0x52
WIRE_NOTICE_CHUNK = 0x53
WIRE_NOTICE_COMMON = 0x58
VERSION = 2

NOTICE_CHUNK_SIZE = 65536
MAX_NOTICE_CHUNKS = 64
MAX_PENDING_NOTICES = 4
MAX_NOTICE_LEN = MAX_NOTICE_CHUNKS * NOTICE_CHUNK_SIZE
MAX_CHUNK_LEN = NOTICE_CHUNK_SIZE + 128
"""A chunk's framing: type, version, a 64-byte id, index, count and the data's head."""
MAX_MERKLE_PATH = 10
"""ceil(log2(MAX_GROUP_SIZE)): the longest path of a 1000-leaf tree."""
MAX_HEADER_LEN = 1024
MAX_HEADER_LEN_PQ = 3072
"""A hybrid suite's header: its sealing's enc is a hybrid KEM ciphertext (1,120 / 1,153 B)."""


def _header_bound(data: bytes) -> int:
    """The bound of a header naming a hybrid suite (its first field: `0x8a` and a one-byte
    suite id), else `MAX_HEADER_LEN`, checked before decoding as for a classical header."""
    if len(data) > 2 and data[0] == 0x8A and data[1] < 24:
        try:
            return MAX_HEADER_LEN_PQ if is_hybrid(suite_by_id(data[1])) else MAX_HEADER_LEN
        except UnsupportedError:  # decoding names the unknown suite
            return MAX_HEADER_LEN
    return MAX_HEADER_LEN
MAX_CARRIED = 64 * MAX_GROUP_SIZE_V2
"""The carried set is bounded by the control budget (64 entries per member and epoch)."""
_MAX_NOTICE_ITEMS = 16 + 3 * MAX_COMMITTEE + MAX_APPLIED + MAX_CARRIED + 5 * MAX_GROUP_SIZE_V2


def notice_key(suite: Suite, member_base: bytes, identity: bytes) -> bytes:
    """`ExpandLabel(member_base, "ks v2 notice key", identity_i, Nk)`: one key per recipient."""
    if not isinstance(member_base, bytes) or len(member_base) != suite.hash_len:
        raise UsageError(f"member_base must be {suite.hash_len} bytes")
    if not isinstance(identity, bytes) or not identity:
        raise UsageError("identity must be non-empty bytes")
    return suite.expand_label(member_base, LABEL_KS2_NOTICE_KEY, identity, suite.aead_key_len)


def _check_member_base(suite: Suite, member_base: bytes) -> None:
    if not isinstance(member_base, bytes) or len(member_base) != suite.hash_len:
        raise UsageError(f"member_base must be {suite.hash_len} bytes")


def common_mailbox(suite: Suite, member_base: bytes) -> MailboxKeys:
    """The change's common mailbox (a control-kind mailbox, 11.v2.13): its access key from
    `ExpandLabel(member_base, "ks v2 notice common mailbox seed", "", 32)`."""
    _check_member_base(suite, member_base)
    return MailboxKeys.from_seed(suite, suite.expand_label(
        member_base, LABEL_KS2_NOTICE_COMMON_SEED, b"", MAILBOX_SEED_LEN))


def common_key(suite: Suite, member_base: bytes) -> bytes:
    """`ExpandLabel(member_base, "ks v2 notice common key", "", Nk)`: the common part's key."""
    _check_member_base(suite, member_base)
    return suite.expand_label(member_base, LABEL_KS2_NOTICE_COMMON_KEY, b"",
                              suite.aead_key_len)


# --- Header, body and notice ----------------------------------------------------------------


@dataclass(frozen=True)
class NoticeHeader:
    """The notice's clear part: what the recipient needs to rebuild `info_i` and check its leaf."""

    suite: Suite
    group_id: bytes
    epoch: int  # e+1
    run_session_id: bytes
    roster_hash: bytes
    position: int  # p: the recipient's leaf in the bundle
    count: int  # N: the bundle's size
    sealing: Sealing
    path: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        return cbor.encode([self.suite.suite_id, self.group_id, self.epoch, self.run_session_id,
                            self.roster_hash, self.position, self.count, self.sealing.enc,
                            self.sealing.ct, list(self.path)])

    def sealing_context(self) -> SealingContext:
        return SealingContext(self.suite, self.group_id, self.epoch, self.run_session_id,
                              self.roster_hash)

    @classmethod
    def from_bytes(cls, data: bytes) -> NoticeHeader:
        bound = _header_bound(data)
        if len(data) > bound:
            raise LimitExceeded("notice header larger than its bound")
        f = cbor.as_list(cbor.decode(data, max_size=bound, max_items=32, max_depth=2),
                         "notice header", 10)
        suite = suite_by_id(cbor.as_int(f[0], "suite", maximum=0xFFFF))
        nh = suite.hash_len
        group_id = cbor.as_bytes(f[1], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("notice header: empty group id")
        epoch = cbor.as_int(f[2], "epoch", minimum=1, maximum=MAX_EPOCH + 1)
        rsid = cbor.as_bytes(f[3], "run session id", length=nh)
        roster_hash = cbor.as_bytes(f[4], "roster hash", length=nh)
        count = cbor.as_int(f[6], "leaf count", minimum=1, maximum=MAX_GROUP_SIZE_V2)
        position = cbor.as_int(f[5], "leaf position", maximum=count - 1)
        enc_len, ct_len = sealing_sizes(suite)
        sealing = Sealing(cbor.as_bytes(f[7], "sealing enc", length=enc_len),
                          cbor.as_bytes(f[8], "sealing ct", length=ct_len))
        raw_path = cbor.as_list(f[9], "Merkle path")
        if len(raw_path) > MAX_MERKLE_PATH:
            raise DecodeError("Merkle path longer than any bundle's")
        path = tuple(cbor.as_bytes(h, "Merkle path hash", length=nh) for h in raw_path)
        return cls(suite, group_id, epoch, rsid, roster_hash, position, count, sealing, path)


@dataclass(frozen=True)
class NoticeBody:
    """What the common part's AEAD hides (the same for every notice of a change): the
    certificate, the applied proposals, the carried set, T0(e+1), the new roster (every entry
    with its signatures) and the members of e+1 dormant at S(e) (new-roster indices, increasing:
    they lack init_secret(e+1), review F2)."""

    epoch: int  # e (the epoch whose change this is)
    epoch_id: bytes  # epoch_id(e), empty for e = 0
    run: int
    announcements: tuple[bytes, ...]  # SignedEntry bytes, committee order
    round1: tuple[bytes, ...]
    round3: tuple[bytes, ...]
    applied: tuple[bytes, ...]  # application order
    carried: tuple[bytes, ...]  # the carried set into e+1, mailbox order
    t0: int | None  # T0(e+1); None for a created group
    roster: Roster = field(repr=False)
    dormant: tuple[int, ...] = ()  # new-roster indices dormant at S(e), increasing

    def to_bytes(self) -> bytes:
        roster = cbor.decode(self.roster.to_bytes(), max_size=MAX_ROSTER_LEN,
                             max_items=1 + 5 * MAX_GROUP_SIZE_V2, max_depth=2)
        return cbor.encode([self.epoch, self.epoch_id, self.run, list(self.announcements),
                            list(self.round1), list(self.round3), list(self.applied),
                            list(self.carried), self.t0, roster, list(self.dormant)])

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes, *, group_id: bytes) -> NoticeBody:
        f = cbor.as_list(cbor.decode(data, max_size=MAX_NOTICE_LEN, max_items=_MAX_NOTICE_ITEMS,
                                     max_depth=3), "notice body", 11)
        epoch = cbor.as_int(f[0], "epoch", maximum=MAX_EPOCH)
        epoch_id = cbor.as_bytes(f[1], "epoch id", max_length=EPOCH_ID_LEN)
        if len(epoch_id) != (0 if epoch == 0 else EPOCH_ID_LEN):
            raise DecodeError("epoch id: empty for epoch 0, 32 bytes after")
        run = cbor.as_int(f[2], "run", minimum=1, maximum=MAX_RUN)

        def entries(v: cbor.CborValue, what: str, low: int, high: int) -> tuple[bytes, ...]:
            items = cbor.as_list(v, what)
            if len(items) > high:
                raise LimitExceeded(f"notice: more than {high} {what}")
            if len(items) < low:
                raise DecodeError(f"notice: fewer than {low} {what}")
            return tuple(cbor.as_bytes(x, what) for x in items)

        announcements = entries(f[3], "announcements", 1, MAX_COMMITTEE)
        round1 = entries(f[4], "round-1 items", 1, MAX_COMMITTEE)
        round3 = entries(f[5], "round-3 items", 1, MAX_COMMITTEE)
        applied = entries(f[6], "applied proposals", 0, MAX_APPLIED)
        carried = entries(f[7], "carried entries", 0, MAX_CARRIED)
        t0 = None if f[8] is None else cbor.as_int(f[8], "T0")
        if (t0 is None) != (epoch == 0):
            raise DecodeError("T0(e+1) is null exactly for a created group (e = 0)")
        if not isinstance(f[9], list):
            raise DecodeError("notice: the roster is an array")
        roster = Roster.from_bytes(suite, cbor.encode(f[9]), group_id=group_id)
        raw_dormant = cbor.as_list(f[10], "dormant members")
        dormant = tuple(cbor.as_int(i, "dormant member index", maximum=len(roster.entries) - 1)
                        for i in raw_dormant)
        if any(b <= a for a, b in pairwise(dormant)):
            raise DecodeError("notice: dormant members are increasing roster indices")
        return cls(epoch, epoch_id, run, announcements, round1, round3, applied, carried, t0,
                   roster, dormant)


@dataclass(frozen=True)
class Notice:
    """`CBOR[0x52, 2, header, nonce, sealed_body]`."""

    header: bytes
    nonce: bytes
    sealed_body: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([WIRE_NOTICE, VERSION, self.header, self.nonce, self.sealed_body])

    @classmethod
    def from_bytes(cls, data: bytes) -> Notice:
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        if len(data) > MAX_NOTICE_LEN:
            raise LimitExceeded("notice larger than its bound")
        f = cbor.as_list(cbor.decode(bytes(data), max_size=MAX_NOTICE_LEN, max_items=8,
                                     max_depth=1), "notice", 5)
        if cbor.as_int(f[0], "notice type") != WIRE_NOTICE:
            raise DecodeError("not a notice")
        if cbor.as_int(f[1], "notice version") != VERSION:
            raise UnsupportedError("notice: only version 2 is supported")
        header = cbor.as_bytes(f[2], "notice header", max_length=MAX_HEADER_LEN_PQ)
        nonce = cbor.as_bytes(f[3], "notice nonce", max_length=64)
        return cls(header, nonce, cbor.as_bytes(f[4], "sealed notice body"))


def _aad(header: bytes) -> bytes:
    return LABEL_NOTICE_AAD + header


def seal_notice(header: NoticeHeader, common_hash: bytes, member_base: bytes,
                identity: bytes, rng: RandomSource = system_random) -> bytes:
    """The encoded `Notice` for the recipient `identity`, naming the common part `common_hash`
    (fresh nonce: several members may send the same notice under the one key)."""
    suite = header.suite
    raw_header = header.to_bytes()
    nonce = rng(suite.aead_nonce_len)
    sealed = suite.aead_encrypt(notice_key(suite, member_base, identity), nonce, common_hash,
                                _aad(raw_header))
    data = Notice(raw_header, nonce, sealed).to_bytes()
    if len(data) > MAX_NOTICE_LEN:
        raise LimitExceeded("this notice would exceed MAX_NOTICE_CHUNKS chunks")
    return data


# --- Chunks ---------------------------------------------------------------------------------


def notice_id(suite: Suite, notice: bytes) -> bytes:
    return suite.hash(LABEL_NOTICE_ID + notice)


@dataclass(frozen=True)
class NoticeChunk:
    """`CBOR[0x53, 2, notice_id, index, count, data]`."""

    notice_id: bytes
    index: int
    count: int
    data: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor.encode([WIRE_NOTICE_CHUNK, VERSION, self.notice_id, self.index, self.count,
                            self.data])

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> NoticeChunk:
        """Strict decoding and the chunk's own consistency (`DecodeError`)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        if len(data) > MAX_CHUNK_LEN:
            raise LimitExceeded("notice chunk larger than its bound")
        f = cbor.as_list(cbor.decode(bytes(data), max_size=MAX_CHUNK_LEN, max_items=8,
                                     max_depth=1), "notice chunk", 6)
        if cbor.as_int(f[0], "notice chunk type") != WIRE_NOTICE_CHUNK:
            raise DecodeError("not a notice chunk")
        if cbor.as_int(f[1], "notice chunk version") != VERSION:
            raise UnsupportedError("notice chunk: only version 2 is supported")
        nid = cbor.as_bytes(f[2], "notice id", length=suite.hash_len)
        count = cbor.as_int(f[4], "chunk count", minimum=1, maximum=MAX_NOTICE_CHUNKS)
        index = cbor.as_int(f[3], "chunk index")
        if index >= count:
            raise DecodeError("chunk index not below the chunk count")
        chunk = cbor.as_bytes(f[5], "chunk data", max_length=NOTICE_CHUNK_SIZE)
        if not chunk:
            raise DecodeError("an empty notice chunk")
        if index < count - 1 and len(chunk) != NOTICE_CHUNK_SIZE:
            raise DecodeError("a non-final notice chunk shorter than NOTICE_CHUNK_SIZE")
        return cls(nid, index, count, chunk)


def chunk_notice(suite: Suite, notice: bytes) -> tuple[bytes, ...]:
    """Cut an encoded notice into encoded `NoticeChunk`s (the last may be shorter)."""
    if not isinstance(notice, bytes) or not 1 <= len(notice) <= MAX_NOTICE_LEN:
        raise UsageError(f"a notice is 1..{MAX_NOTICE_LEN} bytes")
    nid = notice_id(suite, notice)
    parts = [notice[i:i + NOTICE_CHUNK_SIZE] for i in range(0, len(notice), NOTICE_CHUNK_SIZE)]
    return tuple(NoticeChunk(nid, i, len(parts), p).to_bytes() for i, p in enumerate(parts))


@dataclass(frozen=True)
class _Pending:
    notice_id: bytes
    count: int
    chunks: tuple[tuple[int, bytes], ...] = field(repr=False)  # (index, data), sorted
    opened: bool = False  # its first chunk's header sealing opened with one of our keys


def _header_of_first_chunk(data: bytes) -> bytes:
    """The clear header from the first chunk of an encoded `Notice` (`CBOR[0x52, 2, header,
    …]`: the header, at most `MAX_HEADER_LEN` bytes (`MAX_HEADER_LEN_PQ` for a hybrid suite),
    lies within the first chunk)."""
    if len(data) < 4 or data[:4] != bytes([0x85, 0x18, WIRE_NOTICE, VERSION]):
        raise DecodeError("a notice's first chunk does not start a version-2 notice")
    info, at = data[4], 5
    if info >> 5 != 2:
        raise DecodeError("a notice's header is a byte string")
    n = info & 0x1F
    if n >= 24:
        width = {24: 1, 25: 2, 26: 4}.get(n)
        if width is None:
            raise DecodeError("a notice's header length is malformed")
        n, at = int.from_bytes(data[at:at + width], "big"), at + width
    if n > _header_bound(data[at:at + n]) or at + n > len(data):
        raise DecodeError("a notice's header does not fit its first chunk")
    return data[at:at + n]


@dataclass(frozen=True)
class NoticeAssembler:
    """The recipient's incomplete notices: at most `MAX_PENDING_NOTICES` (so at most
    4 × 64 × 64 KiB are held). An immutable value: `receive` returns the next one, and a
    refused chunk raises and leaves the caller's value as it was.

    Given the recipient's `identity` and `keys` (join keys, or resume keys), a notice's first
    chunk is checked at once: its clear header's sealing must open with one of them
    (`AuthenticationError` otherwise), and notices whose first chunk has not opened are the
    first evicted (review F5: junk chunks in a public inbox cannot starve a notice whose first
    chunk came)."""

    suite: Suite
    pending: tuple[_Pending, ...] = ()
    identity: bytes = b""
    keys: tuple[RecordKeys, ...] = field(default=(), repr=False)

    def _opens(self, first: bytes) -> bool:
        if not self.keys:
            return False
        header = NoticeHeader.from_bytes(_header_of_first_chunk(first))
        if header.suite.suite_id != self.suite.suite_id:
            raise ProtocolError("notice of another suite")
        _open_header_sealing(header, self.identity, self.keys)  # AuthenticationError
        return True

    def receive(self, data: bytes) -> tuple[NoticeAssembler, bytes | None]:
        """Take one chunk; returns the next assembler and the encoded notice once complete.

        `DecodeError` (a malformed chunk), `AuthenticationError` (a first chunk whose sealing
        none of our keys opens; or the joined chunks are not the notice the id names: the
        caller drops it with `drop(chunk's notice_id)` and waits for another copy, which has
        another id since every copy has a fresh nonce). A chunk inconsistent with those held
        for its id (another count, other data at an index held) replaces them: whoever sent
        the others, later honest chunks are not refused (review F5). A duplicate changes
        nothing."""
        chunk = NoticeChunk.from_bytes(self.suite, data)
        opened = chunk.index == 0 and self._opens(chunk.data)
        others = tuple(p for p in self.pending
                       if not hmac.compare_digest(p.notice_id, chunk.notice_id))
        known = next((p for p in self.pending
                      if hmac.compare_digest(p.notice_id, chunk.notice_id)), None)
        if known is not None and known.count == chunk.count:
            held = dict(known.chunks)
            if chunk.index in held and hmac.compare_digest(held[chunk.index], chunk.data):
                return self, None
        if known is None or known.count != chunk.count or chunk.index in dict(known.chunks):
            entry = _Pending(chunk.notice_id, chunk.count, ((chunk.index, chunk.data),), opened)
        else:
            held = dict(known.chunks)
            held[chunk.index] = chunk.data
            entry = _Pending(known.notice_id, known.count, tuple(sorted(held.items())),
                             known.opened or opened)
        if len(entry.chunks) < entry.count:
            return replace(self, pending=(*_make_room(others), entry)), None
        notice = b"".join(d for _, d in entry.chunks)
        if not hmac.compare_digest(notice_id(self.suite, notice), entry.notice_id):
            raise AuthenticationError("the joined chunks are not the notice their id names")
        return replace(self, pending=others), notice

    def drop(self, nid: bytes) -> NoticeAssembler:
        """Forget an incomplete notice (e.g. after its joined chunks failed)."""
        return replace(self, pending=tuple(
            p for p in self.pending if not hmac.compare_digest(p.notice_id, nid)))

    def held_bytes(self) -> int:
        return sum(len(d) for p in self.pending for _, d in p.chunks)


def _make_room(others: tuple[_Pending, ...]) -> tuple[_Pending, ...]:
    """Keep at most MAX_PENDING_NOTICES − 1 others: the oldest not yet opened go first, then
    the oldest (bounded memory, 11.v2.13)."""
    kept = list(others)
    while len(kept) > MAX_PENDING_NOTICES - 1:
        victim = next((p for p in kept if not p.opened), kept[0])
        kept.remove(victim)
    return tuple(kept)


# --- The common part (11.v2.13) -------------------------------------------------------------


def seal_common(suite: Suite, body: bytes, member_base: bytes,
                rng: RandomSource = system_random) -> bytes:
    """The encoded common part `CBOR[0x58, 2, nonce, AEAD(common_key, nonce, body, "")]` (the
    key is the change's own: nothing else is ever sealed under it but copies of this body)."""
    nonce = rng(suite.aead_nonce_len)
    data = cbor.encode([WIRE_NOTICE_COMMON, VERSION, nonce,
                        suite.aead_encrypt(common_key(suite, member_base), nonce, body, b"")])
    if len(data) > MAX_NOTICE_LEN:
        raise LimitExceeded("this notice body would exceed MAX_NOTICE_CHUNKS chunks")
    return data


def open_common(suite: Suite, data: bytes, member_base: bytes) -> bytes:
    """The notice body inside an encoded common part (`DecodeError`, `AuthenticationError`)."""
    if not isinstance(data, bytes | bytearray):
        raise UsageError("expected bytes")
    if len(data) > MAX_NOTICE_LEN:
        raise LimitExceeded("common part larger than its bound")
    f = cbor.as_list(cbor.decode(bytes(data), max_size=MAX_NOTICE_LEN, max_items=8,
                                 max_depth=1), "notice common part", 4)
    if cbor.as_int(f[0], "notice common part type") != WIRE_NOTICE_COMMON:
        raise DecodeError("not a notice's common part")
    if cbor.as_int(f[1], "notice common part version") != VERSION:
        raise UnsupportedError("notice common part: only version 2 is supported")
    nonce = cbor.as_bytes(f[2], "common part nonce", length=suite.aead_nonce_len)
    ct = cbor.as_bytes(f[3], "sealed notice body")
    return suite.aead_decrypt(common_key(suite, member_base), nonce, ct, b"")


@dataclass(frozen=True)
class OutgoingCommon:
    """A change's common part to post: the encoded chunks, into the common `mailbox` (created
    as a control mailbox with its access key), named `common_hash` by every notice."""

    mailbox: MailboxKeys
    common_hash: bytes
    chunks: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True)
class CommonAssembler:
    """A recipient's common part as read from the common mailbox: only chunks named by the
    `common_hash` its notice gave (other ids are other posters' copies: ignored), so at most
    `MAX_NOTICE_CHUNKS` chunks (4 MiB) are held. An immutable value like `NoticeAssembler`:
    a refused chunk raises and leaves the caller's value as it was."""

    suite: Suite
    common_hash: bytes
    count: int = 0
    chunks: tuple[tuple[int, bytes], ...] = field(default=(), repr=False)

    def receive(self, data: bytes) -> tuple[CommonAssembler, bytes | None]:
        """Take one entry of the common mailbox; the encoded common part once complete.

        `DecodeError` (not a chunk), `AuthenticationError` (the joined chunks are not the part
        the notice names: the caller `reset()`s and reads on, waiting for a correct copy). A
        chunk inconsistent with those held (another count, other data at an index) replaces
        them, as in `NoticeAssembler`; a duplicate changes nothing."""
        chunk = NoticeChunk.from_bytes(self.suite, data)
        if not hmac.compare_digest(chunk.notice_id, self.common_hash):
            return self, None
        held = dict(self.chunks)
        if chunk.count == self.count and chunk.index in held and hmac.compare_digest(
                held[chunk.index], chunk.data):
            return self, None
        if chunk.count != self.count or chunk.index in held:
            held = {}
        held[chunk.index] = chunk.data
        if len(held) < chunk.count:
            return replace(self, count=chunk.count, chunks=tuple(sorted(held.items()))), None
        common = b"".join(d for _, d in sorted(held.items()))
        if not hmac.compare_digest(notice_id(self.suite, common), self.common_hash):
            raise AuthenticationError("the common part read is not the one the notice names")
        return self.reset(), common

    def reset(self) -> CommonAssembler:
        return replace(self, count=0, chunks=())

    def held_bytes(self) -> int:
        return sum(len(d) for _, d in self.chunks)


# --- Building notices (11.v2.28) --------------------------------------------------------------


@dataclass(frozen=True)
class DecidedChange:
    """Everything public about a decided change from epoch e to e+1 that a notice carries:
    the certificate of the deciding run, the applied proposals, the carried set, T0(e+1), the
    new roster and the certified bundle (sealings in bundle order, with the new-roster index of
    each recipient). Entries are `SignedEntry` bytes."""

    suite: Suite
    group_id: bytes
    epoch: int  # e
    epoch_id: bytes  # epoch_id(e)
    run: int
    run_session_id: bytes
    announcements: tuple[bytes, ...]
    round1: tuple[bytes, ...]
    round3: tuple[bytes, ...]
    applied: tuple[bytes, ...]
    carried: tuple[bytes, ...]
    t0: int | None
    roster: Roster = field(repr=False)
    bundle: tuple[Sealing, ...] = field(repr=False)
    recipient_indices: tuple[int, ...] = field(repr=False)  # bundle position -> roster index

    def __post_init__(self) -> None:
        if len(self.bundle) != len(self.recipient_indices):
            raise UsageError("one roster index per sealing of the bundle")

    def body(self) -> NoticeBody:
        return NoticeBody(self.epoch, self.epoch_id, self.run, self.announcements, self.round1,
                          self.round3, self.applied, self.carried, self.t0, self.roster,
                          self.dormant)

    @cached_property
    def dormant(self) -> tuple[int, ...]:
        """New-roster indices of the members dormant at S(e): neither sealed to nor on the
        committee (11.v2.12)."""
        committee = {RunAnnouncement.from_bytes(self.suite, ControlEntry.from_bytes(
            self.suite, raw, group_id=self.group_id, epoch=self.epoch).body).identity
            for raw in self.announcements}
        sealed = set(self.recipient_indices)
        return tuple(i for i, e in enumerate(self.roster.entries)
                     if i not in sealed and e.identity not in committee)

    # Computed once per commit, not once per notice (a 1,000-member roster is ~1.5 MB).
    @cached_property
    def body_bytes(self) -> bytes:
        return self.body().to_bytes()

    @cached_property
    def _roster_hash(self) -> bytes:
        return self.roster.hash()

    @cached_property
    def _tree(self) -> tuple[tuple[bytes, ...], ...]:
        """The bundle's Merkle tree, level by level from the leaves (11.v2.12), so every
        recipient's path is read off it instead of rebuilding the tree per notice."""
        level = tuple(leaf_hash(self.suite, i, self.roster.entries[i].identity, s)
                      for i, s in zip(self.recipient_indices, self.bundle, strict=True))
        levels = [level]
        while len(level) > 1:
            level = tuple(
                self.suite.hash(MERKLE_NODE + level[j] + level[j + 1])
                for j in range(0, len(level) - 1, 2)) + ((level[-1],) if len(level) % 2 else ())
            levels.append(level)
        return tuple(levels)

    def _path(self, position: int) -> tuple[bytes, ...]:
        path = []
        for level in self._tree[:-1]:
            sibling = position ^ 1
            if sibling < len(level):  # else the node is promoted: nothing consumed
                path.append(level[sibling])
            position //= 2
        return tuple(path)

    def header_for(self, identity: bytes) -> NoticeHeader:
        index = self.roster.index_of(identity)
        if index is None or index not in self.recipient_indices:
            raise UsageError("a notice goes only to a recipient of the commit")
        position = self.recipient_indices.index(index)
        return NoticeHeader(self.suite, self.group_id, self.epoch + 1, self.run_session_id,
                            self._roster_hash, position, len(self.bundle),
                            self.bundle[position], self._path(position))

    def newcomers(self) -> tuple[tuple[bytes, int, JoinKey | MemberKeyRecord], ...]:
        """(identity, kind, keys) of every joiner and resumed member the applied proposals
        brought in, application order: those sealed `member_base` who need a notice."""
        out = []
        for raw in self.applied:
            entry = _applied_entry(self.suite, raw, self.group_id, self.epoch)
            proposal = ChangeProposal.from_bytes(self.suite, entry.body)
            if isinstance(proposal.change, JoinKey | MemberKeyRecord):
                out.append((proposal.change.identity, proposal.kind, proposal.change))
        return tuple(out)


@dataclass(frozen=True)
class OutgoingNotice:
    """A notice to send: the encoded chunks, for `identity`, to the hub inbox `inbox_id`."""

    identity: bytes
    inbox_id: bytes
    chunks: tuple[bytes, ...] = field(repr=False)


def build_common(change: DecidedChange, member_base: bytes,
                 rng: RandomSource = system_random) -> OutgoingCommon:
    """The change's common part, sealed once for every notice of it (any member holding
    `member_base`)."""
    common = seal_common(change.suite, change.body_bytes, member_base, rng)
    return OutgoingCommon(common_mailbox(change.suite, member_base),
                          notice_id(change.suite, common), chunk_notice(change.suite, common))


def build_notice(change: DecidedChange, member_base: bytes, identity: bytes,
                 common_hash: bytes, rng: RandomSource = system_random) -> bytes:
    """The encoded `Notice` for recipient `identity` (any member holding `member_base`),
    naming the common part `common_hash` (`build_common`)."""
    return seal_notice(change.header_for(identity), common_hash, member_base, identity, rng)


def build_notices(change: DecidedChange, member_base: bytes, *, common: OutgoingCommon,
                  resumed_inboxes: Mapping[bytes, bytes] | None = None,
                  rng: RandomSource = system_random) -> tuple[OutgoingNotice, ...]:
    """Notices for every joiner (to its join key's inbox) and every resumed member whose inbox
    is known (from the rejoin request it sent us; `resumed_inboxes` maps identity -> inbox id),
    each naming `common` (which the sender posts too). A resumed member whose inbox we do not
    know gets none from us (another member may send it)."""
    resumed_inboxes = resumed_inboxes or {}
    out = []
    for identity, _, keys in change.newcomers():
        inbox = keys.inbox_id if isinstance(keys, JoinKey) else resumed_inboxes.get(identity)
        index = change.roster.index_of(identity)
        # A later proposal of the attempt may have removed it again: then it is no recipient.
        if inbox is None or index is None or index not in change.recipient_indices:
            continue
        notice = build_notice(change, member_base, identity, common.common_hash, rng)
        out.append(OutgoingNotice(identity, inbox, chunk_notice(change.suite, notice)))
    return tuple(out)


# --- Opening a notice (11.v2.28 steps 1-5) ------------------------------------------------------


@dataclass(frozen=True)
class JoinStart:
    """What a joiner or resumed member needs to start its first epoch e+1, from a verified
    notice. `secrets` (hidden from repr) are epoch e+1's values; `carried` and `t0` are taken
    as given (11.v2.28)."""

    suite: Suite
    group_id: bytes
    epoch: int  # e+1
    previous_epoch_id: bytes  # epoch_id(e)
    run: int
    run_session_id: bytes
    secrets: EpochSecretsV2 = field(repr=False)
    roster: Roster = field(repr=False)
    t0: int | None  # T0(e+1); None for a created group (T0(1) is its first control entry's t)
    carried: tuple[bytes, ...] = field(repr=False)
    own_index: int
    own_entry: RosterEntry = field(repr=False)
    added_by: bytes  # identity of the author of the add or resume proposal that brought us
    resumed: bool  # True for a resume, False for an add
    opened_with: bytes  # the receive public key whose private key opened the sealing
    dormant_before: frozenset[bytes] = field(default=frozenset(), repr=False)
    """identities of the members of e+1 dormant at S(e) (sealed member_base by C(e+1))"""
    committee: tuple[bytes, ...] = field(default=(), repr=False)
    """identities of the committee that certified the change (our membership rests on its word
    until a member outside it writes, 11.v2.28)"""

    @property
    def epoch_id(self) -> bytes:
        return self.secrets.epoch_id


def _open_header_sealing(header: NoticeHeader, identity: bytes,
                         keys: Sequence[RecordKeys]) -> tuple[bytes, RecordKeys]:
    context = header.sealing_context()
    for k in keys:
        if k.suite.suite_id != header.suite.suite_id:
            continue
        try:
            return open_sealing(context, identity, k.receive_key.to_bytes(),
                                header.sealing), k
        except RemoteError:
            continue
    raise AuthenticationError("no key of ours opens the notice's sealing")


def _applied_entry(suite: Suite, raw: bytes, group_id: bytes, epoch: int) -> ControlEntry:
    """An applied proposal of epoch `epoch`'s attempt: posted in `epoch`, or carried into it
    from `epoch - 1` (11.v2.17: an attempt applies the carried proposals first)."""
    try:
        return ControlEntry.from_bytes(suite, raw, group_id=group_id, epoch=epoch)
    except ProtocolError:
        if epoch == 0:
            raise
        return ControlEntry.from_bytes(suite, raw, group_id=group_id, epoch=epoch - 1)


def _decode_entry(suite: Suite, raw: bytes, group_id: bytes, epoch: int, entry_type: int,
                  what: str) -> ControlEntry:
    entry = ControlEntry.from_bytes(suite, raw, group_id=group_id, epoch=epoch)
    if entry.entry_type != entry_type:
        raise ProtocolError(f"notice: {what} is another type of entry")
    return entry


@dataclass(frozen=True)
class OpenedNotice:
    """A notice whose sealing opened with one of our keys: the common part it names is to be
    read from `common_mailbox` (`CommonAssembler(suite, common_hash)`), then `complete`d."""

    suite: Suite
    header: NoticeHeader
    identity: bytes
    common_hash: bytes
    member_base: bytes = field(repr=False)
    opened: RecordKeys = field(repr=False)

    @property
    def common_mailbox(self) -> MailboxKeys:
        return common_mailbox(self.suite, self.member_base)

    def assembler(self) -> CommonAssembler:
        return CommonAssembler(self.suite, self.common_hash)

    def complete(self, common: bytes) -> JoinStart:
        """The checks of 11.v2.28 steps 2-5 with the encoded common part (see `open_notice`)."""
        if not isinstance(common, bytes | bytearray) or not hmac.compare_digest(
                notice_id(self.suite, bytes(common)), self.common_hash):
            raise AuthenticationError("the common part is not the one the notice names")
        plain = open_common(self.suite, bytes(common), self.member_base)
        return _check_body(self, NoticeBody.from_bytes(self.suite, plain,
                                                       group_id=self.header.group_id))


def open_notice_sealing(suite: Suite, data: bytes, *, identity: bytes,
                        keys: Sequence[RecordKeys]) -> OpenedNotice:
    """11.v2.28 step 1: open the notice's sealing with one of `keys` (a joiner's join keys, or
    a resumed member's resume keys) and learn `member_base` and the common part's hash."""
    notice = Notice.from_bytes(data)
    header = NoticeHeader.from_bytes(notice.header)
    if header.suite.suite_id != suite.suite_id:
        raise ProtocolError("notice of another suite")
    if len(notice.nonce) != suite.aead_nonce_len:
        raise DecodeError(f"a notice nonce is {suite.aead_nonce_len} bytes")
    member_base, opened = _open_header_sealing(header, identity, keys)
    common_hash = suite.aead_decrypt(notice_key(suite, member_base, identity), notice.nonce,
                                     notice.sealed_body, _aad(notice.header))
    if len(common_hash) != suite.hash_len:
        raise DecodeError("a notice names its common part by one hash")
    return OpenedNotice(suite, header, identity, common_hash, member_base, opened)


def open_notice(suite: Suite, data: bytes, *, identity: bytes, keys: Sequence[RecordKeys],
                common: bytes) -> JoinStart:
    """Run the recipient's checks of 11.v2.28 on an encoded notice and the encoded common part
    it names: open the sealing with one of `keys`, check the common part's hash before
    decoding it, decrypt the body, check the roster, the certificate, the Merkle path and the
    confirmation tag.

    Any failure raises the typed error (`DecodeError`, `LimitExceeded`, `UnsupportedError`,
    `AuthenticationError`, `InvalidSignature`, `ProtocolError`) and nothing is kept: the
    recipient keeps waiting for another copy."""
    return open_notice_sealing(suite, data, identity=identity, keys=keys).complete(common)


def _check_body(notice: OpenedNotice, body: NoticeBody) -> JoinStart:
    suite, header, identity = notice.suite, notice.header, notice.identity
    member_base, opened = notice.member_base, notice.opened
    if body.epoch + 1 != header.epoch:
        raise ProtocolError("notice body of another epoch than its header")
    # 3. the roster, our entry, the roster hash
    roster = body.roster
    if not hmac.compare_digest(roster.hash(), header.roster_hash):
        raise ProtocolError("the notice's roster does not match its roster hash")
    own_index = roster.index_of(identity)
    if own_index is None:
        raise ProtocolError("we are not in the notice's roster")
    own_entry = roster.entries[own_index]
    if not opened.holds(own_entry.keys):
        raise ProtocolError("our roster entry is not the keys our sealing opened with")
    # 4. the certificate
    applied = tuple(_applied_entry(suite, raw, header.group_id, body.epoch)
                    for raw in body.applied)
    if any(entry.entry_type != TYPE_PROPOSAL for entry in applied):
        raise ProtocolError("notice: an applied proposal is another type of entry")
    added_by, resumed = _check_applied(roster, applied, own_entry, body, header)
    applied_hash = applied_proposals_hash(suite, applied)
    announcements = _check_announcements(roster, body, header, applied_hash)
    rsid = run_session_id(suite, header.group_id, body.epoch, body.epoch_id, body.run,
                          applied_hash, [a.entry_bytes() for a, _ in announcements])
    if not hmac.compare_digest(rsid, header.run_session_id):
        raise ProtocolError("the notice's run session id is not its certificate's")
    if body.epoch == 0 and (body.carried or body.dormant):
        raise ProtocolError("nothing is carried into epoch 1 and nobody is dormant")
    for raw in body.carried:
        _check_carried(suite, raw, header.group_id, body.epoch)
    inputs, round1, bundle_root, tag = _check_run(header, body, announcements, applied_hash)
    # 5. our Merkle path and the confirmation tag
    leaf = leaf_hash(suite, own_index, identity, header.sealing)
    verify_merkle_path(suite, bundle_root, header.count, header.position, leaf, header.path)
    dormant_before = _check_dormant(roster, body, header, announcements, own_index)
    outcome = outcome_from_opened(inputs, round1, bundle_root, member_base,
                                  opened_is_member_base=True, init_secret=None, agreed_tag=tag)
    secrets = outcome.secrets(suite)
    return JoinStart(suite, header.group_id, header.epoch, body.epoch_id, body.run, rsid,
                     secrets, roster, body.t0, body.carried, own_index, own_entry, added_by,
                     resumed, opened.receive_public, dormant_before,
                     tuple(a.identity for _, a in announcements))


def _check_dormant(roster: Roster, body: NoticeBody, header: NoticeHeader,
                   announcements: Sequence[tuple[ControlEntry, RunAnnouncement]],
                   own_index: int) -> frozenset[bytes]:
    """The dormant set must fit the bundle: the recipients it leaves (neither on the committee
    nor dormant) are `count` many and ours is at the header's position (review F2)."""
    committee = [a.identity for _, a in announcements]
    dormant = frozenset(roster.entries[i].identity for i in body.dormant)
    if dormant & set(committee):
        raise ProtocolError("notice: a committee member listed as dormant")
    recipients = recipients_of(roster, committee, dormant)
    if len(recipients) != header.count or own_index not in recipients or (
            recipients.index(own_index) != header.position):
        raise ProtocolError("notice: the dormant members do not fit the bundle")
    return dormant


def _check_carried(suite: Suite, raw: bytes, group_id: bytes, epoch: int) -> None:
    """A carried entry is a proposal or a record with its author's identity signature (both
    name their identity in the body; review F1)."""
    entry = ControlEntry.from_bytes(suite, raw, group_id=group_id, epoch=epoch)
    if entry.entry_type == TYPE_PROPOSAL:
        proposal = ChangeProposal.from_bytes(suite, entry.body)
        entry.verify(Identity.from_bytes(proposal.author, suite), None)
    elif entry.entry_type == TYPE_RECORD:
        entry.verify(MemberKeyRecord.from_bytes(suite, entry.body).owner(), None)
    else:
        raise ProtocolError("a carried entry is a proposal or a record")


def _check_applied(roster: Roster, applied: Sequence[ControlEntry], own: RosterEntry,
                   body: NoticeBody, header: NoticeHeader) -> tuple[bytes, bool]:
    """Identity signatures of the applied proposals; ours must be among them. Returns who
    proposed us and whether it was a resume."""
    ours: tuple[bytes, bool] | None = None
    for entry in applied:
        proposal = ChangeProposal.from_bytes(entry.suite, entry.body)
        author = Identity.from_bytes(proposal.author, entry.suite)
        entry.verify(author, None)
        # `ChangeProposal.from_entry`'s checks, without decoding (and verifying) it twice.
        if not hmac.compare_digest(proposal.group_id, entry.group_id) or (
                proposal.epoch != entry.epoch):
            raise ProtocolError("proposal for another group or epoch than its entry")
        # A proposal carried from e-1 names epoch_id(e-1), which a newcomer cannot know; the
        # certificate's applied-proposals hash binds it (every committee member checked it).
        if entry.epoch == body.epoch and not hmac.compare_digest(proposal.epoch_id,
                                                                 body.epoch_id):
            raise ProtocolError("an applied proposal of another epoch id")
        change = proposal.change
        if isinstance(change, JoinKey | MemberKeyRecord) and change.same_body(own.keys):
            # An add carries our join key, a resume our resume record (Decision 8).
            if proposal.kind not in (KIND_ADD, KIND_RESUME):
                raise ProtocolError("our keys came by neither an add nor a resume")
            ours = (proposal.author, proposal.kind == KIND_RESUME)
    if ours is None:
        raise ProtocolError("our own add or resume is not among the applied proposals")
    return ours


def _check_announcements(roster: Roster, body: NoticeBody, header: NoticeHeader,
                         applied_hash: bytes) -> tuple[tuple[ControlEntry, RunAnnouncement], ...]:
    suite = header.suite
    out = []
    keys: set[bytes] = set()
    for raw in body.announcements:
        entry = _decode_entry(suite, raw, header.group_id, body.epoch, TYPE_ANNOUNCEMENT,
                              "an announcement")
        claimed = RunAnnouncement.from_bytes(suite, entry.body)
        if roster.index_of(claimed.identity) is None:
            raise ProtocolError("an announcer is not in the new roster")
        author = Identity.from_bytes(claimed.identity, suite)
        entry.verify(author, None)
        a = RunAnnouncement.from_entry(entry, author)
        if a.run != body.run:
            raise ProtocolError("an announcement of another run")
        if not hmac.compare_digest(a.applied_proposals_hash, applied_hash) or not (
                hmac.compare_digest(a.roster_hash, header.roster_hash)):
            raise ProtocolError("an announcement for another view of the attempt")
        if a.dkg_key in keys:
            raise ProtocolError("two announcements with one DKG key")
        keys.add(a.dkg_key)
        out.append((entry, a))
    return tuple(out)



def _check_run(header: NoticeHeader, body: NoticeBody,
               announcements: Sequence[tuple[ControlEntry, RunAnnouncement]],
               applied_hash: bytes) -> tuple[RunInputs, tuple[SignedRound1, ...], bytes, bytes]:
    """The run's public DKG data (11.v2.28 step 4): one round-1 and one round-3 item per
    committee member, in committee order; every round-1 item's DKG signature and COCKTAIL's
    public checks; every round-3 item's two signatures over the transcript T rebuilt with the
    extension; one agreed (bundle_root, tag). Record-key signatures of the entries are not
    checked (the recipient lacks epoch e's roster). Returns the run's inputs (without the
    recipients, which a joiner cannot know: dormancy is epoch e's), its checked round-1 items,
    and the agreed (bundle_root, tag)."""
    suite = header.suite
    k = len(announcements)
    if len(body.round1) != k or len(body.round3) != k:
        raise ProtocolError("the certificate has one round-1 and one round-3 item per member")
    try:
        inputs = RunInputs(suite, header.group_id, body.epoch, body.epoch_id, body.run,
                           applied_hash, body.roster,
                           tuple(e.entry_bytes() for e, _ in announcements),
                           tuple(a.dkg_point() for _, a in announcements), recipients=())
    except UsageError as exc:  # the announcements were checked above; never a crash
        raise ProtocolError(f"the certificate's announcements do not fix a run: {exc}") from None
    round1 = tuple(
        check_round1(inputs, j, Round1Item.from_bytes(_decode_entry(
            suite, raw, header.group_id, body.epoch, TYPE_ROUND1, "a round-1 item").body))
        for j, raw in enumerate(body.round1, start=1))
    round3 = tuple(
        Round3Item.from_bytes(suite, _decode_entry(
            suite, raw, header.group_id, body.epoch, TYPE_ROUND3, "a round-3 item").body)
        for raw in body.round3)
    if any(not item.agrees_with(round3[0]) for item in round3):
        raise ProtocolError("the round-3 items disagree")
    bundle_root, tag = round3[0].bundle_root, round3[0].confirmation_tag
    transcript = round1_transcript(inputs, round1, bundle_root)
    for j, item in enumerate(round3, start=1):
        verify_round3(inputs, round1, j, item, transcript=transcript)
    return inputs, round1, bundle_root, tag

# --- Creation (11.v2.27, Decision 6) ----------------------------------------------------------


@dataclass(frozen=True)
class CreatorStart:
    """The creator's own start in epoch 1: its record, the roster, epoch 1's values, what it
    needs to repeat a notice (`change`, `member_base`: any member may re-send one) and to
    answer a rejoin request about epoch 0's commit (`commit_secret`, `group_context`)."""

    suite: Suite
    group_id: bytes
    record: MemberKeyRecord
    roster: Roster = field(repr=False)
    secrets: EpochSecretsV2 = field(repr=False)
    change: DecidedChange = field(repr=False)
    member_base: bytes = field(repr=False)
    commit_secret: bytes = field(repr=False)
    group_context: bytes = field(repr=False)
    commit: ControlEntry = field(repr=False)  # epoch 0's commit (exists only for the record)
    inputs: RunInputs = field(repr=False)  # run 1 of epoch 0, to answer rejoin requests
    common: OutgoingCommon | None = field(default=None, repr=False)
    """the notices' common part to post (None without another member)"""

    epoch = 1

    @property
    def epoch_id(self) -> bytes:
        return self.secrets.epoch_id


def create_group(identity: IdentityKeyPair, keys: RecordKeys, *, group_id: bytes,
                 join_keys: Sequence[JoinKey], now: int,
                 rng: RandomSource = system_random) -> tuple[CreatorStart,
                                                             tuple[OutgoingNotice, ...]]:
    """Create a group (11.v2.27): the creator's record (counter 1, anchor zeros), one add
    proposal per initial member's join key in the order given (expiry checked against `now`,
    the creator's clock), the creator alone as run 1's committee of epoch 0, `member_base`
    sealed to every join key, and a notice for each (to its join key's inbox) naming the common
    part (`start.common`, to post in the common mailbox). A group with no other member has an
    empty bundle and sends no notice.

    `UsageError` for a join key of another suite, of the creator, or twice for one identity;
    `ProtocolError` for an expired join key or one whose keys are already in the roster."""
    suite = identity.suite
    record = MemberKeyRecord.sign(identity, keys, group_id=group_id, counter=1,
                                  purpose=PURPOSE_ROTATE, anchor=creator_anchor(suite))
    entries = [RosterEntry.of(record, 0)]
    for jk in join_keys:
        if jk.suite.suite_id != suite.suite_id:
            raise UsageError("a join key of another suite")
        if any(hmac.compare_digest(e.identity, jk.identity) for e in entries):
            raise UsageError("an initial member twice, or the creator itself")
        if not jk.usable_at(now):
            raise ProtocolError("join key expired")
        entries.append(RosterEntry.of(jk, 0))
    roster = Roster(suite, tuple(entries))  # ProtocolError for a key already in the roster
    proposals = tuple(
        sign_identity_entry(identity, TYPE_PROPOSAL, group_id=group_id, epoch=0, author=0,
                            body=ChangeProposal.make(suite, KIND_ADD, group_id=group_id,
                                                     epoch=0, epoch_id=b"",
                                                     author=identity.public.to_bytes(),
                                                     change=jk).to_bytes())
        for jk in join_keys)
    applied_hash = applied_proposals_hash(suite, proposals)
    roster_hash = roster.hash()
    run = 1
    # The creator alone is run 1's committee (k = 1); every member it adds is sealed member_base.
    seed = RunSeed.generate(suite, rng)
    announcement = sign_identity_entry(
        identity, TYPE_ANNOUNCEMENT, group_id=group_id, epoch=0, author=0,
        body=make_announcement(seed, group_id=group_id, epoch=0, run=run,
                               identity=record.identity, applied_hash=applied_hash,
                               roster_hash=roster_hash,
                               view_hash=view_hash(suite, None, (), ())).to_bytes())
    joiners = frozenset(jk.identity for jk in join_keys)
    inputs = RunInputs(suite, group_id, 0, b"", run, applied_hash, roster,
                       (announcement.entry_bytes(),), (seed.dkg_key(),),
                       recipients_of(roster, [record.identity]), joiners)
    round1_item = make_round1(seed, inputs)
    round1 = (check_round1(inputs, 1, round1_item),)
    local = local_round2(seed, inputs, round1)
    if local.payloads is None:  # our own share to ourselves: cannot fail
        raise UsageError("the creator's own round 2 failed")
    round3_item, outcome = make_round3(seed, inputs, round1, local.payloads,
                                       initial_init_secret(suite))
    if outcome.bundle is None or outcome.commit_secret is None:
        raise UsageError("a committee member holds the bundle and commit_secret")

    def entry(entry_type: int, body: bytes) -> ControlEntry:
        return sign_member_entry(suite, keys.signing_key, entry_type, group_id=group_id,
                                 epoch=0, author=0, body=body)

    round1_entry = entry(TYPE_ROUND1, round1_item.to_bytes())
    round3_entry = entry(TYPE_ROUND3, round3_item.to_bytes())
    commit = entry(TYPE_COMMIT, make_commit(inputs, outcome).to_bytes())
    member_base = outcome.member_base
    change = DecidedChange(
        suite, group_id, 0, b"", run, inputs.session_id(), (announcement.to_bytes(),),
        (round1_entry.to_bytes(),), (round3_entry.to_bytes(),),
        tuple(p.to_bytes() for p in proposals), (), None, roster, outcome.bundle.sealings,
        inputs.recipients)
    common = build_common(change, member_base, rng) if change.bundle else None
    start = CreatorStart(suite, group_id, record, roster, outcome.secrets(suite), change,
                         member_base, outcome.commit_secret, outcome.group_context, commit,
                         inputs, common)
    if common is None:
        return start, ()
    return start, build_notices(change, member_base, common=common, rng=rng)


# --- Rejoin requests and repaired sealings (11.v2.14, 11.v2.25, 11.v2.31) ---------------------


def make_rejoin_request(identity: IdentityKeyPair, keys: RecordKeys, *, group_id: bytes,
                        own_counters: Sequence[int], anchor: bytes,
                        inbox_id: bytes) -> RejoinRequest:
    """A requester's `RejoinRequest`: a resume record (purpose 2) with fresh `keys`, a counter
    one above every counter of its own it has seen (`own_counters`, at least its roster
    entry's), the anchor of its current roster entry, and the inbox for its notice."""
    counter = max((0, *own_counters)) + 1
    record = MemberKeyRecord.sign(identity, keys, group_id=group_id, counter=counter,
                                  purpose=PURPOSE_RESUME, anchor=anchor)
    return RejoinRequest.make(record, inbox_id)


def check_rejoin_request(suite: Suite, data: bytes, *, group_id: bytes, peer: Identity,
                         roster: Roster) -> RejoinRequest:
    """A member's check of a rejoin request received from the pairwise `peer` (11.v2.31): the
    record is a resume record of this group by the peer (`ProtocolError`), the peer is a member
    of the current roster (`ProtocolError`; a removed member comes back only through an add),
    its anchor is the peer's entry's (`ProtocolError`), its counter above the entry's
    (`ReplayError`), and its signing key is in the roster nowhere, its receive key not the
    member's current one (`ProtocolError`). The caller
    reports any failure as `Ignored`."""
    request = RejoinRequest.from_bytes(suite, data, group_id=group_id, peer=peer)
    index = roster.index_of(request.record.identity)
    if index is None:
        raise ProtocolError("rejoin request from a member not in the current roster")
    entry = roster.entries[index]
    verdict = judge_record(request.record, author_identity=entry.identity, current=entry.keys,
                           anchor=entry.anchor, seen=(),
                           taken_keys=roster.taken_keys(entry.identity),
                           group_id=group_id, purpose=PURPOSE_RESUME)
    if verdict is not RecordVerdict.SUPERSEDES:
        raise ReplayError("resume record with its member's current counter")
    return request


WIRE_MEMBERSHIP_HINT = 0x57
MAX_MEMBERSHIP_HINT_LEN = 256
_PENDING_REJOIN = "triple-ratchet pending rejoin"


@dataclass(frozen=True)
class MembershipHint:
    """What a member tells another member of its roster over their pairwise session when that
    one may hold no session of the group — a joiner whose notice did not open because its
    one-time join key had already been used (11.v2.31): the group, and the anchor and counter
    of its roster entry, to name its membership in a rejoin request.

        MembershipHint = CBOR[0x57, 2, suite_id, group_id, anchor, counter]

    Nothing in it is trusted: the members' check of the request (the anchor and counter against
    the requester's roster entry) and the resume notice's certificate decide; a forged hint
    only makes its recipient send a request that is refused."""

    suite: Suite
    group_id: bytes
    anchor: bytes
    counter: int

    def to_bytes(self) -> bytes:
        return cbor.encode([WIRE_MEMBERSHIP_HINT, VERSION, self.suite.suite_id, self.group_id,
                            self.anchor, self.counter])

    @classmethod
    def from_bytes(cls, suite: Suite, data: bytes) -> MembershipHint:
        """Decode strictly (`DecodeError`, `LimitExceeded`, `UnsupportedError`; another suite
        than ours `ProtocolError`)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        if len(data) > MAX_MEMBERSHIP_HINT_LEN:
            raise LimitExceeded("membership hint larger than its bound")
        f = cbor.as_list(cbor.decode(bytes(data), max_size=MAX_MEMBERSHIP_HINT_LEN,
                                     max_items=8, max_depth=1), "membership hint", 6)
        if cbor.as_int(f[0], "membership hint type") != WIRE_MEMBERSHIP_HINT:
            raise DecodeError("not a membership hint")
        if cbor.as_int(f[1], "membership hint version") != VERSION:
            raise UnsupportedError("membership hint: only version 2 is supported")
        if suite_by_id(cbor.as_int(f[2], "suite", maximum=0xFFFF)).suite_id != suite.suite_id:
            raise ProtocolError("membership hint of another suite than ours")
        group_id = cbor.as_bytes(f[3], "group id", max_length=MAX_GROUP_ID_LEN)
        if not group_id:
            raise DecodeError("membership hint: empty group id")
        # The request's record takes counter + 1, so the largest counter has no successor.
        return cls(suite, group_id, cbor.as_bytes(f[4], "anchor", length=suite.hash_len),
                   cbor.as_int(f[5], "counter", maximum=MAX_RECORD_COUNTER - 1))


@dataclass(frozen=True)
class PendingRejoin:
    """A rejoin request made without a session (11.v2.31): the resume record it carries and
    the seed of its private keys, kept (and saved, `to_bytes`) until its resume notice comes
    (`open_notice_sealing(..., keys=[pending.keys()])`, the common part it names read from the
    change's common mailbox, `complete`, then `GroupSession.from_rejoin`)."""

    record: MemberKeyRecord
    seed: bytes = field(repr=False)

    @property
    def group_id(self) -> bytes:
        return self.record.group_id

    def keys(self) -> RecordKeys:
        return RecordKeys.from_seed(self.record.suite, self.seed)

    def to_bytes(self) -> bytes:
        return cbor.encode([_PENDING_REJOIN, VERSION, self.record.suite.suite_id,
                            self.record.to_bytes(), self.seed])

    @classmethod
    def from_bytes(cls, data: bytes, identity: IdentityKeyPair) -> PendingRejoin:
        """Strict: a resume record of `identity` whose keys the seed makes (`DecodeError`;
        another member's `UsageError`)."""
        if not isinstance(data, bytes | bytearray):
            raise UsageError("expected bytes")
        suite = identity.suite
        bound = max_record_len(suite) + 128
        if len(data) > bound:
            raise LimitExceeded("saved pending rejoin too large")
        f = cbor.as_list(cbor.decode(bytes(data), max_size=bound, max_items=8,
                                     max_depth=1), "pending rejoin", 5)
        if cbor.as_str(f[0], "pending rejoin", max_length=64) != _PENDING_REJOIN:
            raise DecodeError("not a pending rejoin")
        if cbor.as_int(f[1], "pending rejoin version") != VERSION:
            raise DecodeError("pending rejoin of another version")
        if cbor.as_int(f[2], "suite", maximum=0xFFFF) != suite.suite_id:
            raise DecodeError("pending rejoin of another suite")
        try:
            record = MemberKeyRecord.from_bytes(
                suite, cbor.as_bytes(f[3], "resume record", max_length=max_record_len(suite)))
        except RemoteError as exc:
            raise DecodeError(f"pending rejoin: {exc}") from None
        seed = cbor.as_bytes(f[4], "seed", length=RECORD_SEED_LEN)
        if record.purpose != PURPOSE_RESUME:
            raise DecodeError("pending rejoin: not a resume record")
        if not RecordKeys.from_seed(suite, seed).holds(record):
            raise DecodeError("pending rejoin: the seed does not make the record's keys")
        if not hmac.compare_digest(record.identity, identity.public.to_bytes()):
            raise UsageError("pending rejoin of another member")
        return cls(record, seed)


def rejoin_from_hint(identity: IdentityKeyPair, hint: bytes, *, inbox_id: bytes,
                     rng: RandomSource = system_random) -> tuple[RejoinRequest, PendingRejoin]:
    """A rejoin request made without a session, from a `MembershipHint` a member sent us: a
    resume record with fresh keys (counter one above the hint's, the hint's anchor), for the
    caller to send over the pairwise session, and what to keep until the notice comes."""
    decoded = MembershipHint.from_bytes(identity.suite, hint)
    seed = rng(RECORD_SEED_LEN)
    request = make_rejoin_request(identity, RecordKeys.from_seed(identity.suite, seed),
                                  group_id=decoded.group_id, own_counters=[decoded.counter],
                                  anchor=decoded.anchor, inbox_id=inbox_id)
    return request, PendingRejoin(request.record, seed)


@dataclass(frozen=True)
class Repair:
    """The certified sealing was wrong: send `repaired` to the requester over the pairwise
    session and post `conviction` (entry type 0x49) in the current control mailbox."""

    repaired: RepairedSealing
    conviction: Conviction


@dataclass(frozen=True)
class ResumeInstead:
    """The certified sealing was right: post a resume proposal carrying the request's record
    (`proposal`, made for the current epoch)."""

    proposal: ChangeProposal


def answer_rejoin(request: RejoinRequest, *, decided: SealingContext, decided_run: int,
                  commit_secret: bytes, recipient: Recipient, certified: Sealing,
                  author: bytes, current_epoch: int,
                  current_epoch_id: bytes) -> Repair | ResumeInstead:
    """What a member that holds the decided run's `commit_secret` does with a checked rejoin
    request (11.v2.25): recompute the requester's sealing of the commit that started epoch
    `decided.epoch` (= e_c + 1). `recipient` is the requester as that commit sealed to it
    (its new-roster index, identity, the receive key the commit applied for it and the
    plaintext it was due: `member_base` or `commit_secret`); `certified` the pair the bundle
    holds at its position. A different pair → `Repair`; the same → `ResumeInstead` (a resume
    proposal by `author` in `current_epoch`)."""
    if not hmac.compare_digest(recipient.identity, request.record.identity):
        raise UsageError("the recomputed sealing must be the requester's")
    secret = seal_secret(decided.suite, commit_secret, decided.run_session_id)
    correct = seal_to(decided, secret, recipient)
    if hmac.compare_digest(correct.enc, certified.enc) and hmac.compare_digest(
            correct.ct, certified.ct):
        return ResumeInstead(ChangeProposal.make(
            decided.suite, KIND_RESUME, group_id=decided.group_id, epoch=current_epoch,
            epoch_id=current_epoch_id, author=author, change=request.record))
    decided_epoch = decided.epoch - 1
    return Repair(
        RepairedSealing(decided.suite, decided.group_id, decided_epoch, decided_run,
                        correct.enc, correct.ct),
        Conviction(decided_epoch, decided_run, recipient.roster_index, correct.enc,
                   correct.ct))


def answer_rejoin_for_run(request: RejoinRequest, inputs: RunInputs, commit: Commit, *,
                          commit_secret: bytes, member_base: bytes, author: bytes,
                          current_epoch: int, current_epoch_id: bytes) -> Repair | ResumeInstead:
    """`answer_rejoin` for the deciding run whose `inputs`, secrets (a committee member's, or
    a recipient's sealed `commit_secret`, and `member_base`; see `RunOutcome`) and certified
    `commit` we hold. A requester that was no recipient of that commit is a `ProtocolError`
    (nothing to repair: a dormant member resumes, 11.v2.31)."""
    index = inputs.roster.index_of(request.record.identity)
    if index is None or index not in inputs.recipients:
        raise ProtocolError("the requester was no recipient of that commit")
    position = inputs.recipients.index(index)
    if len(commit.bundle) != len(inputs.recipients) or commit.run != inputs.run:
        raise UsageError("the commit is not the deciding commit of these inputs")
    targets = inputs.seal_targets(commit_secret, member_base)
    enc, ct = commit.bundle[position]
    return answer_rejoin(request, decided=inputs.sealing_context(), decided_run=inputs.run,
                         commit_secret=commit_secret, recipient=targets[position],
                         certified=Sealing(enc, ct), author=author,
                         current_epoch=current_epoch, current_epoch_id=current_epoch_id)


def accept_repaired_sealing(repaired: RepairedSealing, *, decided: SealingContext,
                            decided_run: int, identity: bytes, private_key: bytes,
                            init_secret: bytes | None, group_context: bytes, roster_size: int,
                            tag: bytes) -> EpochSecretsV2:
    """The requester's check of a `RepairedSealing` (11.v2.25): it names the commit we could
    not open (`ProtocolError` otherwise), opens with our receive private key of that commit
    (`AuthenticationError`), and the confirmation tag it leads to is the certified one
    (`AuthenticationError`). `init_secret` is `init_secret(e_c)` when we held it (we were due
    `commit_secret`), None when we were due `member_base`. Returns epoch e_c + 1's values."""
    suite = decided.suite
    if repaired.suite.suite_id != suite.suite_id or not hmac.compare_digest(
            repaired.group_id, decided.group_id):
        raise ProtocolError("repaired sealing for another group")
    if repaired.decided_epoch + 1 != decided.epoch or repaired.run != decided_run:
        raise ProtocolError("repaired sealing for another commit")
    opened = open_sealing(decided, identity, private_key, Sealing(repaired.enc, repaired.ct))
    member_base = opened if init_secret is None else extract_member_base(suite, init_secret,
                                                                         opened)
    secrets = derive_epoch_v2(suite, member_base, group_context, roster_size)
    secrets.check_confirmation_tag(tag)
    return secrets

__all__ = [
    "LABEL_KS2_NOTICE_COMMON_KEY",
    "LABEL_KS2_NOTICE_COMMON_SEED",
    "LABEL_KS2_NOTICE_KEY",
    "LABEL_NOTICE_AAD",
    "LABEL_NOTICE_ID",
    "MAX_MEMBERSHIP_HINT_LEN",
    "MAX_NOTICE_CHUNKS",
    "MAX_NOTICE_LEN",
    "MAX_PENDING_NOTICES",
    "NOTICE_CHUNK_SIZE",
    "CommonAssembler",
    "CreatorStart",
    "DecidedChange",
    "JoinStart",
    "MembershipHint",
    "Notice",
    "NoticeAssembler",
    "NoticeBody",
    "NoticeChunk",
    "NoticeHeader",
    "OpenedNotice",
    "OutgoingCommon",
    "OutgoingNotice",
    "PendingRejoin",
    "Repair",
    "ResumeInstead",
    "accept_repaired_sealing",
    "answer_rejoin",
    "answer_rejoin_for_run",
    "build_common",
    "build_notice",
    "build_notices",
    "check_rejoin_request",
    "chunk_notice",
    "common_key",
    "common_mailbox",
    "create_group",
    "make_rejoin_request",
    "notice_id",
    "notice_key",
    "open_common",
    "open_notice",
    "open_notice_sealing",
    "rejoin_from_hint",
    "seal_common",
    "seal_notice",
]
