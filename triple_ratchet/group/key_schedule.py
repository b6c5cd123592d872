"""The epoch key schedule: from a certified committee run to every key of the new epoch.

Spec: 08-key-schedule.md. The run's session id binds the run; the committee's payloads give the
commit secret; `init_secret(e)` chains epochs; the group context binds the new epoch's public
facts; every value of the epoch is expanded from the epoch secret at once by `derive_epoch_v2`,
which then drops it::

    run_session_id   = H("triple-ratchet v2 run" ‖ CBOR[suite_id, group_id, e, epoch_id(e), r,
                         applied_proposals_hash, [announcement entry bytes, committee order]])
    commit_secret    = HKDF-Extract(salt = run_session_id, ikm = payload_1 ‖ … ‖ payload_k)
    member_base      = HKDF-Extract(salt = init_secret(e), ikm = commit_secret)
    group_context    = H("triple-ratchet v2 group context" ‖ CBOR[suite_id, group_id, e+1,
                         epoch_id(e), new_roster_hash, applied_proposals_hash, bundle_root,
                         transcript_hash])
    epoch_secret     = ExpandLabel(member_base, "ks v2 epoch secret", group_context, Nh)
    confirmation_tag = MAC(ExpandLabel(epoch_secret, "ks v2 confirmation key", "", Nh),
                           group_context)

The hash inputs are CBOR arrays, so the variable-length fields frame themselves. (The labels
say "v2": version 1's schedule, with labels of its own, is withdrawn.)

Member indices here are roster positions, 0..n-1, as the group layer numbers senders.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.dkg.attempt import PAYLOAD_HASH_LEN, PAYLOAD_LEN, announcements_hash
from triple_ratchet.errors import AuthenticationError, LimitExceeded, UsageError
from triple_ratchet.group.sender_chain import KeyedHmac
from triple_ratchet.mailbox import mailbox_id
from triple_ratchet.suites import SigningKey, Suite
from triple_ratchet.suites.hpke import DhKem, hpke_for_suite

TRANSCRIPT_HASH_LEN = 64
"""SHA-512 of the COCKTAIL(Ed25519, SHA-512) transcript."""
MAILBOX_SEED_LEN = 32
"""`Suite.signing_from_seed` takes 32 bytes."""
EPOCH_ID_LEN = 32
"""Public, compared by users out of band: 256 bits make a chosen collision infeasible."""


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def initial_init_secret(suite: Suite) -> bytes:
    """`init_secret(0)`: the fixed all-zero string, one hash length long."""
    return bytes(suite.hash_len)


@dataclass(frozen=True, repr=False)
class MailboxKeys:
    """A mailbox's access key pair and its id. The signing key opens the mailbox at the hub."""

    # Compared through its public half (SigningKey has no value equality).
    access_key: SigningKey = field(compare=False)
    access_public: bytes
    mailbox_id: bytes

    @classmethod
    def from_seed(cls, suite: Suite, seed: bytes) -> MailboxKeys:
        key = suite.signing_from_seed(seed)
        public = key.public_key().to_bytes()
        return cls(key, public, mailbox_id(suite, public))

    def __repr__(self) -> str:
        return f"MailboxKeys(mailbox_id={self.mailbox_id.hex()}, access_key=<secret>)"


# --- Labels (spec 08, label table). expand_label binds the protocol label and suite id. ----------
LABEL_KS_RUN = b"triple-ratchet v2 run"
LABEL_KS_GROUP_CONTEXT = b"triple-ratchet v2 group context"
LABEL_KS_DKG_EXTENSION = b"triple-ratchet v2 dkg extension"
LABEL_KS2_EPOCH_SECRET = b"ks v2 epoch secret"
LABEL_KS2_CONFIRMATION_KEY = b"ks v2 confirmation key"
LABEL_KS2_CHAIN_ROOT = b"ks v2 chain root"
LABEL_KS2_SENDER_DATA = b"ks v2 sender data secret"
LABEL_KS2_GROUP_MAILBOX_SEED = b"ks v2 group mailbox access seed"
LABEL_KS2_CONTROL_MAILBOX_SEED = b"ks v2 control mailbox access seed"
LABEL_KS2_CONTROL_TRAFFIC_KEY = b"ks v2 control traffic key"
LABEL_KS2_EPOCH_ID = b"ks v2 epoch id"
LABEL_KS2_INIT_SECRET = b"ks v2 init secret"

MAX_GROUP_SIZE_V2 = 1000
"""Roster bound of version 2 (independent of the committee size)."""
MAX_GROUP_SIZE_PQ = 100
"""Roster bound of a hybrid (post-quantum) suite: its commit seals each recipient a hybrid KEM
ciphertext (~1,207 B a pair), and 100 pairs keep the commit inside the largest padding bucket
(`MAX_COMMIT_ENTRY_LEN`, 131,071 B; 108 would be the most), the hub's blob and the per-member
byte budget, as 1,000 classical pairs do (spec 12.4)."""


def max_group_size(suite: Suite) -> int:
    """The roster bound of `suite`: 1,000, or 100 for a hybrid suite (`MAX_GROUP_SIZE_PQ`)."""
    return MAX_GROUP_SIZE_V2 if isinstance(hpke_for_suite(suite).kem, DhKem) else (
        MAX_GROUP_SIZE_PQ)
MAX_COMMITTEE = 8
"""k: a run's committee is the first k eligible announcers (Decisions, protocol constant)."""
MAX_RUN = 2**32 - 1
MAX_EPOCH = 2**64 - 2
"""e + 1 must still be an unsigned 64-bit integer."""
MAX_ANNOUNCEMENT_ENTRY_LEN = 16384
"""Bound on one announcement entry in the run session id (a control entry's bound)."""


def _check_hash(suite: Suite, value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != suite.hash_len:
        raise UsageError(f"{what} must be {suite.hash_len} bytes for suite {suite.name}")
    return bytes(value)


def _check_epoch_id(epoch: int, epoch_id: object) -> bytes:
    # epoch_id(0) is empty (there is no epoch 0 secret); every later one is EPOCH_ID_LEN bytes.
    want = 0 if epoch == 0 else EPOCH_ID_LEN
    if not isinstance(epoch_id, bytes | bytearray) or len(epoch_id) != want:
        raise UsageError(f"epoch_id({epoch}) must be {want} bytes")
    return bytes(epoch_id)


def _check_group_id(group_id: object) -> bytes:
    if not isinstance(group_id, bytes | bytearray) or not 1 <= len(group_id) <= 64:
        raise UsageError("group id must be 1..64 bytes")
    return bytes(group_id)


def _check_uint(value: object, what: str, minimum: int, maximum: int) -> int:
    if type(value) is not int or not minimum <= value <= maximum:
        raise UsageError(f"{what} must be an integer in [{minimum}, {maximum}]")
    return value


def run_session_id(suite: Suite, group_id: bytes, epoch: int, epoch_id: bytes, run: int,
                   applied_proposals_hash: bytes, announcements: Sequence[bytes]) -> bytes:
    """The name of run r of epoch e's attempt: binds the committee's announcements, in order.

    `announcements` are the `entry` bytes (never the signatures, which ECDSA lets anyone
    re-randomise) of the committee's announcements in committee order: 1..k of them.
    """
    _check_uint(epoch, "epoch", 0, MAX_EPOCH)
    if not 1 <= len(announcements) <= MAX_COMMITTEE:
        raise LimitExceeded(f"a committee has 1..{MAX_COMMITTEE} members")
    for a in announcements:
        if not isinstance(a, bytes | bytearray) or not 1 <= len(a) <= (
                MAX_ANNOUNCEMENT_ENTRY_LEN):
            raise UsageError(f"an announcement entry must be 1..{MAX_ANNOUNCEMENT_ENTRY_LEN}"
                             " bytes")
    fields = cbor.encode([
        suite.suite_id, _check_group_id(group_id), epoch, _check_epoch_id(epoch, epoch_id),
        _check_uint(run, "run", 1, MAX_RUN),
        _check_hash(suite, applied_proposals_hash, "applied-proposals hash"),
        [bytes(a) for a in announcements],
    ])
    return suite.hash(LABEL_KS_RUN + fields)


def run_extension(suite: Suite, payload_hashes: Sequence[bytes], announcements: Sequence[bytes],
                  roster_hash: bytes, applied_proposals_hash: bytes, bundle_root: bytes,
                  epoch_id: bytes) -> bytes:
    """The run's COCKTAIL transcript extension (64 bytes), spec 08 §8.v2.4:

        SHA-512("triple-ratchet v2 dkg extension" ‖ u32le(k) ‖ payload_hash_1 ‖ … ‖ payload_hash_k
                ‖ announcements_hash(A_1 … A_k) ‖ u64le(len(x)) ‖ x for x in (new_roster_hash,
                applied_proposals_hash, bundle_root, epoch_id(e)))

    `announcements` are the committee's announcement entry bytes, committee order; section 7.5's
    `announcements_hash` (unchanged) hashes them. CertEq over the transcript then certifies all
    of it."""
    if not 1 <= len(payload_hashes) <= MAX_COMMITTEE or len(announcements) != len(
            payload_hashes):
        raise LimitExceeded(f"a committee has 1..{MAX_COMMITTEE} members, one hash each")
    if any(not isinstance(h, bytes | bytearray) or len(h) != PAYLOAD_HASH_LEN
           for h in payload_hashes):
        raise UsageError(f"payload hashes are {PAYLOAD_HASH_LEN} bytes")
    if len(epoch_id) not in (0, EPOCH_ID_LEN):
        raise UsageError("epoch_id(e) is empty or 32 bytes")
    h = hashlib.sha512(LABEL_KS_DKG_EXTENSION + len(payload_hashes).to_bytes(4, "little"))
    for payload_hash in payload_hashes:
        h.update(payload_hash)
    h.update(announcements_hash(announcements))
    for value in (_check_hash(suite, roster_hash, "roster hash"),
                  _check_hash(suite, applied_proposals_hash, "applied-proposals hash"),
                  _check_hash(suite, bundle_root, "bundle root"), bytes(epoch_id)):
        h.update(len(value).to_bytes(8, "little") + value)
    return h.digest()


def extract_commit_secret(suite: Suite, session_id: bytes, payloads: Sequence[bytes]) -> bytes:
    """commit_secret = HKDF-Extract(salt = run_session_id, ikm = payload_1 ‖ … ‖ payload_k).

    `payloads` are the committee's round-1 payloads in committee order (1..k, 32 bytes each).
    """
    _check_hash(suite, session_id, "run session id")
    if not 1 <= len(payloads) <= MAX_COMMITTEE:
        raise LimitExceeded(f"a committee has 1..{MAX_COMMITTEE} members")
    for payload in payloads:
        if not isinstance(payload, bytes | bytearray) or len(payload) != PAYLOAD_LEN:
            raise UsageError(f"every payload must be exactly {PAYLOAD_LEN} bytes")
    return suite.hkdf_extract(bytes(session_id), b"".join(bytes(p) for p in payloads))


def extract_member_base(suite: Suite, init_secret: bytes, commit_secret: bytes) -> bytes:
    """member_base = HKDF-Extract(salt = init_secret(e), ikm = commit_secret).

    Members holding init_secret(e) are sealed commit_secret; joiners, resumed members and
    members dormant at the previous snapshot are sealed member_base itself.
    """
    salt = _check_hash(suite, init_secret, "init_secret")
    return suite.hkdf_extract(salt, _check_hash(suite, commit_secret, "commit_secret"))


def group_context(suite: Suite, group_id: bytes, next_epoch: int, epoch_id: bytes,
                  roster_hash: bytes, applied_proposals_hash: bytes, bundle_root: bytes,
                  transcript_hash: bytes) -> bytes:
    """What the new epoch's secret and confirmation tag are bound to (e+1 = `next_epoch`).

    `epoch_id` is the previous epoch's, `epoch_id(next_epoch - 1)`; `transcript_hash` is SHA-512
    of the run's COCKTAIL transcript (64 bytes)."""
    _check_uint(next_epoch, "next epoch", 1, MAX_EPOCH + 1)
    if not isinstance(transcript_hash, bytes | bytearray) or (
            len(transcript_hash) != TRANSCRIPT_HASH_LEN):
        raise UsageError(f"transcript hash must be {TRANSCRIPT_HASH_LEN} bytes")
    fields = cbor.encode([
        suite.suite_id, _check_group_id(group_id), next_epoch,
        _check_epoch_id(next_epoch - 1, epoch_id),
        _check_hash(suite, roster_hash, "roster hash"),
        _check_hash(suite, applied_proposals_hash, "applied-proposals hash"),
        _check_hash(suite, bundle_root, "bundle root"), bytes(transcript_hash),
    ])
    return suite.hash(LABEL_KS_GROUP_CONTEXT + fields)


def expand_epoch_secret(suite: Suite, member_base: bytes, context: bytes) -> bytes:
    """epoch_secret = ExpandLabel(member_base, "ks v2 epoch secret", group_context, Nh). Only
    `derive_epoch_v2` and the vectors call this; never store the result."""
    return suite.expand_label(_check_hash(suite, member_base, "member_base"),
                              LABEL_KS2_EPOCH_SECRET,
                              _check_hash(suite, context, "group context"), suite.hash_len)


def confirmation_tag(suite: Suite, epoch_secret: bytes, context: bytes) -> bytes:
    """MAC(ExpandLabel(epoch_secret, "ks v2 confirmation key", "", Nh), group_context)."""
    key = suite.expand_label(_check_hash(suite, epoch_secret, "epoch secret"),
                             LABEL_KS2_CONFIRMATION_KEY, b"", suite.hash_len)
    return suite.hmac(key, _check_hash(suite, context, "group context"))


@dataclass(frozen=True, repr=False)
class EpochSecretsV2:
    """Everything a version-2 epoch derives from its epoch secret (which is not kept).

    `control_mailbox` and `control_traffic_key` are the epoch's own control mailbox, where its
    epoch change happens; `confirmation_tag` is what round-3 items and every recipient check.
    """

    suite: Suite
    chain_roots: tuple[bytes, ...]
    sender_data_secret: bytes
    mailbox: MailboxKeys
    control_mailbox: MailboxKeys
    control_traffic_key: bytes
    epoch_id: bytes
    init_secret_next: bytes
    confirmation_tag: bytes

    @property
    def roster_size(self) -> int:
        return len(self.chain_roots)

    def chain_root(self, index: int) -> bytes:
        """The sending-chain root of the member at roster position `index` (0..n-1)."""
        if type(index) is not int or not 0 <= index < len(self.chain_roots):
            raise UsageError(f"member index must be 0..{len(self.chain_roots) - 1}")
        return self.chain_roots[index]

    def check_confirmation_tag(self, tag: bytes) -> None:
        """Raise `AuthenticationError` unless `tag` is this epoch's confirmation tag."""
        if not isinstance(tag, bytes | bytearray) or not hmac.compare_digest(
                bytes(tag), self.confirmation_tag):
            raise AuthenticationError("confirmation tag does not match the epoch secret")

    def __repr__(self) -> str:
        return (
            f"EpochSecretsV2(suite={self.suite.name}, n={self.roster_size}, "
            f"epoch_id={self.epoch_id.hex()}, mailbox_id={self.mailbox.mailbox_id.hex()}, "
            f"control_mailbox_id={self.control_mailbox.mailbox_id.hex()}, <secrets redacted>)"
        )


def _chain_roots_v2(suite: Suite, secret: bytes, roster_size: int) -> tuple[bytes, ...]:
    """`ExpandLabel(epoch_secret, "ks v2 chain root", u32(i), Nh)` for i in 0..roster_size-1.

    One output block each, so each is `HMAC(secret, info_i ‖ 0x01)` (RFC 5869 2.3), and the
    info strings differ only in their last four bytes (the context `u32(i)`; its length is
    fixed): the HMAC key's inner and outer states are set up once (`KeyedHmac`, as chain steps
    do) instead of `hmac.digest` looking its implementation up 1,000 times. Equality with
    `expand_label` is tested (tests/test_group_v2_fastpath.py)."""
    h = suite.hash_len
    # label_info(label, u32(i), h) is this prefix followed by u32(i).
    prefix = suite.label_info(LABEL_KS2_CHAIN_ROOT, _u32(0), h)[:-4]
    mac = KeyedHmac(suite, secret)
    return tuple(mac.digest(b"".join((prefix, _u32(i), b"\x01"))) for i in range(roster_size))


def derive_epoch_v2(suite: Suite, member_base: bytes, context: bytes,
                    roster_size: int) -> EpochSecretsV2:
    """Every value of the new epoch from member_base and the group context, at once.

    `roster_size` is the new roster's size (one chain root per member, roster order)."""
    if type(roster_size) is not int or not 1 <= roster_size <= MAX_GROUP_SIZE_V2:
        raise LimitExceeded(f"roster size must be 1..{MAX_GROUP_SIZE_V2}")
    secret = expand_epoch_secret(suite, member_base, context)
    h = suite.hash_len
    roots = _chain_roots_v2(suite, secret, roster_size)
    out = EpochSecretsV2(
        suite=suite,
        chain_roots=roots,
        sender_data_secret=suite.expand_label(secret, LABEL_KS2_SENDER_DATA, b"", h),
        mailbox=MailboxKeys.from_seed(
            suite, suite.expand_label(secret, LABEL_KS2_GROUP_MAILBOX_SEED, b"",
                                      MAILBOX_SEED_LEN)),
        control_mailbox=MailboxKeys.from_seed(
            suite, suite.expand_label(secret, LABEL_KS2_CONTROL_MAILBOX_SEED, b"",
                                      MAILBOX_SEED_LEN)),
        control_traffic_key=suite.expand_label(secret, LABEL_KS2_CONTROL_TRAFFIC_KEY, b"",
                                               suite.aead_key_len),
        epoch_id=suite.expand_label(secret, LABEL_KS2_EPOCH_ID, b"", EPOCH_ID_LEN),
        init_secret_next=suite.expand_label(secret, LABEL_KS2_INIT_SECRET, b"", h),
        confirmation_tag=confirmation_tag(suite, secret, context),
    )
    # `secret` goes out of scope here; Python cannot wipe it (spec 13, honest limits).
    del secret
    return out


__all__ = [
    "EPOCH_ID_LEN",
    "LABEL_KS2_CHAIN_ROOT",
    "LABEL_KS2_CONFIRMATION_KEY",
    "LABEL_KS2_CONTROL_MAILBOX_SEED",
    "LABEL_KS2_CONTROL_TRAFFIC_KEY",
    "LABEL_KS2_EPOCH_ID",
    "LABEL_KS2_EPOCH_SECRET",
    "LABEL_KS2_GROUP_MAILBOX_SEED",
    "LABEL_KS2_INIT_SECRET",
    "LABEL_KS2_SENDER_DATA",
    "LABEL_KS_DKG_EXTENSION",
    "LABEL_KS_GROUP_CONTEXT",
    "LABEL_KS_RUN",
    "MAX_COMMITTEE",
    "MAX_GROUP_SIZE_PQ",
    "MAX_GROUP_SIZE_V2",
    "PAYLOAD_LEN",
    "TRANSCRIPT_HASH_LEN",
    "EpochSecretsV2",
    "MailboxKeys",
    "confirmation_tag",
    "derive_epoch_v2",
    "expand_epoch_secret",
    "extract_commit_secret",
    "extract_member_base",
    "group_context",
    "initial_init_secret",
    "max_group_size",
    "run_extension",
    "run_session_id",
]
