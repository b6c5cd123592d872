"""Deterministic library objects the fuzz targets start from, and the valid blobs that seed them.

Everything here is built from `DeterministicRandom` and the committed vector files, so the seed
corpus (`make_corpus.py`) and the state a target feeds its input to are the same on every run:
a kept corpus file means the same thing tomorrow as today.
"""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triple_ratchet.group.events import CommonOut, Outgoing
from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.notice import NoticeAssembler, open_notice_sealing
from triple_ratchet.group.session import GroupSession
from triple_ratchet.identity import Account, IdentityKeyPair
from triple_ratchet.pairwise import PairwiseSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.storage import seal_state
from triple_ratchet.suites import CLASSICAL_SUITES, DEFAULT_SUITE

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "vectors"
STORAGE_KEY = bytes(range(32))
# The fixture group's hub clock starts here (integer Unix ms, spec 10.5).
HUB_T0 = 1_800_000_000_000


def vector_file(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return doc


def vector_hex(name: str, *keys: str) -> list[bytes]:
    """Every hex string found under one of `keys` (at any depth) in vectors/`name`."""
    found: list[bytes] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in keys and isinstance(v, str):
                    with contextlib.suppress(ValueError):
                        found.append(bytes.fromhex(v))
                else:
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(vector_file(name))
    return found


# --- Pairwise --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairwise:
    account_state: bytes  # the responder's account before the first message
    first: bytes  # the initiator's first blob (an initial message)
    session_state: bytes  # the responder's session after `first`
    messages: tuple[bytes, ...]  # later initiator messages, none read yet
    initiator_state: bytes
    identity_keypairs: tuple[bytes, ...]
    identities: tuple[bytes, ...]
    bundles: tuple[bytes, ...]


@functools.cache
def pairwise() -> Pairwise:
    rng = DeterministicRandom(b"fuzz pairwise")
    alice = IdentityKeyPair.generate(DEFAULT_SUITE, rng)
    bob = Account.generate(DEFAULT_SUITE, rng)
    bundles = bob.new_bundles(2, rng)
    account_state = bob.to_bytes()
    a_session, first = PairwiseSession.initiate(alice, bundles[0], rng, plaintext=b"welcome")
    b_session, _, _ = PairwiseSession.respond(Account.from_bytes(account_state), first, rng)
    messages = [a_session.encrypt(b"x" * n) for n in (0, 17, 200)]
    # One from after a DH ratchet step too.
    b_session_copy = PairwiseSession.from_bytes(b_session.to_bytes(), rng)
    a_session.decrypt(b_session_copy.encrypt(b"reply"))
    messages.append(a_session.encrypt(b"after the ratchet"))
    keypairs = [alice.to_bytes(), bob.identity.to_bytes()]
    identities = [alice.public.to_bytes(), bob.public_identity.to_bytes()]
    for suite in CLASSICAL_SUITES:
        other = IdentityKeyPair.generate(suite, DeterministicRandom(b"fuzz " + suite.name.encode()))
        keypairs.append(other.to_bytes())
        identities.append(other.public.to_bytes())
    return Pairwise(account_state, first, b_session.to_bytes(), tuple(messages),
                    a_session.to_bytes(), tuple(keypairs), tuple(identities),
                    tuple(b.to_bytes() for b in bundles))


# --- Group ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    identity: bytes  # the reading member's identity key pair (IdentityKeyPair.to_bytes())
    keyring: bytes  # its join keyring before it joined (JoinKeyring.to_bytes())
    notice_chunks: tuple[bytes, ...]  # its inbox: the notice that made it a member
    state_before: bytes  # that member in epoch 1, the refresh's control entries not read yet
    control_blobs: tuple[bytes, ...]  # every entry of epoch 1's control mailbox (the refresh)
    state: bytes  # the same member in epoch 2, no group message read yet
    group_blobs: tuple[bytes, ...]  # group messages of epoch 2, none read yet
    entry_time: int  # hub time of the entries (after every blob above)
    common_chunks: tuple[bytes, ...] = ()  # the common mailbox of its notice (11.v2.13)


@dataclass
class _Member:
    identity: IdentityKeyPair
    rng: DeterministicRandom
    keyring: JoinKeyring
    inbox: bytes
    session: GroupSession | None = None


class _Hub:
    """Mailboxes in one order each with the hub's acceptance times, and the members' cursors."""

    def __init__(self) -> None:
        self.t = HUB_T0
        self.boxes: dict[bytes, list[tuple[bytes, int]]] = {}
        self.cursors: dict[tuple[bytes, bytes], int] = {}  # (member's inbox, mailbox)

    def post(self, outs: list[Outgoing]) -> None:
        for o in outs:
            self.t += 1
            self.boxes.setdefault(o.mailbox_id, []).append((o.blob, self.t))

    def pump(self, m: _Member) -> bool:
        moved = False
        i = m.inbox
        if m.session is None:
            assembler = NoticeAssembler(m.identity.suite, identity=m.identity.public.to_bytes(),
                                        keys=tuple(m.keyring.keys()))
            for blob, _ in self.boxes.get(m.inbox, []):
                assembler, notice = assembler.receive(blob)
                if notice is not None:
                    opened = open_notice_sealing(m.identity.suite, notice,
                                                 identity=m.identity.public.to_bytes(),
                                                 keys=m.keyring.keys())
                    common, part = opened.assembler(), None
                    for entry, _ in self.boxes.get(opened.common_mailbox.mailbox_id, []):
                        common, part = common.receive(entry)
                        if part is not None:
                            break
                    if part is None:
                        return False
                    start = opened.complete(part)
                    m.session, m.keyring = GroupSession.join(m.identity, start, m.keyring,
                                                               rng=m.rng)
                    self.post(m.session.rotate(self.t / 1000))
                    return True
            return False
        for box in m.session.mailboxes():
            entries = self.boxes.get(box, [])
            while box in m.session.mailboxes() and self.cursors.get((i, box), 0) < len(entries):
                blob, t = entries[self.cursors.get((i, box), 0)]
                self.cursors[(i, box)] = self.cursors.get((i, box), 0) + 1
                moved = True
                _, out = m.session.receive(blob, self.t / 1000, entry_time=t)
                self.post(out)
            if box in m.session.mailboxes():
                _, out = m.session.caught_up(box, self.t / 1000)
                self.post(out)
        return moved

    def settle(self, members: list[_Member]) -> None:
        quiet = 0
        while quiet < 80:
            moved = any([self.pump(m) for m in members])
            if not moved:
                self.t += 1_000
                for m in members:
                    if m.session is not None:
                        _, out = m.session.tick(self.t / 1000)
                        self.post(out)
                        moved |= bool(out)
            quiet = 0 if moved else quiet + 1


@functools.cache
def group() -> Group:
    """Three members: a creates the group with b and c, then refreshes it once (a whole epoch
    change through the control mailbox); a and c then write in the new epoch."""
    members = []
    for name in "abc":
        rng = DeterministicRandom(b"fuzz group " + name.encode())
        identity = IdentityKeyPair.generate(DEFAULT_SUITE, rng)
        inbox = rng(32)
        keyring = JoinKeyring.empty(DEFAULT_SUITE).generate(
            identity, one_time=1, last_resort=True, inbox_id=inbox, expiry=HUB_T0 + 10**10,
            rng=rng)
        members.append(_Member(identity, rng, keyring, inbox))
    hub = _Hub()
    a, b, c = members
    keyring = b.keyring.to_bytes()
    joiners = [next(h for h in m.keyring.held if h.one_time).join_key for m in (b, c)]
    a.session, out = GroupSession.create(a.identity, joiners, hub.t / 1000,
                                           group_id=b"fuzz group", rng=a.rng)
    hub.post(out)
    hub.settle(members)
    assert b.session is not None and b.session.epoch == 1, "the fixture group is formed"
    state_before = b.session.to_bytes()
    control_box = b.session.control_mailbox_id
    hub.t += 3_601_000  # a refresh is proposed an hour into the epoch (as the tests do)
    hub.post(a.session.propose(hub.t / 1000, refresh=True))
    # b stays away while the others run the change, so its saved state has not read it.
    hub.settle([a, c])
    hub.settle(members)
    assert a.session.epoch == b.session.epoch == 2, "the fixture's refresh completes"
    state = b.session.to_bytes()
    control = tuple(blob for blob, _ in hub.boxes.get(control_box, []))
    blobs = [o.blob for m in (a, c, a) if m.session is not None
             for o in m.session.encrypt(b"hello from the fuzz group", hub.t / 1000)]
    notice = tuple(blob for blob, _ in hub.boxes.get(b.inbox, []))
    # Every notice of the creation names one common part, in one common mailbox.
    (common_box,) = {o.mailbox_id for o in out if isinstance(o, CommonOut)}
    common = tuple(blob for blob, _ in hub.boxes[common_box])
    return Group(b.identity.to_bytes(), keyring, notice, state_before, control, state,
                 tuple(blobs), hub.t + 1_000, common)


# --- Storage ---------------------------------------------------------------------------------


def sealed_states() -> list[bytes]:
    rng = DeterministicRandom(b"fuzz storage")
    return [seal_state(STORAGE_KEY, state, rng)
            for state in (b"", b"state", pairwise().session_state)]
