"""Identity keys, prekey bundles, the account store and safety numbers."""

from __future__ import annotations

import pytest

from triple_ratchet import cbor, identity
from triple_ratchet.errors import (
    DecodeError,
    InvalidKey,
    InvalidSignature,
    ProtocolError,
    RemoteError,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.identity import (
    LABEL_IDENTITY_ANNOUNCEMENT,
    LABEL_IDENTITY_BUNDLE,
    LABEL_IDENTITY_DH_KEY,
    LABEL_IDENTITY_PROPOSAL,
    LABEL_IDENTITY_SIGNED_PREKEY,
    Account,
    Identity,
    IdentityKeyPair,
    PrekeyBundle,
    safety_number,
    signature_input,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import (
    CLASSICAL_SUITES,
    P256_SHA256_AES256GCM,
    X25519_SHA512_XCHACHA20,
    Suite,
)

SUITES = pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)

# A point of order 8 on curve25519 and the identity of edwards25519 (both must be refused).
X25519_LOW_ORDER = bytes.fromhex(
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
ED25519_IDENTITY = bytes([1]) + bytes(31)


def _account(suite: Suite, seed: bytes = b"bob", one_time: int = 2) -> Account:
    rng = DeterministicRandom(seed + suite.name.encode())
    account = Account.generate(suite, rng)
    account.generate_one_time_prekeys(one_time, rng)
    return account


def _fields(bundle: PrekeyBundle) -> list[cbor.CborValue]:
    return cbor.as_list(cbor.decode(bundle.to_bytes()), "bundle")


def _resign(account: Account, fields: list[cbor.CborValue]) -> bytes:
    """Re-sign the bundle fields with the account's identity (to isolate one defect)."""
    content = cbor.encode(fields[:-1])
    sig = account.identity._sign_internal(LABEL_IDENTITY_BUNDLE, content)
    return cbor.encode([*fields[:-1], sig])


def _off_curve_p256(point: bytes) -> bytes:
    return point[:-1] + bytes([point[-1] ^ 1])


@SUITES
def test_bundle_round_trip(suite: Suite) -> None:
    account = _account(suite)
    for bundle in [*account.new_bundles(2), account.bundle()]:
        data = bundle.to_bytes()
        again = PrekeyBundle.from_bytes(data, suite)
        assert again == bundle
        assert again.to_bytes() == data
        assert again.identity == account.public_identity
        assert again.suite is suite


@SUITES
def test_identity_round_trip_and_keys_distinct(suite: Suite) -> None:
    kp = IdentityKeyPair.generate(suite)
    ident = Identity.from_bytes(kp.public.to_bytes(), suite)
    assert ident == kp.public
    assert ident.signing_key.to_bytes() != ident.dh_key.to_bytes()
    again = IdentityKeyPair.from_bytes(kp.to_bytes())
    assert again.public == kp.public
    assert again.to_bytes() == kp.to_bytes()


@SUITES
@pytest.mark.parametrize("position", [4, 7, -1], ids=["dh-key", "signed-prekey", "bundle"])
def test_bundle_bad_signature_rejected(suite: Suite, position: int) -> None:
    fields = _fields(_account(suite).new_bundles(1)[0])
    sig = bytearray(cbor.as_bytes(fields[position], "sig"))
    sig[5] ^= 0x40
    fields[position] = bytes(sig)
    with pytest.raises(InvalidSignature):
        PrekeyBundle.from_bytes(cbor.encode(fields))


@SUITES
def test_signature_of_another_kind_rejected(suite: Suite) -> None:
    account = _account(suite)
    bundle = account.new_bundles(1)[0]
    kp = account.identity
    content = bundle.signed_content()
    fields = _fields(bundle)
    # The same content signed under each other label, including the caller labels.
    others = [
        kp._sign_internal(LABEL_IDENTITY_SIGNED_PREKEY, content),
        kp._sign_internal(LABEL_IDENTITY_DH_KEY, content),
        kp.sign(LABEL_IDENTITY_PROPOSAL, content),
        kp.sign(LABEL_IDENTITY_ANNOUNCEMENT, content),
    ]
    for sig in others:
        with pytest.raises(InvalidSignature):
            PrekeyBundle.from_bytes(cbor.encode([*fields[:-1], sig]))
    # The signed prekey's signature re-labelled as a DH identity key signature fails too.
    spk = bundle.signed_prekey
    spk_content = cbor.encode([kp.public.signing_key.to_bytes(), spk.prekey_id,
                               spk.public_key.to_bytes()])
    fields[7] = kp._sign_internal(LABEL_IDENTITY_DH_KEY, spk_content)
    with pytest.raises(InvalidSignature):
        PrekeyBundle.from_bytes(_resign(account, fields))


@SUITES
def test_caller_labels_only(suite: Suite) -> None:
    kp = IdentityKeyPair.generate(suite)
    for label in (LABEL_IDENTITY_BUNDLE, LABEL_IDENTITY_DH_KEY, LABEL_IDENTITY_SIGNED_PREKEY,
                  b"anything"):
        with pytest.raises(UsageError):
            kp.sign(label, b"x")
        with pytest.raises(UsageError):
            kp.public.verify(label, b"x", bytes(64))
    sig = kp.sign(LABEL_IDENTITY_PROPOSAL, b"proposal")
    kp.public.verify(LABEL_IDENTITY_PROPOSAL, b"proposal", sig)
    with pytest.raises(InvalidSignature):
        kp.public.verify(LABEL_IDENTITY_ANNOUNCEMENT, b"proposal", sig)
    with pytest.raises(InvalidSignature):
        kp.public.verify(LABEL_IDENTITY_PROPOSAL, b"proposal!", sig)


def test_signature_input_layout() -> None:
    suite = X25519_SHA512_XCHACHA20
    got = signature_input(suite, b"lbl", b"content")
    assert got == b"triple-ratchet v1 identity signature" + b"\x00\x02" + b"\x03lbl" + b"content"


@SUITES
@pytest.mark.parametrize("position", [3, 6, 9], ids=["identity-dh", "signed-prekey", "one-time"])
def test_bundle_invalid_dh_key_rejected(suite: Suite, position: int) -> None:
    account = _account(suite)
    fields = _fields(account.new_bundles(1)[0])
    original = cbor.as_bytes(fields[position], "key")
    bad_keys = ([X25519_LOW_ORDER, bytes(32), b"\xff" * 32] if suite.dh_public_len == 32
                else [_off_curve_p256(original), b"\x02" + original[1:33] + bytes(32),
                      b"\x04" + bytes(64)])
    for bad in bad_keys:
        fields[position] = bad
        # Re-signed, so only the key is wrong: it must still be refused.
        with pytest.raises(InvalidKey):
            PrekeyBundle.from_bytes(_resign(account, fields))


@SUITES
def test_bundle_invalid_signing_key_rejected(suite: Suite) -> None:
    fields = _fields(_account(suite).new_bundles(1)[0])
    original = cbor.as_bytes(fields[2], "key")
    fields[2] = (ED25519_IDENTITY if suite.dh_public_len == 32
                 else _off_curve_p256(original))
    with pytest.raises(InvalidKey):
        PrekeyBundle.from_bytes(cbor.encode(fields))


@SUITES
def test_bundle_wrong_suite_rejected(suite: Suite) -> None:
    # Another suite of the same shape (classical or hybrid) but other key sizes.
    other = next(s for s in CLASSICAL_SUITES if s.dh_public_len != suite.dh_public_len
                 and s.post_quantum == suite.post_quantum)
    data = _account(suite).new_bundles(1)[0].to_bytes()
    with pytest.raises(ProtocolError):
        PrekeyBundle.from_bytes(data, other)
    fields = cbor.as_list(cbor.decode(data), "bundle")
    fields[1] = 0x7777
    with pytest.raises(UnsupportedError):
        PrekeyBundle.from_bytes(cbor.encode(fields))
    fields[1] = other.suite_id  # keys of the wrong size for the claimed suite
    with pytest.raises(DecodeError):
        PrekeyBundle.from_bytes(cbor.encode(fields))


@SUITES
def test_bundle_key_reuse_rejected(suite: Suite) -> None:
    account = _account(suite)
    fields = _fields(account.new_bundles(1)[0])
    fields[9] = fields[6]  # one-time prekey == signed prekey
    with pytest.raises(ProtocolError):
        PrekeyBundle.from_bytes(_resign(account, fields))


@SUITES
def test_every_single_byte_change_of_a_bundle_is_rejected(suite: Suite) -> None:
    data = _account(suite).new_bundles(1)[0].to_bytes()
    for i in range(len(data)):
        for flip in (0x01, 0x80):
            mutated = data[:i] + bytes([data[i] ^ flip]) + data[i + 1:]
            with pytest.raises(RemoteError):
                PrekeyBundle.from_bytes(mutated)
    for cut in range(len(data)):
        with pytest.raises(RemoteError):
            PrekeyBundle.from_bytes(data[:cut])


@SUITES
def test_safety_number_symmetric_and_sensitive(suite: Suite) -> None:
    a = IdentityKeyPair.generate(suite).public
    b = IdentityKeyPair.generate(suite).public
    c = IdentityKeyPair.generate(suite).public
    ab, ba = safety_number(a, b), safety_number(b, a)
    assert ab == ba
    assert len(ab.digits) == 60 and ab.digits.isdigit()
    assert len(ab.formatted().split()) == 12
    assert len(ab.fingerprint) == 1 + 2 + 2 * identity.FINGERPRINT_LEN
    assert ab.matches(ba.fingerprint)
    assert safety_number(a, c) != ab
    assert safety_number(c, b) != ab
    assert not ab.matches(safety_number(a, c).fingerprint)
    # Each identity contributes one 30-digit half, whoever computes it.
    assert identity._digits(a.fingerprint) in ab.digits
    assert identity._digits(b.fingerprint) in ab.digits


def test_safety_number_changes_with_dh_identity_key() -> None:
    suite = P256_SHA256_AES256GCM
    kp = IdentityKeyPair.generate(suite)
    other = IdentityKeyPair.generate(suite).public
    same_signer = IdentityKeyPair(suite, kp._signing_key, suite.generate_dh())
    assert safety_number(kp.public, other) != safety_number(same_signer.public, other)


def test_safety_number_refuses_mixed_suites() -> None:
    a = IdentityKeyPair.generate(P256_SHA256_AES256GCM).public
    b = IdentityKeyPair.generate(X25519_SHA512_XCHACHA20).public
    with pytest.raises(UsageError):
        safety_number(a, b)


@SUITES
def test_account_round_trip(suite: Suite) -> None:
    account = _account(suite, one_time=5)
    account.rotate_signed_prekey()
    account._consume(account.signed_prekey.prekey_id, None, bytes(16))
    account._consume(account.signed_prekey.prekey_id, 2, bytes(16))
    data = account.to_bytes()
    again = Account.from_bytes(data)
    assert again.to_bytes() == data
    assert again.one_time_prekey_count == 4
    assert again.signed_prekey == account.signed_prekey
    assert again.public_identity == account.public_identity


@SUITES
def test_account_state_damage_is_a_decode_error(suite: Suite) -> None:
    data = _account(suite).to_bytes()
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(RemoteError):
            Account.from_bytes(data[:cut])
    fields = cbor.as_list(cbor.decode(data), "account")
    fields[0] = 99
    with pytest.raises(DecodeError):
        Account.from_bytes(cbor.encode(fields))
    # A signed prekey whose signature does not match is refused.
    fields = cbor.as_list(cbor.decode(data), "account")
    spk = cbor.as_list(cbor.as_list(fields[4], "spks")[0], "spk")
    spk[2] = bytes(len(cbor.as_bytes(spk[2], "sig")))
    with pytest.raises(InvalidSignature):
        Account.from_bytes(cbor.encode(fields))


@SUITES
def test_signed_prekey_rotation_retires_oldest(suite: Suite) -> None:
    account = _account(suite)
    first = account.signed_prekey.prekey_id
    for _ in range(identity.MAX_SIGNED_PREKEYS):
        account.rotate_signed_prekey()
    with pytest.raises(ProtocolError, match="retired"):
        account._signed_prekey_secret(first)
    account._signed_prekey_secret(first + 1)  # still held
    account.retire_old_signed_prekeys()
    with pytest.raises(ProtocolError):
        account._signed_prekey_secret(first + 1)
    with pytest.raises(ProtocolError, match="unknown"):
        account._signed_prekey_secret(account.signed_prekey.prekey_id + 1)


def test_replay_cache_evicts_oldest_and_asks_for_rotation(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(identity, "REPLAY_CACHE_CAPACITY", 3)
    account = _account(P256_SHA256_AES256GCM)
    spk = account.signed_prekey.prekey_id
    tags = [bytes([i]) * 16 for i in range(4)]
    for tag in tags[:3]:
        account._consume(spk, None, tag)
    assert not account.signed_prekey_rotation_due
    account._consume(spk, None, tags[3])
    assert account.signed_prekey_rotation_due
    account._check_replay(spk, tags[0])  # evicted: no longer detected
    for tag in tags[1:]:
        with pytest.raises(identity.ReplayError):
            account._check_replay(spk, tag)
    account.rotate_signed_prekey()
    account.retire_old_signed_prekeys()
    assert not account.signed_prekey_rotation_due


@SUITES
def test_one_time_prekeys_bounded_and_owned(suite: Suite) -> None:
    account = _account(suite, one_time=0)
    with pytest.raises(UsageError):
        account.generate_one_time_prekeys(identity.MAX_ONE_TIME_PREKEYS + 1)
    foreign = _account(suite, seed=b"other").generate_one_time_prekeys(1)[0]
    with pytest.raises(UsageError):
        account.bundle(foreign)
    opk = account.generate_one_time_prekeys(1)[0]
    assert account.bundle(opk).one_time_prekey == opk
    assert opk.prekey_id == 0 and account.one_time_prekey_count == 1


@SUITES
def test_no_secret_in_repr(suite: Suite) -> None:
    account = _account(suite)
    kp = account.identity
    secrets = [kp._signing_key.to_bytes(), kp._dh_key.to_bytes()]
    secrets += [s.private_key.to_bytes() for s in account._signed.values()]
    secrets += [k.to_bytes() for k in account._one_time.values()]
    texts = [repr(account), str(account), repr(kp), str(kp), repr(kp.public),
             repr(account.bundle()), repr(kp.dh_private_key)]
    for text in texts:
        for secret in secrets:
            assert secret.hex() not in text
            assert secret.hex()[:16] not in text
            assert repr(secret) not in text


def test_vectors_file_verifies_and_is_reproducible() -> None:
    import json
    from pathlib import Path

    from triple_ratchet.testvectors import identity as identity_vectors
    from triple_ratchet.testvectors import verify_document

    path = Path(__file__).resolve().parents[1] / "vectors" / identity_vectors.FILE
    doc = json.loads(path.read_text())
    results = list(verify_document(doc))
    assert results and all(r.status == "passed" for r in results), results
    assert any("error" in c for c in doc["cases"]) and any("outputs" in c for c in doc["cases"])
    assert identity_vectors.generate()[identity_vectors.FILE] == doc
