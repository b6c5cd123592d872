"""COCKTAIL-DKG: full runs, every bad-input case (typed error, culprit, reason, state unchanged),
wire formats, recovery and redaction."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.dkg.cocktail import (
    CIPHERSUITE_ID,
    MAX_PARTICIPANTS,
    EcdhValues,
    Fault,
    OpenedShare,
    Polynomial,
    SessionParams,
    ShareKey,
    VssCommitment,
    classify_share,
    classify_share_with_ecdh,
    encrypt_share,
    h6,
    payload_commitment,
    payload_extension,
    pop_message,
    recipient_ecdh,
    schnorr_sign,
    schnorr_sign_traced,
    schnorr_verify,
    sender_ecdh,
)
from triple_ratchet.dkg.cocktail_messages import (
    Round1Message,
    Round2Message,
    SuccessCertificate,
    Transcript,
    decode_recovery_bundle,
    encode_recovery_bundle,
    encode_signatures,
    frame,
)
from triple_ratchet.dkg.cocktail_participant import (
    Coordinator,
    Participant,
    State,
    recover,
)
from triple_ratchet.dkg.ed25519 import IDENTITY, L, Point, Scalar
from triple_ratchet.errors import DkgError, StateError, UsageError
from triple_ratchet.random import DeterministicRandom

SESSION = b"test session"


def keys(n: int, tag: bytes = b"k") -> list[Scalar]:
    rng = DeterministicRandom(b"static" + tag)
    return [Scalar.random_nonzero(rng) for _ in range(n)]


def make(
    t: int, n: int, session: bytes = SESSION, payload: bytes = b""
) -> tuple[SessionParams, list[Participant], list[Scalar]]:
    sks = keys(n)
    params = SessionParams.create(session, [Point.base_mul(s).to_bytes() for s in sks], t)
    parts = [
        Participant(params, s, payload=payload, rng=DeterministicRandom(session + bytes([i])))
        for i, s in enumerate(sks)
    ]
    return params, parts, sks


def check(exc: pytest.ExceptionInfo[DkgError], fault: Fault, culprit: int | None) -> None:
    assert exc.value.reason == fault.value, exc.value
    assert exc.value.culprit == culprit, exc.value


def forge_round1(
    params: SessionParams,
    dealer_secret: Scalar,
    rng_seed: bytes,
    *,
    share_delta: dict[int, Scalar] | None = None,
    raw_share: dict[int, bytes] | None = None,
) -> Round1Message:
    """A dealer built from the primitives, able to send a wrong share to chosen recipients."""
    rng = DeterministicRandom(rng_seed)
    poly = Polynomial.random(params.t, rng)
    e = Scalar.random_nonzero(rng)
    eph = Point.base_mul(e)
    commitment = poly.commitment()
    pop = schnorr_sign(poly.secret, pop_message(params.context, commitment, eph))
    me = Point.base_mul(dealer_secret)
    cts = []
    for j, rec in enumerate(params.static_keys, start=1):
        key = h6(sender_ecdh(e, dealer_secret, rec), eph, me, rec, params.context)
        share = poly.evaluate(j) + (share_delta or {}).get(j, Scalar.from_int(0))
        if raw_share and j in raw_share:
            import nacl.bindings as s

            cts.append(
                bytes(
                    s.crypto_aead_xchacha20poly1305_ietf_encrypt(
                        raw_share[j], None, key.nonce, key.key
                    )
                )
            )
        else:
            cts.append(encrypt_share(key, share))
    return Round1Message(commitment, pop, eph, tuple(cts))


def run_all(parts: list[Participant], extension: bytes = b"") -> list[object]:
    msgs = [p.round1() for p in parts]
    for p in parts:
        p.receive_round1(msgs)
    sigs = [p.sign_transcript(extension) for p in parts]
    return [p.receive_signatures(sigs) for p in parts]


# --- Happy paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(("t", "n"), [(1, 1), (1, 3), (2, 3), (3, 5), (5, 5)])
def test_full_run_agrees(t: int, n: int) -> None:
    _params, parts, _sks = make(t, n, payload=b"p" * 32)
    outs = run_all(parts, b"ext")
    outs2 = [p.output for p in parts]
    assert outs == outs2
    ys = {o.group_public_key for o in outs2}
    assert len(ys) == 1
    hashes = {o.transcript_hash for o in outs2}
    assert len(hashes) == 1
    # Any t shares interpolate to the group secret: Lagrange at 0 over indices 1..t.
    xs = {p.index: p.output.secret_share for p in parts}
    secret = Scalar.from_int(0)
    idx = list(range(1, t + 1))
    for i in idx:
        lam = Scalar.from_int(1)
        for j in idx:
            if j != i:
                lam = lam * Scalar.from_int(j) * (Scalar.from_int(j) - Scalar.from_int(i)).inverse()
        secret = secret + xs[i] * lam
    assert Point.base_mul(secret) == outs2[0].group_public_key
    for p in parts:
        assert p.state is State.DONE
        assert p.output.verification_share == Point.base_mul(p.output.secret_share)
        assert p.output.payloads == tuple(b"p" * 32 for _ in range(n))
        for m in range(1, n + 1):
            assert p.shares.verification_share_of(m) == Point.base_mul(xs[m])


def test_coordinator_flow_with_bytes_and_projection() -> None:
    params, parts, _ = make(3, 5)
    co = Coordinator(params)
    msgs = [p.round1() for p in parts]
    for p, m in zip(parts, msgs, strict=True):
        co.receive_round1(p.index, m.to_bytes())
        co.receive_round1(p.index, m)  # an identical resend is harmless
    assert co.round1_complete and co.missing() == ()
    for p in parts:
        r2 = co.round2_message(p.index)
        assert Round2Message.from_bytes(r2.to_bytes(), 3, 5) == r2
        p.receive_round2(r2.to_bytes())
    t_bytes = co.begin_certification(b"x")
    for p in parts:
        co.receive_signature(p.index, p.sign_transcript(b"x"))
    cert = co.certificate()
    assert cert.transcript == t_bytes
    outs = [p.receive_signatures(encode_signatures(cert.signatures)) for p in parts]
    assert all(o.certificate == cert for o in outs)
    assert cert.verify().extension == b"x"


def test_missing_round1_is_reported() -> None:
    params, parts, _ = make(2, 3)
    co = Coordinator(params)
    co.receive_round1(2, parts[1].round1())
    assert co.missing() == (1, 3)
    with pytest.raises(StateError):
        co.round2_message(1)


def test_payload_helpers_match_spec_layout() -> None:
    import hashlib

    assert payload_commitment(b"ab") == hashlib.sha512(b"\x02" + bytes(7) + b"ab").digest()
    ext = payload_extension([b"a", b""])
    want = hashlib.sha512(
        (2).to_bytes(8, "little") + (1).to_bytes(8, "little") + b"a" + bytes(8)
    ).digest()
    assert ext == want


def test_per_recipient_payloads() -> None:
    sks = keys(3)
    params = SessionParams.create(SESSION, [Point.base_mul(s).to_bytes() for s in sks], 2)
    parts = [
        Participant(params, s, payload={1: b"to-one"}, rng=DeterministicRandom(bytes([i])))
        for i, s in enumerate(sks)
    ]
    run_all(parts)
    assert parts[0].output.payloads == (b"to-one",) * 3
    assert parts[1].output.payloads == (b"",) * 3


# --- Setup errors -------------------------------------------------------------------------------


def test_invalid_static_key_named() -> None:
    good = [Point.base_mul(s).to_bytes() for s in keys(3)]
    for bad in (bytes(32), IDENTITY.to_bytes(), b"\xff" * 32, b"\x01" * 31):
        with pytest.raises(DkgError) as exc:
            SessionParams.create(SESSION, [good[0], bad, good[2]], 2)
        check(exc, Fault.INVALID_STATIC_KEY, 2)


def test_duplicate_static_key_named() -> None:
    good = [Point.base_mul(s).to_bytes() for s in keys(3)]
    with pytest.raises(DkgError) as exc:
        SessionParams.create(SESSION, [good[0], good[1], good[0]], 2)
    check(exc, Fault.DUPLICATE_STATIC_KEY, 3)
    pts = tuple(Point.from_bytes(k) for k in good)
    with pytest.raises(DkgError) as exc:
        SessionParams(2, (pts[0], pts[1], pts[1]), bytes(64))
    check(exc, Fault.DUPLICATE_STATIC_KEY, 3)
    with pytest.raises(DkgError) as exc:
        SessionParams(2, (pts[0], IDENTITY), bytes(64))
    check(exc, Fault.INVALID_STATIC_KEY, 2)


@pytest.mark.parametrize(("t", "n"), [(0, 3), (4, 3), (1, 0), (-1, 2)])
def test_bad_threshold(t: int, n: int) -> None:
    good = [Point.base_mul(s).to_bytes() for s in keys(n)] if n > 0 else []
    with pytest.raises(DkgError) as exc:
        SessionParams.create(SESSION, good, t)
    check(exc, Fault.BAD_PARAMETERS, None)


def test_too_many_participants() -> None:
    fake = [bytes(32)] * (MAX_PARTICIPANTS + 1)  # the size check comes before decoding
    with pytest.raises(DkgError) as exc:
        SessionParams.create(SESSION, fake, 2)
    check(exc, Fault.TOO_MANY_PARTICIPANTS, None)


def test_participant_needs_its_key_in_the_list() -> None:
    params, _, _ = make(2, 3)
    with pytest.raises(UsageError):
        Participant(params, Scalar.from_int(12345))
    with pytest.raises(UsageError):
        Participant(params, Scalar.from_int(0))


# --- Round-2 errors -----------------------------------------------------------------------------


def _round1(
    t: int = 2, n: int = 3
) -> tuple[SessionParams, list[Participant], list[Round1Message], list[Scalar]]:
    params, parts, sks = make(t, n)
    msgs = [p.round1() for p in parts]
    return params, parts, msgs, sks


def _expect_round2_failure(
    part: Participant, msgs: list[Round1Message | bytes], fault: Fault, culprit: int | None
) -> None:
    with pytest.raises(DkgError) as exc:
        part.receive_round1(msgs)
    check(exc, fault, culprit)
    assert part.state is State.ROUND1_SENT  # unchanged: a corrected input still works


def test_commitment_with_wrong_length_is_threshold_elevation() -> None:
    _params, parts, msgs, _ = _round1(2, 3)
    m = msgs[1]
    longer = VssCommitment((*m.commitment.points, m.commitment.points[0]))
    bad = Round1Message(longer, m.pop, m.ephemeral, m.ciphertexts)
    _expect_round2_failure(parts[0], [msgs[0], bad, msgs[2]], Fault.COMMITMENT_LENGTH, 2)
    shorter = Round1Message(
        VssCommitment(m.commitment.points[:1]), m.pop, m.ephemeral, m.ciphertexts
    )
    _expect_round2_failure(parts[0], [msgs[0], shorter, msgs[2]], Fault.COMMITMENT_LENGTH, 2)
    # On the wire, a t+1-point commitment cannot parse as a t-point message.
    with pytest.raises(DkgError) as exc:
        parts[0].receive_round1([msgs[0].to_bytes(), bad.to_bytes(), msgs[2].to_bytes()])
    assert exc.value.culprit == 2
    assert parts[0].receive_round1(msgs).index == 1


def test_identity_commitment_point() -> None:
    _params, parts, msgs, _ = _round1(2, 3)
    m = msgs[2]
    ident = Round1Message(
        VssCommitment((m.commitment.points[0], IDENTITY)), m.pop, m.ephemeral, m.ciphertexts
    )
    _expect_round2_failure(parts[0], [msgs[0], msgs[1], ident], Fault.INVALID_POINT, 3)
    raw = bytearray(m.to_bytes())
    raw[32:64] = IDENTITY.to_bytes()
    _expect_round2_failure(parts[0], [msgs[0], msgs[1], bytes(raw)], Fault.INVALID_POINT, 3)
    raw[32:64] = bytes(32)  # the order-4 point
    _expect_round2_failure(parts[0], [msgs[0], msgs[1], bytes(raw)], Fault.INVALID_POINT, 3)


def test_identity_ephemeral_key() -> None:
    _params, parts, msgs, _ = _round1(2, 3)
    m = msgs[1]
    bad = Round1Message(m.commitment, m.pop, IDENTITY, m.ciphertexts)
    _expect_round2_failure(parts[0], [msgs[0], bad, msgs[2]], Fault.INVALID_POINT, 2)


def test_bad_pop() -> None:
    params, parts, msgs, _ = _round1(2, 3)
    m = msgs[1]
    pop = bytearray(m.pop)
    pop[40] ^= 1
    bad = Round1Message(m.commitment, bytes(pop), m.ephemeral, m.ciphertexts)
    _expect_round2_failure(parts[0], [msgs[0], bad, msgs[2]], Fault.BAD_POP, 2)
    co = Coordinator(params)
    with pytest.raises(DkgError) as exc:
        co.receive_round1(2, bad)
    check(exc, Fault.BAD_POP, 2)


def test_round1_replayed_from_another_session() -> None:
    params, parts, msgs, sks = _round1(2, 3)
    other_params = SessionParams.create(
        b"another session", [p.to_bytes() for p in params.static_keys], 2
    )
    other = Participant(other_params, sks[2], rng=DeterministicRandom(b"old"))
    replayed = other.round1()
    _expect_round2_failure(parts[0], [msgs[0], msgs[1], replayed], Fault.BAD_POP, 3)


def test_share_failing_its_commitment() -> None:
    params, parts, msgs, sks = _round1(2, 3)
    bad = forge_round1(params, sks[1], b"dealer2", share_delta={1: Scalar.from_int(1)})
    _expect_round2_failure(parts[0], [msgs[0], bad, msgs[2]], Fault.SHARE_MISMATCH, 2)
    # The honest recipients of the same dealer are fine with it.
    assert parts[2].receive_round1([msgs[0], bad, msgs[2]]).index == 3


def test_ciphertext_that_fails_to_decrypt() -> None:
    _params, parts, msgs, _ = _round1(2, 3)
    m = msgs[2]
    ct = bytearray(m.ciphertexts[0])
    ct[5] ^= 0x80
    bad = Round1Message(m.commitment, m.pop, m.ephemeral, (bytes(ct), *m.ciphertexts[1:]))
    _expect_round2_failure(parts[0], [msgs[0], msgs[1], bad], Fault.DECRYPTION_FAILED, 3)
    # A ciphertext addressed to someone else (swapped) fails the same way.
    swapped = Round1Message(
        m.commitment, m.pop, m.ephemeral, (m.ciphertexts[1], *m.ciphertexts[1:])
    )
    _expect_round2_failure(parts[0], [msgs[0], msgs[1], swapped], Fault.DECRYPTION_FAILED, 3)


def test_non_canonical_share_plaintext() -> None:
    params, parts, msgs, sks = _round1(2, 3)
    bad = forge_round1(params, sks[1], b"dealer2", raw_share={1: L.to_bytes(32, "little")})
    _expect_round2_failure(parts[0], [msgs[0], bad, msgs[2]], Fault.NON_CANONICAL_PLAINTEXT, 2)


def test_bad_ciphertext_frames() -> None:
    _params, parts, msgs, _ = _round1(2, 3)
    raw = msgs[1].to_bytes()
    head = 2 * 32 + 64 + 32
    too_big = raw[:head] + (1 << 40).to_bytes(8, "big") + raw[head + 8 :]
    _expect_round2_failure(parts[0], [msgs[0], too_big, msgs[2]], Fault.BAD_CIPHERTEXT_FRAME, 2)
    too_small = raw[:head] + (47).to_bytes(8, "big") + raw[head + 8 :]
    _expect_round2_failure(parts[0], [msgs[0], too_small, msgs[2]], Fault.BAD_CIPHERTEXT_FRAME, 2)
    _expect_round2_failure(parts[0], [msgs[0], raw + b"\x00", msgs[2]], Fault.MALFORMED_MESSAGE, 2)
    _expect_round2_failure(parts[0], [msgs[0], raw[:-1], msgs[2]], Fault.MALFORMED_MESSAGE, 2)
    _expect_round2_failure(parts[0], [msgs[0], msgs[1]], Fault.MALFORMED_MESSAGE, None)


def test_own_message_altered_in_transit() -> None:
    params, parts, msgs, sks = _round1(2, 3)
    forged = forge_round1(params, sks[0], b"someone else")
    _expect_round2_failure(parts[0], [forged, msgs[1], msgs[2]], Fault.MALFORMED_MESSAGE, None)


def test_coordinator_refuses_equivocation_and_bad_senders() -> None:
    params, _parts, msgs, sks = _round1(2, 3)
    co = Coordinator(params)
    co.receive_round1(2, msgs[1])
    other = forge_round1(params, sks[1], b"second version")
    with pytest.raises(DkgError) as exc:
        co.receive_round1(2, other)
    assert exc.value.culprit == 2
    with pytest.raises(DkgError) as exc:
        co.receive_round1(4, msgs[0])
    check(exc, Fault.NOT_A_PARTICIPANT, None)


# --- Round-3 errors -----------------------------------------------------------------------------


def test_split_view_is_caught_by_certeq() -> None:
    """Dealer 2 (with the coordinator) shows participants 1 and 2 one round-1 message and
    participant 3 another; both are internally valid, so only CertEq can notice."""
    params, parts, msgs, sks = _round1(2, 3)
    version_b = forge_round1(params, sks[1], b"version B")
    # Participant 2 is the equivocating dealer; it runs its own view with its real message.
    view_a = [msgs[0], msgs[1], msgs[2]]
    view_b = [msgs[0], version_b, msgs[2]]
    parts[0].receive_round1(view_a)
    parts[1].receive_round1(view_a)
    parts[2].receive_round1(view_b)
    sigs = [p.sign_transcript() for p in parts]
    assert parts[0].transcript.hash() != parts[2].transcript.hash()
    with pytest.raises(DkgError) as exc:
        parts[0].receive_signatures(sigs)
    check(exc, Fault.BAD_TRANSCRIPT_SIGNATURE, 3)
    with pytest.raises(DkgError) as exc:
        parts[2].receive_signatures(sigs)
    check(exc, Fault.BAD_TRANSCRIPT_SIGNATURE, 1)
    assert parts[0].state is State.SIGNED


def test_bad_certificate_signature() -> None:
    params, parts, msgs, _ = _round1(2, 3)
    for p in parts:
        p.receive_round1(msgs)
    sigs = [p.sign_transcript() for p in parts]
    bad = bytearray(sigs[1])
    bad[63] ^= 0x01
    tampered = [sigs[0], bytes(bad), sigs[2]]
    with pytest.raises(DkgError) as exc:
        parts[0].receive_signatures(tampered)
    check(exc, Fault.BAD_TRANSCRIPT_SIGNATURE, 2)
    with pytest.raises(DkgError) as exc:
        parts[0].receive_signatures(sigs[:2])
    check(exc, Fault.MALFORMED_MESSAGE, None)
    with pytest.raises(DkgError):
        parts[0].receive_signatures(b"".join(sigs)[:-1])
    co = Coordinator(params)
    for i, m in enumerate(msgs, start=1):
        co.receive_round1(i, m)
    co.begin_certification()
    with pytest.raises(DkgError) as exc:
        co.receive_signature(2, bytes(bad))
    check(exc, Fault.BAD_TRANSCRIPT_SIGNATURE, 2)
    # The untouched signatures still complete the run.
    assert parts[0].receive_signatures(sigs).shares.index == 1
    # A different extension is a different transcript.
    with pytest.raises(DkgError):
        SuccessCertificate(parts[0].transcript.to_bytes()[:-1] + b"", tuple(sigs)).verify()


def test_state_machine_order_is_enforced() -> None:
    _params, parts, _, _ = _round1(2, 3)
    with pytest.raises(StateError):
        parts[0].round1()
    with pytest.raises(StateError):
        parts[0].sign_transcript()
    with pytest.raises(StateError):
        parts[0].receive_signatures([])
    with pytest.raises(StateError):
        _ = parts[0].output
    fresh = make(2, 3)[1][0]
    with pytest.raises(StateError):
        fresh.receive_round1([])
    with pytest.raises(StateError):
        _ = fresh.round1_message


# --- Pieces exposed for blame evidence ----------------------------------------------------------


def test_ecdh_values_agree_and_classify_share() -> None:
    params, _parts, msgs, sks = _round1(2, 3)
    sender, recipient = 2, 1
    m = msgs[sender - 1]
    p_s, p_r = params.static_keys[sender - 1], params.static_keys[recipient - 1]
    mine = recipient_ecdh(sks[recipient - 1], m.ephemeral, p_s)
    se, sd = mine.points()
    assert EcdhValues.from_points(se, sd) == mine
    assert sd == p_s * sks[recipient - 1] == p_r * sks[sender - 1]
    key = h6(mine, m.ephemeral, p_s, p_r, params.context)
    fault, opened = classify_share(key, m.ciphertexts[recipient - 1], m.commitment, recipient)
    assert fault is None and opened is not None
    assert m.commitment.verify_share(recipient, opened.share)
    fault, _ = classify_share(key, m.ciphertexts[2], m.commitment, recipient)
    assert fault is Fault.DECRYPTION_FAILED
    fault, _ = classify_share(key, m.ciphertexts[0], msgs[2].commitment, recipient)
    assert fault is Fault.SHARE_MISMATCH
    fault, opened2 = classify_share_with_ecdh(
        mine,
        params=params,
        sender_index=sender,
        recipient_index=recipient,
        ephemeral=m.ephemeral,
        ciphertext=m.ciphertexts[recipient - 1],
        commitment=m.commitment,
    )
    assert fault is None and opened2 == opened
    wrong = EcdhValues.from_points(sd, se)
    fault, _ = classify_share_with_ecdh(
        wrong,
        params=params,
        sender_index=sender,
        recipient_index=recipient,
        ephemeral=m.ephemeral,
        ciphertext=m.ciphertexts[recipient - 1],
        commitment=m.commitment,
    )
    assert fault is Fault.DECRYPTION_FAILED


def test_schnorr_sign_verify() -> None:
    sk = Scalar.from_int(987654321)
    pk = Point.base_mul(sk)
    sig = schnorr_sign(sk, b"msg")
    assert schnorr_verify(pk, b"msg", sig)
    assert not schnorr_verify(pk, b"msh", sig)
    assert not schnorr_verify(Point.base_mul(Scalar.from_int(2)), b"msg", sig)
    assert not schnorr_verify(pk, b"msg", sig[:-1])
    non_canonical_z = sig[:32] + ((int.from_bytes(sig[32:], "little") + L).to_bytes(32, "little"))
    assert not schnorr_verify(pk, b"msg", non_canonical_z)
    assert not schnorr_verify(pk, b"msg", IDENTITY.to_bytes() + sig[32:])
    trace = schnorr_sign_traced(sk, b"msg")
    assert trace.signature == sig and trace.nonce_input.startswith(
        b"COCKTAIL-DKG-Ed25519-SHA512-NONCE"
    )


def _reference_schnorr_verify(public: Point, message: bytes, signature: bytes) -> bool:
    """Schnorr Verify as it was written before `schnorr_equation_holds`: R decoded strictly
    (canonical, on the curve, in the subgroup, not the identity), then z·B == R + c·P."""
    from triple_ratchet.dkg.cocktail import LABEL_COCKTAIL_H7
    from triple_ratchet.dkg.ed25519 import hash_to_scalar
    from triple_ratchet.errors import DecodeError

    if len(signature) != 64 or public.is_identity():
        return False
    try:
        r = Point.from_bytes(signature[:32])
        z = Scalar.from_bytes(signature[32:])
    except DecodeError:
        return False
    c = hash_to_scalar(LABEL_COCKTAIL_H7, r.to_bytes(), public.to_bytes(), message)
    return Point.base_mul(z) == r + public * c


# Points of small order (libsodium's list of encodings it refuses), to add torsion to an R.
_ORDER_2 = ((2**255 - 19) - 1).to_bytes(32, "little")  # (0, -1)


@settings(max_examples=60, deadline=None)
@given(secret=st.integers(1, L - 1), message=st.binary(max_size=40),
       r_bytes=st.binary(min_size=32, max_size=32), z=st.integers(0, L - 1))
def test_schnorr_verify_checks_r_as_strict_decoding_did(secret: int, message: bytes,
                                                        r_bytes: bytes, z: int) -> None:
    """`schnorr_verify` checks R through the equation (zB − cP compared with R's bytes) instead
    of decoding R first: the same signatures pass and fail as with R decoded strictly — an honest
    one, arbitrary R bytes, R with a torsion part, R the identity with an equation that holds
    (z = c·d), and the same for our DKG signatures."""
    from nacl import bindings

    from triple_ratchet.dkg.cocktail import LABEL_COCKTAIL_H7
    from triple_ratchet.dkg.ed25519 import hash_to_scalar
    from triple_ratchet.dkg.signature import (
        LABEL_DKG_SIG_CHALLENGE,
        dkg_sign,
        dkg_verify,
    )
    from triple_ratchet.errors import InvalidSignature

    d = Scalar.from_int(secret)
    public = Point.base_mul(d)
    honest = schnorr_sign(d, message)
    z_bytes = Scalar.from_int(z).to_bytes()
    torsioned = bindings.crypto_core_ed25519_add(honest[:32], _ORDER_2)
    c_identity = hash_to_scalar(LABEL_COCKTAIL_H7, IDENTITY.to_bytes(), public.to_bytes(),
                                message)
    identity_sig = IDENTITY.to_bytes() + (c_identity * d).to_bytes()
    cases = [honest, r_bytes + z_bytes, r_bytes + honest[32:], torsioned + honest[32:],
             _ORDER_2 + honest[32:], identity_sig]
    expected = [True, False, False, False, False, False]
    for sig, want in zip(cases, expected, strict=True):
        assert schnorr_verify(public, message, sig) is want
        assert _reference_schnorr_verify(public, message, sig) is want
    # DKG signatures (another label, the same equation)
    context, body = b"c" * 32, message
    ours = dkg_sign(d, b"label", context, body, DeterministicRandom(r_bytes))
    dkg_verify(public, b"label", context, body, ours)
    m = b"label" + len(context).to_bytes(8, "little") + context + body
    c_id = hash_to_scalar(LABEL_DKG_SIG_CHALLENGE, IDENTITY.to_bytes(), public.to_bytes(), m)
    for bad in (IDENTITY.to_bytes() + (c_id * d).to_bytes(),
                bindings.crypto_core_ed25519_add(ours[:32], _ORDER_2) + ours[32:],
                r_bytes + ours[32:]):
        with pytest.raises(InvalidSignature):
            dkg_verify(public, b"label", context, body, bad)


# --- Transcript, certificate, recovery ----------------------------------------------------------


def test_transcript_round_trip_and_strict_parse() -> None:
    _params, parts, _, _ = _round1(2, 3)
    msgs = [p.round1_message for p in parts]
    for p in parts:
        p.receive_round1(msgs)
    sigs = [p.sign_transcript(b"ext!") for p in parts]
    t_bytes = parts[0].transcript.to_bytes()
    assert t_bytes.startswith(len(CIPHERSUITE_ID).to_bytes(8, "little") + CIPHERSUITE_ID)
    assert Transcript.from_bytes(t_bytes) == parts[0].transcript
    for broken in (t_bytes[:-1], t_bytes + b"\x00", b"\x00" + t_bytes[1:]):
        with pytest.raises(DkgError):
            Transcript.from_bytes(broken)
    other_suite = (len(b"COCKTAIL(P-256, SHA-256)")).to_bytes(
        8, "little"
    ) + b"COCKTAIL(P-256, SHA-256)"
    with pytest.raises(DkgError) as exc:
        Transcript.from_bytes(other_suite + t_bytes[8 + len(CIPHERSUITE_ID) :])
    check(exc, Fault.MALFORMED_TRANSCRIPT, None)
    cert = SuccessCertificate(t_bytes, tuple(sigs))
    assert cert.verify() == parts[0].transcript


def test_recovery() -> None:
    _params, parts, msgs, sks = _round1(3, 5)
    for p in parts:
        p.receive_round1(msgs)
    sigs = tuple(p.sign_transcript() for p in parts)
    outs = [p.receive_signatures(sigs) for p in parts]
    cert = outs[0].certificate
    for i in range(1, 6):
        bundle = encode_recovery_bundle([m.ciphertexts[i - 1] for m in msgs])
        assert decode_recovery_bundle(bundle, 5) == tuple(m.ciphertexts[i - 1] for m in msgs)
        rec = recover(sks[i - 1], cert, bundle)
        assert rec.index == i
        assert rec.secret_share == outs[i - 1].secret_share
        assert rec.group_public_key == outs[i - 1].group_public_key
        assert rec.verification_shares[i - 1] == outs[i - 1].verification_share
    bundle = encode_recovery_bundle([m.ciphertexts[0] for m in msgs])
    with pytest.raises(DkgError) as exc:
        recover(Scalar.from_int(42), cert, bundle)
    check(exc, Fault.NOT_A_PARTICIPANT, None)
    with pytest.raises(DkgError) as exc:
        recover(sks[0], cert, bundle + b"\x00")
    check(exc, Fault.MALFORMED_MESSAGE, None)
    with pytest.raises(DkgError) as exc:
        recover(sks[0], cert, bundle[:-1])
    assert exc.value.culprit == 5
    wrong = encode_recovery_bundle([msgs[0].ciphertexts[1]] + [m.ciphertexts[0] for m in msgs[1:]])
    with pytest.raises(DkgError) as exc:
        recover(sks[0], cert, wrong)
    check(exc, Fault.DECRYPTION_FAILED, 1)
    bad_sigs = (sigs[0], sigs[2], sigs[1], sigs[3], sigs[4])
    with pytest.raises(DkgError) as exc:
        recover(sks[0], SuccessCertificate(cert.transcript, bad_sigs), bundle)
    check(exc, Fault.BAD_TRANSCRIPT_SIGNATURE, 2)


def test_round1_wire_round_trip() -> None:
    _params, _parts, msgs, _ = _round1(3, 5)
    for m in msgs:
        raw = m.to_bytes()
        assert Round1Message.from_bytes(raw, 3, 5) == m
        assert raw[:96] == m.commitment.to_bytes()
        assert raw[96 + 64 + 32 : 96 + 64 + 32 + 8] == (48).to_bytes(8, "big")
        assert frame(m.ciphertexts[0]) == raw[192 : 192 + 56]


# --- Redaction ----------------------------------------------------------------------------------


def test_secrets_never_in_repr() -> None:
    params, parts, msgs, sks = _round1(2, 3)
    for p in parts:
        p.receive_round1(msgs)
    sigs = [p.sign_transcript() for p in parts]
    out = parts[0].receive_signatures(sigs)
    secrets = [
        sks[0].to_bytes().hex(),
        out.secret_share.to_bytes().hex(),
        str(out.secret_share.to_int()),
    ]
    key = ShareKey(b"K" * 32, b"N" * 24)
    ecdh = recipient_ecdh(sks[0], msgs[1].ephemeral, params.static_keys[1])
    texts = [
        repr(parts[0]),
        repr(out),
        repr(out.shares),
        repr(Polynomial.random(2, DeterministicRandom(b"p"))),
        repr(key),
        repr(ecdh),
        repr(OpenedShare(out.secret_share, b"secret payload")),
        repr(schnorr_sign_traced(sks[0], b"m")),
    ]
    for text in texts:
        for s in [*secrets, ecdh.ephemeral.hex(), ecdh.static.hex(), (b"K" * 32).hex()]:
            assert s not in text
        assert "KKKK" not in text and "secret payload" not in text
    assert copy.deepcopy(out.secret_share) == out.secret_share


def test_round2_message_bytes_name_the_faulty_entry() -> None:
    _params, parts, msgs, _ = _round1(2, 3)
    r2 = Round2Message.project(msgs, 1).to_bytes()
    entry = 2 * 32 + 64 + 32 + 8 + 48
    bad = bytearray(r2)
    bad[entry + 32 : entry + 64] = IDENTITY.to_bytes()  # C_{2,1}
    with pytest.raises(DkgError) as exc:
        parts[0].receive_round2(bytes(bad))
    check(exc, Fault.INVALID_POINT, 2)
    with pytest.raises(DkgError) as exc:
        parts[0].receive_round2(r2 + b"\x00")
    check(exc, Fault.MALFORMED_MESSAGE, None)
    with pytest.raises(DkgError) as exc:
        parts[0].receive_round2(r2[:-1])
    assert exc.value.culprit == 3
    assert parts[0].state is State.ROUND1_SENT
    assert parts[0].receive_round2(r2).index == 1


def test_payload_limits() -> None:
    params, _, sks = make(2, 3)
    with pytest.raises(UsageError):
        Participant(params, sks[0], payload=bytes(65536))
    with pytest.raises(UsageError):
        Participant(params, sks[0], payload={4: b"x"})


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_any_flipped_byte_in_a_round1_message_names_its_sender(data: st.DataObject) -> None:
    _params, parts, msgs, _ = _round1(2, 3)
    raw = bytearray(msgs[1].to_bytes())
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    raw[pos] ^= 1 << bit
    # Ciphertext to participant 1 starts after C (64), PoP (64), E (32) and its 8-byte frame.
    own_ct = range(160 + 8, 160 + 8 + 48)
    others_ct = range(160 + 8 + 48, len(raw))
    try:
        parts[0].receive_round1([msgs[0], bytes(raw), msgs[2]])
    except DkgError as exc:
        assert exc.culprit == 2
        assert pos not in others_ct or (pos - 160) % 56 < 8  # only a frame byte there
        return
    # Only a flip inside another recipient's ciphertext goes unnoticed by participant 1.
    assert pos in others_ct and (pos - 160) % 56 >= 8
    assert pos not in own_ct
