"""Adversarial review (review-pq) of hybrid sealing in the group (h3-pqgroup): checks that held,
as regression guards (no finding here; see /work/wt/NOTES-pqgroup.md)."""

from __future__ import annotations

import pytest
from test_group_pq import _sealing_inputs

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, ProtocolError
from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.records import (
    PURPOSE_ROTATE,
    JoinKey,
    MemberKeyRecord,
    RecordKeys,
    creator_anchor,
)
from triple_ratchet.group.sealing import ephemeral_ikm, seal_bundle, seal_secret
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import HYBRID_SUITES, Suite
from triple_ratchet.suites.mlkem import (
    MLKEM768_CIPHERTEXT_LEN,
    MLKEM768_PUBLIC_KEY_LEN,
    MlKemPublicKey,
)

HYBRIDS = pytest.mark.parametrize("suite", list(HYBRID_SUITES), ids=lambda s: s.name)


@HYBRIDS
def test_each_hybrid_sealing_encapsulates_with_its_own_m(suite: Suite) -> None:
    """The ML-KEM half of sealing i is Encaps_internal(ek_i, ikmE_i[0:32]) with ikmE_i of the
    KEM's full n_ikm; no two recipients and no two commits share an m."""
    context, commit_secret, recipients, _ = _sealing_inputs(suite, 3)
    ms: set[bytes] = set()
    for secret_in in (commit_secret, bytes(suite.hash_len)):
        bundle = seal_bundle(context, secret_in, recipients)
        secret = seal_secret(suite, secret_in, context.run_session_id)
        for r, sealing in zip(recipients, bundle.sealings, strict=True):
            ikm = ephemeral_ikm(context, secret, r)
            assert len(ikm) == context.hpke.kem.n_ikm
            ek = MlKemPublicKey.from_bytes(r.public_key[:MLKEM768_PUBLIC_KEY_LEN])
            assert ek.encapsulate(ikm[:32])[1] == sealing.enc[:MLKEM768_CIPHERTEXT_LEN]
            ms.add(ikm[:32])
    assert len(ms) == 2 * len(recipients)


@HYBRIDS
def test_records_join_keys_and_keyrings_never_cross_between_twin_suites(suite: Suite) -> None:
    for own, other in ((suite.classical, suite), (suite, suite.classical)):
        rng = DeterministicRandom(b"review-pq twins " + own.name.encode())
        identity = IdentityKeyPair.generate(own, rng)
        keys = RecordKeys.generate(own, rng)
        record = MemberKeyRecord.sign(identity, keys, group_id=b"G" * 64, counter=1,
                                      purpose=PURPOSE_ROTATE, anchor=creator_anchor(own))
        join_key = JoinKey.sign(identity, keys, expiry=2**40, inbox_id=bytes(32))
        with pytest.raises((ProtocolError, LimitExceeded, DecodeError)):
            MemberKeyRecord.from_bytes(other, record.to_bytes())
        with pytest.raises((ProtocolError, LimitExceeded, DecodeError)):
            JoinKey.from_bytes(other, join_key.to_bytes())
        ring = JoinKeyring.empty(own).generate(identity, one_time=1, last_resort=True,
                                               inbox_id=bytes(32), expiry=2**40, rng=rng)
        fields = cbor.decode(ring.to_bytes())
        assert isinstance(fields, list) and fields[2] == own.suite_id
        fields[2] = other.suite_id
        with pytest.raises((ProtocolError, LimitExceeded, DecodeError)):
            JoinKeyring.from_bytes(cbor.encode(fields))
