"""Issue 9 hardening of the pairwise layer, its decoders and `vectors verify` (items 8-20).

Each test here failed on the code before its fix: what an outside attack found, kept as a
property so it stays found.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from triple_ratchet import cbor, storage
from triple_ratchet.cli import main
from triple_ratchet.dkg.cocktail import CIPHERSUITE_ID
from triple_ratchet.double_ratchet import DoubleRatchet
from triple_ratchet.errors import (
    DecodeError,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    ReplayError,
    StateError,
    TripleRatchetError,
    UsageError,
)
from triple_ratchet.handshake import InitialMessage
from triple_ratchet.identity import (
    LABEL_IDENTITY_DH_KEY,
    P256_ORDER,
    Account,
    Identity,
    IdentityKeyPair,
    PrekeyBundle,
    signature_input,
)
from triple_ratchet.pairwise import PairwiseSession, message_type
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import (
    CLASSICAL_SUITES,
    HYBRID_SUITES,
    P256_SHA256_AES256GCM,
    Suite,
)
from triple_ratchet.testvectors import FORMAT, FORMAT_VERSION, verify_document, verify_paths

SUITES = pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)


# --- Item 11: no exception carries input bytes --------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def _carried_bytes(exc: BaseException) -> Iterator[bytes]:
    """Every bytes-like value an exception chain holds: args, attributes (`.object`...)."""
    for e in _chain(exc):
        values: list[object] = list(e.args)
        values += list(getattr(e, "__dict__", {}).values())
        for name in ("object", "start", "end", "reason"):
            values.append(getattr(e, name, None))
        for v in values:
            if isinstance(v, bytes | bytearray | memoryview):
                yield bytes(v)
            elif isinstance(v, str):
                yield v.encode("utf-8", "surrogateescape")


def _secrets(value: object) -> Iterator[bytes]:
    """The 32-byte strings of a saved account: exactly its private keys."""
    if isinstance(value, bytes) and len(value) == 32:
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _secrets(item)


@SUITES
def test_a_corrupted_account_error_carries_no_key_bytes(suite: Suite) -> None:
    account = Account.generate(suite, DeterministicRandom(b"item 11 " + suite.name.encode()))
    account.generate_one_time_prekeys(2, DeterministicRandom(b"opks"))
    saved = account.to_bytes()
    keys = list(_secrets(cbor.decode(saved)))  # identity and prekey private keys
    assert len(keys) == 5
    windows = {k[i:i + 16] for k in keys for i in range(0, len(k) - 15, 8)}
    utf8_branch = 0
    for pos in range(len(saved)):
        # 0x58/0x40.. (byte string heads) -> 0x78/0x60.. (text string heads): the key becomes
        # "text", and the UTF-8 decoder's error would hold it; also plain bit flips.
        for delta in (0x20, 0x01):
            corrupted = saved[:pos] + bytes([saved[pos] ^ delta]) + saved[pos + 1:]
            try:
                Account.from_bytes(corrupted)
            except TripleRatchetError as exc:
                if "UTF-8" in str(exc):
                    utf8_branch += 1
                carried = list(_carried_bytes(exc))
                assert not any(w in c for w in windows for c in carried), (pos, delta, exc)
    assert utf8_branch > 0  # the branch the outside review went through was exercised


# --- Item 13: only the library's own errors ------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x87\x10", 0x8710, None, bytearray(b"\x82\x11"), [0x82, 0x11]],
                         ids=repr)
def test_message_type_of_a_non_bytes_argument_is_a_usage_error(bad: object) -> None:
    with pytest.raises(UsageError):
        message_type(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["k" * 32, None, 32, bytearray(32)], ids=repr)
def test_storage_refuses_non_bytes_with_a_usage_error(bad: object) -> None:
    key = storage.generate_storage_key(DeterministicRandom(b"storage"))
    sealed = storage.seal_state(key, b"state", DeterministicRandom(b"nonce"))
    with pytest.raises(UsageError):
        storage.seal_state(bad, b"state")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        storage.seal_state(key, bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        storage.open_state(bad, sealed)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        storage.open_state(key, bad)  # type: ignore[arg-type]


def test_a_failed_open_state_has_no_context() -> None:
    key = storage.generate_storage_key(DeterministicRandom(b"storage"))
    sealed = storage.seal_state(key, b"state", DeterministicRandom(b"nonce"))
    with pytest.raises(TripleRatchetError) as info:
        storage.open_state(key, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    assert info.value.__context__ is None and info.value.__cause__ is None


# --- Items 13 and 14: `vectors verify` is never fooled, hung or crashed by its input ------------


def _ours(kind: str, cases: object) -> dict[str, object]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, "cases": cases}


def _cocktail(**vector: object) -> dict[str, object]:
    return {"ciphersuite": CIPHERSUITE_ID.decode(), "seed": "00", "vectors": [vector]}


def _chacha(iv_len: int, result: str, flags: object = ("InvalidNonceSize",)) -> dict[str, object]:
    test = {"tcId": 1, "comment": "", "key": "00" * 32, "iv": "00" * iv_len, "aad": "",
            "msg": "", "ct": "", "tag": "", "result": result,
            "flags": list(flags) if isinstance(flags, tuple) else flags}
    return {"algorithm": "CHACHA20-POLY1305", "schema": "aead_test_schema_v1.json",
            "numberOfTests": 1, "testGroups": [{"ivSize": 8 * iv_len, "keySize": 256,
                                                "tagSize": 128, "type": "AeadTest",
                                                "tests": [test]}]}


HOSTILE: dict[str, str] = {
    "case-not-object": json.dumps(_ours("cbor", [1])),
    "cases-a-string": json.dumps(_ours("cbor", "abcdef")),
    "error-not-object": json.dumps(_ours("handshake", [{"inputs": {}, "error": 5}])),
    "description-a-list": json.dumps(_ours("cbor", [{"description": [1], "inputs": None}])),
    "deep-nesting": "[" * 3000 + "]" * 3000,
    "deep-in-a-case": json.dumps(_ours("cbor", [{"inputs": "x"}]))[:-2] + ", " + "[" * 3000
    + "]" * 3000 + "]}",
    "flags-null": json.dumps(_chacha(12, "valid", None)),
    "cocktail-seed-a-list": json.dumps({**_cocktail(n=2, t=2), "seed": [1]}),
    "cocktail-vector-not-object": json.dumps({**_cocktail(), "vectors": [5]}),
    "cocktail-n-2^32": json.dumps(_cocktail(n=2**32, t=2, extension="")),
    "cocktail-n-10^8": json.dumps(_cocktail(n=10**8, t=2, extension="")),
    "cocktail-n-a-string": json.dumps(_cocktail(n="3", t=2, extension="")),
    "cocktail-vectors-null": json.dumps({**_cocktail(), "vectors": None}),
}


def test_a_malformed_vector_of_another_cocktail_suite_is_only_skipped() -> None:
    doc = {"ciphersuite": "COCKTAIL(P-256, SHA-256)", "vectors": [[1], {"n": [2]}]}
    assert [r.status for r in verify_document(doc)] == ["skipped", "skipped"]


def test_hostile_files_fail_and_the_command_reaches_the_next_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for name, text in HOSTILE.items():
        (tmp_path / f"{name}.json").write_text(text)
        paths.append(tmp_path / f"{name}.json")
    good = Path(__file__).resolve().parents[1] / "vectors" / "cbor.json"
    lines: list[str] = []
    passed, failed, _skipped = verify_paths([*paths, good], out=lines.append)
    per_file = [line for line in lines if not line.startswith(" ")]
    assert len(per_file) == len(paths) + 1
    for line, name in zip(per_file, HOSTILE, strict=False):
        assert name in line and " 0 failed" not in line, line
    assert per_file[-1].startswith(str(good)) and ", 0 failed," in per_file[-1]
    assert passed > 0 and failed >= len(HOSTILE)
    # The command itself: no traceback, and it ends with its totals line.
    for path in paths:
        assert main(["vectors", "verify", str(path)]) == 1
        last = capsys.readouterr().out.strip().splitlines()[-1]
        assert last.endswith(" skipped") and " failed, " in last and "0 failed" not in last


@pytest.mark.parametrize("iv_len", [0, 8, 11, 13, 16, 32])
def test_a_flipped_chacha_nonce_size_verdict_fails_never_skips(iv_len: int) -> None:
    # The real file marks these "invalid"; one that calls them valid must fail, not skip.
    [result] = verify_document(_chacha(iv_len, "valid"))
    assert result.status == "failed"
    [result] = verify_document(_chacha(iv_len, "invalid"))
    assert result.status == "passed"
    [result] = verify_document(_chacha(iv_len, "valid", ("Pseudorandom",)))
    assert result.status == "failed"


def test_a_flipped_empty_gcm_nonce_verdict_fails() -> None:
    doc = _chacha(0, "valid", ("ZeroLengthIv",))
    doc["algorithm"] = "AES-GCM"
    doc["testGroups"][0]["tests"][0]["tag"] = "00" * 16  # type: ignore[index]
    [result] = verify_document(doc)
    assert result.status == "failed"
    doc["testGroups"][0]["tests"][0]["result"] = "invalid"  # type: ignore[index]
    [result] = verify_document(doc)
    assert result.status == "passed"


def test_gcm_skips_do_not_depend_on_the_verdict() -> None:
    doc = _chacha(8, "valid", ("SmallIv",))
    doc["algorithm"] = "AES-GCM"
    doc["testGroups"][0]["tests"][0]["tag"] = "00" * 16  # type: ignore[index]
    statuses = set()
    for verdict in ("valid", "invalid", "acceptable"):
        doc["testGroups"][0]["tests"][0]["result"] = verdict  # type: ignore[index]
        statuses |= {r.status for r in verify_document(doc)}
    assert statuses == {"skipped"}


# --- Item 8: the initial message carries the chain's first message, nothing else ----------------


def _start(suite: Suite, with_opk: bool, seed: bytes
           ) -> tuple[PairwiseSession, bytes, Account, IdentityKeyPair]:
    rng = DeterministicRandom(seed + suite.name.encode())
    alice = IdentityKeyPair.generate(suite, rng)
    bob = Account.generate(suite, rng)
    bundle = bob.new_bundles(1, rng)[0] if with_opk else bob.bundle()
    session, first = PairwiseSession.initiate(alice, bundle, rng, plaintext=b"welcome")
    return session, first, bob, alice


@SUITES
@pytest.mark.parametrize("with_opk", [True, False], ids=["opk", "no-opk"])
def test_a_later_message_swapped_into_the_initial_message_is_refused(
        suite: Suite, with_opk: bool) -> None:
    alice, first, bob, _ = _start(suite, with_opk, b"item 8 ")
    later = [alice.encrypt(b"later %d" % i) for i in range(3)]
    fields = list(cbor.as_list(cbor.decode(first), "initial message"))
    account_before = bob.to_bytes()
    for blob in later:
        # Anyone on the path: keep the handshake header, put a later ratchet message inside.
        swapped = cbor.encode([*fields[:-1], cbor.as_list(cbor.decode(blob), "msg")[1]])
        with pytest.raises(ProtocolError):
            PairwiseSession.respond(bob, swapped)
        assert bob.to_bytes() == account_before  # no prekey consumed, no replay tag recorded
    # The genuine first message still starts the session, and its plaintext is not lost.
    session, plaintext, peer = PairwiseSession.respond(bob, first)
    assert plaintext == b"welcome" and peer == alice.own_identity
    assert [session.decrypt(m) for m in later] == [b"later 0", b"later 1", b"later 2"]
    with pytest.raises(ReplayError):
        PairwiseSession.respond(bob, first)


@SUITES
def test_decrypt_initial_is_only_for_the_responders_first_message(suite: Suite) -> None:
    alice, first, bob, _ = _start(suite, True, b"item 8 state ")
    session, _, _ = PairwiseSession.respond(bob, first)
    with pytest.raises(StateError):
        session._ratchet.decrypt_initial(alice._ratchet.encrypt(b"x"))


# --- Item 9: a long loss does not end the session -------------------------------------------------


@SUITES
def test_the_session_recovers_from_a_long_loss_once_the_peer_ratchets(suite: Suite) -> None:
    alice, first, bob_account, _ = _start(suite, True, b"item 9 ")
    bob, _, _ = PairwiseSession.respond(bob_account, first)
    assert alice.decrypt(bob.encrypt(b"r1")) == b"r1"  # alice ratchets
    assert bob.decrypt(alice.encrypt(b"x")) == b"x"     # bob ratchets
    limits = bob._ratchet.limits
    lost = [alice.encrypt(b"lost %d" % i) for i in range(limits.max_skip + 500)]
    # The over-limit message of the same chain is refused, and only it.
    before = bob.to_bytes()
    with pytest.raises(LimitExceeded):
        bob.decrypt(lost[-1])
    assert bob.to_bytes() == before
    # Bob answers; alice ratchets, and her next chain says PN = 1 + max_skip + 500.
    assert alice.decrypt(bob.encrypt(b"ping")) == b"ping"
    assert bob.decrypt(alice.encrypt(b"after the loss")) == b"after the loss"
    # Bounded work and state: at most max_skip keys of the old chain were derived and kept.
    assert bob._ratchet.skipped_key_count == limits.max_skip
    assert bob.decrypt(lost[0]) == b"lost 0"
    with pytest.raises(ReplayError):
        bob.decrypt(lost[limits.max_skip])
    for i in range(3):
        assert alice.decrypt(bob.encrypt(b"b%d" % i)) == b"b%d" % i
        assert bob.decrypt(alice.encrypt(b"a%d" % i)) == b"a%d" % i


# --- Item 16: a saved session's identities are the ones its ratchet is bound to -------------------


@SUITES
def test_a_saved_session_with_a_swapped_identity_is_refused(suite: Suite) -> None:
    alice, first, bob_account, _ = _start(suite, True, b"item 16 ")
    bob, _, _ = PairwiseSession.respond(bob_account, first)
    carol = IdentityKeyPair.generate(suite, DeterministicRandom(b"carol")).public
    for session in (alice, bob):
        saved = cbor.as_list(cbor.decode(session.to_bytes()), "session")
        assert PairwiseSession.from_bytes(session.to_bytes()).peer_identity == session.peer_identity
        for index in (1, 2):  # own, peer
            changed = list(saved)
            changed[index] = carol.to_bytes()
            with pytest.raises(DecodeError):
                PairwiseSession.from_bytes(cbor.encode(changed))


# --- Item 10: one encoding per identity ----------------------------------------------------------


def _twin(signature: bytes) -> bytes:
    return signature[:32] + (P256_ORDER - int.from_bytes(signature[32:], "big")).to_bytes(32, "big")


def test_a_p256_identity_has_no_second_valid_encoding() -> None:
    suite = P256_SHA256_AES256GCM
    rng = DeterministicRandom(b"item 10")
    for _ in range(16):  # RFC 6979 gives a high s about half the time
        kp = IdentityKeyPair.generate(suite, rng)
        me = kp.public
        sig = me.dh_key_signature
        assert int.from_bytes(sig[32:], "big") <= P256_ORDER // 2  # we sign low-s
        twin = _twin(sig)
        # The twin is a valid ECDSA signature over the same input ...
        content = cbor.encode([me.signing_key.to_bytes(), me.dh_key.to_bytes()])
        me.signing_key.verify(twin, signature_input(suite, LABEL_IDENTITY_DH_KEY, content))
        # ... but not an identity, however it arrives.
        fields = list(cbor.as_list(cbor.decode(me.to_bytes()), "identity"))
        with pytest.raises(DecodeError):
            Identity.from_bytes(cbor.encode([*fields[:4], twin]))
        with pytest.raises(DecodeError):
            Identity(suite, me.signing_key, me.dh_key, twin)
        # A key pair restored with the high-s form (saved before the rule) is normalized.
        restored = IdentityKeyPair(suite, kp._signing_key, kp._dh_key, twin)
        assert restored.public.to_bytes() == me.to_bytes()


def test_an_identity_signature_with_s_not_below_n_is_refused_not_a_crash() -> None:
    """Found by the identity fuzz target: s >= n made the low-s normalization compute n - s < 0
    and raise OverflowError from `IdentityKeyPair.from_bytes` / `Identity(...)`."""
    suite = P256_SHA256_AES256GCM
    kp = IdentityKeyPair.generate(suite, DeterministicRandom(b"item 10 s >= n"))
    me = kp.public
    fields = list(cbor.as_list(cbor.decode(me.to_bytes()), "identity"))
    for s in (P256_ORDER, P256_ORDER + 1, 2**256 - 1):
        bad = me.dh_key_signature[:32] + s.to_bytes(32, "big")
        with pytest.raises(InvalidSignature):
            Identity(suite, me.signing_key, me.dh_key, bad)
        with pytest.raises(InvalidSignature):
            Identity.from_bytes(cbor.encode([*fields[:4], bad]))
        with pytest.raises(InvalidSignature):
            IdentityKeyPair(suite, kp._signing_key, kp._dh_key, bad)


def test_identity_equality_is_by_keys_not_by_signature() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    suite = P256_SHA256_AES256GCM
    kp = IdentityKeyPair.generate(suite, DeterministicRandom(b"item 10 eq"))
    me = kp.public
    # A second, randomized (non-RFC 6979) signature by the owner: a valid, different encoding.
    content = cbor.encode([me.signing_key.to_bytes(), me.dh_key.to_bytes()])
    private = ec.derive_private_key(int.from_bytes(kp._signing_key.to_bytes(), "big"),
                                    ec.SECP256R1())
    r, s = decode_dss_signature(private.sign(
        signature_input(suite, LABEL_IDENTITY_DH_KEY, content), ec.ECDSA(hashes.SHA256())))
    s = min(s, P256_ORDER - s)
    second = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    other = Identity(suite, me.signing_key, me.dh_key, second)
    assert other.to_bytes() != me.to_bytes()
    assert other == me and hash(other) == hash(me) and len({me, other}) == 1


def test_group_create_cannot_be_given_the_twin() -> None:
    # Every way an identity reaches GroupSession.create (an Identity or a fetched bundle) goes
    # through the check, so a twin cannot become a second member.
    suite = P256_SHA256_AES256GCM
    rng = DeterministicRandom(b"item 10 group")
    bob = Account.generate(suite, rng)
    bundle = bob.new_bundles(1, rng)[0]
    fields = list(cbor.as_list(cbor.decode(bundle.to_bytes()), "bundle"))
    fields[4] = _twin(bytes(fields[4]))  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        PrekeyBundle.from_bytes(cbor.encode(fields), suite)


# --- Item 20: the handshake vectors carry a real first message and the account's counters --------


def test_handshake_vectors_carry_a_real_first_ratchet_message() -> None:
    doc = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "handshake.json")
                     .read_text())
    handshakes = [c for c in doc["cases"] if c["inputs"]["operation"] == "handshake"]
    # Every suite, the hybrid ones included (whether or not CLASSICAL_SUITES lists them yet).
    suites = (*CLASSICAL_SUITES, *HYBRID_SUITES)
    assert len(handshakes) == 2 * len(suites)
    for case in handshakes:
        suite = next(s for s in suites if s.name == case["suite"])
        inputs, outputs = case["inputs"], case["outputs"]
        responder = inputs["responder"]
        assert type(responder["next_signed_prekey_id"]) is int
        assert type(responder["next_one_time_prekey_id"]) is int
        message = InitialMessage.from_bytes(bytes.fromhex(outputs["initial_message"]))
        assert message.ratchet_message.hex() == outputs["ratchet_message"]
        # Opened from the published values alone, as spec 05 says the responder does.
        ratchet = DoubleRatchet.respond(
            suite, bytes.fromhex(outputs["shared_secret"]),
            suite.dh_private_from_bytes(bytes.fromhex(responder["signed_prekey_private"])),
            bytes.fromhex(outputs["associated_data"]))
        assert ratchet.decrypt_initial(message.ratchet_message).hex() == inputs["plaintext"]
    swaps = [c for c in doc["cases"] if c["inputs"]["operation"] == "accept"
             and c["error"]["type"] == "ProtocolError" and "later ratchet" in c["description"]]
    assert len(swaps) == 2 * len(suites)


@SUITES
def test_corrupted_saved_sessions_carry_no_key_bytes(suite: Suite) -> None:
    alice, first, bob_account, _ = _start(suite, True, b"item 11 sessions ")
    bob, _, _ = PairwiseSession.respond(bob_account, first)
    bob.decrypt(alice.encrypt(b"x"))
    saved = bob.to_bytes()
    ratchet = cbor.as_list(cbor.decode(bob._ratchet.to_bytes()), "state")
    keys = [k for k in ratchet if isinstance(k, bytes) and len(k) >= 32][1:]  # after the AD
    windows = {k[i:i + 16] for k in keys for i in range(0, len(k) - 15, 8)}
    assert windows
    for blob, load in ((saved, PairwiseSession.from_bytes),
                       (bob._ratchet.to_bytes(), DoubleRatchet.from_bytes)):
        for pos in range(len(blob)):
            for delta in (0x20, 0x01):
                try:
                    load(blob[:pos] + bytes([blob[pos] ^ delta]) + blob[pos + 1:])
                except TripleRatchetError as exc:
                    carried = list(_carried_bytes(exc))
                    assert not any(w in c for w in windows for c in carried), (pos, exc)
