"""Helpers for the group tests: members of one epoch built straight from the key schedule.

The epoch's inputs (init secret, transcript hash, payloads) are drawn from a seeded RNG instead of
coming out of a DKG run: these tests exercise the message layer, which only sees the key
schedule's outputs. The epoch-change tests run the real DKG.
"""

from __future__ import annotations

from triple_ratchet.group.epoch import EpochState, Member
from triple_ratchet.group.key_schedule import PAYLOAD_LEN, TRANSCRIPT_HASH_LEN, derive_epoch
from triple_ratchet.group.session import GroupSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import DEFAULT_SUITE, SigningKey, Suite

GROUP_ID = b"G" * 16


def make_group(n: int, suite: Suite = DEFAULT_SUITE, seed: bytes = b"group",
               group_id: bytes = GROUP_ID, epoch: int = 1,
               ) -> tuple[list[GroupSession], list[SigningKey]]:
    rng = DeterministicRandom(seed)
    secrets = derive_epoch(suite, rng(suite.hash_len), rng(TRANSCRIPT_HASH_LEN),
                           [rng(PAYLOAD_LEN) for _ in range(n)])
    identities = [suite.generate_signing(rng) for _ in range(n)]
    epoch_keys = [suite.generate_signing(rng) for _ in range(n)]
    roster = [Member(i.public_key().to_bytes(), k.public_key().to_bytes())
              for i, k in zip(identities, epoch_keys, strict=True)]
    sessions = [
        GroupSession(suite, identities[i],
                     EpochState.from_secrets(secrets, group_id=group_id, epoch=epoch,
                                             roster=roster, own_index=i,
                                             signing_key=epoch_keys[i]),
                     rng=DeterministicRandom(seed + bytes([i])))
        for i in range(n)
    ]
    return sessions, identities
