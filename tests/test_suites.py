"""Both cipher suites: round trips, known answers, and refusal of every malformed key or tag."""

from __future__ import annotations

import copy
import hashlib
import pickle

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.errors import (
    AuthenticationError,
    InvalidKey,
    InvalidSignature,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import (
    ALL_SUITES,
    CLASSICAL_SUITES,
    DEFAULT_SUITE,
    HYBRID_SUITES,
    P256_MLKEM768_SHA256_AES256GCM,
    P256_SHA256_AES256GCM,
    X25519_MLKEM768_SHA512_XCHACHA20,
    X25519_SHA512_XCHACHA20,
    Suite,
    suite_by_id,
    suite_by_name,
)
from triple_ratchet.suites._base import LABEL_SUITES_SIGNING_SEED, PROTOCOL_LABEL

P256 = P256_SHA256_AES256GCM
X25519 = X25519_SHA512_XCHACHA20
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P25519 = 2**255 - 19
ED25519_L = 2**252 + 27742317777372353535851937790883648493

# Every suite the library knows, the hybrid ones included (they share the classical primitives).
KNOWN_SUITES = CLASSICAL_SUITES + HYBRID_SUITES
suites = pytest.mark.parametrize("suite", KNOWN_SUITES, ids=lambda s: s.name)


def _case_id(value: object) -> str:
    return value if isinstance(value, str) else ""


def _point(x: int, y: int) -> bytes:
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _p256_point_with_small_x() -> tuple[int, int]:
    # The smallest x on P-256 (p = 3 mod 4, so a square root is a^((p+1)/4)).
    b = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
    x = 0
    while True:
        a = (x**3 - 3 * x + b) % P256_P
        y = pow(a, (P256_P + 1) // 4, P256_P)
        if y * y % P256_P == a:
            return x, y
        x += 1


# --- Suite registry ----------------------------------------------------------------------------


def test_suite_ids_and_names() -> None:
    assert DEFAULT_SUITE is P256 and P256.suite_id == 1 and X25519.suite_id == 2
    assert suite_by_id(1) is P256 and suite_by_id(2) is X25519
    assert len({s.suite_id for s in CLASSICAL_SUITES}) == len({s.name for s in CLASSICAL_SUITES})
    assert CLASSICAL_SUITES == (P256, X25519)


def test_hybrid_suites_are_their_classical_suite_plus_mlkem() -> None:
    """Suites 3 and 4 (spec 02, "Hybrid suites"): known by id and name, flagged post-quantum,
    and otherwise the classical suite of the same curve, with their own id in every label."""
    known = KNOWN_SUITES
    assert len({s.suite_id for s in known}) == len({s.name for s in known}) == 4
    # Classical until the hybrid handshake and sealing land, then all four, classical first.
    assert ALL_SUITES == CLASSICAL_SUITES + HYBRID_SUITES
    pairs = ((P256, P256_MLKEM768_SHA256_AES256GCM, 3, "P256-MLKEM768-SHA256-AES256GCM"),
             (X25519, X25519_MLKEM768_SHA512_XCHACHA20, 4,
              "X25519-MLKEM768-SHA512-XCHACHA20POLY1305"))
    for classical, hybrid, suite_id, name in pairs:
        assert (hybrid.suite_id, hybrid.name) == (suite_id, name)
        assert suite_by_id(suite_id) is hybrid and suite_by_name(name) is hybrid
        assert hybrid.post_quantum and not classical.post_quantum
        assert hybrid.classical is classical and classical.classical is classical
        assert pickle.loads(pickle.dumps(hybrid)) is hybrid
        for attribute in ("hash_name", "hash_len", "dh_public_len", "dh_private_len",
                          "sign_public_len", "signature_len", "aead_key_len", "aead_nonce_len"):
            assert getattr(hybrid, attribute) == getattr(classical, attribute)
        # Same primitives, separated derivations: the suite id is in every ExpandLabel.
        assert hybrid.hkdf(b"s", b"k", b"i", 32) == classical.hkdf(b"s", b"k", b"i", 32)
        assert hybrid.expand_label(b"k" * 32, b"label", b"", 32) != classical.expand_label(
            b"k" * 32, b"label", b"", 32)
        key = hybrid.generate_dh()
        assert hybrid.dh_public_from_bytes(key.public_key().to_bytes()) == key.public_key()


@pytest.mark.parametrize("bad", [0, 5, 0xFFFF, -1, 2**64, True, "1", None, 1.0, [1]])
def test_suite_by_id_unknown(bad: object) -> None:
    with pytest.raises(UnsupportedError):
        suite_by_id(bad)  # type: ignore[arg-type]


@suites
def test_declared_sizes_match(suite: Suite) -> None:
    dh = suite.generate_dh()
    sk = suite.generate_signing()
    assert len(dh.public_key().to_bytes()) == suite.dh_public_len
    assert len(dh.to_bytes()) == suite.dh_private_len
    assert len(sk.public_key().to_bytes()) == suite.sign_public_len
    assert len(sk.to_bytes()) == suite.sign_private_len
    assert len(sk.sign(b"m")) == suite.signature_len
    assert len(suite.hash(b"")) == suite.hash_len
    ct = suite.aead_encrypt(bytes(suite.aead_key_len), bytes(suite.aead_nonce_len), b"abc", b"")
    assert len(ct) == 3 + suite.aead_tag_len


# --- DH --------------------------------------------------------------------------------------


@suites
def test_dh_agreement_and_round_trip(suite: Suite) -> None:
    a, b = suite.generate_dh(), suite.generate_dh()
    shared = a.exchange(b.public_key())
    assert shared == b.exchange(a.public_key()) and len(shared) == 32
    pub = suite.dh_public_from_bytes(a.public_key().to_bytes())
    assert pub == a.public_key() and hash(pub) == hash(a.public_key())
    restored = suite.dh_private_from_bytes(a.to_bytes())
    assert restored.public_key() == a.public_key()
    assert restored.exchange(b.public_key()) == shared
    assert a.exchange(suite.generate_dh().public_key()) != shared


@suites
def test_generation_is_reproducible_from_injected_rng(suite: Suite) -> None:
    one, two = DeterministicRandom(b"s"), DeterministicRandom(b"s")
    assert suite.generate_dh(one).to_bytes() == suite.generate_dh(two).to_bytes()
    assert suite.generate_signing(one).to_bytes() == suite.generate_signing(two).to_bytes()
    other = suite.generate_dh(DeterministicRandom(b"t"))
    assert suite.generate_dh(one).to_bytes() != other.to_bytes()


def test_dh_keys_of_another_suite_are_refused() -> None:
    with pytest.raises(UsageError):
        P256.generate_dh().exchange(X25519.generate_dh().public_key())
    with pytest.raises(UsageError):
        X25519.generate_dh().exchange(P256.generate_dh().public_key())


def _p256_bad_publics() -> list[tuple[str, bytes]]:
    good = P256.generate_dh(DeterministicRandom(b"p256")).public_key().to_bytes()
    x, y = _p256_point_with_small_x()
    assert P256.dh_public_from_bytes(_point(x, y))  # the base of the non-reduced cases is valid
    compressed = bytes([2 + (good[64] & 1)]) + good[1:33]
    return [
        ("empty", b""),
        ("identity (SEC1 0x00)", b"\x00"),
        ("64 bytes, no prefix", good[1:]),
        ("66 bytes", good + b"\x00"),
        ("compressed", compressed),
        ("compressed form padded to 65", compressed + bytes(32)),
        ("hybrid prefix 0x06", b"\x06" + good[1:]),
        ("hybrid prefix 0x07", b"\x07" + good[1:]),
        ("off curve (y + 1)", good[:64] + bytes([good[64] ^ 1])),
        ("(0, 0)", _point(0, 0)),
        ("x not reduced (x + p)", _point(x + P256_P, y)),
        ("y = p", _point(x, P256_P)),
        ("all ones", b"\x04" + b"\xff" * 64),
    ]


@pytest.mark.parametrize("name,data", _p256_bad_publics(), ids=_case_id)
def test_p256_public_key_rejections(name: str, data: bytes) -> None:
    with pytest.raises(InvalidKey):
        P256.dh_public_from_bytes(data)
    with pytest.raises(InvalidKey):
        P256.verifying_from_bytes(data)


def _x25519_bad_publics() -> list[tuple[str, bytes]]:
    good = X25519.generate_dh(DeterministicRandom(b"x")).public_key().to_bytes()
    small_order = [
        0, 1, P25519 - 1,
        0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,
        0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,
    ]
    cases = [(f"small order u={u:#x}", u.to_bytes(32, "little")) for u in small_order]
    return [
        ("31 bytes", good[:31]),
        ("33 bytes", good + b"\x00"),
        ("high bit set", good[:31] + bytes([good[31] | 0x80])),
        ("u = p", P25519.to_bytes(32, "little")),
        ("u = p + 9 (non-canonical 9)", (P25519 + 9).to_bytes(32, "little")),
        ("u = 2^255 - 1", (2**255 - 1).to_bytes(32, "little")),
        *cases,
    ]


@pytest.mark.parametrize("name,data", _x25519_bad_publics(), ids=_case_id)
def test_x25519_public_key_rejections(name: str, data: bytes) -> None:
    with pytest.raises(InvalidKey):
        X25519.dh_public_from_bytes(data)


def test_x25519_all_zero_result_is_an_error_even_past_the_decoder() -> None:
    # Second line of defence: a low-order key that bypassed validation still gives InvalidKey.
    private = X25519.generate_dh()
    public_type = type(private.public_key())
    for u in (0, 1):
        with pytest.raises(InvalidKey):
            private.exchange(public_type(u.to_bytes(32, "little")))  # type: ignore[call-arg]


def test_x25519_rfc7748_known_answer() -> None:
    alice = X25519.dh_private_from_bytes(bytes.fromhex(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
    bob_public = X25519.dh_public_from_bytes(bytes.fromhex(
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
    assert alice.public_key().to_bytes().hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert alice.exchange(bob_public).hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


@pytest.mark.parametrize("scalar", [0, P256_N, P256_N + 1, 2**256 - 1])
def test_p256_private_scalar_out_of_range(scalar: int) -> None:
    data = scalar.to_bytes(32, "big")
    for decode in (P256.dh_private_from_bytes, P256.signing_from_bytes):
        with pytest.raises(InvalidKey) as info:
            decode(data)
        assert data.hex() not in str(info.value)


@suites
@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_private_key_wrong_length(suite: Suite, length: int) -> None:
    with pytest.raises(InvalidKey):
        suite.dh_private_from_bytes(bytes([7]) * length)
    with pytest.raises(InvalidKey):
        suite.signing_from_bytes(bytes([7]) * length)


def test_p256_largest_scalar_is_accepted() -> None:
    key = P256.dh_private_from_bytes((P256_N - 1).to_bytes(32, "big"))
    assert key.exchange(P256.generate_dh().public_key())


# --- Signatures --------------------------------------------------------------------------------


@suites
def test_sign_verify_and_tamper(suite: Suite) -> None:
    key = suite.generate_signing()
    public = suite.verifying_from_bytes(key.public_key().to_bytes())
    assert public == key.public_key()
    sig = key.sign(b"message")
    public.verify(sig, b"message")
    with pytest.raises(InvalidSignature):
        public.verify(sig, b"messagE")
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 1
        with pytest.raises(InvalidSignature):
            public.verify(bytes(bad), b"message")
    with pytest.raises(InvalidSignature):
        suite.generate_signing().public_key().verify(sig, b"message")


@suites
@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_signature_wrong_length(suite: Suite, length: int) -> None:
    key = suite.generate_signing()
    sig = (key.sign(b"m") * 3)[:length]
    with pytest.raises(InvalidSignature):
        key.public_key().verify(sig, b"m")


@suites
def test_signatures_are_deterministic(suite: Suite) -> None:
    key = suite.generate_signing()
    assert key.sign(b"m") == key.sign(b"m")
    restored = suite.signing_from_bytes(key.to_bytes())
    assert restored.sign(b"m") == key.sign(b"m") != key.sign(b"n")


def _rs(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_ecdsa_component_ranges() -> None:
    key = P256.generate_signing()
    sig = key.sign(b"m")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    for bad in (_rs(0, s), _rs(r, 0), _rs(P256_N, s), _rs(r, P256_N), _rs(2**256 - 1, s),
                _rs(r, 2**256 - 1), _rs(r, s + P256_N) if s + P256_N < 2**256 else _rs(r, s - 1)):
        with pytest.raises(InvalidSignature):
            key.public_key().verify(bad, b"m")


def test_ecdsa_is_malleable_as_documented() -> None:
    # ECDSA accepts (r, n - s) too; the spec therefore never hashes signature bytes.
    key = P256.generate_signing()
    sig = key.sign(b"m")
    s = int.from_bytes(sig[32:], "big")
    key.public_key().verify(sig[:32] + (P256_N - s).to_bytes(32, "big"), b"m")


def test_ed25519_rejects_s_not_reduced() -> None:
    key = X25519.generate_signing()
    sig = key.sign(b"m")
    s = int.from_bytes(sig[32:], "little")
    with pytest.raises(InvalidSignature):
        key.public_key().verify(sig[:32] + (s + ED25519_L).to_bytes(32, "little"), b"m")


def test_ecdsa_rfc6979_known_answer() -> None:
    # RFC 6979 A.2.5, P-256 with SHA-256, message "sample".
    key = P256.signing_from_bytes(bytes.fromhex(
        "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"))
    assert key.public_key().to_bytes().hex() == (
        "04" "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
        "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299")
    assert key.sign(b"sample").hex() == (
        "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
        "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8")


def test_ed25519_rfc8032_known_answer() -> None:
    # RFC 8032 section 7.1, TEST 1 (empty message).
    key = X25519.signing_from_bytes(bytes.fromhex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    assert key.public_key().to_bytes().hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")


def _ed25519_bad_publics() -> list[tuple[str, bytes]]:
    good = X25519.generate_signing(DeterministicRandom(b"ed")).public_key().to_bytes()
    order2 = (P25519 - 1).to_bytes(32, "little")  # (0, -1)
    mixed = sodium.crypto_core_ed25519_add(good, order2)
    assert not sodium.crypto_core_ed25519_is_valid_point(mixed)
    return [
        ("31 bytes", good[:31]),
        ("33 bytes", good + b"\x00"),
        ("identity", (1).to_bytes(32, "little")),
        ("order 2", order2),
        ("order 4", bytes(32)),
        ("y = p + 1 (non-canonical identity)", (P25519 + 1).to_bytes(32, "little")),
        ("mixed order (key + torsion)", mixed),
    ]


@pytest.mark.parametrize("name,data", _ed25519_bad_publics(), ids=_case_id)
def test_ed25519_public_key_rejections(name: str, data: bytes) -> None:
    with pytest.raises(InvalidKey):
        X25519.verifying_from_bytes(data)


# --- Signing keys from seeds ---------------------------------------------------------------------


@suites
def test_signing_from_seed_is_deterministic(suite: Suite) -> None:
    seed = bytes(range(32))
    one, two = suite.signing_from_seed(seed), suite.signing_from_seed(seed)
    assert one.to_bytes() == two.to_bytes() and one.public_key() == two.public_key()
    assert one.sign(b"m") == two.sign(b"m")
    assert suite.signing_from_seed(bytes(32)).public_key() != one.public_key()
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(UsageError):
            suite.signing_from_seed(bad)


def test_signing_from_seed_follows_the_spec() -> None:
    seed = bytes(range(100, 132))
    wide = P256.expand_label(seed, LABEL_SUITES_SIGNING_SEED, b"", 48)
    scalar = int.from_bytes(wide, "big") % (P256_N - 1) + 1
    assert P256.signing_from_seed(seed).to_bytes() == scalar.to_bytes(32, "big")
    ed_seed = X25519.expand_label(seed, LABEL_SUITES_SIGNING_SEED, b"", 32)
    assert X25519.signing_from_seed(seed).to_bytes() == ed_seed


# --- AEAD --------------------------------------------------------------------------------------


@suites
def test_aead_round_trip_and_tamper(suite: Suite) -> None:
    key, nonce = bytes(range(32)), bytes(range(suite.aead_nonce_len))
    ct = suite.aead_encrypt(key, nonce, b"plaintext", b"aad")
    assert suite.aead_decrypt(key, nonce, ct, b"aad") == b"plaintext"
    assert suite.aead_decrypt(key, nonce, suite.aead_encrypt(key, nonce, b"", b""), b"") == b""
    for i in (0, len(ct) - 1):
        bad = bytearray(ct)
        bad[i] ^= 0x80
        with pytest.raises(AuthenticationError):
            suite.aead_decrypt(key, nonce, bytes(bad), b"aad")
    other_nonce = bytes([1]) + nonce[1:]
    for args in ((key, nonce, ct, b"aaD"), (key, other_nonce, ct, b"aad"),
                 (bytes(32), nonce, ct, b"aad"), (key, nonce, ct[:-1], b"aad"),
                 (key, nonce, ct[:15], b"aad"), (key, nonce, b"", b"aad")):
        with pytest.raises(AuthenticationError):
            suite.aead_decrypt(*args)


@suites
def test_aead_parameter_sizes_are_usage_errors(suite: Suite) -> None:
    key, nonce = bytes(32), bytes(suite.aead_nonce_len)
    for k, n in ((bytes(16), nonce), (bytes(33), nonce), (key, nonce[:-1]), (key, nonce + b"0")):
        with pytest.raises(UsageError):
            suite.aead_encrypt(k, n, b"x", b"")
        with pytest.raises(UsageError):
            suite.aead_decrypt(k, n, bytes(32), b"")


# --- Hash, HMAC, HKDF, labelled KDF --------------------------------------------------------------


def test_hash_and_hmac_known_answers() -> None:
    assert P256.hash(b"abc") == hashlib.sha256(b"abc").digest()
    assert X25519.hash(b"abc") == hashlib.sha512(b"abc").digest()
    # RFC 4231 test case 2.
    assert P256.hmac(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert X25519.hmac(b"Jefe", b"what do ya want for nothing?").hex() == (
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549"
        "758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")


@suites
def test_hmac_verify(suite: Suite) -> None:
    tag = suite.hmac(b"k", b"data")
    suite.hmac_verify(b"k", b"data", tag)
    for bad in (tag[:-1], tag[:16], tag + b"\x00", bytes(len(tag)), b""):
        with pytest.raises(AuthenticationError):
            suite.hmac_verify(b"k", b"data", bad)
    with pytest.raises(AuthenticationError):
        suite.hmac_verify(b"K", b"data", tag)


def test_hkdf_rfc5869_known_answer() -> None:
    ikm, salt = bytes([0x0B]) * 22, bytes(range(13))
    info = bytes(range(0xF0, 0xFA))
    prk = P256.hkdf_extract(salt, ikm)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    assert P256.hkdf(salt, ikm, info, 42).hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        "34007208d5b887185865")


@suites
def test_hkdf_length_limit(suite: Suite) -> None:
    prk = bytes(suite.hash_len)
    limit = 255 * suite.hash_len
    full = suite.hkdf_expand(prk, b"info", limit)
    assert len(full) == limit and suite.hkdf_expand(prk, b"info", 10) == full[:10]
    assert suite.hkdf_expand(prk, b"info", 0) == b""
    for bad in (limit + 1, -1, 2**16, 2**70):
        with pytest.raises(UsageError):
            suite.hkdf_expand(prk, b"info", bad)
        with pytest.raises(UsageError):
            suite.expand_label(prk, b"label", b"", bad)
    assert len(suite.expand_label(prk, b"label", b"", limit)) == limit


@suites
def test_hkdf_empty_salt_is_hash_len_zeros(suite: Suite) -> None:
    assert suite.hkdf_extract(b"", b"ikm") == suite.hkdf_extract(bytes(suite.hash_len), b"ikm")


@suites
def test_expand_label_info_layout(suite: Suite) -> None:
    info = suite.label_info(b"lbl", b"ctx!", 42)
    assert info == (
        PROTOCOL_LABEL + suite.suite_id.to_bytes(2, "big") + (42).to_bytes(2, "big")
        + b"\x03lbl" + (4).to_bytes(4, "big") + b"ctx!"
    )
    assert PROTOCOL_LABEL == b"triple-ratchet v1"
    secret = bytes(range(suite.hash_len))
    assert suite.expand_label(secret, b"lbl", b"ctx!", 42) == suite.hkdf_expand(secret, info, 42)
    assert suite.derive_secret(b"salt", b"ikm", b"lbl", b"ctx!", 42) == suite.expand_label(
        suite.hkdf_extract(b"salt", b"ikm"), b"lbl", b"ctx!", 42
    )


@suites
def test_expand_label_separates_its_inputs(suite: Suite) -> None:
    s = bytes(32)
    base = suite.expand_label(s, b"ab", b"c", 32)
    assert base != suite.expand_label(s, b"a", b"bc", 32)
    assert base != suite.expand_label(s, b"ab", b"c", 33)[:32]
    assert base != suite.expand_label(s, b"ab", b"", 32)
    for other in KNOWN_SUITES:  # the suite id separates even a hybrid from its classical suite
        if other is not suite:
            assert base != other.expand_label(s, b"ab", b"c", 32)
    assert suite.expand_label(s, b"x" * 255, b"", 16)
    for bad in (b"", b"x" * 256):
        with pytest.raises(UsageError):
            suite.expand_label(s, bad, b"", 32)


@settings(max_examples=60, deadline=None)
@given(
    a=st.tuples(st.binary(min_size=1, max_size=8), st.binary(max_size=8), st.integers(0, 64)),
    b=st.tuples(st.binary(min_size=1, max_size=8), st.binary(max_size=8), st.integers(0, 64)),
)
def test_label_info_is_injective(a: tuple[bytes, bytes, int], b: tuple[bytes, bytes, int]) -> None:
    for suite in KNOWN_SUITES:
        assert (suite.label_info(*a) == suite.label_info(*b)) == (a == b)


# --- Secrets stay out of repr, str and error messages ---------------------------------------------


@suites
def test_repr_never_shows_secrets(suite: Suite) -> None:
    dh = suite.dh_private_from_bytes(bytes(range(1, 33)))
    sk = suite.signing_from_bytes(bytes(range(2, 34)))
    for obj, secret in ((dh, dh.to_bytes()), (sk, sk.to_bytes())):
        for text in (repr(obj), str(obj), f"{obj}", repr([obj])):
            assert "secret" in text
            hexed = secret.hex()
            assert not any(hexed[i:i + 8] in text for i in range(0, len(hexed) - 8, 2))
    assert suite.name in repr(suite)
    assert dh.public_key().to_bytes().hex()[:16] in repr(dh.public_key())


# --- The worked examples printed in spec/02-suites.md ---------------------------------------------

SPEC_EXAMPLES = {
    1: ("747269706c652d726174636865742076310001002a036c626c0000000463747821",
        "108499c061bb90bd0ee5424e18af2be984f4c42671778549fda887755732cb045d5a896088331e716cc0",
        "1374e063d8891de7b71865200db0a042074168e3f1a3639f0536bc760b4c438a",
        "049a270cf2ecbd960d7b091feee5fb9a5c4c35fe3c954856bd85f908821b441886"
        "c4edfc649e93ab8f9d32dd33289fc566b8cd5fbd7709c30842be99f5ea872209"),
    2: ("747269706c652d726174636865742076310002002a036c626c0000000463747821",
        "f36bf967d1530910b7999db0086b16cec229889cf063a57a03cf54d95f7dd1fb48476cf0ed97cad49a69",
        "f71e4ce39fa157911efbb68b799f7eed84ea439fec48407ccfb9e494839579e5",
        "a587e31e62183005a87f6811c262c69f9ae419cf4cfc5ddb3915082b9d6d0e96"),
    3: ("747269706c652d726174636865742076310003002a036c626c0000000463747821",
        "ccc6aabaf5c1459ac3dedef5226ced301051804edd258a8fe0018da52c2c942ec5e095e38254fcff707f",
        "1232d529967310fae42579fc5b87d5237ffc342b9022517484143456d9ce0ec0",
        "044450e0267a4c61ff3d7651b2f91ab13b4c39f63ab281f3de83dfec04c1600ff5"
        "7881ae2d8ccbe9255f817c03f53f3afbdfdcb9cea119184475ecafb8657be6c8"),
    4: ("747269706c652d726174636865742076310004002a036c626c0000000463747821",
        "9b5b96ffe834e85f16359e26a51d4eea5c586ed2cece72ffd88ac957e778e8df0237fe3af16ad052be8a",
        "72e5cbb63d96e118d1ac002f264620494a8cb3c2908f675ea671136433f1cefd",
        "f3fad25fd9563d6515662d9d9b1391552c29d1bac0055a4720dcec9c847d01d3"),
}


@suites
def test_spec_worked_examples(suite: Suite) -> None:
    info, okm, private, public = SPEC_EXAMPLES[suite.suite_id]
    assert suite.label_info(b"lbl", b"ctx!", 42).hex() == info
    assert suite.expand_label(bytes(range(32)), b"lbl", b"ctx!", 42).hex() == okm
    key = suite.signing_from_seed(bytes(range(32)))
    assert key.to_bytes().hex() == private
    assert key.public_key().to_bytes().hex() == public


@suites
def test_copies_keep_suites_singletons_and_share_immutable_keys(suite: Suite) -> None:
    dh, sk = suite.generate_dh(), suite.generate_signing()
    state = {"suite": suite, "dh": dh, "pub": dh.public_key(), "sk": sk, "vk": sk.public_key()}
    copied = copy.deepcopy(state)
    assert all(copied[k] is state[k] for k in state)
    assert copy.copy(suite) is suite
    assert pickle.loads(pickle.dumps(suite)) is suite is suite_by_id(suite.suite_id)
    for key in state.values():
        assert not hasattr(key, "__dict__") or key is suite  # keys have fixed slots


@suites
def test_decoders_take_bytes_only(suite: Suite) -> None:
    dh, sk = suite.generate_dh(), suite.generate_signing()
    pub = dh.public_key().to_bytes()
    decoders = (suite.dh_public_from_bytes, suite.dh_private_from_bytes,
                suite.verifying_from_bytes, suite.signing_from_bytes, suite.signing_from_seed)
    for decode in decoders:
        for bad in (32, len(pub), "x" * 32, None, [0] * 32):
            with pytest.raises(UsageError):
                decode(bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        sk.public_key().verify(64, b"m")  # type: ignore[arg-type]
    # Mutable buffers are copied, so later changes to them cannot alter a decoded key.
    buffer = bytearray(pub)
    decoded = suite.dh_public_from_bytes(buffer)  # type: ignore[arg-type]
    buffer[5] ^= 1
    assert type(decoded.to_bytes()) is bytes and decoded.to_bytes() == pub
    view = memoryview(sk.public_key().to_bytes())
    assert suite.verifying_from_bytes(view) == sk.public_key()  # type: ignore[arg-type]
