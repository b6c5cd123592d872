"""`PairwiseSession`: the one-to-one recipe apps use (spec/04-handshake.md, "Pairwise session").

The handshake gives the shared secret and associated data; a header-encrypted Double Ratchet
carries every message, the first one inside the initial message. Session messages are framed as
CBOR `[MSG_TYPE_PAIRWISE, ratchet message]` so an inbox can tell them from initial messages
without trial decryption. Every failing call leaves the session (and the responder's account)
exactly as it was.
"""

from __future__ import annotations

from triple_ratchet import cbor
from triple_ratchet.double_ratchet import DoubleRatchet, Limits
from triple_ratchet.errors import (
    DecodeError,
    LimitExceeded,
    ProtocolError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.handshake import (
    MSG_TYPE_INITIAL,
    accept,
    initiate,
)
from triple_ratchet.identity import (
    Account,
    Identity,
    IdentityKeyPair,
    PrekeyBundle,
    SafetyNumber,
    safety_number,
)
from triple_ratchet.random import RandomSource, system_random

MSG_TYPE_PAIRWISE = 0x11
PAIRWISE_STATE_VERSION = 1
# The CBOR frame around a ratchet message: array head, type, byte-string head (at most 9 bytes).
_FRAME_OVERHEAD = 11


def message_type(blob: bytes) -> int:
    """The wire type of an inbox blob without decoding it: `MSG_TYPE_INITIAL` (start a session
    with `PairwiseSession.respond`) or `MSG_TYPE_PAIRWISE` (for an existing session).
    `UnsupportedError` for another type number, `DecodeError` for anything else."""
    if not isinstance(blob, bytes):
        raise UsageError("blob must be bytes")
    # An initial message is a 7-element CBOR array (9 in a hybrid suite), a session message a
    # 2-element one; all start with their type as a one-byte integer (canonical CBOR makes
    # these bytes fixed).
    if len(blob) < 2 or blob[0] >> 5 != 4:
        raise DecodeError("not a CBOR array")
    if (blob[0], blob[1]) in ((0x87, MSG_TYPE_INITIAL), (0x89, MSG_TYPE_INITIAL),
                              (0x82, MSG_TYPE_PAIRWISE)):
        return blob[1]
    if blob[1] >> 5 == 0 and blob[1] not in (MSG_TYPE_INITIAL, MSG_TYPE_PAIRWISE):
        raise UnsupportedError("unknown message type")
    raise DecodeError("not a pairwise initial or session message")


def _bound_to(ad: bytes, own: Identity, peer: Identity) -> bool:
    """Whether the handshake's AD (spec 04: [suite, IK_sig_A, IK_dh_A, IK_sig_B, IK_dh_B,
    Hash(header)]) names exactly these two identities, in either role."""
    try:
        fields = cbor.as_list(cbor.decode(ad, max_items=8), "associated data", 6)
    except DecodeError:
        return False
    keys = [fields[i] for i in range(1, 5)]

    def pair(identity: Identity) -> list[object]:
        return [identity.signing_key.to_bytes(), identity.dh_key.to_bytes()]

    return fields[0] == own.suite.suite_id and keys in (pair(own) + pair(peer),
                                                        pair(peer) + pair(own))


class PairwiseSession:
    """A one-to-one session with a known peer identity. Mutable: save `to_bytes()` after every
    call that returns a blob, before sending it."""

    __slots__ = ("_own", "_peer", "_ratchet")

    def __init__(self, own: Identity, peer: Identity, ratchet: DoubleRatchet) -> None:
        if not (own.suite.suite_id == peer.suite.suite_id == ratchet.suite.suite_id):
            raise UsageError("identities and ratchet must share one suite")
        self._own = own
        self._peer = peer
        self._ratchet = ratchet

    # --- Starting a session -----------------------------------------------------------------

    @classmethod
    def initiate(cls, own_identity: IdentityKeyPair, bundle: PrekeyBundle,
                 rng: RandomSource = system_random, *, plaintext: bytes = b"",
                 limits: Limits = Limits()  # noqa: B008 - frozen value
                 ) -> tuple[PairwiseSession, bytes]:
        """Start a session from a verified bundle. Returns the session and the initial message,
        which carries `plaintext` (the peer gets it from `respond`)."""
        start = initiate(own_identity, bundle, rng)
        ratchet = DoubleRatchet.initiate(start.suite, start.shared_secret,
                                         start.responder_ratchet_key, start.associated_data,
                                         rng, limits)
        blob = start.initial_message(ratchet.encrypt(plaintext))
        return cls(own_identity.public, start.peer, ratchet), blob

    @classmethod
    def respond(cls, own_account: Account, first_blob: bytes,
                rng: RandomSource = system_random,
                limits: Limits = Limits()  # noqa: B008
                ) -> tuple[PairwiseSession, bytes, Identity]:
        """Accept an initial message: returns the session, the first plaintext and the peer's
        identity (compare its safety number out of band). The account's one-time prekey is
        consumed, or the message entered in its replay cache, only if everything verified;
        save the account afterwards. A second delivery raises `ReplayError`."""
        pending = accept(own_account, first_blob)
        ratchet = DoubleRatchet.respond(pending.suite, pending.shared_secret,
                                        pending.own_ratchet_key, pending.associated_data,
                                        limits, rng)
        # Only the initiator's first ratchet message (N = 0, PN = 0) may ride in the initial
        # message: a later one swapped in would make the genuine first one undeliverable.
        plaintext = ratchet.decrypt_initial(pending.ratchet_message)
        pending.commit()
        return cls(own_account.public_identity, pending.peer, ratchet), plaintext, pending.peer

    # --- Messages ------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt for the peer. The responder can send once it has accepted the initial
        message (always true for sessions made by `respond`)."""
        return cbor.encode([MSG_TYPE_PAIRWISE, self._ratchet.encrypt(plaintext)])

    def decrypt(self, blob: bytes) -> bytes:
        """Decrypt a session message; any error leaves the session unchanged."""
        if not isinstance(blob, bytes):
            raise UsageError("blob must be bytes")
        limit = self._ratchet.limits.max_message_size + _FRAME_OVERHEAD
        if len(blob) > limit:
            raise LimitExceeded("pairwise message larger than the session's limit")
        if message_type(blob) == MSG_TYPE_INITIAL:
            raise ProtocolError("an initial message starts a new session (use respond)")
        fields = cbor.as_list(cbor.decode(blob, max_size=limit, max_items=4),
                              "pairwise message", 2)
        return self._ratchet.decrypt(cbor.as_bytes(fields[1], "ratchet message"))

    # --- Identity ---------------------------------------------------------------------------

    @property
    def peer_identity(self) -> Identity:
        return self._peer

    @property
    def own_identity(self) -> Identity:
        return self._own

    @property
    def safety_number(self) -> SafetyNumber:
        return safety_number(self._own, self._peer)

    @property
    def can_send(self) -> bool:
        return self._ratchet.can_send

    # --- Saved state -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Versioned CBOR: [version, own identity, peer identity, Double Ratchet state]."""
        return cbor.encode([PAIRWISE_STATE_VERSION, self._own.to_bytes(), self._peer.to_bytes(),
                            self._ratchet.to_bytes()])

    @classmethod
    def from_bytes(cls, data: bytes, rng: RandomSource = system_random) -> PairwiseSession:
        f = cbor.as_list(cbor.decode(data, max_items=16), "pairwise session", 4)
        if cbor.as_int(f[0], "pairwise session version") != PAIRWISE_STATE_VERSION:
            raise DecodeError("pairwise session: unknown state version")
        own = Identity.from_bytes(cbor.as_bytes(f[1], "own identity"))
        peer = Identity.from_bytes(cbor.as_bytes(f[2], "peer identity"), own.suite)
        ratchet = DoubleRatchet.from_bytes(cbor.as_bytes(f[3], "ratchet state"), rng)
        if ratchet.suite.suite_id != own.suite.suite_id:
            raise DecodeError("pairwise session: ratchet state is for another suite")
        if not _bound_to(ratchet.associated_data, own, peer):
            raise DecodeError("pairwise session: the stored identities are not the ones the "
                              "ratchet's associated data binds")
        return cls(own, peer, ratchet)

    def __repr__(self) -> str:
        return (f"PairwiseSession(own={self._own!r}, peer={self._peer!r}, "
                f"{self._ratchet!r})")
