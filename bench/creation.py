"""Creation benchmark (version 2, 11.v2.27): what the creator of an n-member group uploads.

Run: /work/venv/bin/python bench/creation.py [--sizes 64,256,1000] [--suites 1,2]

For each suite and n, `GroupSession.create` with n − 1 join keys (made untimed), once:

- **per notice**: the bytes of one joiner's notice (all its chunks; since the common part it is
  the clear header and the sealed hash of the common part);
- **common part**: the bytes posted once in the change's common mailbox (all its chunks) and
  what its sealed body holds — the roster, the applied add proposals, the certificate
  (announcement, round-1 and round-3 items);
- **creator upload**: the common part plus every notice `create` returns (what the creator PUTs);
- **create**: wall and CPU time of `GroupSession.create`, and the process's peak RSS after it
  (the returned notices are held in memory at once);
- **join**: one joiner's opening of its notice and the common part (CPU time): every roster
  entry's signatures and every applied proposal's identity signature checked.

Issue 8 asks that nothing grow with n²: before the common part, each notice carried the roster
and the n − 1 add proposals, so the upload grew with n²; now the body is posted once (it grows
with n) and each notice is constant in n but for its Merkle path (log n).
"""

from __future__ import annotations

import argparse
import resource
import time

from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.notice import (
    Notice,
    NoticeAssembler,
    create_group,
    open_notice_sealing,
)
from triple_ratchet.group.records import JoinKey, RecordKeys
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite, suite_by_id

NOW_MS = 1_700_000_000_000
GROUP_ID = b"G" * 16


def _joiner(suite: Suite, i: int) -> tuple[IdentityKeyPair, JoinKeyring]:
    rng = DeterministicRandom(b"joiner %d" % i)
    identity = IdentityKeyPair.generate(suite, rng)
    ring = JoinKeyring.empty(suite).generate(identity, one_time=1, last_resort=False,
                                             inbox_id=rng(32), expiry=NOW_MS + 10**10,
                                             rng=rng)
    return identity, ring


def _join_key(ring: JoinKeyring) -> JoinKey:
    return ring.held[0].join_key


def run(suite: Suite, n: int) -> None:
    joiners = [_joiner(suite, i) for i in range(1, n)]
    creator = IdentityKeyPair.generate(suite, DeterministicRandom(b"creator"))
    rng = DeterministicRandom(b"create")
    keys = RecordKeys.from_seed(suite, rng(32))
    wall, cpu = time.perf_counter(), time.process_time()
    start, notices = create_group(creator, keys, group_id=GROUP_ID,
                                  join_keys=[_join_key(r) for _, r in joiners], now=NOW_MS,
                                  rng=rng)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    assert start.common is not None
    common_bytes = sum(len(c) for c in start.common.chunks)
    upload = sum(len(c) for o in notices for c in o.chunks) + common_bytes
    change = start.change
    roster = len(change.roster.to_bytes())
    applied = sum(len(a) for a in change.applied)
    certificate = sum(len(a) for a in (*change.announcements, *change.round1, *change.round3))
    first_identity, first_ring = joiners[0]
    assembler = NoticeAssembler(suite, identity=first_identity.public.to_bytes(),
                                keys=first_ring.keys())
    notice = None
    for chunk in notices[0].chunks:
        assembler, notice = assembler.receive(chunk)
    if notice is None:
        raise SystemExit("the first notice did not reassemble")
    header = len(Notice.from_bytes(notice).header)
    join_cpu = time.process_time()
    opened = open_notice_sealing(suite, notice, identity=first_identity.public.to_bytes(),
                                 keys=first_ring.keys())
    common_assembler, common = opened.assembler(), None
    for chunk in start.common.chunks:  # what the joiner reads from the common mailbox
        common_assembler, common = common_assembler.receive(chunk)
    if common is None:
        raise SystemExit("the common part did not reassemble")
    opened.complete(common)
    join_cpu = time.process_time() - join_cpu
    print(f"suite {suite.suite_id} n={n:5}: per notice {len(notice):9,} B (header {header:,}); "
          f"common part {common_bytes:,} B once (roster {roster:,}, applied {applied:,}, "
          f"certificate {certificate:,}); creator upload {upload / 1e6:9.1f} MB in "
          f"{len(notices)} notices + common; "
          f"create {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss_mb:,} MB; "
          f"join {join_cpu * 1000:.0f} ms CPU", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,256,1000")
    parser.add_argument("--suites", default=",".join(str(s.suite_id) for s in CLASSICAL_SUITES))
    args = parser.parse_args()
    for suite_id in (int(x) for x in args.suites.split(",")):
        for n in (int(x) for x in args.sizes.split(",")):
            run(suite_by_id(suite_id), n)


if __name__ == "__main__":
    main()
