"""Group benchmark: GroupSession's message path against its primitive floor and Megolm.

Run: /work/venv/bin/python bench/group.py [--rounds N] [--quick] [--no-refresh]

Per suite, measured in one process, interleaved in rounds (see _timing.py), medians reported:
- steady: one `GroupSession.encrypt` by member 0 and one `receive` of that blob by member 1 of a
  3-member group (and of a 64-member one, to show the per-message cost does not grow with
  the roster) in one epoch (members built straight from the key schedule, as the tests'
  `make_group` does), 100 B and 4 KiB;
- the signed sender-key floor, timed in the same rounds: the suite's signature sign + verify of a
  message of that size, one AEAD encrypt + decrypt of that size, and the chain step on both
  sides (message key + next chain key, one HMAC each, as KDF_CK does). Everything the library
  does beyond that (sender-data encryption, key and nonce derivations, padding, encodings,
  digests, ordering, state updates) is overhead measured by the ratio;
- Megolm (vodozemac's GroupSession/InboundGroupSession, serialized to bytes and parsed back, as
  the blob is), 100 B and 4 KiB, when the `vodozemac` package is importable (`pip install
  .[bench]`);
- one epoch change (a refresh proposed by one member, run to completion with every member in
  this process, every blob delivered in hub order) for n = 3, 5, 8, and that time divided by n.
Target: steady 100 B within 1.5x its floor.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from _timing import Batch, ratio, run_rounds

from triple_ratchet.group.epoch import EpochState, Member
from triple_ratchet.group.events import Outgoing, WelcomeOut
from triple_ratchet.group.key_schedule import PAYLOAD_LEN, TRANSCRIPT_HASH_LEN, derive_epoch
from triple_ratchet.group.session import ACTIVE, GroupSession, Send, _State
from triple_ratchet.identity import Identity, IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, Suite

GROUP_ID = b"G" * 16
NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)  # the hub's acceptance time of every entry (one instant)


# --- Ours ---------------------------------------------------------------------------------


def make_group(n: int, suite: Suite, seed: bytes = b"bench group") -> list[GroupSession]:
    """n members of one epoch built from the key schedule's outputs (no DKG run)."""
    rng = DeterministicRandom(seed)
    secrets = derive_epoch(suite, rng(suite.hash_len), rng(TRANSCRIPT_HASH_LEN),
                           [rng(PAYLOAD_LEN) for _ in range(n)])
    identities = [IdentityKeyPair.generate(suite, rng) for _ in range(n)]
    epoch_keys = [suite.generate_signing(rng) for _ in range(n)]
    roster = [Member(i.public.to_bytes(), k.public_key().to_bytes())
              for i, k in zip(identities, epoch_keys, strict=True)]
    return [
        GroupSession(identities[i], _State(
            suite.suite_id, ACTIVE, epoch_started_ms=int(NOW * 1000), refresh_messages=0,
            refresh_ms=0,
            epoch=EpochState.from_secrets(secrets, group_id=GROUP_ID, epoch=1, roster=roster,
                                          own_index=i, signing_key=epoch_keys[i])),
            rng=DeterministicRandom(seed + bytes([i])))
        for i in range(n)
    ]


def ours_steady(suite: Suite, size: int, n: int = 3) -> Batch:
    sender, receiver, *_ = make_group(n, suite)
    plaintext = bytes(size)

    def batch(n: int) -> None:
        encrypt, receive = sender.encrypt, receiver.receive
        for _ in range(n):
            (out,) = encrypt(plaintext, NOW)
            assert isinstance(out, Outgoing)
            events, _ = receive(out.blob, NOW, entry_time=NOW_MS)
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


# --- Epoch change -------------------------------------------------------------------------


class _Relay:
    """Every member in this process; blobs appended per mailbox, each member reads in order."""

    def __init__(self, suite: Suite, n: int) -> None:
        rng = DeterministicRandom(b"bench relay %d" % n)
        self.identities = [IdentityKeyPair.generate(suite, rng) for _ in range(n)]
        self.logs: dict[bytes, list[bytes]] = {}
        self.cursors: dict[tuple[int, bytes], int] = {}
        self.members: dict[int, GroupSession] = {}
        self.welcomes: list[tuple[bytes, bytes, bytes]] = []
        first, sends = GroupSession.create(self.identities[0],
                                           [i.public for i in self.identities[1:]], NOW,
                                           rng=DeterministicRandom(b"creator"),
                                           refresh_messages=0, refresh_seconds=0)
        self.members[0] = first
        self.send(0, sends)
        self.run()
        if any(m.status != ACTIVE for m in self.members.values()) or len(self.members) != n:
            raise AssertionError("group creation did not complete")

    def send(self, who: int, sends: list[Send]) -> None:
        me = self.identities[who].public.to_bytes()
        for s in sends:
            if isinstance(s, Outgoing):
                self.logs.setdefault(s.mailbox_id, []).append(s.blob)
            elif isinstance(s, WelcomeOut):
                self.welcomes.append((s.recipient, s.welcome, me))

    def run(self) -> None:
        moved = True
        while moved:
            moved = False
            while self.welcomes:
                recipient, welcome, welcomer = self.welcomes.pop(0)
                k = next(k for k, i in enumerate(self.identities)
                         if i.public.to_bytes() == recipient)
                session, _, sends = GroupSession.join(
                    self.identities[k], welcome, Identity.from_bytes(welcomer), NOW,
                    rng=DeterministicRandom(b"join %d" % k))
                self.members[k] = session
                self.send(k, sends)
            for k, session in list(self.members.items()):
                for box in session.mailboxes():
                    log = self.logs.get(box, [])
                    while box in session.mailboxes() and self.cursors.get((k, box), 0) < len(log):
                        blob = log[self.cursors.get((k, box), 0)]
                        self.cursors[(k, box)] = self.cursors.get((k, box), 0) + 1
                        moved = True
                        _, sends = session.receive(blob, NOW, entry_time=NOW_MS)
                        self.send(k, sends)

    def refresh(self) -> None:
        epoch = self.members[0].epoch
        proposer = epoch % len(self.members)
        self.send(proposer, self.members[proposer].propose(NOW))
        self.run()
        if any(m.epoch != epoch + 1 for m in self.members.values()):
            raise AssertionError("refresh did not complete")


def epoch_change(suite: Suite, n: int) -> Batch:
    relay = _Relay(suite, n)

    def batch(count: int) -> None:
        for _ in range(count):
            relay.refresh()
    return batch


# --- Report -------------------------------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:10.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds, short batches")
    parser.add_argument("--no-refresh", action="store_true", help="skip the epoch changes")
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
    for suite in ALL_SUITES:
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
        if not args.no_refresh:
            sizes = (3, 5, 8)
            changes: dict[str, Callable[[int], None]] = {
                str(n): epoch_change(suite, n) for n in sizes}
            results = run_rounds(changes, max(3, rounds // 3), batch_seconds * 5, reps=2)
            for n in sizes:
                t = results[str(n)].median
                print(f"{f'epoch change (refresh), n={n}':<30}{_us(t)}"
                      f"   all {n} members in process; per member{_us(t / n)}")
    if not have_megolm:
        print("(vodozemac is not importable: no Megolm column; pip install '.[bench]')")
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
