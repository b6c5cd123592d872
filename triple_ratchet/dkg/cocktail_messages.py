"""COCKTAIL-DKG wire formats: msg1, msg2, the round-3 transcript, the success certificate and the
recovery bundle. Byte layouts are the spec's (spec/06-dkg-cocktail.md); every parser is strict
(exact lengths, valid points, canonical scalars, no trailing bytes) and names the participant whose
data was bad.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DecodeError, InvalidKey
from .cocktail import (
    CIPHERSUITE_ID,
    MAX_CIPHERTEXT_SIZE,
    MAX_CONTEXT_SIZE,
    MAX_EXTENSION_SIZE,
    MIN_CIPHERTEXT_SIZE,
    SIGNATURE_SIZE,
    Fault,
    SessionParams,
    VssCommitment,
    _fail,
    check_parameters,
    decode_static_keys,
    schnorr_verify,
    u32le,
    u64be,
    u64le,
)
from .ed25519 import POINT_SIZE, Point


def frame(ciphertext: bytes) -> bytes:
    """uint64_be(len(c)) || c, the spec's framed ciphertext."""
    return u64be(len(ciphertext)) + ciphertext


class _Reader:
    """Bounds-checked cursor; every read failure is a DecodeError."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > len(self._data) - self._pos:
            raise DecodeError(f"truncated: {what}")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u64(self, what: str, byteorder: str) -> int:
        return int.from_bytes(self.take(8, what), byteorder)  # type: ignore[arg-type]

    def u32le(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")

    def framed_ciphertext(self, what: str) -> bytes:
        length = self.u64(f"{what} length", "big")
        if not MIN_CIPHERTEXT_SIZE <= length <= MAX_CIPHERTEXT_SIZE:
            raise _FrameError(f"{what}: length {length} outside {MIN_CIPHERTEXT_SIZE}..")
        return self.take(length, what)

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def end(self, what: str) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"trailing bytes after {what}")


class _FrameError(DecodeError):
    """A ciphertext length prefix outside the allowed range."""


def _decode_fault(exc: DecodeError) -> Fault:
    if isinstance(exc, _FrameError):
        return Fault.BAD_CIPHERTEXT_FRAME
    if isinstance(exc, InvalidKey):
        return Fault.INVALID_POINT
    return Fault.MALFORMED_MESSAGE


def _point(reader: _Reader, what: str) -> Point:
    return Point.from_bytes(reader.take(POINT_SIZE, what))


# --- Round 1 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round1Message:
    """msg_{1|i} = C_i || PoP_i || E_i || frame(c_{i,1}) || ... || frame(c_{i,n})."""

    commitment: VssCommitment
    pop: bytes
    ephemeral: Point
    ciphertexts: tuple[bytes, ...]  # c_{i,j}, unframed, j = 1..n

    def to_bytes(self) -> bytes:
        return (
            self.commitment.to_bytes()
            + self.pop
            + self.ephemeral.to_bytes()
            + b"".join(frame(c) for c in self.ciphertexts)
        )

    @classmethod
    def from_bytes(cls, data: bytes, t: int, n: int, sender: int | None = None) -> Round1Message:
        """Parse with the session's t and n; a bad message names `sender`."""
        r = _Reader(data)
        try:
            commitment = VssCommitment.from_bytes(r.take(t * POINT_SIZE, "commitment"), t)
            pop = r.take(SIGNATURE_SIZE, "PoP")
            ephemeral = _point(r, "ephemeral key")
            ciphertexts = tuple(r.framed_ciphertext(f"ciphertext {j}") for j in range(1, n + 1))
            r.end("round-1 message")
        except DecodeError as exc:
            raise _fail(_decode_fault(exc), sender, f"round-1 message: {exc}") from exc
        return cls(commitment, pop, ephemeral, ciphertexts)

    def for_recipient(self, recipient: int) -> Round2Entry:
        return Round2Entry(
            self.commitment, self.pop, self.ephemeral, self.ciphertexts[recipient - 1]
        )


# --- Round 2 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round2Entry:
    """(C_j, PoP_j, E_j, c_{j,i}): participant j's public round-1 data plus its ciphertext to i."""

    commitment: VssCommitment
    pop: bytes
    ephemeral: Point
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        return (
            self.commitment.to_bytes()
            + self.pop
            + self.ephemeral.to_bytes()
            + frame(self.ciphertext)
        )


@dataclass(frozen=True)
class Round2Message:
    """msg_{2|i}: the recipient's projection of all round-1 messages, in participant order."""

    entries: tuple[Round2Entry, ...]

    @classmethod
    def project(cls, messages: Sequence[Round1Message], recipient: int) -> Round2Message:
        return cls(tuple(m.for_recipient(recipient) for m in messages))

    def to_bytes(self) -> bytes:
        return b"".join(e.to_bytes() for e in self.entries)

    @classmethod
    def from_bytes(cls, data: bytes, t: int, n: int) -> Round2Message:
        r = _Reader(data)
        entries: list[Round2Entry] = []
        for j in range(1, n + 1):
            try:
                commitment = VssCommitment.from_bytes(r.take(t * POINT_SIZE, "commitment"), t)
                pop = r.take(SIGNATURE_SIZE, "PoP")
                ephemeral = _point(r, "ephemeral key")
                ciphertext = r.framed_ciphertext("ciphertext")
            except DecodeError as exc:
                raise _fail(_decode_fault(exc), j, f"round-2 entry: {exc}") from exc
            entries.append(Round2Entry(commitment, pop, ephemeral, ciphertext))
        try:
            r.end("round-2 message")
        except DecodeError as exc:
            raise _fail(Fault.MALFORMED_MESSAGE, None, str(exc)) from exc
        return cls(tuple(entries))


# --- Transcript ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transcript:
    """The round-3 transcript T (all public). `to_bytes()` is what CertEq signs."""

    context: bytes
    threshold: int
    static_keys: tuple[Point, ...]
    commitments: tuple[VssCommitment, ...]
    pops: tuple[bytes, ...]
    ephemerals: tuple[Point, ...]
    extension: bytes

    @classmethod
    def build(
        cls, params: SessionParams, entries: Sequence[Round2Entry], extension: bytes
    ) -> Transcript:
        return cls(
            params.context,
            params.threshold,
            params.static_keys,
            tuple(e.commitment for e in entries),
            tuple(e.pop for e in entries),
            tuple(e.ephemeral for e in entries),
            extension,
        )

    @property
    def n(self) -> int:
        return len(self.static_keys)

    def to_bytes(self) -> bytes:
        parts = [
            u64le(len(CIPHERSUITE_ID)),
            CIPHERSUITE_ID,
            u64le(len(self.context)),
            self.context,
            u32le(self.n),
            u32le(self.threshold),
        ]
        parts += [p.to_bytes() for p in self.static_keys]
        parts += [c.to_bytes() for c in self.commitments]
        parts += list(self.pops)
        parts += [e.to_bytes() for e in self.ephemerals]
        parts += [u64le(len(self.extension)), self.extension]
        return b"".join(parts)

    def hash(self) -> bytes:
        """SHA-512 of the whole transcript."""
        return hashlib.sha512(self.to_bytes()).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> Transcript:
        """Strict parse (used by recovery). Raises DkgError(reason=malformed-transcript) or a
        DkgError naming the participant whose key, commitment or ephemeral key is invalid."""
        r = _Reader(data)
        try:
            if r.u64("ciphersuite id length", "little") != len(CIPHERSUITE_ID) or (
                r.take(len(CIPHERSUITE_ID), "ciphersuite id") != CIPHERSUITE_ID
            ):
                raise DecodeError("transcript is not for COCKTAIL(Ed25519, SHA-512)")
            ctx_len = r.u64("context length", "little")
            if not 1 <= ctx_len <= MAX_CONTEXT_SIZE:
                raise DecodeError("context length out of range")
            context = r.take(ctx_len, "context")
            n = r.u32le("n")
            t = r.u32le("t")
        except DecodeError as exc:
            raise _fail(Fault.MALFORMED_TRANSCRIPT, None, str(exc)) from exc
        check_parameters(t, n)
        keys_raw: list[bytes] = []
        try:
            keys_raw = [r.take(POINT_SIZE, "static key") for _ in range(n)]
            commitments_raw = [r.take(t * POINT_SIZE, "commitment") for _ in range(n)]
            pops = tuple(r.take(SIGNATURE_SIZE, "PoP") for _ in range(n))
            ephemerals_raw = [r.take(POINT_SIZE, "ephemeral key") for _ in range(n)]
            ext_len = r.u64("extension length", "little")
            if ext_len > MAX_EXTENSION_SIZE:
                raise DecodeError("extension too long")
            extension = r.take(ext_len, "extension")
            r.end("transcript")
        except DecodeError as exc:
            raise _fail(Fault.MALFORMED_TRANSCRIPT, None, str(exc)) from exc
        static_keys = decode_static_keys(keys_raw)
        commitments: list[VssCommitment] = []
        ephemerals: list[Point] = []
        for j in range(1, n + 1):
            try:
                commitments.append(VssCommitment.from_bytes(commitments_raw[j - 1], t))
                ephemerals.append(Point.from_bytes(ephemerals_raw[j - 1]))
            except DecodeError as exc:
                raise _fail(Fault.INVALID_POINT, j, f"transcript: {exc}") from exc
        return cls(context, t, static_keys, tuple(commitments), pops, tuple(ephemerals), extension)


# --- Certificate --------------------------------------------------------------------------------


def verify_transcript_signatures(
    transcript: bytes, static_keys: Sequence[Point], signatures: Sequence[bytes]
) -> None:
    """Check sig_j on T against P_j for every j; the first bad one is named."""
    if len(signatures) != len(static_keys):
        raise _fail(
            Fault.MALFORMED_MESSAGE,
            None,
            f"need {len(static_keys)} signatures, got {len(signatures)}",
        )
    for j, (key, sig) in enumerate(zip(static_keys, signatures, strict=True), start=1):
        if not schnorr_verify(key, transcript, sig):
            raise _fail(Fault.BAD_TRANSCRIPT_SIGNATURE, j, "transcript signature does not verify")


def encode_signatures(signatures: Sequence[bytes]) -> bytes:
    """aggregated_sigs = sig_1 || ... || sig_n."""
    return b"".join(signatures)


def decode_signatures(data: bytes, n: int) -> tuple[bytes, ...]:
    if len(data) != n * SIGNATURE_SIZE:
        raise _fail(Fault.MALFORMED_MESSAGE, None, f"aggregated signatures must be {n} x 64 bytes")
    return tuple(data[k : k + SIGNATURE_SIZE] for k in range(0, len(data), SIGNATURE_SIZE))


@dataclass(frozen=True)
class SuccessCertificate:
    """T and all n CertEq signatures on it (the spec's common recovery data; public)."""

    transcript: bytes
    signatures: tuple[bytes, ...]

    def verify(self) -> Transcript:
        """Parse T and check every signature; returns the parsed transcript."""
        parsed = Transcript.from_bytes(self.transcript)
        verify_transcript_signatures(self.transcript, parsed.static_keys, self.signatures)
        return parsed

    def transcript_hash(self) -> bytes:
        return hashlib.sha512(self.transcript).digest()


# --- Recovery bundle ----------------------------------------------------------------------------


def encode_recovery_bundle(ciphertexts: Sequence[bytes]) -> bytes:
    """C^rec_i = frame(c_{1,i}) || ... || frame(c_{n,i})."""
    return b"".join(frame(c) for c in ciphertexts)


def decode_recovery_bundle(data: bytes, n: int) -> tuple[bytes, ...]:
    r = _Reader(data)
    out: list[bytes] = []
    for j in range(1, n + 1):
        try:
            out.append(r.framed_ciphertext(f"ciphertext {j}"))
        except DecodeError as exc:
            raise _fail(_decode_fault(exc), j, f"recovery bundle: {exc}") from exc
    try:
        r.end("recovery bundle")
    except DecodeError as exc:
        raise _fail(Fault.MALFORMED_MESSAGE, None, str(exc)) from exc
    return tuple(out)


__all__ = [
    "Round1Message",
    "Round2Entry",
    "Round2Message",
    "SuccessCertificate",
    "Transcript",
    "decode_recovery_bundle",
    "decode_signatures",
    "encode_recovery_bundle",
    "encode_signatures",
    "frame",
    "verify_transcript_signatures",
]
