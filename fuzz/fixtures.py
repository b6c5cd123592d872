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

from triple_ratchet.group.events import Outgoing, WelcomeOut
from triple_ratchet.group.session import GroupSession
from triple_ratchet.identity import Account, Identity, IdentityKeyPair
from triple_ratchet.pairwise import PairwiseSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.storage import seal_state
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "vectors"
NOW = 1_700_000_000.0
# The hub's acceptance time of every entry the fixtures deliver (integer Unix ms, spec 10.5).
ENTRY_TIME = int(NOW * 1000)
STORAGE_KEY = bytes(range(32))


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
    for suite in ALL_SUITES:
        other = IdentityKeyPair.generate(suite, DeterministicRandom(b"fuzz " + suite.name.encode()))
        keypairs.append(other.to_bytes())
        identities.append(other.public.to_bytes())
    return Pairwise(account_state, first, b_session.to_bytes(), tuple(messages),
                    a_session.to_bytes(), tuple(keypairs), tuple(identities),
                    tuple(b.to_bytes() for b in bundles))


# --- Group -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    identity: bytes  # the reading member's identity key pair (IdentityKeyPair.to_bytes())
    joining_state: bytes  # the member while the first epoch change runs
    active_state: bytes  # the member in an active epoch, no group message read yet
    attempt_blobs: tuple[bytes, ...]  # every blob of the first epoch change
    group_blobs: tuple[bytes, ...]  # group messages of the active epoch, none read yet
    welcome: bytes


class _Net:
    """Moves outgoing blobs to mailboxes and welcomes to joiners, all in process."""

    def __init__(self, identities: dict[str, IdentityKeyPair]) -> None:
        self.identities = identities
        self.members: dict[str, GroupSession] = {}
        self.logs: dict[bytes, list[bytes]] = {}
        self.cursors: dict[tuple[str, bytes], int] = {}
        self.welcomes: list[tuple[bytes, bytes, bytes]] = []

    def send(self, sender: str, sends: list[Outgoing | WelcomeOut]) -> None:
        for s in sends:
            if isinstance(s, Outgoing):
                self.logs.setdefault(s.mailbox_id, []).append(s.blob)
            else:
                me = self.identities[sender].public.to_bytes()
                self.welcomes.append((s.recipient, s.welcome, me))

    def step(self) -> bool:
        moved = False
        while self.welcomes:
            recipient, welcome, welcomer = self.welcomes.pop(0)
            for name, ident in self.identities.items():
                if ident.public.to_bytes() == recipient:
                    session, _, sends = GroupSession.join(
                        ident, welcome, Identity.from_bytes(welcomer), NOW,
                        rng=DeterministicRandom(b"fuzz join " + name.encode()))
                    self.members[name] = session
                    self.send(name, sends)
                    moved = True
        for name, session in list(self.members.items()):
            for box in session.mailboxes():
                log = self.logs.get(box, [])
                while box in session.mailboxes() and self.cursors.get((name, box), 0) < len(log):
                    blob = log[self.cursors.get((name, box), 0)]
                    self.cursors[(name, box)] = self.cursors.get((name, box), 0) + 1
                    moved = True
                    _, sends = session.receive(blob, NOW, entry_time=ENTRY_TIME)
                    self.send(name, sends)
        return moved


@functools.cache
def group() -> Group:
    rng = DeterministicRandom(b"fuzz group")
    identities = {name: IdentityKeyPair.generate(DEFAULT_SUITE, rng) for name in "abc"}
    net = _Net(identities)
    creator, sends = GroupSession.create(identities["a"], [identities[x].public for x in "bc"],
                                         NOW, rng=DeterministicRandom(b"fuzz creator"))
    net.members["a"] = creator
    net.send("a", sends)
    welcome = net.welcomes[0][1]
    net.step()  # b and c join; nothing read yet by b
    joining_state = net.members["b"].to_bytes()
    while net.step():
        pass
    attempt_blobs = tuple(blob for log in net.logs.values() for blob in log)
    assert all(s.status == "active" for s in net.members.values()), "the fixture group is active"
    active_state = net.members["b"].to_bytes()
    group_blobs: list[bytes] = []
    for name in "aca":
        for out in net.members[name].encrypt(f"hello from {name}".encode(), NOW):
            if isinstance(out, Outgoing):
                group_blobs.append(out.blob)
    return Group(identities["b"].to_bytes(), joining_state, active_state, attempt_blobs,
                 tuple(group_blobs), welcome)


# --- Storage ---------------------------------------------------------------------------------


def sealed_states() -> list[bytes]:
    rng = DeterministicRandom(b"fuzz storage")
    return [seal_state(STORAGE_KEY, state, rng)
            for state in (b"", b"state", pairwise().session_state)]
