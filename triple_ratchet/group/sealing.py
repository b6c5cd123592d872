"""Sealing the new epoch's secret to every member outside the committee (rule R2, spec 11 v2).

For recipient i of a commit (RFC 9180 HPKE base mode, single shot, `hpke_for_suite`)::

    seal_secret = ExpandLabel(commit_secret, "ks v2 seal secret", run_session_id, Nh)
    info_i      = CBOR["triple-ratchet v2 seal", suite, group id, e+1, run_session_id,
                       identity_i, new roster hash]
    ikmE_i      = ExpandLabel(seal_secret, "ks v2 seal ephemeral",
                              CBOR[identity_i, pk_i, info_i, plaintext_i], 32)
    (enc_i, ct_i) = HPKE.Seal(pk_i, info_i, aad = "", plaintext_i, ephemeral DeriveKeyPair(ikmE_i))

so every committee member computes the same bundle, and a wrong sealing can be recomputed and
convicted (R9). Every sealing hangs on the new `commit_secret` (`member_base` mixes it with
`init_secret(e)`) and on the recipient's private key: a removed member holding all of epoch e
opens nothing.

The bundle is committed to by a Merkle root over leaves `H(0x00 ‖ CBOR[i, identity_i, enc_i,
ct_i])` (i the recipient's index in the new roster) in bundle (roster) order, nodes
`H(0x01 ‖ left ‖ right)`, a level's odd last node promoted unchanged, and `H(0x02)` for an empty
bundle; `H` is the protocol suite's hash. Spec: 11-epoch-change.md, 11.v2.12; labels in 08 v2.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.errors import AuthenticationError, DecodeError, LimitExceeded, UsageError
from triple_ratchet.group.message import MAX_GROUP_ID_LEN
from triple_ratchet.group.records import MAX_IDENTITY_LEN
from triple_ratchet.suites import Suite
from triple_ratchet.suites.hpke import HpkeSuite, hpke_for_suite

# --- Labels (spec 08 v2 and 11.v2.12). expand_label binds the protocol label and suite id. -----
LABEL_KS2_SEAL_SECRET = b"ks v2 seal secret"
LABEL_KS2_SEAL_EPHEMERAL = b"ks v2 seal ephemeral"
LABEL_V2_SEAL_INFO = b"triple-ratchet v2 seal"

# Domain bytes of the bundle's Merkle tree (leaf, inner node, empty tree).
MERKLE_LEAF = b"\x00"
MERKLE_NODE = b"\x01"
MERKLE_EMPTY = b"\x02"

MAX_SEALINGS = 1000
"""A bundle seals to at most every member of a version 2 roster (MAX_GROUP_SIZE, R13)."""
MAX_EPOCH = 2**64 - 1
AAD = b""
"""The AEAD associated data of a sealing: empty, `info` binds everything (Decisions, HPKE)."""


def _check_bytes(value: object, what: str, low: int, high: int) -> bytes:
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        raise UsageError(f"{what} must be {low}..{high} bytes")
    return value


@dataclass(frozen=True)
class SealingContext:
    """The fields of `info_i` shared by every sealing of one commit (all public)."""

    suite: Suite
    group_id: bytes
    epoch: int  # e+1: the epoch the commit begins
    run_session_id: bytes
    roster_hash: bytes

    def __post_init__(self) -> None:
        nh = self.suite.hash_len
        _check_bytes(self.group_id, "group id", 1, MAX_GROUP_ID_LEN)
        _check_bytes(self.run_session_id, "run_session_id", nh, nh)
        _check_bytes(self.roster_hash, "roster hash", nh, nh)
        if type(self.epoch) is not int or not 1 <= self.epoch <= MAX_EPOCH:
            raise UsageError("a sealing's epoch (e+1) must be an integer in 1..2**64-1")

    @property
    def hpke(self) -> HpkeSuite:
        return hpke_for_suite(self.suite)

    def info(self, identity: bytes) -> bytes:
        """`info_i` of the recipient `identity`."""
        _check_bytes(identity, "identity", 1, MAX_IDENTITY_LEN)
        return cbor.encode_flat((LABEL_V2_SEAL_INFO, self.suite.suite_id, self.group_id,
                                 self.epoch, self.run_session_id, identity, self.roster_hash))


@dataclass(frozen=True)
class Sealing:
    """One recipient's `(enc_i, ct_i)`."""

    enc: bytes
    ct: bytes


@dataclass(frozen=True, repr=False)
class Recipient:
    """Who a sealing goes to, with what: `plaintext` is `member_base` or `commit_secret`."""

    roster_index: int  # its index in the new roster (epoch e+1), bound into its Merkle leaf
    identity: bytes
    public_key: bytes  # the receive key of the record the commit applies (Decisions 8)
    plaintext: bytes

    def __repr__(self) -> str:
        return (f"Recipient(roster_index={self.roster_index}, "
                f"identity={self.identity.hex()[:16]}…, <plaintext redacted>)")


@dataclass(frozen=True)
class Bundle:
    """The sealings of one commit, in roster order, and their Merkle root."""

    sealings: tuple[Sealing, ...]
    root: bytes


def seal_secret(suite: Suite, commit_secret: bytes, run_session_id: bytes) -> bytes:
    """`ExpandLabel(commit_secret, "ks v2 seal secret", run_session_id, Nh)`."""
    nh = suite.hash_len
    _check_bytes(commit_secret, "commit_secret", nh, nh)
    _check_bytes(run_session_id, "run_session_id", nh, nh)
    return suite.expand_label(commit_secret, LABEL_KS2_SEAL_SECRET, run_session_id, nh)


def ephemeral_ikm(context: SealingContext, secret: bytes, recipient: Recipient) -> bytes:
    """`ikmE_i`: a change to any one input of the sealing changes it (and so the ephemeral)."""
    suite = context.suite
    _check_bytes(secret, "seal_secret", suite.hash_len, suite.hash_len)
    _check_bytes(recipient.plaintext, "sealed plaintext", suite.hash_len, suite.hash_len)
    info = context.info(recipient.identity)
    bound = cbor.encode_flat((recipient.identity, recipient.public_key, info, recipient.plaintext))
    return suite.expand_label(secret, LABEL_KS2_SEAL_EPHEMERAL, bound, context.hpke.kem.n_ikm)


def seal_to(context: SealingContext, secret: bytes, recipient: Recipient) -> Sealing:
    """Recipient i's sealing under `secret` (= `seal_secret(...)`); a bad key is `InvalidKey`."""
    # `ikm_e` binds the public key as given; `seal` validates it before any use.
    ikm_e = ephemeral_ikm(context, secret, recipient)
    enc, ct = context.hpke.seal(recipient.public_key, context.info(recipient.identity), AAD,
                                recipient.plaintext, ikm_e)
    return Sealing(enc, ct)


def seal_bundle(context: SealingContext, commit_secret: bytes,
                recipients: Sequence[Recipient]) -> Bundle:
    """Every sealing of a commit, in the given (roster) order, and the bundle root."""
    if len(recipients) > MAX_SEALINGS:
        raise LimitExceeded(f"a bundle seals to at most {MAX_SEALINGS} members")
    indices = [r.roster_index for r in recipients]
    if any(type(i) is not int or not 0 <= i < MAX_SEALINGS for i in indices):
        raise UsageError(f"a roster index must be an integer in 0..{MAX_SEALINGS - 1}")
    if any(b <= a for a, b in pairwise(indices)):
        raise UsageError("recipients must be in roster order (increasing roster indices)")
    secret = seal_secret(context.suite, commit_secret, context.run_session_id)
    sealings = tuple(seal_to(context, secret, r) for r in recipients)
    suite = context.suite
    return Bundle(sealings, merkle_root(suite, pair_leaves(
        suite, [(r.roster_index, r.identity) for r in recipients],
        [(s.enc, s.ct) for s in sealings])))


def open_sealing(context: SealingContext, identity: bytes, private_key: bytes,
                 sealing: Sealing) -> bytes:
    """Open our own sealing with our receive private key: the sealed `member_base` or
    `commit_secret`. A malformed `enc` is `InvalidKey`/`DecodeError`, anything else that does not
    open (wrong key, other epoch, altered bytes) `AuthenticationError`."""
    hpke = context.hpke
    expected_ct = context.suite.hash_len + hpke.aead.n_t
    if not isinstance(sealing.ct, bytes) or len(sealing.ct) != expected_ct:
        raise DecodeError(f"a sealing's ciphertext must be {expected_ct} bytes")
    return hpke.open(private_key, sealing.enc, context.info(identity), AAD, sealing.ct)


# --- Merkle tree ---------------------------------------------------------------------------------


def leaf_hash(suite: Suite, roster_index: int, identity: bytes, sealing: Sealing) -> bytes:
    """`H(0x00 ‖ CBOR[i, identity_i, enc_i, ct_i])`, `i` the recipient's new-roster index."""
    if type(roster_index) is not int or not 0 <= roster_index < MAX_SEALINGS:
        raise UsageError(f"a roster index must be 0..{MAX_SEALINGS - 1}")
    return suite.hash(
        MERKLE_LEAF + cbor.encode_flat((roster_index, identity, sealing.enc, sealing.ct)))


def leaves(suite: Suite, recipients: Sequence[Recipient],
           sealings: Sequence[Sealing]) -> list[bytes]:
    """The bundle's leaves, in bundle order (leaf p is recipient p's)."""
    if len(recipients) != len(sealings):
        raise UsageError("one recipient per sealing")
    return [leaf_hash(suite, r.roster_index, r.identity, s)
            for r, s in zip(recipients, sealings, strict=True)]


# Leaf encodings begin `0x00 ‖ 0x84 ‖ CBOR(i)`: one per possible index, by the general encoder.
_LEAF_HEADS = tuple(MERKLE_LEAF + cbor.encode_flat((i, b"", b"", b""))[:-3]
                    for i in range(MAX_SEALINGS))


@functools.cache
def _hash_function(suite: Suite) -> Callable[[bytes], Any]:
    """The suite's hash constructor from hashlib, looked up once (the tree hashes ~2n times)."""
    constructor: Callable[[bytes], Any] = getattr(hashlib, suite.hash_name)
    return constructor


def pair_leaves(suite: Suite, members: Sequence[tuple[int, bytes]],
                pairs: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """`leaf_hash(suite, i, identity, Sealing(enc, ct))` of each recipient `(i, identity)` and
    its pair `(enc, ct)`, in order: what a reader hashes for a commit's n pairs. The leaf
    encoding is joined from the fields and their byte-string heads instead of going through
    the general encoder (equality with `leaf_hash` is tested)."""
    if len(members) != len(pairs):
        raise UsageError("one recipient per sealing")
    hash_function = _hash_function(suite)
    head = cbor.bstr_head
    out = []
    for (index, identity), (enc, ct) in zip(members, pairs, strict=True):
        if type(index) is not int or not 0 <= index < MAX_SEALINGS:
            raise UsageError(f"a roster index must be 0..{MAX_SEALINGS - 1}")
        if type(identity) is bytes and type(enc) is bytes and type(ct) is bytes:
            out.append(hash_function(b"".join((
                _LEAF_HEADS[index], head(len(identity)), identity, head(len(enc)), enc,
                head(len(ct)), ct))).digest())
        else:  # other bytes-like values: the general path encodes them alike
            out.append(leaf_hash(suite, index, identity, Sealing(enc, ct)))
    return out


def _parent(suite: Suite, left: bytes, right: bytes) -> bytes:
    return suite.hash(MERKLE_NODE + left + right)


def merkle_root(suite: Suite, leaf_hashes: Sequence[bytes]) -> bytes:
    """The root over `leaf_hashes`: pairs hashed level by level, an odd last node promoted."""
    if not leaf_hashes:
        return suite.hash(MERKLE_EMPTY)
    # `_parent` inlined with the hash constructor looked up once: n - 1 inner nodes.
    hash_function = _hash_function(suite)
    level = list(leaf_hashes)
    while len(level) > 1:
        # zip stops before an odd last node, which is promoted below
        nxt = [hash_function(MERKLE_NODE + left + right).digest()
               for left, right in zip(level[0::2], level[1::2], strict=False)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_path(suite: Suite, leaf_hashes: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """The sibling hashes from leaf position `index` up to the root (none at a level where the
    node is promoted)."""
    if type(index) is not int or not 0 <= index < len(leaf_hashes):
        raise UsageError("Merkle path index outside the bundle")
    path: list[bytes] = []
    level, pos = list(leaf_hashes), index
    while len(level) > 1:
        sibling = pos ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        nxt = [_parent(suite, level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, pos = nxt, pos // 2
    return tuple(path)


def verify_merkle_path(suite: Suite, root: bytes, size: int, index: int, leaf: bytes,
                       path: Sequence[bytes]) -> None:
    """Check that `leaf` is at position `index` of a bundle of `size` sealings under `root`.

    Malformed input (a size or index out of range, a hash of the wrong length) is a
    `DecodeError`; a path that does not lead to `root`, including one with too few or too many
    hashes for (`index`, `size`), is an `AuthenticationError` (spec 11.v2.12).
    """
    nh = suite.hash_len
    if type(size) is not int or not 1 <= size <= MAX_SEALINGS:
        raise DecodeError(f"bundle size must be 1..{MAX_SEALINGS}")
    if type(index) is not int or not 0 <= index < size:
        raise DecodeError("Merkle path index outside the bundle")
    if any(not isinstance(p, bytes) or len(p) != nh for p in (root, leaf, *path)):
        raise DecodeError(f"Merkle hashes must be {nh} bytes")
    node, pos, width, used = leaf, index, size, 0
    while width > 1:
        if pos % 2 or pos + 1 < width:  # a sibling exists at this level
            if used == len(path):
                raise AuthenticationError("Merkle path too short for its position and bundle size")
            sibling = path[used]
            used += 1
            node = _parent(suite, sibling, node) if pos % 2 else _parent(suite, node, sibling)
        pos, width = pos // 2, (width + 1) // 2
    if used != len(path):
        raise AuthenticationError("Merkle path too long for its position and bundle size")
    if not hmac.compare_digest(node, root):
        raise AuthenticationError("Merkle path does not lead to the bundle root")


__all__ = [
    "AAD",
    "LABEL_KS2_SEAL_EPHEMERAL",
    "LABEL_KS2_SEAL_SECRET",
    "LABEL_V2_SEAL_INFO",
    "MAX_SEALINGS",
    "Bundle",
    "Recipient",
    "Sealing",
    "SealingContext",
    "ephemeral_ikm",
    "leaf_hash",
    "leaves",
    "merkle_path",
    "merkle_root",
    "open_sealing",
    "pair_leaves",
    "seal_bundle",
    "seal_secret",
    "seal_to",
    "verify_merkle_path",
]
