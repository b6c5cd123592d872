"""The Double Ratchet with header encryption (spec/05-double-ratchet.md).

Signal's algorithm, header-encrypted variant (RatchetInitAliceHE/BobHE, RatchetEncryptHE,
RatchetDecryptHE), with the choices this project makes:

- KDF_RK is the suite's HKDF under our own label; KDF_CK is HMAC with two distinct constants.
- A message is fixed-layout bytes, not CBOR: ``version ‖ nonce ‖ enc_header ‖ body``. The header
  (ratchet public key, PN, N) has a fixed size per suite, so parsing is slicing.
- The header is encrypted under the header key with a random nonce; the body is encrypted under
  the one-time message key with the same nonce (a message key is used once, so any nonce would do;
  reusing the random one costs nothing and keeps (key, nonce) pairs distinct even if an old saved
  state is restored and a message key is used twice).
- Skipped message keys are bounded per step, in total and in the number of chains they belong to;
  the oldest are evicted first.
- Every `decrypt` is a transaction: all new values are computed into locals and assigned only after
  the body authenticated, so a failure leaves the state exactly as it was.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from triple_ratchet import cbor
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    LimitExceeded,
    ProtocolError,
    ReplayError,
    StateError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.random import RandomSource, system_random
from triple_ratchet.suites import DhPrivateKey, DhPublicKey, Suite, suite_by_id

# --- Labels and constants (spec/05-double-ratchet.md, "Key derivation") ----------------------

# HKDF label of the initial derivation: root key and the two shared header keys.
LABEL_DR_INIT = b"double ratchet init"
# HKDF label of KDF_RK: next root key, chain key, next header key.
LABEL_DR_ROOT = b"double ratchet root"
# HMAC messages of KDF_CK (the chain key is the HMAC key).
LABEL_DR_CHAIN_MESSAGE = b"double ratchet chain message key"
LABEL_DR_CHAIN_NEXT = b"double ratchet chain next key"

MESSAGE_VERSION = 1
_VERSION_BYTE = bytes((MESSAGE_VERSION,))
STATE_VERSION = 1
HEADER_KEY_LEN = 32
# PN and N are 32-bit: 2^32 messages in one chain is out of reach, and 8 bytes keep headers small.
_COUNTERS = struct.Struct(">II")
_MAX_COUNTER = 0xFFFFFFFF
# Associated data is stored in the state; 64 KiB is far above any AD the handshake builds.
MAX_ASSOCIATED_DATA = 0xFFFF
MIN_SHARED_SECRET = 32


# Absolute caps on the configurable limits. A saved state must decode under the CBOR layer's
# default limits (1 MiB, 100 000 items): 20 000 keys take about 0.8 MB and 60 000 items.
MAX_SKIPPED_KEYS_CAP = 20_000
# Each stored chain costs one header trial decryption per incoming message.
MAX_SKIPPED_CHAINS_CAP = 1_000


@dataclass(frozen=True)
class Limits:
    """Bounds on what a peer can make a session store or compute.

    - `max_skip` (1000): the most message keys one incoming message may make us skip in one chain
      (Signal's suggested order of magnitude). It bounds the work a single message can cause
      to about 2 x 1000 HMACs per chain, and still tolerates long bursts of lost messages. A new
      chain that leaves more than this behind in the old one is still accepted: only `max_skip`
      of the old chain's keys are derived and kept (refusing it would end the session).
    - `max_skipped_keys` (2000): the most skipped message keys kept in total. Beyond it the oldest
      are evicted (their messages then fail with `ReplayError`), so memory and state size stay
      bounded (~100 KB) whatever the peer does.
    - `max_skipped_chains` (5): the most distinct old header keys kept; every incoming message is
      trial-decrypted against each, so this bounds the cost of inbox spam to 2 + 5 header AEADs.
      The oldest chain is evicted whole.
    - `max_message_size` (1 MiB): the largest message blob accepted or produced, checked before
      any cryptography; it matches the CBOR layer's default size limit and leaves room for a
      welcome to a large group.
    """

    max_skip: int = 1000
    max_skipped_keys: int = 2000
    max_skipped_chains: int = 5
    max_message_size: int = 1 << 20

    def __post_init__(self) -> None:
        for name, cap in (("max_skip", MAX_SKIPPED_KEYS_CAP),
                          ("max_skipped_keys", MAX_SKIPPED_KEYS_CAP),
                          ("max_skipped_chains", MAX_SKIPPED_CHAINS_CAP),
                          ("max_message_size", _MAX_COUNTER)):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= cap:
                raise UsageError(f"Limits.{name} must be an integer in [0, {cap}]")
        if self.max_skip > self.max_skipped_keys:
            raise UsageError("Limits.max_skip must not exceed Limits.max_skipped_keys")

    def _to_list(self) -> list[int]:
        return [self.max_skip, self.max_skipped_keys, self.max_skipped_chains,
                self.max_message_size]


DEFAULT_LIMITS = Limits()


# --- KDFs (public so the vectors can check them one by one) -------------------------------


def initial_keys(suite: Suite, shared_secret: bytes, associated_data: bytes
                 ) -> tuple[bytes, bytes, bytes]:
    """(root key, HKa, NHKb) from the handshake's shared secret, bound to the associated data.

    HKa is the initiator's first sending header key; NHKb the responder's first one.
    """
    out = suite.derive_secret(b"", shared_secret, LABEL_DR_INIT, associated_data,
                              suite.hash_len + 2 * HEADER_KEY_LEN)
    h = suite.hash_len
    return out[:h], out[h:h + HEADER_KEY_LEN], out[h + HEADER_KEY_LEN:]


def kdf_root(suite: Suite, root_key: bytes, dh_out: bytes) -> tuple[bytes, bytes, bytes]:
    """KDF_RK_HE: (next root key, chain key, next header key)."""
    h = suite.hash_len
    out = suite.derive_secret(root_key, dh_out, LABEL_DR_ROOT, b"", 2 * h + HEADER_KEY_LEN)
    return out[:h], out[h:2 * h], out[2 * h:]


def kdf_chain(suite: Suite, chain_key: bytes) -> tuple[bytes, bytes]:
    """KDF_CK: (next chain key, message key). The message key is the body's AEAD key."""
    return (suite.hmac(chain_key, LABEL_DR_CHAIN_NEXT),
            suite.hmac(chain_key, LABEL_DR_CHAIN_MESSAGE)[:suite.aead_key_len])


def message_overhead(suite: Suite) -> int:
    """Bytes a message adds to its plaintext."""
    return (1 + suite.aead_nonce_len + suite.dh_public_len + _COUNTERS.size
            + 2 * suite.aead_tag_len)


class DoubleRatchet:
    """One party's Double Ratchet session (mutable; every failing call leaves it unchanged)."""

    __slots__ = (
        "_ad", "_body_aad_prefix", "_ckr", "_cks", "_dhr", "_dhs", "_dhs_pub", "_header_aad",
        "_header_end", "_hkr", "_hks", "_limits", "_min_len", "_nhkr", "_nhks", "_nr", "_ns",
        "_pn", "_rk", "_rng", "_skipped", "_skipped_count", "_suite",
    )

    _suite: Suite
    _limits: Limits
    _rng: RandomSource
    _ad: bytes
    _dhs: DhPrivateKey
    _dhs_pub: bytes
    _dhr: bytes | None
    _rk: bytes
    _cks: bytes | None
    _ckr: bytes | None
    _hks: bytes | None
    _hkr: bytes | None
    _nhks: bytes
    _nhkr: bytes
    _ns: int
    _nr: int
    _pn: int
    # header key -> {N -> message key}; chains in the order they were created (oldest first),
    # keys within a chain ascending. Only the newest chain ever grows, so "oldest entry" is the
    # first key of the first chain.
    _skipped: dict[bytes, dict[int, bytes]]
    _skipped_count: int
    _header_aad: bytes
    _body_aad_prefix: bytes
    _header_end: int
    _min_len: int

    def __init__(self) -> None:
        raise UsageError("use DoubleRatchet.initiate, .respond or .from_bytes")

    @classmethod
    def _blank(cls, suite: Suite, associated_data: bytes, limits: Limits,
               rng: RandomSource) -> DoubleRatchet:
        if not isinstance(associated_data, bytes):
            raise UsageError("associated_data must be bytes")
        if len(associated_data) > MAX_ASSOCIATED_DATA:
            raise UsageError("associated_data is longer than 65535 bytes")
        if not isinstance(limits, Limits):
            raise UsageError("limits must be a Limits")
        self = object.__new__(cls)
        self._suite = suite
        self._limits = limits
        self._rng = rng
        self._ad = associated_data
        # Precomputed once: the hot path only slices and concatenates.
        self._header_aad = _VERSION_BYTE + associated_data
        self._body_aad_prefix = associated_data
        self._header_end = (1 + suite.aead_nonce_len + suite.dh_public_len + _COUNTERS.size
                            + suite.aead_tag_len)
        self._min_len = self._header_end + suite.aead_tag_len
        self._skipped = {}
        self._skipped_count = 0
        return self

    # --- Construction -----------------------------------------------------------------------

    @classmethod
    def initiate(cls, suite: Suite, shared_secret: bytes, responder_ratchet_key: DhPublicKey,
                 associated_data: bytes, rng: RandomSource = system_random,
                 limits: Limits = DEFAULT_LIMITS) -> DoubleRatchet:
        """RatchetInitAliceHE: the initiator, who may send at once."""
        _check_secret(shared_secret)
        self = cls._blank(suite, associated_data, limits, rng)
        rk, hka, nhkb = initial_keys(suite, shared_secret, associated_data)
        # Re-decoding checks that the key belongs to this suite and is valid (InvalidKey).
        responder_key = suite.dh_public_from_bytes(responder_ratchet_key.to_bytes())
        self._dhs = suite.generate_dh(rng)
        self._dhs_pub = self._dhs.public_key().to_bytes()
        self._dhr = responder_key.to_bytes()
        self._rk, self._cks, self._nhks = kdf_root(
            suite, rk, self._dhs.exchange(responder_key))
        self._ckr = None
        self._ns = self._nr = self._pn = 0
        self._hks = hka
        self._hkr = None
        self._nhkr = nhkb
        return self

    @classmethod
    def respond(cls, suite: Suite, shared_secret: bytes, own_ratchet_key: DhPrivateKey,
                associated_data: bytes, limits: Limits = DEFAULT_LIMITS,
                rng: RandomSource = system_random) -> DoubleRatchet:
        """RatchetInitBobHE: the responder, who can send only after its first decrypt."""
        _check_secret(shared_secret)
        self = cls._blank(suite, associated_data, limits, rng)
        rk, hka, nhkb = initial_keys(suite, shared_secret, associated_data)
        self._dhs = own_ratchet_key
        self._dhs_pub = own_ratchet_key.public_key().to_bytes()
        if len(self._dhs_pub) != suite.dh_public_len:
            raise UsageError("own_ratchet_key belongs to another suite")
        self._dhr = None
        self._rk = rk
        self._cks = self._ckr = None
        self._ns = self._nr = self._pn = 0
        self._hks = self._hkr = None
        self._nhks = nhkb
        self._nhkr = hka
        return self

    # --- Properties -------------------------------------------------------------------------

    @property
    def suite(self) -> Suite:
        return self._suite

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def associated_data(self) -> bytes:
        """The AD every message of this session is bound to (from the handshake)."""
        return self._ad

    @property
    def can_send(self) -> bool:
        """False only for a responder that has not yet decrypted a message."""
        return self._cks is not None

    @property
    def skipped_key_count(self) -> int:
        return self._skipped_count

    def __repr__(self) -> str:
        return (f"DoubleRatchet(suite={self._suite.name}, can_send={self.can_send}, "
                f"ns={self._ns}, nr={self._nr}, pn={self._pn}, "
                f"skipped={self._skipped_count}, <keys redacted>)")

    # --- Encrypt ----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> bytes:
        """RatchetEncryptHE. Raises `StateError` before the responder's first decrypt."""
        cks = self._cks
        hks = self._hks
        if cks is None or hks is None:
            raise StateError("the responder cannot send before it has decrypted a message")
        if not isinstance(plaintext, bytes):
            raise UsageError("plaintext must be bytes")
        suite = self._suite
        if len(plaintext) + self._min_len > self._limits.max_message_size:
            raise UsageError("plaintext too long for Limits.max_message_size")
        ns = self._ns
        if ns >= _MAX_COUNTER:  # keeps Ns, and so the next PN, within 32 bits
            raise StateError("sending chain exhausted (2^32 - 1 messages)")
        hmac = suite.hmac
        mk = hmac(cks, LABEL_DR_CHAIN_MESSAGE)[:suite.aead_key_len]
        next_cks = hmac(cks, LABEL_DR_CHAIN_NEXT)
        nonce = self._rng(suite.aead_nonce_len)
        header = self._dhs_pub + _COUNTERS.pack(self._pn, ns)
        prefix = _VERSION_BYTE + nonce + suite.aead_encrypt(hks, nonce, header, self._header_aad)
        body = suite.aead_encrypt(mk, nonce, plaintext, self._body_aad_prefix + prefix)
        self._cks = next_cks
        self._ns = ns + 1
        return prefix + body

    # --- Decrypt ----------------------------------------------------------------------------

    def decrypt(self, message: bytes) -> bytes:
        """RatchetDecryptHE. On any error the state is unchanged.

        Trial order, cheapest first: the current receiving header key, then the header keys of
        chains with skipped keys (newest first), then the next header key (a DH ratchet step).
        Errors: `DecodeError` (malformed), `UnsupportedError` (unknown version), `LimitExceeded`
        (too large, too many skips), `AuthenticationError` (no header key opens the header, or
        the body does not verify), `ReplayError` (the header opens under a key we still hold but
        the message key for its number is gone: consumed, or evicted by the limits),
        `ProtocolError`, `InvalidKey` (authentic header breaking the protocol).
        """
        return self._decrypt(message, initial=False)

    def decrypt_initial(self, message: bytes) -> bytes:
        """The responder's first decrypt in a session a handshake started: `message` must be the
        initiator's very first (PN = 0, N = 0), else `ProtocolError` and the state is unchanged.

        The initial message's handshake header is not bound to which ratchet message rides
        with it, so without this check anyone could put a later message of the chain in its
        place: the responder would accept it, and the genuine first message (a welcome) would
        then be refused as a replay of the handshake and lost (spec 04, "Responder").
        """
        if self._dhr is not None or self._cks is not None:
            raise StateError("decrypt_initial is only a responder's first decrypt")
        return self._decrypt(message, initial=True)

    def _decrypt(self, message: bytes, initial: bool) -> bytes:
        if not isinstance(message, bytes):
            raise UsageError("message must be bytes")
        size = len(message)
        if size > self._limits.max_message_size:
            raise LimitExceeded("message larger than Limits.max_message_size")
        if size < self._min_len:
            raise DecodeError("message shorter than its fixed header")
        if message[0] != MESSAGE_VERSION:
            raise UnsupportedError(f"unknown Double Ratchet message version {message[0]}")
        suite = self._suite
        nonce = message[1:1 + suite.aead_nonce_len]
        enc_header = message[1 + suite.aead_nonce_len:self._header_end]
        aead_decrypt = suite.aead_decrypt
        hkr = self._hkr
        if hkr is not None:
            try:
                header = aead_decrypt(hkr, nonce, enc_header, self._header_aad)
            except AuthenticationError:
                pass
            else:
                return self._decrypt_current(header, message, nonce)
        for hk in reversed(self._skipped):
            if hk == hkr:
                continue
            try:
                header = aead_decrypt(hk, nonce, enc_header, self._header_aad)
            except AuthenticationError:
                continue
            return self._decrypt_old_chain(hk, header, message, nonce)
        try:
            header = aead_decrypt(self._nhkr, nonce, enc_header, self._header_aad)
        except AuthenticationError:
            pass
        else:
            return self._decrypt_new_chain(header, message, nonce, initial)
        # Raised outside the handler: no exception rides along as __context__.
        raise AuthenticationError("no header key of this session opens the header")

    def _open_body(self, mk: bytes, nonce: bytes, message: bytes) -> bytes:
        end = self._header_end
        return self._suite.aead_decrypt(mk, nonce, message[end:],
                                        self._body_aad_prefix + message[:end])

    def _decrypt_current(self, header: bytes, message: bytes, nonce: bytes) -> bytes:
        split = self._suite.dh_public_len
        if header[:split] != self._dhr:
            raise ProtocolError("header ratchet key does not match the receiving chain")
        _pn, n = _COUNTERS.unpack(header[split:])
        nr = self._nr
        hkr = self._hkr
        ckr = self._ckr
        if hkr is None or ckr is None:  # unreachable: the header opened under HKr
            raise StateError("no receiving chain")
        if n < nr:
            return self._use_skipped(hkr, n, message, nonce)
        if n - nr > self._limits.max_skip:
            raise LimitExceeded("message would skip more than Limits.max_skip keys")
        skipped, ckr = self._skip(ckr, nr, n)
        suite = self._suite
        mk = suite.hmac(ckr, LABEL_DR_CHAIN_MESSAGE)[:suite.aead_key_len]
        next_ckr = suite.hmac(ckr, LABEL_DR_CHAIN_NEXT)
        plaintext = self._open_body(mk, nonce, message)
        # Commit.
        self._ckr = next_ckr
        self._nr = n + 1
        if skipped:
            self._store_skipped([(hkr, skipped)])
        return plaintext

    def _decrypt_old_chain(self, hk: bytes, header: bytes, message: bytes,
                           nonce: bytes) -> bytes:
        _pn, n = _COUNTERS.unpack(header[self._suite.dh_public_len:])
        return self._use_skipped(hk, n, message, nonce)

    def _use_skipped(self, hk: bytes, n: int, message: bytes, nonce: bytes) -> bytes:
        keys = self._skipped.get(hk)
        mk = keys.get(n) if keys is not None else None
        if keys is None or mk is None:
            raise ReplayError("message key already used or evicted (replayed or too old)")
        plaintext = self._open_body(mk, nonce, message)
        # Commit: the key is deleted from the state, not just marked.
        del keys[n]
        if not keys:
            del self._skipped[hk]
        self._skipped_count -= 1
        return plaintext

    def _decrypt_new_chain(self, header: bytes, message: bytes, nonce: bytes,
                           initial: bool = False) -> bytes:
        suite = self._suite
        limits = self._limits
        split = suite.dh_public_len
        dh_bytes = header[:split]
        pn, n = _COUNTERS.unpack(header[split:])
        if initial and (pn or n):
            raise ProtocolError("the initial message must carry the chain's first message "
                                "(PN = 0, N = 0)")
        if dh_bytes == self._dhr:
            raise ProtocolError("a new chain must come with a new ratchet key")
        old_ckr = self._ckr
        if old_ckr is not None and pn < self._nr:
            raise ProtocolError("PN is below the number of messages already received")
        if n > limits.max_skip:
            raise LimitExceeded("message would skip more than Limits.max_skip keys")
        their_key = suite.dh_public_from_bytes(dh_bytes)
        staged: list[tuple[bytes, list[tuple[int, bytes]]]] = []
        if old_ckr is not None and self._hkr is not None:
            # At most max_skip keys of the old chain (bounded work). A longer loss is not a
            # reason to refuse the new chain: that would end the session for good, since the
            # peer's PN stays the same until we answer it. Keys beyond are given up: those
            # messages then fail as replays (spec 05, "Skipped message keys").
            old_skipped, _ = self._skip(old_ckr, self._nr,
                                        min(pn, self._nr + limits.max_skip))
            if old_skipped:
                staged.append((self._hkr, old_skipped))
        # DHRatchetHE, on locals.
        rk, ckr, nhkr = kdf_root(suite, self._rk, self._dhs.exchange(their_key))
        new_dhs = suite.generate_dh(self._rng)
        rk, cks, nhks = kdf_root(suite, rk, new_dhs.exchange(their_key))
        hkr = self._nhkr
        new_skipped, ckr = self._skip(ckr, 0, n)
        if new_skipped:
            staged.append((hkr, new_skipped))
        mk = suite.hmac(ckr, LABEL_DR_CHAIN_MESSAGE)[:suite.aead_key_len]
        next_ckr = suite.hmac(ckr, LABEL_DR_CHAIN_NEXT)
        plaintext = self._open_body(mk, nonce, message)
        # Commit.
        self._pn = self._ns
        self._ns = 0
        self._nr = n + 1
        self._hks = self._nhks
        self._hkr = hkr
        self._dhr = dh_bytes
        self._rk = rk
        self._ckr = next_ckr
        self._nhkr = nhkr
        self._dhs = new_dhs
        self._dhs_pub = new_dhs.public_key().to_bytes()
        self._cks = cks
        self._nhks = nhks
        if staged:
            self._store_skipped(staged)
        return plaintext

    def _skip(self, ck: bytes, start: int, until: int) -> tuple[list[tuple[int, bytes]], bytes]:
        """Message keys start..until-1 of a chain and the chain key after them (no commit)."""
        suite = self._suite
        hmac = suite.hmac
        key_len = suite.aead_key_len
        out: list[tuple[int, bytes]] = []
        for i in range(start, until):
            out.append((i, hmac(ck, LABEL_DR_CHAIN_MESSAGE)[:key_len]))
            ck = hmac(ck, LABEL_DR_CHAIN_NEXT)
        return out, ck

    def _store_skipped(self, staged: list[tuple[bytes, list[tuple[int, bytes]]]]) -> None:
        skipped = self._skipped
        for hk, entries in staged:
            chain = skipped.setdefault(hk, {})
            chain.update(entries)
            self._skipped_count += len(entries)
        limits = self._limits
        # Evict oldest first: whole chains beyond the chain limit, then single keys.
        while len(skipped) > limits.max_skipped_chains:
            oldest = next(iter(skipped))
            self._skipped_count -= len(skipped.pop(oldest))
        while self._skipped_count > limits.max_skipped_keys:
            oldest = next(iter(skipped))
            chain = skipped[oldest]
            del chain[next(iter(chain))]
            if not chain:
                del skipped[oldest]
            self._skipped_count -= 1

    # --- Serialized state ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state as canonical CBOR (spec/05-double-ratchet.md, "Serialized state")."""
        return cbor.encode([
            STATE_VERSION,
            self._suite.suite_id,
            self._limits._to_list(),
            self._ad,
            self._dhs.to_bytes(),
            self._dhr,
            self._rk,
            self._cks,
            self._ckr,
            self._hks,
            self._hkr,
            self._nhks,
            self._nhkr,
            self._ns,
            self._nr,
            self._pn,
            [[hk, [[n, mk] for n, mk in chain.items()]] for hk, chain in self._skipped.items()],
        ])

    @classmethod
    def from_bytes(cls, data: bytes, rng: RandomSource = system_random) -> DoubleRatchet:
        """Restore a state written by `to_bytes`; every field is checked (`DecodeError`)."""
        fields = cbor.as_list(cbor.decode(data), "double ratchet state", 17)
        version = cbor.as_int(fields[0], "state version")
        if version != STATE_VERSION:
            raise UnsupportedError(f"unknown Double Ratchet state version {version}")
        suite = suite_by_id(cbor.as_int(fields[1], "suite id", maximum=0xFFFF))
        raw_limits = cbor.as_list(fields[2], "limits", 4)
        values = [cbor.as_int(v, "limit", maximum=_MAX_COUNTER) for v in raw_limits]
        reason = ""
        try:
            limits = Limits(*values)
        except UsageError as exc:
            reason = str(exc)
        if reason:  # raised outside the handler: no __context__
            raise DecodeError(f"limits: {reason}")
        ad = cbor.as_bytes(fields[3], "associated data", max_length=MAX_ASSOCIATED_DATA)
        self = cls._blank(suite, ad, limits, rng)
        h = suite.hash_len

        def key(i: int, what: str, length: int) -> bytes:
            return cbor.as_bytes(fields[i], what, length)

        def optional(i: int, what: str, length: int) -> bytes | None:
            return None if fields[i] is None else key(i, what, length)

        self._dhs = suite.dh_private_from_bytes(
            cbor.as_bytes(fields[4], "DHs", suite.dh_private_len))
        self._dhs_pub = self._dhs.public_key().to_bytes()
        dhr = optional(5, "DHr", suite.dh_public_len)
        if dhr is not None:
            suite.dh_public_from_bytes(dhr)
        self._dhr = dhr
        self._rk = key(6, "RK", h)
        self._cks = optional(7, "CKs", h)
        self._ckr = optional(8, "CKr", h)
        self._hks = optional(9, "HKs", HEADER_KEY_LEN)
        self._hkr = optional(10, "HKr", HEADER_KEY_LEN)
        self._nhks = key(11, "NHKs", HEADER_KEY_LEN)
        self._nhkr = key(12, "NHKr", HEADER_KEY_LEN)
        self._ns = cbor.as_int(fields[13], "Ns", maximum=_MAX_COUNTER)
        self._nr = cbor.as_int(fields[14], "Nr", maximum=_MAX_COUNTER + 1)
        self._pn = cbor.as_int(fields[15], "PN", maximum=_MAX_COUNTER)
        if (self._cks is None) != (self._hks is None) or (self._ckr is None) != (
                self._hkr is None):
            raise DecodeError("chain key and header key must be present together")
        if self._dhr is None and (self._cks is not None or self._ckr is not None):
            raise DecodeError("chains present without a remote ratchet key")
        if self._cks is None and self._ns:
            raise DecodeError("Ns must be 0 without a sending chain")
        if self._ckr is None and self._nr:
            raise DecodeError("Nr must be 0 without a receiving chain")
        chains = cbor.as_list(fields[16], "skipped keys")
        if len(chains) > limits.max_skipped_chains:
            raise DecodeError("more skipped chains than Limits.max_skipped_chains")
        count = 0
        for raw_chain in chains:
            pair = cbor.as_list(raw_chain, "skipped chain", 2)
            hk = cbor.as_bytes(pair[0], "skipped header key", HEADER_KEY_LEN)
            if hk in self._skipped:
                raise DecodeError("skipped chain listed twice")
            entries = cbor.as_list(pair[1], "skipped entries")
            if not entries:
                raise DecodeError("empty skipped chain")
            chain: dict[int, bytes] = {}
            previous = -1
            for raw_entry in entries:
                entry = cbor.as_list(raw_entry, "skipped entry", 2)
                n = cbor.as_int(entry[0], "skipped N", maximum=_MAX_COUNTER)
                if n <= previous:
                    raise DecodeError("skipped keys must be in ascending order")
                previous = n
                chain[n] = cbor.as_bytes(entry[1], "skipped message key", suite.aead_key_len)
            count += len(chain)
            self._skipped[hk] = chain
        if count > limits.max_skipped_keys:
            raise DecodeError("more skipped keys than Limits.max_skipped_keys")
        self._skipped_count = count
        return self


def _check_secret(shared_secret: bytes) -> None:
    if not isinstance(shared_secret, bytes) or len(shared_secret) < MIN_SHARED_SECRET:
        raise UsageError("shared_secret must be at least 32 bytes")


__all__ = [
    "DEFAULT_LIMITS",
    "LABEL_DR_CHAIN_MESSAGE",
    "LABEL_DR_CHAIN_NEXT",
    "LABEL_DR_INIT",
    "LABEL_DR_ROOT",
    "MESSAGE_VERSION",
    "STATE_VERSION",
    "DoubleRatchet",
    "Limits",
    "initial_keys",
    "kdf_chain",
    "kdf_root",
    "message_overhead",
]
