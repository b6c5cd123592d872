"""Vectors for the suites' own derivations (vectors/suites.json, kind "suites"; spec 02-suites).

Each case names an `operation` (byte strings hex):
- "expand_label": secret, label, context, length -> info (`label_info`), output.
- "derive_secret": salt, ikm, label, context, length -> prk (HKDF-Extract), output.
- "signing_from_seed": seed, message -> private_key, public_key, signature (deterministic).
- "verify": public_key, message, signature -> verified (true), or InvalidSignature / InvalidKey.
- "dh": private_key, peer_public_key [, peer_private_key] -> public_key, shared_secret.
- "dh_public_key": public_key -> InvalidKey (negative cases only).
- "aead": key, nonce, plaintext, aad -> ciphertext (= encryption; decryption must give it back).
- "aead_decrypt": key, nonce, ciphertext, aad -> plaintext, or AuthenticationError / UsageError.
- "mailbox_id": access_public_key -> mailbox_id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from triple_ratchet.errors import TripleRatchetError
from triple_ratchet.mailbox import mailbox_id
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import (
    P256_SHA256_AES256GCM,
    X25519_SHA512_XCHACHA20,
    Suite,
    suite_by_name,
)
from triple_ratchet.testvectors import (
    CaseResult,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

KIND = "suites"
FILE = "suites.json"

# Curve constants, only to construct the edge-case inputs below (the suite code holds its own).
_P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_P256_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
_P256_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
_P25519 = 2**255 - 19
_ED25519_L = 2**252 + 27742317777372353535851937790883648493
_ED25519_D = -121665 * pow(121666, -1, _P25519) % _P25519
_X25519_A = 486662

_MESSAGE = b"triple-ratchet suites vector message"


# --- Verifier ------------------------------------------------------------------------------------


def _h(inputs: dict[str, Any], key: str) -> bytes:
    value = inputs[key]
    if not isinstance(value, str):
        raise AssertionError(f"input {key} is not a hex string")
    return bytes.fromhex(value)


def _expand_label(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    label, context, length = _h(i, "label"), _h(i, "context"), i["length"]
    info = suite.label_info(label, context, length)
    return {
        "info": info.hex(),
        "output": suite.expand_label(_h(i, "secret"), label, context, length).hex(),
    }


def _derive_secret(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    salt, ikm = _h(i, "salt"), _h(i, "ikm")
    label, context, length = _h(i, "label"), _h(i, "context"), i["length"]
    out = suite.derive_secret(salt, ikm, label, context, length)
    return {"prk": suite.hkdf_extract(salt, ikm).hex(), "output": out.hex()}


def _signing_from_seed(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    key = suite.signing_from_seed(_h(i, "seed"))
    message = _h(i, "message")
    signature = key.sign(message)
    public = key.public_key().to_bytes()
    # The signature must also pass the strict decoder and verifier, not only match bytes.
    suite.verifying_from_bytes(public).verify(signature, message)
    return {
        "private_key": key.to_bytes().hex(),
        "public_key": public.hex(),
        "signature": signature.hex(),
    }


def _verify(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    suite.verifying_from_bytes(_h(i, "public_key")).verify(_h(i, "signature"), _h(i, "message"))
    return {"verified": True}


def _dh(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    private = suite.dh_private_from_bytes(_h(i, "private_key"))
    peer = suite.dh_public_from_bytes(_h(i, "peer_public_key"))
    shared = private.exchange(peer)
    if "peer_private_key" in i:
        # With both halves given, the exchange must agree in both directions.
        peer_private = suite.dh_private_from_bytes(_h(i, "peer_private_key"))
        expect_equal("peer public key", peer_private.public_key(), peer)
        mine = suite.dh_public_from_bytes(private.public_key().to_bytes())
        expect_equal("shared secret (peer's side)", peer_private.exchange(mine).hex(),
                     shared.hex())
    return {"public_key": private.public_key().to_bytes().hex(), "shared_secret": shared.hex()}


def _dh_public_key(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    return {"public_key": suite.dh_public_from_bytes(_h(i, "public_key")).to_bytes().hex()}


def _aead(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    key, nonce, plaintext, aad = _h(i, "key"), _h(i, "nonce"), _h(i, "plaintext"), _h(i, "aad")
    ciphertext = suite.aead_encrypt(key, nonce, plaintext, aad)
    expect_equal("decryption", suite.aead_decrypt(key, nonce, ciphertext, aad), plaintext)
    return {"ciphertext": ciphertext.hex()}


def _aead_decrypt(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    plaintext = suite.aead_decrypt(_h(i, "key"), _h(i, "nonce"), _h(i, "ciphertext"), _h(i, "aad"))
    return {"plaintext": plaintext.hex()}


def _mailbox_id(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    return {"mailbox_id": mailbox_id(suite, _h(i, "access_public_key")).hex()}


_OPERATIONS: dict[str, Callable[[Suite, dict[str, Any]], dict[str, Any]]] = {
    "expand_label": _expand_label,
    "derive_secret": _derive_secret,
    "signing_from_seed": _signing_from_seed,
    "verify": _verify,
    "dh": _dh,
    "dh_public_key": _dh_public_key,
    "aead": _aead,
    "aead_decrypt": _aead_decrypt,
    "mailbox_id": _mailbox_id,
}




def _check(case: dict[str, Any]) -> None:
    if ("outputs" in case) == ("error" in case):
        raise AssertionError("a case has either outputs or an error, not both or neither")
    suite = suite_by_name(case["suite"])
    inputs = case["inputs"]
    op = _OPERATIONS.get(inputs["operation"])
    if op is None:
        raise AssertionError(f"unknown operation {inputs['operation']!r}")
    got = op(suite, inputs)
    if "outputs" in case:
        want = case["outputs"]
        # Every output is compared, and a missing or extra one is a mismatch too.
        expect_equal("output names", sorted(got), sorted(want))
        for key in sorted(want):
            expect_equal(key, got[key], want[key])


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


# --- Generator -----------------------------------------------------------------------------------


def _case(description: str, suite: Suite, inputs: dict[str, Any],
          error: str | None = None) -> dict[str, Any]:
    """A case whose outputs are computed here, through the same code the verifier runs.

    A negative case is run too, so a file never claims an error the code does not raise.
    """
    case: dict[str, Any] = {"description": description, "suite": suite.name, "inputs": inputs}
    operation = _OPERATIONS[inputs["operation"]]
    if error is None:
        case["outputs"] = operation(suite, inputs)
        return case
    try:
        operation(suite, inputs)
    except TripleRatchetError as exc:
        if type(exc).__name__ != error:
            raise AssertionError(f"{description}: raises {type(exc).__name__}") from exc
    else:
        raise AssertionError(f"{description}: expected {error}, but it succeeds")
    case["error"] = {"type": error}
    return case


def _is_square(a: int, p: int) -> bool:
    return a % p == 0 or pow(a, (p - 1) // 2, p) == 1


def _p256_point_with_small_x() -> tuple[int, int]:
    """The curve point with the smallest x: x + p still fits 32 bytes (a non-reduced encoding)."""
    x = 0
    while True:
        rhs = (x**3 - 3 * x + _P256_B) % _P256_P
        if _is_square(rhs, _P256_P):
            return x, pow(rhs, (_P256_P + 1) // 4, _P256_P)  # p = 3 mod 4
        x += 1


def _x25519_twist_u() -> int:
    """The smallest u > 1 on the quadratic twist rather than on the curve."""
    u = 2
    while _is_square(u**3 + _X25519_A * u * u + u, _P25519):
        u += 1
    return u


def _ed25519_off_curve_y() -> int:
    """The smallest y for which no x satisfies the Edwards equation."""
    y = 2
    while _is_square((y * y - 1) * pow(_ED25519_D * y * y + 1, -1, _P25519), _P25519):
        y += 1
    return y


def _p256_bytes(x: int, y: int) -> str:
    return (b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")).hex()


def _le(u: int) -> str:
    return u.to_bytes(32, "little").hex()


def _kdf_cases(suite: Suite, rng: DeterministicRandom) -> list[dict[str, Any]]:
    nh, max_len = suite.hash_len, 255 * suite.hash_len
    cases = []

    def el(description: str, label: bytes, context: bytes, length: int,
           error: str | None = None, secret: bytes | None = None) -> None:
        inputs = {
            "operation": "expand_label",
            "secret": (secret if secret is not None else rng(nh)).hex(),
            "label": label.hex(), "context": context.hex(), "length": length,
        }
        cases.append(_case(description, suite, inputs, error))

    el("spec worked example (02-suites, Labelled KDF)", b"lbl", b"ctx!", 42,
       secret=bytes(range(32)))
    el("empty context, length = Nh (exactly one HKDF block)", b"a label", b"", nh)
    el("length 0: empty output", b"zero", b"ctx", 0)
    el("length 1", b"one", b"ctx", 1)
    el("length Nh + 1 (two blocks)", b"two blocks", rng(16), nh + 1)
    el(f"length {max_len} = 255 * Nh, the maximum", b"longest", rng(8), max_len)
    el("one-byte label", b"x", rng(32), 32)
    el("255-byte label (the maximum) and a 300-byte context", rng(255), rng(300), 64)
    el(f"length {max_len + 1} = 255 * Nh + 1, one past the maximum", b"too long", b"",
       max_len + 1, "UsageError")
    el("length 65536 does not fit the u16 field", b"too long", b"", 65536, "UsageError")
    el("negative length", b"negative", b"", -1, "UsageError")
    el("empty label", b"", b"ctx", 32, "UsageError")
    el("256-byte label", rng(256), b"ctx", 32, "UsageError")

    def ds(description: str, salt: bytes, ikm: bytes, label: bytes, length: int,
           error: str | None = None) -> None:
        inputs = {
            "operation": "derive_secret", "salt": salt.hex(), "ikm": ikm.hex(),
            "label": label.hex(), "context": rng(24).hex(), "length": length,
        }
        cases.append(_case(description, suite, inputs, error))

    ds("salt of Nh bytes", rng(nh), rng(32), b"derive", 32)
    ds("empty salt (means Nh zero bytes)", b"", rng(32), b"derive empty salt", nh)
    ds("long ikm, output of 2 * Nh + 5 bytes", rng(nh), rng(100), b"derive long", 2 * nh + 5)
    ds("output one past the maximum", rng(nh), rng(32), b"derive", max_len + 1, "UsageError")
    return cases


def _signature_cases(suite: Suite, rng: DeterministicRandom) -> list[dict[str, Any]]:
    cases = []
    seeds = [bytes(range(32)), rng(32), rng(32)]
    for description, seed, message in (
        ("seed 000102..1f (spec example)", seeds[0], _MESSAGE),
        ("random seed, empty message", seeds[1], b""),
        ("random seed, 200-byte message", seeds[2], rng(200)),
    ):
        cases.append(_case(description, suite, {
            "operation": "signing_from_seed", "seed": seed.hex(), "message": message.hex(),
        }))
    for length in (31, 33):
        cases.append(_case(f"seed of {length} bytes", suite, {
            "operation": "signing_from_seed", "seed": rng(length).hex(),
            "message": _MESSAGE.hex()}, "UsageError"))

    key = suite.signing_from_seed(seeds[0])
    public = key.public_key().to_bytes()
    sig = key.sign(_MESSAGE)

    def vf(description: str, signature: bytes, message: bytes = _MESSAGE,
           error: str | None = "InvalidSignature", public_key: bytes = public) -> None:
        cases.append(_case(description, suite, {
            "operation": "verify", "public_key": public_key.hex(),
            "message": message.hex(), "signature": signature.hex(),
        }, error))

    vf("the seed example's signature verifies", sig, error=None)
    vf("last signature bit flipped", sig[:-1] + bytes((sig[-1] ^ 1,)))
    vf("first signature bit flipped", bytes((sig[0] ^ 0x80,)) + sig[1:])
    vf("another message", sig, _MESSAGE + b".")
    vf("63-byte signature", sig[:63])
    vf("65-byte signature", sig + b"\x00")
    if suite is P256_SHA256_AES256GCM:
        s, n = int.from_bytes(sig[32:], "big"), _P256_N
        vf("(r, n - s) also verifies: ECDSA is malleable, as documented",
           sig[:32] + (n - s).to_bytes(32, "big"), error=None)
        vf("r = 0", bytes(32) + sig[32:])
        vf("s = n", sig[:32] + n.to_bytes(32, "big"))
        vf("r = n", n.to_bytes(32, "big") + sig[32:])
        bad_keys = [
            ("public key off the curve (y + 1)",
             bytes.fromhex(_p256_bytes(_P256_GX, _P256_GY + 1))),
            ("compressed public key", b"\x02" + _P256_GX.to_bytes(32, "big")),
        ]
    else:
        s = int.from_bytes(sig[32:], "little")
        vf("S + L (not reduced)", sig[:32] + (s + _ED25519_L).to_bytes(32, "little"))
        bad_keys = [
            ("public key is the identity (small order)", (1).to_bytes(32, "little")),
            ("public key y = p + 1 (non-canonical)", (_P25519 + 1).to_bytes(32, "little")),
            ("public key off the curve", _ed25519_off_curve_y().to_bytes(32, "little")),
        ]
    for description, bad in bad_keys:
        vf(description, sig, error="InvalidKey", public_key=bad)
    return cases


def _dh_cases(suite: Suite, rng: DeterministicRandom) -> list[dict[str, Any]]:
    cases = []

    def dh(description: str, private: bytes, peer_public: bytes,
           peer_private: bytes | None = None, error: str | None = None) -> None:
        inputs = {"operation": "dh", "private_key": private.hex()}
        if peer_private is not None:
            inputs["peer_private_key"] = peer_private.hex()
        inputs["peer_public_key"] = peer_public.hex()
        cases.append(_case(description, suite, inputs, error))

    def pair(description: str, a: bytes, b: bytes) -> None:
        dh(description, a, suite.dh_private_from_bytes(b).public_key().to_bytes(), b)

    def rand_private() -> bytes:
        return suite.generate_dh(rng).to_bytes()

    pair("two random key pairs", rand_private(), rand_private())
    pair("two more random key pairs", rand_private(), rand_private())
    good_peer = suite.generate_dh(rng).public_key().to_bytes()
    if suite is P256_SHA256_AES256GCM:
        pair("private key 1 (public key is the generator)", (1).to_bytes(32, "big"),
             rand_private())
        pair("private key n - 1, the largest", (_P256_N - 1).to_bytes(32, "big"),
             rand_private())
        for description, bad in (("private key 0", bytes(32)),
                                 ("private key n", _P256_N.to_bytes(32, "big")),
                                 ("private key of 31 bytes", rng(31))):
            dh(description, bad, good_peer, error="InvalidKey")
        x, y = _p256_point_with_small_x()
        good = good_peer
        bad_publics = [
            ("empty", b""),
            ("64 bytes (no 0x04 prefix)", good[1:]),
            ("66 bytes", good + b"\x00"),
            ("SEC 1 identity (0x00)", b"\x00"),
            ("identity padded to 65 bytes", bytes(65)),
            ("compressed (0x02 || x)", b"\x02" + good[1:33]),
            ("hybrid (0x06 prefix)", b"\x06" + good[1:]),
            ("off the curve (y + 1)", bytes.fromhex(_p256_bytes(_P256_GX, _P256_GY + 1))),
            ("non-canonical: x + p for a point with small x",
             bytes.fromhex(_p256_bytes(x + _P256_P, y))),
            ("y = p (not reduced)", bytes.fromhex(_p256_bytes(_P256_GX, _P256_P))),
            ("x = 0, y = 0 (off the curve)", bytes.fromhex(_p256_bytes(0, 0))),
        ]
    else:
        # RFC 7748 section 6.1: an independent known answer for the same code path.
        pair("RFC 7748 section 6.1 (Alice and Bob)",
             bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
             bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        pair("private keys all 0xff (clamping is applied, storage is unclamped)",
             b"\xff" * 32, rand_private())
        dh("peer on the quadratic twist: accepted, computed as RFC 7748 says",
           rand_private(), bytes.fromhex(_le(_x25519_twist_u())))
        dh("private key of 31 bytes", rng(31), good_peer, error="InvalidKey")
        bad_publics = [
            ("31 bytes", good_peer[:31]),
            ("33 bytes", good_peer + b"\x00"),
            ("u = 0 (identity, small order)", bytes(32)),
            ("u = 1 (small order)", bytes.fromhex(_le(1))),
            ("u = p - 1 (small order)", bytes.fromhex(_le(_P25519 - 1))),
            ("small order e0eb7a..", bytes.fromhex(
                "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")),
            ("small order 5f9c95..", bytes.fromhex(
                "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157")),
            ("non-canonical: u = p", bytes.fromhex(_le(_P25519))),
            ("non-canonical: u = p + 1", bytes.fromhex(_le(_P25519 + 1))),
            ("non-canonical: u = 2^255 - 1", bytes.fromhex(_le(2**255 - 1))),
            ("non-canonical: a valid key with bit 255 set",
             good_peer[:31] + bytes((good_peer[31] | 0x80,))),
        ]
    for description, bad in bad_publics:
        cases.append(_case(f"DH public key: {description}", suite,
                           {"operation": "dh_public_key", "public_key": bad.hex()},
                           "InvalidKey"))
    return cases


def _aead_cases(suite: Suite, rng: DeterministicRandom) -> list[dict[str, Any]]:
    cases = []
    nk, nn, nt = suite.aead_key_len, suite.aead_nonce_len, suite.aead_tag_len
    for description, plaintext, aad in (
        ("empty plaintext, empty aad (tag only)", b"", b""),
        ("one byte, empty aad", rng(1), b""),
        ("100 bytes with 20 bytes of aad", rng(100), rng(20)),
        ("empty plaintext with aad", b"", rng(13)),
    ):
        cases.append(_case(description, suite, {
            "operation": "aead", "key": rng(nk).hex(), "nonce": rng(nn).hex(),
            "plaintext": plaintext.hex(), "aad": aad.hex()}))
    key, nonce, aad, plaintext = rng(nk), rng(nn), rng(16), rng(40)
    ct = suite.aead_encrypt(key, nonce, plaintext, aad)

    def dec(description: str, error: str | None, *, k: bytes = key, n: bytes = nonce,
            c: bytes = ct, a: bytes = aad) -> None:
        cases.append(_case(description, suite, {
            "operation": "aead_decrypt", "key": k.hex(), "nonce": n.hex(),
            "ciphertext": c.hex(), "aad": a.hex()}, error))

    dec("decryption of a 40-byte message", None)
    dec("last tag bit flipped", "AuthenticationError", c=ct[:-1] + bytes((ct[-1] ^ 1,)))
    dec("first ciphertext bit flipped", "AuthenticationError", c=bytes((ct[0] ^ 1,)) + ct[1:])
    dec("aad changed", "AuthenticationError", a=aad[:-1] + bytes((aad[-1] ^ 1,)))
    dec("aad dropped", "AuthenticationError", a=b"")
    dec("another key", "AuthenticationError", k=rng(nk))
    dec("another nonce", "AuthenticationError", n=rng(nn))
    dec("tag only, message cut off", "AuthenticationError", c=ct[-nt:])
    dec(f"{nt - 1} bytes, shorter than the tag", "AuthenticationError", c=ct[:nt - 1])
    dec(f"nonce of {nn - 1} bytes", "UsageError", n=nonce[:-1])
    dec("key of 16 bytes", "UsageError", k=key[:16])
    return cases


def _mailbox_cases(suite: Suite, rng: DeterministicRandom) -> list[dict[str, Any]]:
    # Access keys are signing keys from seeds (08-key-schedule), so use keys of that shape.
    return [
        _case(description, suite, {
            "operation": "mailbox_id",
            "access_public_key": suite.signing_from_seed(seed).public_key().to_bytes().hex()})
        for description, seed in (
            ("access key from seed 000102..1f", bytes(range(32))),
            ("access key from a random seed", rng(32)),
        )
    ]


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for suite in (P256_SHA256_AES256GCM, X25519_SHA512_XCHACHA20):
        rng = DeterministicRandom(b"suites vectors " + suite.name.encode())
        for part in (_kdf_cases, _signature_cases, _dh_cases, _aead_cases, _mailbox_cases):
            cases.extend(part(suite, rng))
    return {FILE: document(
        KIND,
        "Suite primitives (spec 02): labelled KDF, seeded signing keys, signatures, DH and key "
        "validation, AEAD, mailbox ids, for both suites",
        cases,
    )}


register(lambda: {KIND: verify})
register_generator(generate)
