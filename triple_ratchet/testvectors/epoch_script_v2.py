"""A scripted whole epoch change of version 2, every blob and every derived key (spec 14
"Version 2", `epoch-script-v2`; spec 11.v2.36 is the same story told in entries).

`vectors/epoch-script-v2.json`, kind `epoch-script-v2`, one case (operation `script`) per suite:
A creates a group with B and C (epoch 1, through notices), everyone sends a message, C goes
offline, B sends one more, A adds D; the committee of the members online (A and B) runs and
commits epoch 2; A, B and D send in epoch 2; C comes back, reads epoch 1's control mailbox to
the commit, opens its sealing, reads both epochs' group mailboxes and epoch 2's control mailbox,
and sends a message everyone reads.

**Writer side** (`_run_script`): the members' `GroupSession`s talk through an in-memory hub
with a scripted clock (every entry is accepted 1 ms after the previous one; while nothing
moves, the clock advances `step_ms` and every online member ticks). Each member's randomness is
one `DeterministicRandom(rng_seed)` stream: its identity, inbox id and join key are drawn
first, then everything its session draws.

**Recorded**: every mailbox in the order first used, with every entry `(t, blob)` in hub order
(notice chunks in the joiners' inboxes, control and group mailboxes of both epochs); for each
member every call made on its session (`actions`, each with the mailbox positions its output
blobs took), its epochs' derived values on entry, the change that brought it into each epoch
(the opened sealing's `commit_secret` / `member_base` where it was a recipient), and every
plaintext it read.

**Reader side** (`check_reader`), what `vectors verify` runs: each member alone, from its
`rng_seed` and the recorded blobs only (no hub, no other session), repeats its actions; every
blob it outputs must be the recorded one at the recorded position, every derived value and
plaintext must be the recorded one. The tests also regenerate the whole script through the hub
(`regenerated`) and compare it byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from triple_ratchet.errors import RemoteError, TripleRatchetError
from triple_ratchet.group.committee import open_commit
from triple_ratchet.group.control_log import ControlLog, Entry
from triple_ratchet.group.events import EpochChanged, Event, MessageReceived, Outgoing
from triple_ratchet.group.join_keys import JoinKeyring
from triple_ratchet.group.notice import (
    CommonAssembler,
    NoticeAssembler,
    OpenedNotice,
    notice_id,
    open_notice_sealing,
)
from triple_ratchet.group.records import JoinKey, decode_keys
from triple_ratchet.group.session import GroupSession
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, HYBRID_SUITES, Suite, suite_by_name
from triple_ratchet.testvectors import (
    CaseResult,
    case,
    document,
    register,
    register_generator,
    run_cases,
)

# Every suite the group runs on: the classical ones' cases first (unchanged), then the hybrid
# (post-quantum) suites' (issue 11), each suite once when ALL_SUITES grows to hold them.
VECTOR_SUITES: tuple[Suite, ...] = tuple(dict.fromkeys((*ALL_SUITES, *HYBRID_SUITES)))
KIND = "epoch-script-v2"
FILE = "epoch-script-v2.json"
T_START = 1_800_000_000_000
DAY = 86_400_000

# The script (spec 14 "epoch-script-v2" says what each step does).
STEPS: list[dict[str, Any]] = [
    {"do": "create", "actor": "A", "members": ["B", "C"]},
    {"do": "settle"},
    {"do": "send", "actor": "A", "text": "a1"},
    {"do": "send", "actor": "B", "text": "b1"},
    {"do": "send", "actor": "C", "text": "c1"},
    {"do": "settle"},
    {"do": "offline", "actor": "C"},
    {"do": "send", "actor": "B", "text": "b2"},
    {"do": "settle"},
    {"do": "propose_add", "actor": "A", "joiner": "D"},
    {"do": "settle"},
    {"do": "send", "actor": "A", "text": "a2"},
    {"do": "send", "actor": "B", "text": "b3"},
    {"do": "send", "actor": "D", "text": "d1"},
    {"do": "settle"},
    {"do": "online", "actor": "C"},
    {"do": "settle"},
    {"do": "send", "actor": "C", "text": "c2"},
    {"do": "settle"},
]
SETTLE_STEP_MS = 1_000
SETTLE_QUIET_ROUNDS = 12
# Bounds on a file's script, so that regenerating a hostile one stays short.
MAX_MEMBERS = 8
MAX_STEPS = 64
MAX_SETTLE_ROUNDS = 1_000


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


def _same(label: str, got: object, want: object) -> None:
    """`expect_equal` with a short report: the path to the first difference, and where in a
    long hex string it is (a whole blob in a report line helps nobody)."""
    if got == want:
        return
    path, g, w = _first_difference(got, want)
    where = label + "".join(f"[{p!r}]" for p in path)
    if isinstance(g, str) and isinstance(w, str) and max(len(g), len(w)) > 80:
        at = next((k for k, (x, y) in enumerate(zip(g, w, strict=False)) if x != y),
                  min(len(g), len(w)))
        raise AssertionError(f"{where}: differs at hex digit {at} (lengths {len(g)} and "
                             f"{len(w)})")
    raise AssertionError(f"{where}: got {_short(g)}, want {_short(w)}")


def _first_difference(got: object, want: object) -> tuple[list[object], object, object]:
    if isinstance(got, dict) and isinstance(want, dict) and sorted(got) == sorted(want):
        for k in want:
            if got[k] != want[k]:
                path, g, w = _first_difference(got[k], want[k])
                return [k, *path], g, w
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for k, (x, y) in enumerate(zip(got, want, strict=True)):
            if x != y:
                path, g, w = _first_difference(x, y)
                return [k, *path], g, w
    return [], got, want


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


# --- one member ------------------------------------------------------------------------------


@dataclass
class _Member:
    """One member's identity, keyring and session, and what is recorded about it."""

    name: str
    suite: Suite
    rng: DeterministicRandom
    identity: IdentityKeyPair
    identity_private: dict[str, str]
    inbox: bytes
    keyring: JoinKeyring
    join_key_bytes: bytes
    join_key_seed: bytes
    session: GroupSession | None = None
    assembler: NoticeAssembler | None = None
    opened: OpenedNotice | None = None  # our notice, its common part still being read
    common: CommonAssembler | None = None
    common_mailbox: bytes = b""
    online: bool = True
    cursors: dict[int, int] = field(default_factory=dict)
    actions: list[list[Any]] = field(default_factory=list)
    reads: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, str] = field(default_factory=dict)  # signed record -> seed (hex)
    notice_id: bytes = b""

    @classmethod
    def make(cls, suite: Suite, name: str, rng_seed: bytes, expiry: int) -> _Member:
        rng = DeterministicRandom(rng_seed)
        # IdentityKeyPair.generate's draws, keeping the private encodings to record.
        signing, dh = suite.generate_signing(rng), suite.generate_dh(rng)
        identity = IdentityKeyPair(suite, signing, dh)
        inbox = rng(32)
        keyring = JoinKeyring.empty(suite).generate(identity, one_time=1, last_resort=False,
                                                    inbox_id=inbox, expiry=expiry, rng=rng)
        held = keyring.held[0]
        return cls(name, suite, rng, identity, {"signing": signing.to_bytes().hex(),
                                                "dh": dh.to_bytes().hex()},
                   inbox, keyring, held.join_key.to_bytes(), held.seed)

    @property
    def id(self) -> bytes:
        return self.identity.public.to_bytes()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "identity": self.id.hex(),
                "identity_private": self.identity_private,
                "inbox_id": self.inbox.hex(),
                "join_key": {"signed_join_key": self.join_key_bytes.hex(),
                             "record_seed": self.join_key_seed.hex()}}


class _Script:
    """The recorded mailboxes and the members; `blob_at` is all a member reads."""

    def __init__(self, suite: Suite, members: list[_Member]) -> None:
        self.suite = suite
        self.members = members
        self.by_name = {m.name: m for m in members}
        self.names = {m.id: m.name for m in members}
        self.group_id = b""
        self.box_ids: list[bytes] = []
        self.entries: list[list[tuple[int, bytes]]] = []

    def box(self, mailbox_id: bytes) -> int:
        """A mailbox's index in the table, given on first use (posting or reading)."""
        if mailbox_id not in self.box_ids:
            self.box_ids.append(mailbox_id)
            self.entries.append([])
        return self.box_ids.index(mailbox_id)

    def blob_at(self, box: int, index: int) -> tuple[bytes, int]:
        if not 0 <= box < len(self.entries) or not 0 <= index < len(self.entries[box]):
            raise AssertionError(f"no entry {index} in mailbox {box}")
        t, blob = self.entries[box][index]
        return blob, t

    def join_key(self, name: str) -> JoinKey:
        keys = decode_keys(self.suite, self.by_name[name].join_key_bytes)
        if not isinstance(keys, JoinKey):
            raise AssertionError(f"{name}'s join key is not a join key")
        return keys


def _epoch_values(script: _Script, session: GroupSession) -> dict[str, Any]:
    """The values a member holds on entering an epoch (spec 08 v2 §8.v2.3), read from its
    state before any message of the epoch is processed (so the chains are at their roots)."""
    # A vector generator reads the secrets it records from the session's state.
    state = session._s.epoch
    log = session._s.log
    if state is None or log is None:
        raise AssertionError("no current epoch")
    roots: list[str] = []
    for i, chain in enumerate(state.receiving):
        if chain is None:
            if i != state.own_index or state.sending.generation != 0:
                raise AssertionError("own chain not at its root")
            roots.append(state.sending.chain_key.hex())
        else:
            if chain.next_generation != 0:
                raise AssertionError("a chain not at its root")
            roots.append(chain.chain_key.hex())
    view = log.view
    return {"epoch": state.epoch, "epoch_id": state.public_epoch_id.hex(),
            "own_index": state.own_index,
            "roster": [script.names.get(e.identity, e.identity.hex())
                       for e in view.roster.entries],
            "roster_hash": view.roster.hash().hex(), "t0": view.t0,
            "group_mailbox_id": state.mailbox_id.hex(),
            "control_mailbox_id": view.mailbox_id.hex(),
            "control_traffic_key": view.traffic_key.hex(),
            "sender_data_secret": state.sender_data_secret.hex(),
            "init_secret_next": state.init_secret.hex(), "chain_roots": roots}


def _change(script: _Script, member: _Member, before: ControlLog, blob: bytes, t: int
            ) -> dict[str, Any]:
    """The deciding commit a control entry made, as the member judged it: the run's public
    values and, for a recipient of a sealing, what it opened (11.v2.26)."""
    log, _ = before.judge(Entry(before.cursor + 1, t, blob))
    decided, attempt, inputs = log.decided, log.attempt, log.run_inputs()
    if decided is None or attempt is None or inputs is None:
        raise AssertionError("the entry decided no change")
    run = log.run
    first3 = run.round3[0]
    if first3 is None:
        raise AssertionError("a decided run without round-3 items")
    roster = log.view.roster
    change: dict[str, Any] = {
        "run": run.run,
        "committee": [script.names[roster.entries[i].identity] for i in run.committee],
        "announcements": [next(a.entry for a in run.announcements if a.author == i)
                          .to_bytes().hex() for i in run.committee],
        "run_session_id": inputs.session_id().hex(),
        "applied_proposals_hash": attempt.applied_hash.hex(),
        "roster_hash": attempt.roster_hash.hex(), "recipients": list(inputs.recipients),
        "bundle_root": first3[2].bundle_root.hex(),
        "confirmation_tag": first3[2].confirmation_tag.hex(), "decided_t": decided.t}
    index = roster.index_of(member.id)
    if index is None or index in run.committee:
        return change  # a committee member keeps its payloads, not a sealing
    new_index = attempt.roster.index_of(member.id)
    if new_index is None or session_of(member) is None:
        raise AssertionError("a recipient not in the new roster")
    own = attempt.roster.entries[new_index]
    keys = next(k for k in session_of(member).resume_keys() if k.holds(own.keys))
    round1 = [r[2] for r in run.round1 if r is not None]
    outcome = open_commit(inputs, round1, decided.commit, bundle_root=first3[2].bundle_root,
                          confirmation_tag=first3[2].confirmation_tag, roster_index=new_index,
                          receive_private_key=keys.receive_key.to_bytes(),
                          init_secret=log.view.init_secret)
    change.update({
        "sealed": "member_base" if outcome.commit_secret is None else "commit_secret",
        "commit_secret": None if outcome.commit_secret is None else outcome.commit_secret.hex(),
        "member_base": outcome.member_base.hex(), "group_context": outcome.group_context.hex(),
        "transcript_hash": outcome.transcript_hash.hex(),
        "epoch_secret": outcome.epoch_secret.hex()})
    return change


def session_of(member: _Member) -> GroupSession:
    if member.session is None:
        raise AssertionError(f"{member.name} has no session")
    return member.session


def _apply(script: _Script, member: _Member, action: list[Any]
           ) -> tuple[list[Outgoing], str | None]:
    """Carry out one recorded action on the member's session (the same code on the writer and
    the reader side). Returns the blobs to post and the error class of a refused receive."""
    op = action[0]
    now_ms = action[-1]
    now = now_ms / 1000
    events: list[Event] = []
    out: list[Outgoing] = []
    error = None
    if op == "create":
        member.session, out = GroupSession.create(
            member.identity, [script.join_key(n) for n in action[1]], now,
            group_id=script.group_id, rng=member.rng)
    elif op == "chunk":
        blob, _ = script.blob_at(action[1], action[2])
        if member.assembler is None:
            member.assembler = NoticeAssembler(script.suite, identity=member.id,
                                               keys=tuple(member.keyring.keys()))
        member.assembler, notice = member.assembler.receive(blob)
        if notice is not None:
            member.opened = open_notice_sealing(script.suite, notice, identity=member.id,
                                                keys=member.keyring.keys())
            member.common = member.opened.assembler()
            member.common_mailbox = member.opened.common_mailbox.mailbox_id
            member.notice_id = notice_id(script.suite, notice)
    elif op == "common":  # the second fetch: the common part our notice names (11.v2.28)
        blob, _ = script.blob_at(action[1], action[2])
        if member.opened is None or member.common is None:
            raise AssertionError(f"{member.name} reads a common part without a notice")
        member.common, common = member.common.receive(blob)
        if common is not None:
            start = member.opened.complete(common)
            member.opened = member.common = None
            member.session, member.keyring = GroupSession.join(
                member.identity, start, member.keyring, rng=member.rng)
            member.epochs.append({**_epoch_values(script, member.session),
                                  "entered_by": "notice",
                                  "change": {"run": start.run,
                                             "previous_epoch_id": start.previous_epoch_id.hex(),
                                             "run_session_id": start.run_session_id.hex(),
                                             "confirmation_tag":
                                                 start.secrets.confirmation_tag.hex(),
                                             "added_by": script.names[start.added_by]}})
    elif op == "rotate":
        out = session_of(member).rotate(now)
    elif op == "receive":
        session = session_of(member)
        blob, t = script.blob_at(action[1], action[2])
        before = session.control_log if session.status == "active" else None
        epoch = session.epoch if session.status == "active" else None
        try:
            events, out = session.receive(blob, now, entry_time=t)
        except RemoteError as exc:
            error = type(exc).__name__
        if (before is not None and session.status == "active" and session.epoch != epoch
                and before.view.mailbox_id == script.box_ids[action[1]]):
            member.epochs.append({**_epoch_values(script, session),
                                  "entered_by": "commit",
                                  "change": _change(script, member, before, blob, t)})
    elif op == "caught_up":
        events, out = session_of(member).caught_up(script.box_ids[action[1]], now)
    elif op == "tick":
        events, out = session_of(member).tick(now)
    elif op == "encrypt":
        out = session_of(member).encrypt(action[1].encode(), now)
    elif op == "propose_add":
        out = session_of(member).propose(now, add=[script.join_key(action[1])])
    else:
        raise AssertionError(f"unknown action {op!r}")
    for e in events:
        if isinstance(e, MessageReceived):
            member.reads.append({"epoch": e.epoch, "sender": script.names[e.sender_identity],
                                 "generation": e.generation, "text": e.body.decode()})
        elif isinstance(e, EpochChanged) and op != "receive":
            raise AssertionError("an epoch change outside a control entry")
    if op == "create" and member.session is not None:
        member.epochs.append({**_epoch_values(script, member.session), "entered_by": "create"})
    if member.session is not None:
        for r in member.session._s.records:  # the record seeds it holds (private state)
            member.records.setdefault(r.keys_bytes.hex(), r.seed.hex())
    return out, error


# --- writer side: the hub and the script -----------------------------------------------------


class _Hub(_Script):
    def __init__(self, suite: Suite, members: list[_Member], i: dict[str, Any]) -> None:
        super().__init__(suite, members)
        self.t = i["t_start"]
        self.group_id = _h(i["group_id"])
        self.step_ms = i["settle"]["step_ms"]
        self.quiet_rounds = i["settle"]["quiet_rounds"]

    def act(self, member: _Member, action: list[Any]) -> None:
        """Run an action, post its output (each entry 1 ms after the last) and record both."""
        out, error = _apply(self, member, action)
        posted = []
        for o in out:
            self.t += 1
            box = self.box(o.mailbox_id)
            self.entries[box].append((self.t, o.blob))
            posted.append([box, len(self.entries[box]) - 1])
        member.actions.append([*action, posted] if error is None else [*action, posted, error])

    def pump(self, member: _Member) -> bool:
        """Read every mailbox to its end: the inbox until a notice is complete, then the
        session's mailboxes (old epochs' group mailboxes first, then the control mailbox,
        then the group mailbox), telling the session when one is read to its end."""
        if not member.online:
            return False
        if member.session is None:
            box = self.box(member.inbox)
            moved = False
            while member.opened is None and member.cursors.get(box, 0) < len(self.entries[box]):
                i = member.cursors.get(box, 0)
                member.cursors[box] = i + 1
                self.act(member, ["chunk", box, i, self.t])
                moved = True
            if member.opened is not None:
                box = self.box(member.opened.common_mailbox.mailbox_id)
                while member.session is None and (
                        member.cursors.get(box, 0) < len(self.entries[box])):
                    i = member.cursors.get(box, 0)
                    member.cursors[box] = i + 1
                    self.act(member, ["common", box, i, self.t])
                    moved = True
            if member.session is not None:
                self.act(member, ["rotate", self.t])  # R10: a joiner posts its own record
            return moved
        session = member.session
        moved = False
        done: set[bytes] = set()
        while session.status == "active":
            boxes = [b for b in session.mailboxes() if b not in done]
            if not boxes:
                break
            old = [b for b in boxes if b not in (session.mailbox_id, session.control_mailbox_id)]
            mailbox = old[0] if old else (session.control_mailbox_id
                                          if session.control_mailbox_id in boxes else boxes[0])
            box = self.box(mailbox)
            while member.cursors.get(box, 0) < len(self.entries[box]):
                i = member.cursors.get(box, 0)
                member.cursors[box] = i + 1
                moved = True
                self.act(member, ["receive", box, i, self.t])
                if mailbox not in session.mailboxes():
                    break  # the epoch changed: read the new mailboxes
            if (mailbox in session.mailboxes()
                    and member.cursors.get(box, 0) >= len(self.entries[box])):
                self.act(member, ["caught_up", box, self.t])
                done.add(mailbox)
        return moved

    def settle(self) -> None:
        """Online members read and act until nothing moves for `quiet_rounds` rounds, the
        clock advancing `step_ms` per quiet round (every online member ticks)."""
        quiet = 0
        for _ in range(MAX_SETTLE_ROUNDS):
            if quiet > self.quiet_rounds:
                return
            moved = False
            for m in self.members:
                moved |= self.pump(m)
            if moved:
                quiet = 0
                continue
            self.t += self.step_ms
            for m in self.members:
                if m.online and m.session is not None and m.session.status == "active":
                    before = sum(len(e) for e in self.entries)
                    self.act(m, ["tick", self.t])
                    moved |= sum(len(e) for e in self.entries) != before
            quiet = 0 if moved else quiet + 1
        raise AssertionError(f"the members did not settle in {MAX_SETTLE_ROUNDS} rounds")


def _members(suite: Suite, i: dict[str, Any]) -> list[_Member]:
    return [_Member.make(suite, m["name"], _h(m["rng_seed"]), i["join_key_expiry"])
            for m in i["members"]]


def _outputs(script: _Script) -> dict[str, Any]:
    what: dict[bytes, str] = {}
    for m in script.members:
        what[m.inbox] = f"inbox of {m.name}"
        if m.common_mailbox and m.epochs:
            what[m.common_mailbox] = f"common mailbox of epoch {m.epochs[0]['epoch']}'s notices"
        for e in m.epochs:
            what[_h(e["group_mailbox_id"])] = f"group mailbox of epoch {e['epoch']}"
            what[_h(e["control_mailbox_id"])] = f"control mailbox of epoch {e['epoch']}"
    return {
        "members": [{**m.describe(),
                     "records": [{"signed_record": k, "record_seed": v}
                                 for k, v in m.records.items()],
                     "notice_id": m.notice_id.hex(), "epochs": m.epochs, "reads": m.reads,
                     "actions": m.actions} for m in script.members],
        "mailboxes": [{"mailbox_id": b.hex(), "what": what.get(b, "?"),
                       "entries": [{"t": t, "blob": blob.hex()} for t, blob in entries]}
                      for b, entries in zip(script.box_ids, script.entries, strict=True)],
    }


def _check_bounds(i: dict[str, Any]) -> None:
    """A hostile file must not make the regeneration run long: the script's sizes first."""
    settle = i["settle"]
    for key, low, high in (("step_ms", 1, 3_600_000), ("quiet_rounds", 0, 100)):
        value = settle[key]
        if type(value) is not int or not low <= value <= high:
            raise AssertionError(f"settle.{key} must be an integer in {low}..{high}")
    if not 1 <= len(i["members"]) <= MAX_MEMBERS or len(i["steps"]) > MAX_STEPS:
        raise AssertionError(f"at most {MAX_MEMBERS} members and {MAX_STEPS} steps")


def _run_script(suite: Suite, i: dict[str, Any]) -> dict[str, Any]:
    _check_bounds(i)
    hub = _Hub(suite, _members(suite, i), i)
    for step in i["steps"]:
        do = step["do"]
        actor = hub.by_name.get(step.get("actor", ""))
        if do == "settle":
            hub.settle()
        elif actor is None:
            raise AssertionError(f"step {do!r} without a known actor")
        elif do == "create":
            hub.act(actor, ["create", step["members"], hub.t])
        elif do == "send":
            hub.act(actor, ["encrypt", step["text"], hub.t])
        elif do == "propose_add":
            hub.act(actor, ["propose_add", step["joiner"], hub.t])
        elif do in ("offline", "online"):
            actor.online = do == "online"
        else:
            raise AssertionError(f"unknown step {do!r}")
    return _outputs(hub)


# --- reader side: one member alone against the recorded blobs -----------------------------------


class _Recorded(_Script):
    def __init__(self, suite: Suite, members: list[_Member], i: dict[str, Any],
                 o: dict[str, Any]) -> None:
        super().__init__(suite, members)
        self.group_id = _h(i["group_id"])
        for box in o["mailboxes"]:
            self.box_ids.append(_h(box["mailbox_id"]))
            self.entries.append([(e["t"], _h(e["blob"])) for e in box["entries"]])


def _replay_member(script: _Recorded, member: _Member, recorded: dict[str, Any]
                   ) -> set[tuple[int, int]]:
    """Repeat the member's recorded actions against the recorded blobs; every output blob must
    be the one recorded where it was posted. Returns the positions the member wrote."""
    wrote: set[tuple[int, int]] = set()
    for n, action in enumerate(recorded["actions"]):
        error = action[-1] if isinstance(action[-1], str) else None
        posted = action[-2] if error is not None else action[-1]
        call = action[:-2] if error is not None else action[:-1]
        try:
            out, got_error = _apply(script, member, list(call))
        except TripleRatchetError as exc:  # e.g. caught_up of a mailbox it does not read
            raise AssertionError(f"{member.name} action {n} ({call[0]}) refused: "
                                 f"{type(exc).__name__}") from None
        _same(f"{member.name} action {n} ({call[0]}) error", got_error, error)
        _same(f"{member.name} action {n} ({call[0]}) output count", len(out),
                     len(posted))
        for o, (box, index) in zip(out, posted, strict=True):
            blob, _ = script.blob_at(box, index)
            _same(f"{member.name} action {n} ({call[0]}) mailbox",
                         o.mailbox_id.hex(), script.box_ids[box].hex())
            _same(f"{member.name} action {n} ({call[0]}) blob at mailbox {box} entry "
                         f"{index}", o.blob.hex(), blob.hex())
            wrote.add((box, index))
    _same(f"{member.name} epochs", member.epochs, recorded["epochs"])
    _same(f"{member.name} reads", member.reads, recorded["reads"])
    _same(f"{member.name} notice id", member.notice_id.hex(), recorded["notice_id"])
    _same(f"{member.name} records",
                 [{"signed_record": k, "record_seed": v} for k, v in member.records.items()],
                 recorded["records"])
    return wrote


def check_reader(c: dict[str, Any]) -> None:
    """The reader side of a case: each member alone, from its `rng_seed`, repeats its recorded
    actions against the recorded blobs (no hub, no other session). Raises `AssertionError`
    on the first difference; every recorded entry must be some member's output."""
    suite = suite_by_name(c["suite"])
    i, o = c["inputs"], c["outputs"]
    if i.get("operation") != "script":
        raise AssertionError(f"unknown operation {i.get('operation')!r}")
    _check_bounds(i)
    members = _members(suite, i)
    script = _Recorded(suite, members, i, o)
    _same("member names", [m["name"] for m in o["members"]], [m.name for m in members])
    for member, recorded in zip(members, o["members"], strict=True):
        described = member.describe()
        _same(f"{member.name} identity and keys", described,
              {k: recorded.get(k) for k in described})
    wrote: set[tuple[int, int]] = set()
    for member, recorded in zip(members, o["members"], strict=True):
        wrote |= _replay_member(script, member, recorded)
    every = {(b, j) for b, entries in enumerate(script.entries) for j in range(len(entries))}
    _same("entries no member wrote", sorted(every - wrote), [])
    times = [t for entries in script.entries for t, _ in entries]
    _same("hub times distinct", len(set(times)), len(times))


def regenerated(c: dict[str, Any]) -> dict[str, Any]:
    """The writer side: the case's script run again through the hub (tests compare it with
    the recorded outputs byte for byte; `vectors verify` runs the reader side only, which
    checks every recorded value at half the cost)."""
    return _run_script(suite_by_name(c["suite"]), c["inputs"])


def _inputs(suite: Suite) -> dict[str, Any]:
    rng = DeterministicRandom(b"epoch-script-v2 vectors " + suite.name.encode())
    return {"operation": "script", "group_id": rng(16).hex(), "t_start": T_START,
            "join_key_expiry": T_START + 30 * DAY,
            "members": [{"name": n, "rng_seed": rng(32).hex()} for n in "ABCD"],
            "settle": {"step_ms": SETTLE_STEP_MS, "quiet_rounds": SETTLE_QUIET_ROUNDS},
            "steps": STEPS}


def _generate() -> dict[str, Any]:
    cases = []
    for suite in VECTOR_SUITES:
        i = _inputs(suite)
        cases.append(case("A creates A+B+C; C offline; A adds D (committee A, B); A, B, D talk; "
                          "C catches up and talks", suite.name, i, _run_script(suite, i)))
    return document(KIND, "A scripted whole epoch change of version 2: every blob with its hub "
                    "time, every derived key, every plaintext (spec 14, 11.v2.36)", cases)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, check_reader)


def generate() -> dict[str, dict[str, Any]]:
    return {FILE: _generate()}


register(lambda: {KIND: verify})
register_generator(generate)
