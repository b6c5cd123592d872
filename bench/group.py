"""Group benchmark: version 2's group-message path against its primitive floor and Megolm.

Run: /work/venv/bin/python bench/group.py [--rounds N] [--quick] [--no-refresh]

Per suite, measured in one process, interleaved in rounds (see _timing.py), medians reported:
- steady: one version-2 group message (spec 09 §9.11) sealed by member 0 (`encrypt_v2`, what
  `GroupSession.encrypt` runs) and received by member 1 (`parse_v2` + `receive_v2` +
  `expire_in_epoch`, what `GroupSession.receive` runs for a group-mailbox entry of the current
  epoch, without the control-run step `tick` also takes) of a 3-member group (and of a
  64-member one, to show the per-message cost does not grow with the roster) in one epoch
  (states built straight from the version-2 key schedule, as tests/test_group_messages_v2.py's
  `make_epoch` does), 100 B and 4 KiB;
- the signed sender-key floor, timed in the same rounds: the suite's signature sign + verify of a
  message of that size, one AEAD encrypt + decrypt of that size, and the chain step on both
  sides (message key + next chain key, one HMAC each, as KDF_CK does). Everything the library
  does beyond that (sender-data encryption, key and nonce derivations, padding, encodings,
  digests, ordering, state updates) is overhead measured by the ratio;
- Megolm (vodozemac's GroupSession/InboundGroupSession, serialized to bytes and parsed back, as
  the blob is), 100 B and 4 KiB, when the `vodozemac` package is importable (`pip install
  .[bench]`).
Version 2's epoch change is measured by bench/epoch.py (`--no-refresh` is kept, and ignored, for
the callers of the version-1 benchmark, which also timed a refresh here).
Target: steady 100 B within 1.5x its floor.
"""

from __future__ import annotations

import argparse
import sys

from _timing import Batch, ratio, run_rounds

from triple_ratchet.group.epoch import EpochState, Member
from triple_ratchet.group.key_schedule import derive_epoch_v2
from triple_ratchet.group.message_path import (
    encrypt_v2,
    expire_in_epoch,
    parse_v2,
    receive_v2,
)
from triple_ratchet.group.records import RecordKeys
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite

GROUP_ID = b"G" * 16
NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)  # the hub's acceptance time of every entry (one instant)


# --- Ours ---------------------------------------------------------------------------------


def make_group(n: int, suite: Suite, seed: bytes = b"bench group") -> list[EpochState]:
    """n members' version-2 states of one epoch from one member_base (what a commit gives; no
    committee run)."""
    rng = DeterministicRandom(seed)
    keys = [RecordKeys.generate(suite, rng) for _ in range(n)]
    roster = [Member(b"member-%d" % i, k.signing_public) for i, k in enumerate(keys)]
    secrets = derive_epoch_v2(suite, rng(suite.hash_len), suite.hash(b"group context"), n)
    return [EpochState.from_secrets_v2(secrets, group_id=GROUP_ID, epoch=1, roster=roster,
                                       own_index=i, signing_key=k.signing_key)
            for i, k in enumerate(keys)]


def ours_steady(suite: Suite, size: int, n: int = 3) -> Batch:
    states = make_group(n, suite)
    plaintext = bytes(size)
    rng = DeterministicRandom(b"bench sender")
    sender, receiver = states[0], states[1]

    def batch(count: int) -> None:
        nonlocal sender, receiver
        for _ in range(count):
            out, sender = encrypt_v2(sender, plaintext, rng)
            events, receiver = receive_v2(receiver, parse_v2(receiver, out.blob), NOW_MS,
                                          NOW_MS)
            _, receiver = expire_in_epoch(receiver, NOW_MS)
            if not events:
                raise AssertionError("message not delivered")
    return batch


# --- Floor --------------------------------------------------------------------------------


def floor_steady(suite: Suite, size: int) -> Batch:
    """Sign + verify + AEAD encrypt + decrypt + 2 HMACs per side, through the suite itself."""
    rng = DeterministicRandom(b"bench floor")
    signer = suite.generate_signing(rng)
    verifier = suite.verifying_from_bytes(signer.public_key().to_bytes())
    ck0 = rng(suite.hash_len)
    nonce = rng(suite.aead_nonce_len)
    aad = bytes(32)
    message = bytes(size)
    key_len = suite.aead_key_len
    hmac, enc, dec = suite.hmac, suite.aead_encrypt, suite.aead_decrypt

    def batch(n: int) -> None:
        ck = ck0
        for _ in range(n):
            mk = hmac(ck, b"\x01")[:key_len]
            next_ck = hmac(ck, b"\x02")
            signature = signer.sign(message)
            ct = enc(mk, nonce, message, aad)
            mk2 = hmac(ck, b"\x01")[:key_len]
            hmac(ck, b"\x02")
            verifier.verify(signature, dec(mk2, nonce, ct, aad))
            ck = next_ck
    return batch


# --- Megolm (vodozemac) -------------------------------------------------------------------


def megolm(size: int) -> Batch | None:
    try:
        import vodozemac
    except ImportError:
        return None
    outbound = vodozemac.GroupSession()
    inbound = vodozemac.InboundGroupSession(outbound.session_key)
    plaintext = bytes(size)
    parse = vodozemac.MegolmMessage.from_bytes

    def batch(n: int) -> None:
        encrypt, decrypt = outbound.encrypt, inbound.decrypt
        for _ in range(n):
            if len(decrypt(parse(encrypt(plaintext).to_bytes())).plaintext) != size:
                raise AssertionError("Megolm round trip failed")
    return batch


# --- Report -------------------------------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:10.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds, short batches")
    parser.add_argument("--no-refresh", action="store_true",
                        help="ignored (epoch changes: bench/epoch.py)")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    # Longer batches than the pairwise benchmark's: one operation here is ~0.3 ms, and the
    # first one after switching contenders runs on cold caches; a batch of a few operations
    # would mostly measure that switch.
    batch_seconds = 0.005 if args.quick else 0.05
    have_megolm = megolm(1) is not None
    failures: list[str] = []

    print(f"group benchmark: {rounds} interleaved rounds, medians (µs per operation)")
    print(f"{'operation':<30}{'ours':>10}{'floor':>10}{'ours/floor':>11}{'target':>8}"
          f"{'Megolm':>10}{'ours/Megolm':>12}")
    for suite in CLASSICAL_SUITES:
        print(f"-- {suite.name}")
        for label, size, n, target in (("encrypt+decrypt 100 B", 100, 3, 1.5),
                                       ("encrypt+decrypt 4 KiB", 4096, 3, None),
                                       ("  same, 100 B, n=64 members", 100, 64, None)):
            contenders: dict[str, Batch] = {"ours": ours_steady(suite, size, n),
                                            "floor": floor_steady(suite, size)}
            peer = megolm(size) if n == 3 else None
            if peer is not None:
                contenders["megolm"] = peer
            results = run_rounds(contenders, rounds, batch_seconds, reps=5)
            r = ratio(results["ours"], results["floor"])
            peer_cols = ""
            if "megolm" in results:
                peer_cols = (f"{_us(results['megolm'].median)}"
                             f"{ratio(results['ours'], results['megolm']):>11.1f}x")
            target_col = f"{'<=' + str(target) if target else '':>8}"
            print(f"{label:<30}{_us(results['ours'].median)}{_us(results['floor'].median)}"
                  f"{r:>10.2f}x{target_col}{peer_cols}")
            if target is not None and r > target:
                failures.append(f"{suite.name} {label}: {r:.2f}x > {target}x")
    if not have_megolm:
        print("(vodozemac is not importable: no Megolm column; pip install '.[bench]')")
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
