"""Our DKG additions: signed round 1, the extension, aborts, and blame judged by third parties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from triple_ratchet import cbor
from triple_ratchet.dkg import abort as ab
from triple_ratchet.dkg import attempt
from triple_ratchet.dkg.cocktail import schnorr_sign, schnorr_verify
from triple_ratchet.dkg.cocktail_participant import Participant
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.dkg.signature import dkg_sign, dkg_verify
from triple_ratchet.errors import (
    AuthenticationError,
    DecodeError,
    DkgError,
    InvalidSignature,
    LimitExceeded,
    ProtocolError,
    UsageError,
)
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite
from triple_ratchet.testvectors import dkg_additions as tv
from triple_ratchet.testvectors import verify_document

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "dkg-additions.json"


@pytest.fixture(scope="module")
def session() -> tv.Session:
    return tv.Session.create(b"test dkg additions", n=4, t=2)


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    rng = DeterministicRandom(b"payloads")
    return [attempt.new_payload(rng) for _ in range(4)]


def _rng(tag: bytes) -> DeterministicRandom:
    return DeterministicRandom(tag)


def _honest(session: tv.Session, payloads: list[bytes], dealer: int) -> attempt.SignedRound1:
    rng = _rng(b"honest %d" % dealer)
    msg = tv.dealer_round1(session, dealer, payloads[dealer - 1], rng)
    return tv.signed(session, dealer, msg, payloads[dealer - 1], rng)


# --- Signed round 1 -----------------------------------------------------------------------------


def test_signed_round1_round_trip(session: tv.Session, payloads: list[bytes]) -> None:
    s = _honest(session, payloads, 2)
    decoded = attempt.SignedRound1.from_bytes(s.to_bytes())
    assert decoded == s
    msg = decoded.verify(session.params)
    assert msg.to_bytes() == s.message
    assert decoded.payload_hash == attempt.payload_hash(payloads[1])
    assert decoded.check_payload(payloads[1]) == payloads[1]
    assert "SignedRound1(sender=2" in repr(s)


def test_payload_is_exactly_32_fresh_bytes(session: tv.Session, payloads: list[bytes]) -> None:
    rng = _rng(b"payload length")
    assert len(attempt.new_payload(rng)) == 32
    assert attempt.new_payload(rng) != attempt.new_payload(rng)
    msg = tv.dealer_round1(session, 1, payloads[0], rng)
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(UsageError):
            attempt.sign_round1(session.params, session.secrets[0], msg, bad, rng)
        with pytest.raises(UsageError):
            attempt.payload_hash(bad)
    s = _honest(session, payloads, 1)
    for bad in (bytes(31), payloads[0] + b"\x00", payloads[1]):
        with pytest.raises(DkgError) as info:
            s.check_payload(bad)
        assert info.value.culprit == 1 and info.value.reason == "payload-mismatch"


def test_relay_tampering_is_a_bad_signature(session: tv.Session, payloads: list[bytes]) -> None:
    s = _honest(session, payloads, 3)
    params = session.params
    for i in (0, len(s.message) // 2, len(s.message) - 1):  # commitment, middle, last ciphertext
        raw = bytearray(s.message)
        raw[i] ^= 0x01
        with pytest.raises(InvalidSignature):
            attempt.SignedRound1(3, s.payload_hash, bytes(raw), s.signature).verify(params)
    with pytest.raises(InvalidSignature):
        attempt.SignedRound1(3, bytes(64), s.message, s.signature).verify(params)
    with pytest.raises(InvalidSignature):
        attempt.SignedRound1(4, s.payload_hash, s.message, s.signature).verify(params)
    # Another session (other context) does not accept it either.
    other = tv.Session(b"\x01" * 64, session.secrets, session.threshold)
    with pytest.raises(InvalidSignature):
        s.verify(other.params)


def test_signatures_are_domain_separated(session: tv.Session) -> None:
    d = session.secrets[0]
    public = Point.base_mul(d)
    context = session.params.context
    body = b"some body"
    ours = dkg_sign(d, attempt.LABEL_DKG_ROUND1_SIGNATURE, context, body, _rng(b"sig"))
    m = attempt.LABEL_DKG_ROUND1_SIGNATURE + len(context).to_bytes(8, "little") + context + body
    # Not a COCKTAIL (PoP / CertEq) signature on the same bytes, and vice versa.
    assert not schnorr_verify(public, m, ours)
    assert not schnorr_verify(public, body, ours)
    with pytest.raises(InvalidSignature):
        dkg_verify(public, attempt.LABEL_DKG_ROUND1_SIGNATURE, context, body, schnorr_sign(d, m))
    # Round-1 and abort labels do not accept each other's signatures.
    with pytest.raises(InvalidSignature):
        dkg_verify(public, ab.LABEL_DKG_ABORT_SIGNATURE, context, body, ours)
    dkg_verify(public, attempt.LABEL_DKG_ROUND1_SIGNATURE, context, body, ours)
    # Malformed signatures are typed errors.
    for bad in (ours[:-1], bytes(64), ours[:32] + b"\xff" * 32):
        with pytest.raises(InvalidSignature):
            dkg_verify(public, attempt.LABEL_DKG_ROUND1_SIGNATURE, context, body, bad)


def test_signed_round1_decoding_is_strict(session: tv.Session, payloads: list[bytes]) -> None:
    s = _honest(session, payloads, 1)
    raw = s.to_bytes()
    for bad in (raw[:-1], raw + b"\x00", b"", cbor.encode([0x36, 1, s.payload_hash])):
        with pytest.raises(DecodeError):
            attempt.SignedRound1.from_bytes(bad)
    with pytest.raises(DecodeError):  # wrong message type
        attempt.SignedRound1.from_bytes(
            cbor.encode([ab.MSG_DKG_ABORT, 1, s.payload_hash, s.message, s.signature]))
    with pytest.raises(DecodeError):  # payload hash of the wrong size
        attempt.SignedRound1.from_bytes(
            cbor.encode([0x36, 1, s.payload_hash[:32], s.message, s.signature]))
    with pytest.raises(LimitExceeded):
        attempt.SignedRound1.from_bytes(bytes(attempt.MAX_SIGNED_ROUND1_SIZE + 1))
    # A sender beyond this session's n: decodes, but is not a participant here.
    beyond = attempt.SignedRound1(9, s.payload_hash, s.message, s.signature)
    with pytest.raises(DecodeError):
        beyond.verify(session.params)


# --- An honest attempt end to end: COCKTAIL + our wrapper + the key schedule --------------------


def _confirmation(suite: Suite, init: bytes, roster: list[bytes], session_id: bytes) -> bytes:
    """A confirmation value as the layer above would make one (this layer takes it as bytes):
    bound to a secret, a roster and the session, each framed."""
    framed = b"".join(len(x).to_bytes(4, "big") + x for x in (init, *roster, session_id))
    return suite.hash(b"test confirmation" + framed)


def test_honest_attempt_gives_every_member_the_same_epoch(session: tv.Session) -> None:
    params = session.params
    rng = _rng(b"end to end")
    payloads = [attempt.new_payload(rng) for _ in range(4)]
    members = [Participant(params, d, payload=p, rng=rng)
               for d, p in zip(session.secrets, payloads, strict=True)]
    signed = [attempt.sign_round1(params, d, m.round1(), p, rng)
              for d, m, p in zip(session.secrets, members, payloads, strict=True)]
    wire = [s.to_bytes() for s in signed]
    announcements = [b"announcement %d" % i for i in range(1, 5)]
    suite = CLASSICAL_SUITES[0]
    init = rng(suite.hash_len)
    confirmation = _confirmation(suite, init, [b"alice", b"bob"], session.session_id)
    sigs, views = [], []
    for member in members:
        received = [attempt.SignedRound1.from_bytes(w) for w in wire]
        msgs = [r.verify(params) for r in received]
        shares = member.receive_round1(msgs)
        own = attempt.check_payloads(received, shares.payloads)
        assert own == tuple(payloads)
        ext = attempt.attempt_extension([r.payload_hash for r in received],
                                        attempt.announcements_hash(announcements), confirmation)
        sigs.append(member.sign_transcript(ext))
        views.append(own)
    outputs = [m.receive_signatures(sigs) for m in members]
    th = outputs[0].transcript_hash
    assert all(o.transcript_hash == th for o in outputs)
    # Every member derives the same secret from the same payloads and transcript.
    secrets = [suite.hkdf_extract(th, init + b"".join(v)) for v in views]
    assert all(x == secrets[0] for x in secrets)


def test_wrong_welcome_changes_the_extension(session: tv.Session, payloads: list[bytes]) -> None:
    suite = CLASSICAL_SUITES[1]
    rng = _rng(b"welcome")
    init = rng(suite.hash_len)
    roster = [b"alice", b"bob", b"carol"]
    hashes = [attempt.payload_hash(p) for p in payloads]
    ann = attempt.announcements_hash([b"a1", b"a2", b"a3", b"a4"])
    good = attempt.attempt_extension(
        hashes, ann, _confirmation(suite, init, roster, session.session_id))
    wrong = [
        _confirmation(suite, rng(suite.hash_len), roster, session.session_id),
        _confirmation(suite, init, roster[:2], session.session_id),
        _confirmation(suite, init, roster, b"another session"),
    ]
    for confirmation in wrong:
        assert attempt.attempt_extension(hashes, ann, confirmation) != good
    # Every committed input matters, including order.
    conf = _confirmation(suite, init, roster, session.session_id)
    assert attempt.attempt_extension(list(reversed(hashes)), ann, conf) != good
    assert attempt.attempt_extension(
        hashes, attempt.announcements_hash([b"a2", b"a1", b"a3", b"a4"]), conf) != good
    assert attempt.announcements_hash([b"ab", b"c"]) != attempt.announcements_hash([b"a", b"bc"])
    with pytest.raises(UsageError):
        attempt.attempt_extension(hashes, ann[:32], conf)
    with pytest.raises(LimitExceeded):
        attempt.attempt_extension([], ann, conf)


# --- Blame ---------------------------------------------------------------------------------------


def _run_until_fault(session: tv.Session, payloads: list[bytes], member: int,
                     signed: list[attempt.SignedRound1]) -> DkgError:
    """Member `member` processes the round-1 messages as the epoch layer would."""
    params = session.params
    participant = Participant(params, session.secrets[member - 1], payload=payloads[member - 1])
    participant.round1()  # its own message is replaced below by the signed one we hold
    with pytest.raises(DkgError) as info:
        msgs = [s.verify(params) for s in signed]
        # Our own round-1 data must be what we sent; use the participant's actual message.
        msgs[member - 1] = participant.round1_message
        shares = participant.receive_round1(msgs)
        attempt.check_payloads(signed, shares.payloads)
    return info.value


def test_bad_share_dealer_is_convicted_by_third_parties(
    session: tv.Session, payloads: list[bytes]
) -> None:
    rng = _rng(b"bad share")
    bad = tv.signed(session, 2, tv.dealer_round1(session, 2, payloads[1], rng, bad_share_for=3),
                    payloads[1], rng)
    signed = [_honest(session, payloads, j) for j in (1, 2, 3, 4)]
    signed[1] = bad
    fault = _run_until_fault(session, payloads, 3, signed)
    assert fault.culprit == 2 and fault.reason == "share-mismatch"
    # Member 1 got a good share from the same dealer: nothing wrong from its view.
    params = session.params
    blame = ab.make_blame(params, session.secrets[2], bad, rng)
    assert blame.aborter == 3 and isinstance(blame.evidence, ab.Blame)
    assert blame.evidence.ecdh is not None
    # A third party needs only the public session parameters and the abort's bytes.
    wire = blame.to_bytes()
    third_party_params = tv.session_from(session.inputs())
    verdict = ab.judge(third_party_params, ab.Abort.from_bytes(wire))
    assert (verdict.culprit, verdict.fault, verdict.upheld) == (2, "share-mismatch", True)
    with pytest.raises(DkgError) as info:
        ab.verify_blame(third_party_params, wire)
    assert info.value.culprit == 2 and info.value.reason == "share-mismatch"


@pytest.mark.parametrize("fault", ["garbage", "payload", "pop"])
def test_other_dealer_faults_are_convicted(
    session: tv.Session, payloads: list[bytes], fault: str
) -> None:
    rng = _rng(fault.encode())
    faults: dict[str, dict[str, Any]] = {
        "garbage": {"garbage_for": 4}, "payload": {"bad_payload_for": 4}, "pop": {"bad_pop": True},
    }
    kwargs = faults[fault]
    bad = tv.signed(session, 1, tv.dealer_round1(session, 1, payloads[0], rng, **kwargs),
                    payloads[0], rng)
    blame = ab.make_blame(session.params, session.secrets[3], bad, rng)
    assert isinstance(blame.evidence, ab.Blame)
    # A public fault (bad PoP) needs no ECDH evidence; ciphertext faults do.
    assert (blame.evidence.ecdh is None) == (fault == "pop")
    with pytest.raises(DkgError) as info:
        ab.verify_blame(session.params, blame.to_bytes())
    assert info.value.culprit == 1
    assert info.value.reason == {"garbage": "decryption-failed", "payload": "payload-mismatch",
                                 "pop": "bad-pop"}[fault]


def test_false_accusation_convicts_the_accuser(session: tv.Session, payloads: list[bytes]) -> None:
    rng = _rng(b"false")
    honest = _honest(session, payloads, 2)
    params = session.params
    with pytest.raises(UsageError):  # an honest implementation refuses to send it
        ab.make_blame(params, session.secrets[3], honest, rng)
    for evidence in (tv.blame_evidence(session, 4, honest, rng),
                     ab.Blame(2, honest.to_bytes(), None)):
        lie = ab.sign_abort(params, session.secrets[3], evidence, rng)
        verdict = ab.judge(params, ab.Abort.from_bytes(lie.to_bytes()))
        assert verdict.culprit == 4 and not verdict.upheld
        with pytest.raises(DkgError) as info:
            ab.verify_blame(params, lie)
        assert info.value.culprit == 4 and info.value.reason == "false-accusation"


def test_relay_tampered_ciphertext_blames_no_one(session: tv.Session,
                                                 payloads: list[bytes]) -> None:
    rng = _rng(b"relay")
    honest = _honest(session, payloads, 2)
    # The relay flips a bit of the ciphertext for member 3 (the last 80 bytes belong to 4).
    msg = bytearray(honest.message)
    msg[-100] ^= 0x04
    tampered = attempt.SignedRound1(2, honest.payload_hash, bytes(msg), honest.signature)
    params = session.params
    with pytest.raises(InvalidSignature):  # member 3 sees the tampering before decrypting
        tampered.verify(params)
    with pytest.raises(UsageError):  # and make_blame refuses to accuse the dealer
        ab.make_blame(params, session.secrets[2], tampered, rng)
    forced = ab.sign_abort(params, session.secrets[2],
                           tv.blame_evidence(session, 3, tampered, rng), rng)
    with pytest.raises(InvalidSignature) as info:
        ab.verify_blame(params, forced.to_bytes())
    assert not isinstance(info.value, DkgError)
    assert getattr(info.value, "culprit", None) is None


def test_blame_evidence_must_be_authentic(session: tv.Session, payloads: list[bytes]) -> None:
    rng = _rng(b"authentic")
    bad = tv.signed(session, 2, tv.dealer_round1(session, 2, payloads[1], rng, bad_share_for=3),
                    payloads[1], rng)
    params = session.params
    good = tv.blame_evidence(session, 3, bad, rng)
    assert good.ecdh is not None
    stolen = tv.blame_evidence(session, 1, bad, rng).ecdh
    assert stolen is not None
    cases: list[tuple[ab.Blame, type[Exception]]] = [
        # Member 1's ECDH values and proof claimed by member 3.
        (ab.Blame(2, good.dealer_round1, stolen), AuthenticationError),
        # Fake ECDH values (a guess) with the real proof.
        (ab.Blame(2, good.dealer_round1, ab.EcdhEvidence(
            Point.base_mul(Scalar(5)).to_bytes(), good.ecdh.static, good.ecdh.proof)),
         AuthenticationError),
        # An invalid point as an ECDH value.
        (ab.Blame(2, good.dealer_round1, ab.EcdhEvidence(bytes(32), good.ecdh.static,
                                                         good.ecdh.proof)), DecodeError),
        # Not a signed round-1 message at all.
        (ab.Blame(2, b"\x00", good.ecdh), DecodeError),
        # Blames a dealer that did not send the evidence, or the accuser itself.
        (ab.Blame(1, good.dealer_round1, good.ecdh), ProtocolError),
        (ab.Blame(3, good.dealer_round1, good.ecdh), ProtocolError),
    ]
    for evidence, error in cases:
        a = ab.sign_abort(params, session.secrets[2], evidence, rng)
        with pytest.raises(error):
            ab.judge(params, ab.Abort.from_bytes(a.to_bytes()))
    # The same evidence, untouched, convicts the dealer.
    with pytest.raises(DkgError) as info:
        ab.verify_blame(params, ab.sign_abort(params, session.secrets[2], good, rng))
    assert info.value.culprit == 2


# --- Timeouts, equivocation, abort envelopes ----------------------------------------------------


def test_timeout(session: tv.Session) -> None:
    rng = _rng(b"timeout")
    params = session.params
    a = ab.make_timeout(params, session.secrets[0], [4, 2, 4], rng)
    assert a.evidence == ab.Timeout((2, 4))
    verdict = ab.judge(params, ab.Abort.from_bytes(a.to_bytes()))
    assert (verdict.culprit, verdict.unresponsive, verdict.aborter) == (None, (2, 4), 1)
    for bad in ([], [1], [5]):
        with pytest.raises(UsageError):
            ab.make_timeout(params, session.secrets[0], bad, rng)
    # Hand-made envelopes the maker would refuse are rejected by the judge.
    for missing in ((1,), (5,)):
        forged = ab.sign_abort(params, session.secrets[0], ab.Timeout(missing), rng)
        with pytest.raises(ProtocolError):
            ab.judge(params, forged)
    unsorted = cbor.encode([ab.MSG_DKG_ABORT, 1, 1, [4, 2], a.signature])
    with pytest.raises(DecodeError):
        ab.Abort.from_bytes(unsorted)


def test_aborts_only_from_participants(session: tv.Session) -> None:
    rng = _rng(b"outsider")
    params = session.params
    outsider = Scalar.random_nonzero(rng)
    with pytest.raises(UsageError):
        ab.make_timeout(params, outsider, [2], rng)
    a = ab.make_timeout(params, session.secrets[0], [2], rng)
    for aborter in (5, 200):  # e.g. a member being removed, numbered past the new roster
        with pytest.raises(ProtocolError):
            ab.judge(params, ab.Abort(aborter, a.evidence, a.signature))
    with pytest.raises(InvalidSignature):
        ab.judge(params, ab.Abort(3, a.evidence, a.signature))


def test_round1_equivocation(session: tv.Session, payloads: list[bytes]) -> None:
    rng = _rng(b"equivocation")
    params = session.params
    first = _honest(session, payloads, 2)
    second = tv.signed(session, 2, tv.dealer_round1(session, 2, payloads[1], rng), payloads[1],
                       rng)
    a = ab.make_equivocation(params, session.secrets[0], ab.EquivocationKind.ROUND1, 2,
                             first.to_bytes(), second.to_bytes(), rng)
    verdict = ab.judge(params, ab.Abort.from_bytes(a.to_bytes()))
    assert (verdict.culprit, verdict.fault, verdict.aborter) == (2, "equivocation", 1)
    resigned = tv.signed(session, 2, first.message, payloads[1], rng)
    assert resigned.signature != first.signature
    with pytest.raises(UsageError):  # same content, two signatures: not equivocation
        ab.make_equivocation(params, session.secrets[0], ab.EquivocationKind.ROUND1, 2,
                             first.to_bytes(), resigned.to_bytes(), rng)
    with pytest.raises(UsageError):  # not the accused's messages
        ab.make_equivocation(params, session.secrets[0], ab.EquivocationKind.ROUND1, 3,
                             first.to_bytes(), second.to_bytes(), rng)
    tampered = attempt.SignedRound1(2, second.payload_hash, second.message[:-1] + b"\x00",
                                    second.signature)
    forged = ab.sign_abort(params, session.secrets[0], ab.Equivocation(
        ab.EquivocationKind.ROUND1, 2, first.to_bytes(), tampered.to_bytes()), rng)
    with pytest.raises(InvalidSignature):  # a relay-made "conflict" blames no one
        ab.judge(params, forged)


def test_announcement_equivocation_uses_the_epoch_layers_check(session: tv.Session) -> None:
    rng = _rng(b"announcements")
    params = session.params

    def check(raw: bytes) -> tuple[int, bytes]:
        if not raw.startswith(b"signed-by-"):
            raise InvalidSignature("announcement signature does not verify")
        return int(raw[10:11]), raw[11:]

    a = ab.make_equivocation(params, session.secrets[0], ab.EquivocationKind.ANNOUNCEMENT, 3,
                             b"signed-by-3 key A", b"signed-by-3 key B", rng,
                             check_announcement=check)
    verdict = ab.judge(params, ab.Abort.from_bytes(a.to_bytes()), check_announcement=check)
    assert verdict.culprit == 3
    with pytest.raises(UsageError):
        ab.judge(params, a)  # the callback is required for this kind
    with pytest.raises(UsageError):
        ab.make_equivocation(params, session.secrets[0], ab.EquivocationKind.ANNOUNCEMENT, 3,
                             b"signed-by-3 key A", b"forged key B", rng, check_announcement=check)


def test_abort_decoding_is_strict(session: tv.Session) -> None:
    rng = _rng(b"strict abort")
    a = ab.make_timeout(session.params, session.secrets[0], [2], rng)
    raw = a.to_bytes()
    assert ab.Abort.from_bytes(raw) == a
    for bad in (raw[:-1], raw + b"\x00", b"",
                cbor.encode([ab.MSG_DKG_ABORT, 1, 4, [2], a.signature]),  # unknown reason
                cbor.encode([ab.MSG_DKG_ABORT, 1, 1, [], a.signature]),  # nobody named
                cbor.encode([ab.MSG_DKG_ABORT, 0, 1, [2], a.signature]),  # index 0
                cbor.encode([attempt.MSG_DKG_SIGNED_ROUND1, 1, 1, [2], a.signature]),
                cbor.encode([ab.MSG_DKG_ABORT, 1, 3, [2, b"", [b"", b"", b""]], a.signature])):
        with pytest.raises(DecodeError):
            ab.Abort.from_bytes(bad)
    with pytest.raises(LimitExceeded):
        ab.Abort.from_bytes(bytes(ab.MAX_ABORT_SIZE + 1))


def test_reprs_hide_ecdh_values(session: tv.Session, payloads: list[bytes]) -> None:
    rng = _rng(b"repr")
    bad = tv.signed(session, 2, tv.dealer_round1(session, 2, payloads[1], rng, bad_share_for=3),
                    payloads[1], rng)
    blame = ab.make_blame(session.params, session.secrets[2], bad, rng)
    assert isinstance(blame.evidence, ab.Blame) and blame.evidence.ecdh is not None
    text = repr(blame) + str(blame.evidence)
    assert blame.evidence.ecdh.ephemeral.hex() not in text
    assert session.secrets[2].to_bytes().hex() not in text


# --- Vectors -------------------------------------------------------------------------------------


def test_vectors_file_matches_generator() -> None:
    if not VECTORS.exists():
        pytest.skip("vectors/dkg-additions.json not generated yet")
    on_disk: dict[str, Any] = json.loads(VECTORS.read_text())
    assert on_disk == tv.generate()["dkg-additions.json"]
    results = list(verify_document(on_disk))
    assert len(results) >= 20
    assert all(r.status == "passed" for r in results), [r for r in results if r.status != "passed"]


def test_vectors_catch_a_wrong_culprit() -> None:
    doc = tv.generate()["dkg-additions.json"]
    case = next(c for c in doc["cases"] if c.get("error", {}).get("culprit") == 2)
    case["error"]["culprit"] = 1
    results = list(verify_document(doc))
    assert sum(r.status == "failed" for r in results) == 1
