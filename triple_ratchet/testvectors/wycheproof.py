"""Wycheproof (C2SP/wycheproof) files, checked through this library's own suite code.

A file is recognised by its top-level "algorithm", "schema" and "testGroups". Every case's
verdict is compared, not only the valid ones:

* ``valid``: our code must accept and produce exactly the expected output.
* ``invalid``: our code must reject with a typed library error (a crash is a failure).
* ``acceptable``: the same rule for every family: our code may reject (typed error) or accept,
  and if it accepts its output must equal the expected one. Which way we go is fixed per family
  and listed in spec/02-suites.md: we *reject* X25519 low-order and non-canonical public keys
  (all-zero shared secrets included) and compressed P-256 points; we *accept* X25519 points on
  the twist (RFC 7748 makes them harmless, and the output must then be right).

A case whose parameters the library deliberately does not support (AES-128/192, GCM nonces
other than 96 bits, truncated GCM tags, other curves or hashes, key encodings we do not use) is
skipped with the reason. A skip is decided from the parameters alone, never from the verdict:
sizes the algorithm itself forbids (an empty GCM nonce, a ChaCha20-Poly1305 nonce other than
96 bits or an XChaCha20 one other than 192) are not "unsupported", they run, and our code must
refuse them (so a file that calls them valid fails).

Public keys always go through the suites' validating decoders (`dh_public_from_bytes`,
`verifying_from_bytes`). Two encodings are turned into ours here first, as strictly as a
browser would: JWK (``kty`` "EC", ``crv`` "P-256", canonical unpadded base64url coordinates of
32 bytes) and DER ECDSA signatures (strict DER, then ``r || s``). ChaCha20-Poly1305 (IETF,
96-bit nonce) is not in a suite but is the libsodium core of XChaCha20-Poly1305, so it is run
through PyNaCl's ``crypto_aead_chacha20poly1305_ietf_*`` with the same length checks.

ML-KEM-768 (files in ../shared/vectors-external/wycheproof-mlkem/): encapsulation runs our
derandomised `encapsulate(m)` after `MlKemPublicKey.from_bytes` (whose modulus check must refuse
the ModulusOverflow keys); decapsulation derives the key from the seed (its ek must match) and
decapsulates through `cryptography`; key generation compares ek and the expanded 2400-byte dk.
Other parameter sets are skipped.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions

from triple_ratchet.errors import (
    AuthenticationError,
    InvalidKey,
    InvalidSignature,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.suites import P256_SHA256_AES256GCM, X25519_SHA512_XCHACHA20, Suite
from triple_ratchet.suites.mlkem import (
    MlKemPrivateKey,
    MlKemPublicKey,
    expanded_decapsulation_key,
)
from triple_ratchet.testvectors import CaseResult, Status, Verifier, register_detector

_P256 = P256_SHA256_AES256GCM
_X25519 = X25519_SHA512_XCHACHA20
_SHOW = 48  # hex digits of an output shown in a failure message


# --- Outcomes of running one case through our code -------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """Our code accepted the case; `got` is compared with the vector's `want`."""

    got: object
    want: object


@dataclass(frozen=True)
class Rejected:
    """Our code refused the case with a typed library error."""

    error: TripleRatchetError


@dataclass(frozen=True)
class Skipped:
    reason: str


Outcome = Accepted | Rejected | Skipped
Runner = Callable[[dict[str, Any]], Outcome]
# A family builds one runner per test group (keys are decoded once per group).
Family = Callable[[dict[str, Any]], Runner]


def _attempt(compute: Callable[[], Accepted]) -> Outcome:
    """Run our code; a library error is a rejection, anything else propagates as a crash."""
    try:
        return compute()
    except TripleRatchetError as exc:
        return Rejected(exc)


def _skip_all(reason: str) -> Runner:
    return lambda _test: Skipped(reason)


def _hex(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a hex string in the vector file")
    return binascii.unhexlify(value)


# --- AEAD ------------------------------------------------------------------------------------

_Seal = Callable[[bytes, bytes, bytes, bytes], bytes]


def _chacha20poly1305_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    _chacha20poly1305_check(key, nonce)
    out: bytes = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)
    return out


def _chacha20poly1305_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    _chacha20poly1305_check(key, nonce)
    if len(ciphertext) < 16:
        raise AuthenticationError("ChaCha20-Poly1305 ciphertext shorter than its tag")
    try:
        out: bytes = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(ciphertext, aad, nonce, key)
    except nacl.exceptions.CryptoError:
        pass
    else:
        return out
    raise AuthenticationError("ChaCha20-Poly1305 tag does not verify")  # no __context__


def _chacha20poly1305_check(key: bytes, nonce: bytes) -> None:
    if len(key) != 32 or len(nonce) != 12:
        raise UsageError("ChaCha20-Poly1305 takes a 32-byte key and a 12-byte nonce")


def _aead(name: str, key_len: int, nonce_len: int, seal: _Seal, open_: _Seal,
          *, other_sizes_exist: bool = False) -> Family:
    """`other_sizes_exist`: the algorithm itself defines other key sizes, non-empty nonce sizes
    and truncated tags (AES-GCM), which we merely do not use: such cases are skipped. Without
    it (ChaCha20 family) any other size is malformed input and runs: our code must refuse it.

    Skips are decided from the case's parameters only, never from its verdict, so a file that
    flips a verdict cannot turn a failure into a skip; an empty GCM nonce is not a GCM nonce at
    all and always runs."""

    def family(group: dict[str, Any]) -> Runner:
        def run(test: dict[str, Any]) -> Outcome:
            key, nonce = _hex(test["key"]), _hex(test["iv"])
            aad, msg = _hex(test["aad"]), _hex(test["msg"])
            ct, tag = _hex(test["ct"]), _hex(test["tag"])
            if other_sizes_exist:
                if len(key) != key_len:
                    return Skipped(f"{name} key size other than {8 * key_len} bits: not used")
                if nonce and len(nonce) != nonce_len:
                    return Skipped(f"{name} nonce size other than {8 * nonce_len} bits: not used")
                if len(tag) != 16:
                    return Skipped(f"{name} truncated tag: only 128-bit tags are used")

            def compute() -> Accepted:
                opened = open_(key, nonce, ct + tag, aad)
                sealed = seal(key, nonce, msg, aad)
                return Accepted((opened, sealed), (msg, ct + tag))

            return _attempt(compute)

        return run

    return family


# --- HKDF and HMAC ---------------------------------------------------------------------------


def _hkdf(suite: Suite) -> Family:
    def family(group: dict[str, Any]) -> Runner:
        def run(test: dict[str, Any]) -> Outcome:
            ikm, salt, info = _hex(test["ikm"]), _hex(test["salt"]), _hex(test["info"])
            size, okm = test["size"], _hex(test["okm"])
            if type(size) is not int:
                raise ValueError("HKDF size is not an integer")
            return _attempt(lambda: Accepted(suite.hkdf(salt, ikm, info, size), okm))

        return run

    return family


def _hmac(suite: Suite) -> Family:
    def family(group: dict[str, Any]) -> Runner:
        def run(test: dict[str, Any]) -> Outcome:
            key, msg, tag = _hex(test["key"]), _hex(test["msg"]), _hex(test["tag"])
            if len(tag) != suite.hash_len:
                return Skipped(f"HMAC-{suite.hash_name.upper()} truncated tag: not used")

            def compute() -> Accepted:
                suite.hmac_verify(key, msg, tag)
                return Accepted(suite.hmac(key, msg), tag)

            return _attempt(compute)

        return run

    return family


# --- X25519 and ECDH P-256 -------------------------------------------------------------------


def _x25519(group: dict[str, Any]) -> Runner:
    if group.get("curve") != "curve25519":
        return _skip_all(f"XDH on {group.get('curve')!r}: we use curve25519 only")

    def run(test: dict[str, Any]) -> Outcome:
        private, public, shared = _hex(test["private"]), _hex(test["public"]), _hex(test["shared"])

        def compute() -> Accepted:
            key = _X25519.dh_private_from_bytes(private)
            return Accepted(key.exchange(_X25519.dh_public_from_bytes(public)), shared)

        return _attempt(compute)

    return run


def _p256_scalar(value: int) -> bytes:
    # Wycheproof writes private keys as big-endian two's-complement integers (a leading 00
    # byte when the top bit is set); ours are exactly 32 bytes.
    if not 0 <= value < 2**256:
        raise ValueError("P-256 private key in the vector does not fit 32 bytes")
    return value.to_bytes(32, "big")


def _ecdh_p256(decode_public: Callable[[Any], bytes],
               decode_private: Callable[[Any], bytes]) -> Family:
    def family(group: dict[str, Any]) -> Runner:
        if group.get("curve") not in ("secp256r1", "P-256"):
            return _skip_all(f"ECDH on {group.get('curve')!r}: we use P-256 only")

        def run(test: dict[str, Any]) -> Outcome:
            private, shared = decode_private(test["private"]), _hex(test["shared"])

            def compute() -> Accepted:
                key = _P256.dh_private_from_bytes(private)
                peer = _P256.dh_public_from_bytes(decode_public(test["public"]))
                return Accepted(key.exchange(peer), shared)

            return _attempt(compute)

        return run

    return family


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64url(value: object, what: str) -> bytes:
    """Strict unpadded base64url (RFC 7515 section 2), as JWK requires."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        raise InvalidKey(f"JWK {what} is not unpadded base64url")
    data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != value:
        raise InvalidKey(f"JWK {what} is not canonical base64url")
    return data


def _jwk_p256(jwk: object, field: str) -> bytes:
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC":
        raise InvalidKey("JWK is not an EC key")
    if jwk.get("crv") != "P-256":
        raise InvalidKey("JWK names another curve than P-256")
    data = _b64url(jwk.get(field), field)
    if len(data) != 32:
        raise InvalidKey(f"JWK {field} is not 32 bytes")
    return data


def _jwk_public(jwk: object) -> bytes:
    """WebCrypto importKey("jwk", ..., {namedCurve: "P-256"}) as bytes for our decoder."""
    return b"\x04" + _jwk_p256(jwk, "x") + _jwk_p256(jwk, "y")


def _jwk_private(jwk: object) -> bytes:
    try:
        return _jwk_p256(jwk, "d")
    except InvalidKey as exc:  # the harness's own key, not the input under test
        raise ValueError(f"private JWK in the vector: {exc}") from None


# --- Signatures ------------------------------------------------------------------------------


def _der_length(der: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(der):
        raise InvalidSignature("ECDSA DER signature is truncated")
    first = der[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    # 0x80 is BER's indefinite length; a signature never needs more than two length bytes.
    if count == 0 or count > 2 or pos + 1 + count > len(der):
        raise InvalidSignature("ECDSA DER signature has a bad length")
    value = int.from_bytes(der[pos + 1 : pos + 1 + count], "big")
    if value < 0x80 or der[pos + 1] == 0:
        raise InvalidSignature("ECDSA DER signature has a non-minimal length")
    return value, pos + 1 + count


def der_signature_to_p1363(der: bytes) -> bytes:
    """Strict DER `SEQUENCE { INTEGER r, INTEGER s }` to 64-byte `r || s`; else InvalidSignature.

    Minimal lengths, minimal non-negative integers, nothing trailing. Ranges (0 < r, s < n) are
    left to the suite's `verify`, which checks them; values that cannot fit 32 bytes are
    refused here since they have no P1363 encoding.
    """
    if not der or der[0] != 0x30:
        raise InvalidSignature("ECDSA DER signature is not a SEQUENCE")
    length, pos = _der_length(der, 1)
    if pos + length != len(der):
        raise InvalidSignature("ECDSA DER signature length does not match its content")
    values = []
    for _ in range(2):
        if pos >= len(der) or der[pos] != 0x02:
            raise InvalidSignature("ECDSA DER signature component is not an INTEGER")
        length, pos = _der_length(der, pos + 1)
        body = der[pos : pos + length]
        if length == 0 or len(body) != length:
            raise InvalidSignature("ECDSA DER integer is empty or truncated")
        if body[0] & 0x80:
            raise InvalidSignature("ECDSA DER integer is negative")
        if length > 1 and body[0] == 0 and not body[1] & 0x80:
            raise InvalidSignature("ECDSA DER integer is not minimally encoded")
        values.append(int.from_bytes(body, "big"))
        pos += length
    if pos != len(der):
        raise InvalidSignature("ECDSA DER signature has trailing data")
    r, s = values
    if r >= 2**256 or s >= 2**256:
        raise InvalidSignature("ECDSA signature component does not fit 32 bytes")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _signature_runner(verifying: Callable[[], Any],
                      to_signature: Callable[[bytes], bytes]) -> Runner:
    # Decode the group's key once; if our decoder refuses it, every case is a rejection.
    try:
        key = verifying()
    except TripleRatchetError as exc:
        refused = Rejected(exc)
        return lambda _test: refused

    def run(test: dict[str, Any]) -> Outcome:
        msg, sig = _hex(test["msg"]), _hex(test["sig"])

        def compute() -> Accepted:
            key.verify(to_signature(sig), msg)
            return Accepted(None, None)

        return _attempt(compute)

    return run


def _ecdsa_public(key: dict[str, Any]) -> bytes:
    if "uncompressed" in key:
        return _hex(key["uncompressed"])
    # Older files give only wx, wy as two's-complement integers.
    x, y = int.from_bytes(_hex(key["wx"]), "big"), int.from_bytes(_hex(key["wy"]), "big")
    if x >= 2**256 or y >= 2**256:
        raise InvalidKey("ECDSA public key coordinate does not fit 32 bytes")
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _ecdsa(to_signature: Callable[[bytes], bytes]) -> Family:
    def family(group: dict[str, Any]) -> Runner:
        key = group["publicKey"]
        if key.get("curve") != "secp256r1" or group.get("sha") != "SHA-256":
            return _skip_all(
                f"ECDSA on {key.get('curve')!r} with {group.get('sha')!r}: "
                "we use P-256 with SHA-256 only"
            )
        return _signature_runner(
            lambda: _P256.verifying_from_bytes(_ecdsa_public(key)), to_signature
        )

    return family


def _eddsa(group: dict[str, Any]) -> Runner:
    key = group["publicKey"]
    if key.get("curve") != "edwards25519":
        return _skip_all(f"EdDSA on {key.get('curve')!r}: we use Ed25519 only")
    return _signature_runner(lambda: _X25519.verifying_from_bytes(_hex(key["pk"])), bytes)


# --- ML-KEM-768 ------------------------------------------------------------------------------


def _mlkem(run_768: Callable[[dict[str, Any]], Outcome]) -> Family:
    def family(group: dict[str, Any]) -> Runner:
        if group.get("parameterSet") != "ML-KEM-768":
            return _skip_all(f"{group.get('parameterSet')!r}: we use ML-KEM-768 only")
        return run_768

    return family


def _mlkem_encaps(test: dict[str, Any]) -> Outcome:
    """ek (FIPS 203 input checks) and our derandomised Encaps_internal(ek, m)."""
    ek, m = _hex(test["ek"]), _hex(test["m"])
    want = (_hex(test["K"]), _hex(test["c"]))
    return _attempt(lambda: Accepted(MlKemPublicKey.from_bytes(ek).encapsulate(m), want))


def _mlkem_decaps(test: dict[str, Any]) -> Outcome:
    """Key from the seed (its ek must be the vector's), then decapsulation of c."""
    seed, c = _hex(test["seed"]), _hex(test["c"])

    def compute() -> Accepted:
        key = MlKemPrivateKey.from_seed(seed)
        got = (key.public_key().to_bytes(), key.decapsulate(c))
        return Accepted(got, (_hex(test["ek"]), _hex(test["K"])))

    return _attempt(compute)


def _mlkem_keygen(test: dict[str, Any]) -> Outcome:
    seed = _hex(test["seed"])

    def compute() -> Accepted:
        got = (MlKemPrivateKey.from_seed(seed).public_key().to_bytes(),
               expanded_decapsulation_key(seed))
        return Accepted(got, (_hex(test["ek"]), _hex(test["dk"])))

    return _attempt(compute)


# --- Dispatch --------------------------------------------------------------------------------

_AEAD = "aead_test_schema_v1.json"
FAMILIES: dict[tuple[str, str], Family] = {
    ("AES-GCM", _AEAD): _aead("AES-GCM", 32, 12, _P256.aead_encrypt, _P256.aead_decrypt,
                              other_sizes_exist=True),
    ("CHACHA20-POLY1305", _AEAD): _aead(
        "ChaCha20-Poly1305", 32, 12, _chacha20poly1305_encrypt, _chacha20poly1305_decrypt
    ),
    ("XCHACHA20-POLY1305", _AEAD): _aead(
        "XChaCha20-Poly1305", 32, 24, _X25519.aead_encrypt, _X25519.aead_decrypt
    ),
    ("HKDF-SHA-256", "hkdf_test_schema_v1.json"): _hkdf(_P256),
    ("HKDF-SHA-512", "hkdf_test_schema_v1.json"): _hkdf(_X25519),
    ("HMACSHA256", "mac_test_schema_v1.json"): _hmac(_P256),
    ("HMACSHA512", "mac_test_schema_v1.json"): _hmac(_X25519),
    ("XDH", "xdh_comp_schema_v1.json"): _x25519,
    ("ECDH", "ecdh_ecpoint_test_schema_v1.json"): _ecdh_p256(
        _hex, lambda v: _p256_scalar(int.from_bytes(_hex(v), "big"))
    ),
    ("ECDH", "ecdh_webcrypto_test_schema_v1.json"): _ecdh_p256(_jwk_public, _jwk_private),
    ("ECDSA", "ecdsa_p1363_verify_schema_v1.json"): _ecdsa(bytes),
    ("ECDSA", "ecdsa_verify_schema_v1.json"): _ecdsa(der_signature_to_p1363),
    ("EDDSA", "eddsa_verify_schema_v1.json"): _eddsa,
    ("ML-KEM", "mlkem_encaps_test_schema.json"): _mlkem(_mlkem_encaps),
    ("ML-KEM", "mlkem_test_schema.json"): _mlkem(_mlkem_decaps),
    ("ML-KEM", "mlkem_keygen_seed_test_schema.json"): _mlkem(_mlkem_keygen),
}


def judge(verdict: object, outcome: Outcome) -> tuple[Status, str]:
    """Compare our outcome with Wycheproof's verdict (rules in the module docstring)."""
    if isinstance(outcome, Skipped):
        return "skipped", outcome.reason
    if verdict not in ("valid", "invalid", "acceptable"):
        return "failed", f"unknown verdict {verdict!r}"
    if isinstance(outcome, Rejected):
        refused = f"{type(outcome.error).__name__}: {outcome.error}"
        if verdict == "valid":
            return "failed", f"valid case rejected ({refused})"
        return "passed", f"rejected ({refused})"
    if verdict == "invalid":
        return "failed", "invalid case accepted"
    if outcome.got != outcome.want:
        return "failed", f"output {_show(outcome.got)} != expected {_show(outcome.want)}"
    return "passed", "accepted" if verdict == "acceptable" else ""


def _show(value: object) -> str:
    if isinstance(value, bytes):
        text = value.hex()
        return text if len(text) <= _SHOW else text[:_SHOW] + "…"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return repr(value)


def _case_name(index: int, test: object) -> str:
    if not isinstance(test, dict):
        return f"#{index}"
    raw_flags = test.get("flags", [])
    flags = (",".join(str(f) for f in raw_flags) if isinstance(raw_flags, list)
             else repr(raw_flags))[:200]
    comment = str(test.get("comment") or "")[:200]
    return f"tcId {str(test.get('tcId', f'#{index}'))[:20]} [{flags}] {comment}".strip()


def verify_wycheproof(doc: dict[str, Any]) -> Iterator[CaseResult]:
    """Yield one result per test case of a Wycheproof file (plus one failure if the file's
    `numberOfTests` disagrees with what it contains, e.g. a truncated copy)."""
    algorithm, schema = doc.get("algorithm"), doc.get("schema")
    family = FAMILIES.get((str(algorithm), str(schema)))
    seen = 0
    for g_index, group in enumerate(doc.get("testGroups") or []):
        tests = group.get("tests") if isinstance(group, dict) else None
        if not isinstance(tests, list):
            yield CaseResult(f"group #{g_index}", "failed", "malformed test group")
            continue
        runner: Runner
        if family is None:
            runner = _skip_all(f"Wycheproof {algorithm} ({schema}) is not used by triple_ratchet")
        else:
            try:
                runner = family(group)
            except Exception as exc:  # a malformed group fails its cases, never passes them
                error = f"group #{g_index} crashed the harness: {type(exc).__name__}: {exc}"
                runner = _crash(error)
        for index, test in enumerate(tests):
            seen += 1
            name = _case_name(index, test)
            try:
                if not isinstance(test, dict):
                    raise ValueError("test case is not an object")
                status, reason = judge(test.get("result"), runner(test))
            except Exception as exc:  # a crash is a failure, never a pass
                status, reason = "failed", f"crashed with {type(exc).__name__}: {exc}"
            yield CaseResult(name, status, reason)
    declared = doc.get("numberOfTests")
    if isinstance(declared, int) and declared != seen:
        yield CaseResult(
            "numberOfTests", "failed", f"file declares {declared} tests but contains {seen}"
        )


def _crash(message: str) -> Runner:
    def run(_test: dict[str, Any]) -> Outcome:
        raise ValueError(message)

    return run


def detect(doc: dict[str, Any]) -> Verifier | None:
    if (
        isinstance(doc.get("algorithm"), str)
        and isinstance(doc.get("schema"), str)
        and isinstance(doc.get("testGroups"), list)
    ):
        return verify_wycheproof
    return None


register_detector(detect)
