"""Fuzz targets: every decoder and entry point that takes bytes from outside.

The contract each target checks (`check`): for any input the call succeeds or raises an error
from `triple_ratchet.errors` (a `TripleRatchetError`); a refusal leaves the saved state exactly as
it was; no exception on the chain (`__context__`/`__cause__`) carries a piece of the input (a
corrupted saved state holds keys); and where a decoder accepts, it re-encodes to the same bytes
(the encodings are canonical). Anything else is a finding: `check` lets it propagate.

Targets that cover several decoders take the first input byte as a selector (seeds carry it).
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import gzip
import json
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.errors import TripleRatchetError

from . import fixtures as fx

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS = FUZZ_DIR / "corpus"
KNOWN_FINDINGS = FUZZ_DIR / "known_findings.json"


class Finding(AssertionError):
    """A broken contract that is not an escaped exception (changed state, leaked input...)."""


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise Finding(what)


@dataclass(frozen=True)
class Target:
    name: str
    doc: str
    run: Callable[[bytes], None]  # raises TripleRatchetError for a refusal, anything else is a bug
    seeds: Callable[[], list[bytes]]
    max_len: int = 4096  # libFuzzer's -max_len for this target


TARGETS: dict[str, Target] = {}


def target(name: str, seeds: Callable[[], list[bytes]], max_len: int = 4096
           ) -> Callable[[Callable[[bytes], None]], Callable[[bytes], None]]:
    def register(run: Callable[[bytes], None]) -> Callable[[bytes], None]:
        TARGETS[name] = Target(name, (run.__doc__ or "").strip(), run, seeds, max_len)
        return run
    return register


def _select(data: bytes, choices: list[Callable[[bytes], Any]]) -> None:
    """The first byte picks the decoder, the rest is its input."""
    if data:
        choices[data[0] % len(choices)](data[1:])


def _tagged(tag: int, blobs: list[bytes]) -> list[bytes]:
    return [bytes([tag]) + b for b in blobs]


# --- CBOR ------------------------------------------------------------------------------------


def _cbor_seeds() -> list[bytes]:
    p = fx.pairwise()
    return [*fx.vector_hex("cbor.json", "cbor", "encoding"), p.session_state, p.first]


@target("cbor_decode", _cbor_seeds)
def cbor_decode(data: bytes) -> None:
    """`cbor.decode` with its default limits: a value it accepts re-encodes to the same bytes."""
    value = cbor.decode(data)
    _require(cbor.encode(value) == data, "cbor.decode accepted a non-canonical encoding")


def _flat_seeds() -> list[bytes]:
    blobs = [*fx.pairwise().messages, *fx.vector_hex("group.json", "blob")[:3],
             cbor.encode([0, 23, 24, 255, 256, 2**32, 2**64 - 1, b"", b"x" * 300])]
    out: list[bytes] = []
    for blob in blobs:
        value = cbor.decode(blob)
        if isinstance(value, list):
            out.append(bytes([len(value)]) + blob)
    return out


@target("cbor_decode_flat", _flat_seeds)
def cbor_decode_flat(data: bytes) -> None:
    """`cbor.decode_flat` (the message path's fast parser; first byte: the array length) must
    answer exactly what `cbor.decode` answers, or None — never a different value."""
    if not data:
        return
    length, blob = data[0] % 32, data[1:]
    flat = cbor.decode_flat(blob, length)
    try:
        full: object = cbor.decode(blob)
    except TripleRatchetError:
        _require(flat is None, "decode_flat accepted what decode refuses")
        return
    if flat is not None:
        _require(flat == full, "decode_flat and decode disagree")
    elif (isinstance(full, list) and len(full) == length and length < 24
          and all(type(x) in (int, bytes) and (type(x) is bytes or x >= 0) for x in full)):
        raise Finding("decode_flat refused a canonical flat array")


# --- Identities, bundles, accounts -------------------------------------------------------------


def _identity_seeds() -> list[bytes]:
    p = fx.pairwise()
    return (_tagged(0, [*p.identities, *fx.vector_hex("identity.json", "identity")])
            + _tagged(1, list(p.identity_keypairs)))


@target("identity", _identity_seeds)
def identity(data: bytes) -> None:
    """`Identity.from_bytes` (selector 0) and `IdentityKeyPair.from_bytes` (1)."""
    from triple_ratchet.identity import Identity, IdentityKeyPair

    def public(blob: bytes) -> None:
        identity = Identity.from_bytes(blob)
        _require(identity.to_bytes() == blob, "identity re-encodes differently")
        twin = _ecdsa_twin(blob)
        if twin is not None:
            # ECDSA's (r, n - s) verifies too: such a twin must be refused or be the same
            # identity (equal, same hash), never a second member with the same keys.
            try:
                other = Identity.from_bytes(twin)
            except TripleRatchetError:
                return
            _require(other == identity and hash(other) == hash(identity),
                     "an identity's (r, n - s) twin loads as a different identity")

    def keypair(blob: bytes) -> None:
        _require(IdentityKeyPair.from_bytes(blob).to_bytes() == blob,
                 "identity key pair re-encodes differently")
    _select(data, [public, keypair])


_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _ecdsa_twin(blob: bytes) -> bytes | None:
    """The suite-1 identity encoding with its DH-key signature's s replaced by n - s."""
    fields = cbor.decode(blob)
    if not isinstance(fields, list) or len(fields) != 5 or fields[1] != 1:
        return None
    signature = fields[4]
    if not isinstance(signature, bytes) or len(signature) != 64:
        return None
    s = int.from_bytes(signature[32:], "big")
    if not 0 < s < _P256_N:
        return None
    return cbor.encode([*fields[:4], signature[:32] + (_P256_N - s).to_bytes(32, "big")])


def _bundle_seeds() -> list[bytes]:
    return [*fx.pairwise().bundles, *fx.vector_hex("identity.json", "bundle")]


@target("bundle", _bundle_seeds)
def bundle(data: bytes) -> None:
    """`PrekeyBundle.from_bytes` (what a directory hands out)."""
    from triple_ratchet.identity import PrekeyBundle
    _require(PrekeyBundle.from_bytes(data).to_bytes() == data, "bundle re-encodes differently")


@target("account", lambda: [fx.pairwise().account_state], max_len=16384)
def account(data: bytes) -> None:
    """`Account.from_bytes` (a saved account, e.g. read back from a corrupted disk)."""
    from triple_ratchet.identity import Account
    _require(Account.from_bytes(data).to_bytes() == data, "account re-encodes differently")


# --- Pairwise ---------------------------------------------------------------------------------


def _pairwise_state_seeds() -> list[bytes]:
    p = fx.pairwise()
    return [p.session_state, p.initiator_state]


@target("pairwise_state", _pairwise_state_seeds, max_len=16384)
def pairwise_state(data: bytes) -> None:
    """`PairwiseSession.from_bytes` (a saved session), then `encrypt` when it can send; a state
    that decrypts the peer's messages must name the peer and us."""
    from triple_ratchet.pairwise import PairwiseSession
    from triple_ratchet.random import DeterministicRandom
    session = PairwiseSession.from_bytes(data, DeterministicRandom(b"fuzz"))
    _require(session.to_bytes() == data, "pairwise session re-encodes differently")
    # A state that decrypts the fixture peer's traffic must name that peer and us (the stored
    # identities are what the application shows and trusts).
    p = fx.pairwise()
    copy = PairwiseSession.from_bytes(data, DeterministicRandom(b"fuzz"))
    try:
        copy.decrypt(p.messages[0])
    except TripleRatchetError:
        pass
    else:
        _require(copy.peer_identity.to_bytes() == p.identities[0]
                 and copy.own_identity.to_bytes() == p.identities[1],
                 "a saved session naming other identities decrypts the peer's messages")
    if session.can_send:  # a session that loads must work (or refuse with our errors)
        session.encrypt(b"after loading")


@target("handshake_respond", lambda: [fx.pairwise().first])
def handshake_respond(data: bytes) -> None:
    """`PairwiseSession.respond` on the responder's first message; a refusal leaves the account
    unchanged, and only the genuine initial message is accepted."""
    from triple_ratchet.identity import Account
    from triple_ratchet.pairwise import PairwiseSession
    from triple_ratchet.random import DeterministicRandom
    p = fx.pairwise()
    own = Account.from_bytes(p.account_state)
    try:
        PairwiseSession.respond(own, data, DeterministicRandom(b"fuzz respond"))
    except TripleRatchetError:
        _require(own.to_bytes() == p.account_state, "a refused first message changed the account")
        raise
    _require(data == p.first, "respond accepted a first message nobody sent")


@target("pairwise_decrypt", lambda: list(fx.pairwise().messages))
def pairwise_decrypt(data: bytes) -> None:
    """`PairwiseSession.decrypt`; a refusal leaves the session unchanged, and only messages the
    peer sent decrypt."""
    from triple_ratchet.pairwise import PairwiseSession
    from triple_ratchet.random import DeterministicRandom
    p = fx.pairwise()
    session = PairwiseSession.from_bytes(p.session_state, DeterministicRandom(b"fuzz decrypt"))
    try:
        session.decrypt(data)
    except TripleRatchetError:
        _require(session.to_bytes() == p.session_state, "a refused message changed the session")
        raise
    _require(data in p.messages, "decrypt accepted a message the peer never sent")


# --- Group sessions (spec 11, 09) -------------------------------------------------------------


@functools.cache
def _group_identity() -> Any:
    from triple_ratchet.identity import IdentityKeyPair
    return IdentityKeyPair.from_bytes(fx.group().identity)


@target("group_state", lambda: [fx.group().state_before, fx.group().state], max_len=65536)
def group_state(data: bytes) -> None:
    """`GroupSession.from_bytes` (a saved group session), then `tick` and, when it says it is
    active, `encrypt`: a state that loads must work or refuse with our errors."""
    from triple_ratchet.group import GroupSession
    from triple_ratchet.random import DeterministicRandom
    session = GroupSession.from_bytes(data, _group_identity(), rng=DeterministicRandom(b"fuzz"))
    _require(session.to_bytes() == data, "group session re-encodes differently")
    now = fx.group().entry_time / 1000
    session.tick(now)
    if session.status == "active":
        session.encrypt(b"after loading", now)


def _group_receive(state: bytes, data: bytes) -> Any:
    from triple_ratchet.group import GroupSession
    from triple_ratchet.random import DeterministicRandom
    session = GroupSession.from_bytes(state, _group_identity(), rng=DeterministicRandom(b"fuzz"))
    t = fx.group().entry_time
    try:
        return session.receive(data, t / 1000, entry_time=t)
    except TripleRatchetError:
        _require(session.to_bytes() == state, "a refused blob changed the group session")
        raise


@target("group_receive_active", lambda: list(fx.group().group_blobs))
def group_receive_active(data: bytes) -> None:
    """`GroupSession.receive` of group-mailbox entries by a member of an active epoch: only
    the messages members sent are accepted."""
    from triple_ratchet.group.events import MessageReceived
    g = fx.group()
    events, _ = _group_receive(g.state, data)
    if any(isinstance(e, MessageReceived) for e in events):
        _require(data in g.group_blobs, "the group session accepted a message nobody sent")


@target("group_receive_control", lambda: list(fx.group().control_blobs), max_len=65536)
def group_receive_control(data: bytes) -> None:
    """`GroupSession.receive` of control-mailbox entries (an epoch change) by a member that has
    not read them yet: bad entries are reported and ignored, never crash."""
    _group_receive(fx.group().state_before, data)


@target("group_notice", lambda: [*fx.group().notice_chunks, *fx.group().common_chunks],
        max_len=65536)
def group_notice(data: bytes) -> None:
    """A joiner's inbox and its second fetch: `NoticeAssembler.receive` of one chunk and, when
    a notice is whole, its opening with the fixture's common part; and the same chunk read
    from the common mailbox (`CommonAssembler.receive`) for the fixture's notice, completed
    when whole."""
    from triple_ratchet.group.join_keys import JoinKeyring
    from triple_ratchet.group.notice import NoticeAssembler, NoticeChunk, open_notice_sealing
    g = fx.group()
    identity = _group_identity()
    keys = tuple(JoinKeyring.from_bytes(g.keyring).keys())
    me = identity.public.to_bytes()
    assembler = NoticeAssembler(identity.suite, identity=me, keys=keys)
    common = b"".join(NoticeChunk.from_bytes(identity.suite, c).data for c in g.common_chunks)
    with contextlib.suppress(TripleRatchetError):  # a refused chunk: the second path still runs
        _, notice = assembler.receive(data)
        if notice is not None:
            open_notice_sealing(identity.suite, notice, identity=me, keys=keys).complete(common)
    good = b"".join(NoticeChunk.from_bytes(identity.suite, c).data for c in g.notice_chunks)
    opened = open_notice_sealing(identity.suite, good, identity=me, keys=keys)
    _, part = opened.assembler().receive(data)
    if part is not None:
        opened.complete(part)


# --- Hub frames -------------------------------------------------------------------------------


def _frame_seeds() -> list[bytes]:
    doc = fx.vector_file("hub.json")
    out: list[bytes] = []
    for case in doc["cases"]:
        op = case["inputs"].get("operation")
        if op in ("client_frame", "hub_frame"):
            out.append(bytes([0 if op == "client_frame" else 1])
                       + bytes.fromhex(case["inputs"]["frame"]))
    return out


@target("hub_frames", _frame_seeds)
def hub_frames(data: bytes) -> None:
    """`decode_client_frame` (0, what the hub reads) and `decode_hub_frame` (1, what a client
    reads); an accepted frame re-encodes to the same bytes."""
    from triple_ratchet.hub import frames

    def client(blob: bytes) -> None:
        _require(frames.encode(frames.decode_client_frame(blob)) == blob,
                 "client frame re-encodes differently")

    def hub(blob: bytes) -> None:
        _require(frames.encode(frames.decode_hub_frame(blob)) == blob,
                 "hub frame re-encodes differently")
    _select(data, [client, hub])


# --- DKG ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dkg:
    params: Any
    round1: tuple[bytes, ...]
    round2: bytes
    transcript: bytes
    signatures: bytes
    signed_round1: tuple[bytes, ...]
    aborts: tuple[bytes, ...]
    recovery_bundle: bytes


@functools.cache
def _dkg() -> _Dkg:
    from triple_ratchet.dkg import abort as ab
    from triple_ratchet.dkg import attempt
    from triple_ratchet.dkg.abort import EquivocationKind
    from triple_ratchet.dkg.cocktail_messages import Round2Message, encode_recovery_bundle
    from triple_ratchet.dkg.cocktail_participant import Participant
    from triple_ratchet.random import DeterministicRandom
    from triple_ratchet.testvectors.dkg_additions import Session

    session = Session.create(b"fuzz dkg", n=3, t=2)
    params = session.params
    rng = DeterministicRandom(b"fuzz dkg run")
    payloads = [attempt.new_payload(rng) for _ in range(3)]
    people = [Participant(params, session.secrets[i], payload=payloads[i], rng=rng)
              for i in range(3)]
    round1 = [p.round1() for p in people]
    for p in people:
        p.receive_round1(round1)
    signatures = b"".join(p.sign_transcript() for p in people)
    signed = [attempt.sign_round1(params, session.secrets[i], round1[i], payloads[i], rng)
              for i in range(3)]
    other = attempt.sign_round1(params, session.secrets[1], people[1].round1_message,
                                attempt.new_payload(rng), rng)
    aborts = [ab.make_timeout(params, session.secrets[0], [2, 3], rng).to_bytes(),
              ab.make_equivocation(params, session.secrets[0], EquivocationKind(1), 2,
                                   signed[1].to_bytes(), other.to_bytes(), rng).to_bytes()]
    bundle = encode_recovery_bundle([m.ciphertexts[0] for m in round1])
    return _Dkg(params, tuple(m.to_bytes() for m in round1),
                Round2Message.project(round1, 1).to_bytes(), people[0].transcript.to_bytes(),
                signatures, tuple(s.to_bytes() for s in signed), tuple(aborts), bundle)


def _dkg_message_seeds() -> list[bytes]:
    d = _dkg()
    return (_tagged(0, list(d.round1)) + _tagged(1, [d.round2]) + _tagged(2, [d.transcript])
            + _tagged(3, list(d.signed_round1)) + _tagged(4, [d.recovery_bundle])
            + _tagged(5, [d.signatures]))


@target("dkg_messages", _dkg_message_seeds, max_len=16384)
def dkg_messages(data: bytes) -> None:
    """COCKTAIL-DKG messages for a t = 2, n = 3 session: round 1 (0), round 2 (1), the transcript
    (2), the signed round-1 wrapper (3), a recovery bundle (4), aggregated signatures (5)."""
    from triple_ratchet.dkg import cocktail_messages as cm
    from triple_ratchet.dkg.attempt import SignedRound1
    d = _dkg()

    def round1(blob: bytes) -> None:
        _require(cm.Round1Message.from_bytes(blob, 2, 3, 2).to_bytes() == blob,
                 "round-1 message re-encodes differently")

    def round2(blob: bytes) -> None:
        _require(cm.Round2Message.from_bytes(blob, 2, 3).to_bytes() == blob,
                 "round-2 message re-encodes differently")

    def transcript(blob: bytes) -> None:
        _require(cm.Transcript.from_bytes(blob).to_bytes() == blob,
                 "transcript re-encodes differently")

    def signed_round1(blob: bytes) -> None:
        signed = SignedRound1.from_bytes(blob)
        _require(signed.to_bytes() == blob, "signed round 1 re-encodes differently")
        signed.check_signature(d.params)

    def recovery(blob: bytes) -> None:
        _require(cm.encode_recovery_bundle(cm.decode_recovery_bundle(blob, 3)) == blob,
                 "recovery bundle re-encodes differently")

    def signatures(blob: bytes) -> None:
        _require(cm.encode_signatures(cm.decode_signatures(blob, 3)) == blob,
                 "signatures re-encode differently")
    _select(data, [round1, round2, transcript, signed_round1, recovery, signatures])


def _abort_seeds() -> list[bytes]:
    return list(_dkg().aborts)


@target("dkg_aborts", _abort_seeds, max_len=16384)
def dkg_aborts(data: bytes) -> None:
    """The DKG's signed abort (spec 07) for the t = 2, n = 3 session: decode, signature,
    verdict."""
    from triple_ratchet.dkg import abort as ab
    d = _dkg()
    abort = ab.Abort.from_bytes(data)
    _require(abort.to_bytes() == data, "DKG abort re-encodes differently")
    abort.check_signature(d.params)
    ab.judge(d.params, abort)


# --- Epoch-change values (spec 11, 08) and HPKE sealing ---------------------------------------


@dataclass(frozen=True)
class _V2Context:
    """One control mailbox of the epoch-change-v2 vectors: what a reader of its blobs knows."""
    suite: Any
    group_id: bytes
    epoch: int
    traffic_key: bytes
    mailbox_id: bytes


@functools.cache
def _v2() -> tuple[tuple[_V2Context, ...], tuple[tuple[int, bytes], ...],
                   tuple[tuple[int, bytes], ...], tuple[tuple[int, str, bytes], ...]]:
    """From vectors/epoch-change-v2.json: the control mailboxes, every control blob and signed
    entry (with its mailbox's index), and every other value by kind (with its suite's index)."""
    from triple_ratchet.group.control import ControlEntry
    from triple_ratchet.suites import ALL_SUITES, suite_by_name
    contexts: list[_V2Context] = []
    blobs: list[tuple[int, bytes]] = []
    entries: list[tuple[int, bytes]] = []
    values: list[tuple[int, str, bytes]] = []
    for case in fx.vector_file("epoch-change-v2.json")["cases"]:
        i, out = case["inputs"], case.get("outputs") or {}
        suite = suite_by_name(case["suite"])
        if suite not in ALL_SUITES:
            # the hybrid suites' cases (issue 11): left out while ALL_SUITES is the classical
            # ones, so each input byte keeps picking what it picked (the stored corpus)
            continue
        s = [x.suite_id for x in ALL_SUITES].index(suite.suite_id)
        if "control_blob" in out:
            ctx = _V2Context(suite, bytes.fromhex(i["group_id"]), i["epoch"],
                             bytes.fromhex(i["traffic_key"]), bytes.fromhex(i["mailbox_id"]))
            if ctx not in contexts:
                contexts.append(ctx)
            blobs.append((contexts.index(ctx), bytes.fromhex(out["control_blob"])))
            entries.append((contexts.index(ctx), bytes.fromhex(out["signed_entry"])))
            entry = ControlEntry.from_bytes(suite, bytes.fromhex(out["signed_entry"]),
                                            group_id=ctx.group_id, epoch=ctx.epoch)
            values.append((s, f"type {entry.entry_type:#x}", entry.body))
        for key in ("signed_join_key", "signed_record", "roster", "repaired_sealing"):
            if key in out:
                values.append((s, key, bytes.fromhex(out[key])))
    return tuple(contexts), tuple(blobs), tuple(entries), tuple(values)


def _v2_decoders() -> list[tuple[str, Callable[[Any, bytes, bytes], object]]]:
    """(what, decode(suite, group_id, data) -> value with to_bytes or None)."""
    from triple_ratchet.group import run as r
    from triple_ratchet.group.change_proposal import ChangeProposal
    from triple_ratchet.group.records import JoinKey, MemberKeyRecord, decode_keys
    from triple_ratchet.group.roster import Roster
    return [
        ("type 0x40", lambda s, g, d: MemberKeyRecord.from_bytes(s, d)),
        ("type 0x41", lambda s, g, d: ChangeProposal.from_bytes(s, d)),
        ("type 0x42", lambda s, g, d: r.RunAnnouncement.from_bytes(s, d)),
        ("type 0x43", lambda s, g, d: r.Round1Item.from_bytes(d)),
        ("type 0x44", lambda s, g, d: r.Round3Item.from_bytes(s, d)),
        ("type 0x45", lambda s, g, d: r.check_tick_body(d)),
        ("type 0x46", lambda s, g, d: r.Commit.from_bytes(s, d)),
        ("type 0x47", lambda s, g, d: r.Reveal.from_bytes(d)),
        ("type 0x48", lambda s, g, d: r.Evidence.from_bytes(d)),
        ("type 0x49", lambda s, g, d: r.Conviction.from_bytes(s, d)),
        ("signed_join_key", lambda s, g, d: JoinKey.from_bytes(s, d)),
        ("signed_record", lambda s, g, d: decode_keys(s, d)),
        ("roster", lambda s, g, d: Roster.from_bytes(s, d, group_id=g)),
        ("repaired_sealing", lambda s, g, d: r.RepairedSealing.from_bytes(s, d)),
    ]


def _v2_value_seeds() -> list[bytes]:
    from triple_ratchet.suites import ALL_SUITES
    names = [name for name, _ in _v2_decoders()]
    _, _, entries, values = _v2()
    out = [bytes([(names.index(what) * len(ALL_SUITES) + s)]) + v for s, what, v in values]
    # Selectors past the value decoders: ControlEntry.from_bytes in mailbox context c.
    first = len(names) * len(ALL_SUITES)
    return out + [bytes([first + c]) + e for c, e in entries]


@target("v2_values", _v2_value_seeds, max_len=16384)
def v2_values(data: bytes) -> None:
    """Version 2 values (first byte: decoder and suite): every control entry body by type
    (record, proposal, announcement, round 1, round 3, tick, commit, reveal, evidence,
    conviction), a signed join key, a roster entry's keys, a roster, a repaired sealing, and a
    signed control entry of one of the vectors' mailboxes. Accepted values re-encode."""
    from triple_ratchet.group.control import ControlEntry
    from triple_ratchet.suites import ALL_SUITES
    if not data:
        return
    decoders = _v2_decoders()
    contexts = _v2()[0]
    pick, blob = data[0] % (len(decoders) * len(ALL_SUITES) + len(contexts)), data[1:]
    if pick >= len(decoders) * len(ALL_SUITES):
        ctx = contexts[pick - len(decoders) * len(ALL_SUITES)]
        entry = ControlEntry.from_bytes(ctx.suite, blob, group_id=ctx.group_id, epoch=ctx.epoch)
        _require(entry.to_bytes() == blob, "control entry re-encodes differently")
        return
    what, decode = decoders[pick // len(ALL_SUITES)]
    suite = ALL_SUITES[pick % len(ALL_SUITES)]
    group_id = next((c.group_id for c in contexts if c.suite.suite_id == suite.suite_id), b"g")
    value = decode(suite, group_id, blob)
    if value is not None:
        _require(value.to_bytes() == blob, f"{what} re-encodes differently")  # type: ignore[attr-defined]


def _control_blob_seeds() -> list[bytes]:
    return [bytes([c]) + b for c, b in _v2()[1]]


@target("control_blob", _control_blob_seeds, max_len=16384)
def control_blob(data: bytes) -> None:
    """`control.open_entry` (first byte: which of the vectors' control mailboxes, roster of 2):
    only a blob the vectors hold opens (the traffic key is the mailbox's)."""
    from triple_ratchet.group.control import open_entry
    if not data:
        return
    contexts, blobs, _, _ = _v2()
    c, blob = data[0] % len(contexts), data[1:]
    ctx = contexts[c]
    open_entry(ctx.suite, ctx.traffic_key, ctx.mailbox_id, blob, group_id=ctx.group_id,
               epoch=ctx.epoch, roster_size=2)
    _require((c, blob) in blobs, "a control blob nobody sealed opened")


@dataclass(frozen=True)
class _Sealed:
    suite: Any
    private_key: bytes
    info: bytes
    aad: bytes
    enc: bytes
    ct: bytes
    context: Any  # SealingContext of a bundle, or None for a plain HPKE case
    identity: bytes
    root: bytes
    size: int
    index: int
    leaf: bytes
    path: tuple[bytes, ...]


@functools.cache
def _sealed() -> tuple[_Sealed, ...]:
    """From vectors/sealing.json: per suite, the first valid single-shot HPKE case, and every
    recipient of the largest bundle (with its sealing's Merkle path)."""
    from triple_ratchet.group.sealing import SealingContext
    from triple_ratchet.suites import suite_by_name
    from triple_ratchet.suites.hpke import hpke_for_suite
    out: list[_Sealed] = []
    h = bytes.fromhex
    seen_hpke: set[str] = set()
    bundles: dict[str, Any] = {}
    for case in fx.vector_file("sealing.json")["cases"]:
        i, o = case["inputs"], case.get("outputs")
        if o is None or "public_key" in i:
            continue
        suite = suite_by_name(case["suite"])
        kem = hpke_for_suite(suite).kem
        if i["operation"] == "hpke" and case["suite"] not in seen_hpke:
            seen_hpke.add(case["suite"])
            out.append(_Sealed(suite, kem.derive_key_pair(h(i["ikm_r"])).private_key, h(i["info"]),
                               h(i["aad"]), h(o["enc"]), h(o["ct"]), None, b"", b"", 0, 0, b"",
                               ()))
        elif i["operation"] == "bundle" and len(i["recipients"]) > len(
                bundles.get(case["suite"], ({}, {}))[0].get("recipients", [])):
            bundles[case["suite"]] = (i, o)
    for name, (i, o) in sorted(bundles.items()):
        suite = suite_by_name(name)
        kem = hpke_for_suite(suite).kem
        context = SealingContext(suite, h(i["group_id"]), i["epoch"], h(i["run_session_id"]),
                                 h(i["roster_hash"]))
        for p, (r, s) in enumerate(zip(i["recipients"], o["sealings"], strict=True)):
            out.append(_Sealed(suite, kem.derive_key_pair(h(r["ikm_r"])).private_key, b"", b"",
                               h(s["enc"]), h(s["ct"]), context, h(r["identity"]),
                               h(o["bundle_root"]), len(i["recipients"]), p, h(s["leaf"]),
                               tuple(h(x) for x in s["path"])))
    return tuple(out)


def _sealing_seeds() -> list[bytes]:
    seeds: list[bytes] = []
    for k, c in enumerate(_sealed()):
        seeds.append(bytes([2 * k, len(c.enc)]) + c.enc + c.ct)
        if c.context is not None:
            seeds.append(bytes([2 * k + 1, c.index]) + c.leaf + b"".join(c.path))
    return seeds


@target("sealing_open", _sealing_seeds)
def sealing_open(data: bytes) -> None:
    """The HPKE open path (first byte: case, and even/odd): even — single-shot `HpkeSuite.open`
    of the vectors' HPKE case, or `sealing.open_sealing` of a bundle recipient, on `enc ‖ ct`
    (second byte: the length of `enc`); only the vectors' own sealing opens. Odd — that
    recipient's `verify_merkle_path` on `index ‖ leaf ‖ path`: only the genuine path verifies."""
    from triple_ratchet.group.sealing import Sealing, open_sealing, verify_merkle_path
    from triple_ratchet.suites.hpke import hpke_for_suite
    if len(data) < 2:
        return
    cases = _sealed()
    c = cases[(data[0] // 2) % len(cases)]
    if data[0] % 2 == 0:
        enc, ct = data[2:2 + data[1]], data[2 + data[1]:]
        if c.context is None:
            hpke_for_suite(c.suite).open(c.private_key, enc, c.info, c.aad, ct)
        else:
            open_sealing(c.context, c.identity, c.private_key, Sealing(enc, ct))
        _require((enc, ct) == (c.enc, c.ct), "a sealing nobody made opened")
        return
    if c.context is None:
        return
    nh = c.suite.hash_len
    rest = data[2:]
    leaf, path = rest[:nh], tuple(rest[k:k + nh] for k in range(nh, len(rest), nh))
    verify_merkle_path(c.suite, c.root, c.size, data[1], leaf, path)
    # Any recipient's genuine (position, leaf, path) of the same bundle verifies, and only those.
    genuine = {(o.index, o.leaf, o.path) for o in cases if o.root == c.root}
    _require((data[1], leaf, path) in genuine, "a Merkle path that is not the bundle's verified")


# --- Storage and vectors ----------------------------------------------------------------------


@target("open_state", fx.sealed_states, max_len=16384)
def open_state(data: bytes) -> None:
    """`storage.open_state` with a fixed storage key."""
    from triple_ratchet.storage import open_state as open_
    open_(fx.STORAGE_KEY, data)


class VectorFileRefused(TripleRatchetError):
    """Stands for a file `vectors verify` (`verify_paths`) reports as one failed file and goes
    on: one it cannot read or interpret (`OSError`, `ValueError`, `UnrecognisedFile`) or one
    whose verifier crashed (any other `Exception`: deep nesting, a malformed shape)."""


@functools.cache
def _vector_bases() -> tuple[str, ...]:
    """Small valid documents: two cases of each of our files, a Wycheproof-shaped and a
    COCKTAIL-shaped file (third-party files are not in the repository; these are their shapes)."""
    docs: list[Any] = []
    for path in sorted(fx.VECTORS.glob("*.json")):
        doc = json.loads(path.read_text())
        doc["cases"] = doc["cases"][:2]
        docs.append(doc)
    docs.append({"algorithm": "CHACHA20-POLY1305", "schema": "aead_test_schema_v1.json",
                 "testGroups": [{"type": "AeadTest", "ivSize": 96, "keySize": 256, "tagSize": 128,
                                 "tests": [{"tcId": 1, "key": "00" * 32, "iv": "00" * 12,
                                            "aad": "", "msg": "", "ct": "", "tag": "00" * 16,
                                            "result": "invalid", "flags": []}]}]})
    docs.append({"ciphersuite": "COCKTAIL(Ed25519, SHA-512)", "seed": "00" * 32,
                 "vectors": [{"n": 2, "t": 2, "session_tag": "00" * 32, "context": "00" * 64,
                              "extension": "", "config": {"static_secret_keys": [],
                                                          "static_public_keys": []}}]})
    return tuple(json.dumps(d, separators=(",", ":")) for d in docs)


# What the structured mode puts in place of a node: every JSON type, the boundary numbers a
# verifier may trust (a count of 10^8, 2^64), hex that is not hex, and deep nesting.
_JSON_PALETTE: tuple[Any, ...] = (
    None, True, 0, -1, 1, 2, 3, 2**32, 2**64, 10**8, 1.5, "", "zz", "00", "0" * 65, [], {}, [1],
    [None], {"a": 1}, [[[[[[]]]]]], {"type": "DecodeError"}, {"type": "TripleRatchetError"},
)


def _mutate_json(base: Any, data: bytes) -> Any:
    """Walk into `base` as the bytes say (each byte picks a child; 0xFF stops) and replace the
    node reached with a palette value (the last byte picks it)."""
    if not data:
        return base
    *path, pick = data
    replacement = _JSON_PALETTE[pick % len(_JSON_PALETTE)]
    if not path:
        return replacement
    node = base
    for step in path:
        children = (list(node) if isinstance(node, dict)
                    else list(range(len(node))) if isinstance(node, list) else [])
        if not children:
            break
        key = children[step % len(children)]
        if step == 0xFF or not isinstance(node[key], dict | list):
            node[key] = replacement
            return base
        node = node[key]
    if isinstance(node, dict):
        node["fuzz"] = replacement
    elif isinstance(node, list):
        node.append(replacement)
    return base


def _vector_seeds() -> list[bytes]:
    raw = [b"{}", b"[]", b'{"format": "triple-ratchet-vectors", "version": 1}']
    structured = [bytes([1, i]) for i in range(len(_vector_bases()))]
    files = [*raw, *(d.encode() for d in _vector_bases())]
    return [b"\x00" + f for f in files] + structured


@target("vectors", _vector_seeds, max_len=65536)
def vectors(data: bytes) -> None:
    """`vectors verify` on one file (first byte even: the rest is the file's bytes; odd: the next
    byte picks a small valid file and the rest says which node to replace with what, so type
    confusion deep inside a file is reached at once). Every verdict is a CaseResult; the file as
    a whole may only be refused the way `verify_paths` reports it, in bounded time and memory."""
    from triple_ratchet.testvectors import CaseResult, verify_document
    if not data:
        return
    if data[0] % 2 == 0:
        raw: bytes | None = data[1:]
        doc: Any = None
    else:
        bases = _vector_bases()
        base = bases[data[1] % len(bases)] if len(data) > 1 else bases[0]
        raw, doc = None, _mutate_json(json.loads(base), data[2:])
    # What `verify_paths` does per file (testvectors/__init__.py): reading and verifying are in
    # one `try`; what it catches (every `Exception`) becomes one failed file and the command goes
    # on. Only what it cannot catch is a finding here: a hang, memory, a `BaseException`, a
    # verdict that is not a case result.
    refused = False
    try:
        if raw is not None:
            doc = json.loads(raw)
        for result in verify_document(doc):
            _require(isinstance(result, CaseResult)
                     and result.status in ("passed", "failed", "skipped"),
                     "a verifier yielded something that is not a case result")
    except Finding:
        raise
    except Exception:
        refused = True
    if refused:  # raised outside the handler: the file's bytes stay off the chain
        raise VectorFileRefused("cannot interpret the file, or its verifier crashed")


# --- The contract ------------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not s for s in seen):
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def _carries_input(exc: BaseException, data: bytes) -> bool:
    values: list[object] = [*exc.args, getattr(exc, "object", None), *vars(exc).values()]
    return any(isinstance(v, bytes | bytearray | memoryview) and len(bytes(v)) >= 1
               and bytes(v) in data for v in values)


class Hang(BaseException):
    """An input took longer than `check`'s time limit (a BaseException, so that no library
    `except Exception` swallows it)."""


def _on_alarm(signum: int, frame: object) -> None:
    raise Hang("over the time limit")


def check(name: str, data: bytes, time_limit: float = 2.0) -> None:
    """Run target `name` on `data`. Returns on success or a refusal the contract allows; raises
    (the escaped exception, `Finding`, or `Hang` after `time_limit` seconds) otherwise."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        TARGETS[name].run(data)
    except TripleRatchetError as exc:
        for e in _chain(exc):
            if _carries_input(e, data):
                raise Finding(f"input bytes on the exception chain ({type(e).__name__})"
                              ) from exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def signature(exc: BaseException, target: str = "") -> str:
    """A finding's identity across inputs: what broke, and where in the library — the raising
    frame, or for a hang and for the vector loaders (whose findings are about the loader, not
    the layer it calls) the outermost library frame."""
    frames: list[str] = []
    causes = [e for e in _chain(exc) if e is not exc] if isinstance(exc, Finding) else []
    for e in [exc, *causes]:
        frames = [f"{path.split('/triple_ratchet/')[-1]}:{frame.name}"
                  for frame in traceback.extract_tb(e.__traceback__)
                  if "/triple_ratchet/" in (path := frame.filename.replace("\\", "/"))]
        if frames:
            break
    outermost = isinstance(exc, Hang) or target == "vectors"
    where = (frames[0] if outermost else frames[-1]) if frames else "?"
    what = str(exc) if isinstance(exc, Finding | Hang) else type(exc).__name__
    return f"{what} @ {where}"


def corpus_input(path: Path) -> bytes:
    """A kept corpus file's input: `*.gz` files hold a reproducer too big to commit as is."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def clear_caches() -> None:
    """Forget every built fixture (to check that building them again gives the same bytes)."""
    for cached in (fx.pairwise, fx.group, _dkg, _vector_bases, _group_identity, _v2,
                   _sealed):
        cached.cache_clear()


def known_findings() -> dict[str, dict[str, str]]:
    """`fuzz/known_findings.json`: reproducer (corpus target/file) -> signature, reason."""
    if not KNOWN_FINDINGS.exists():
        return {}
    found: dict[str, dict[str, str]] = json.loads(KNOWN_FINDINGS.read_text())
    return found


def known_signatures() -> list[str]:
    """Every known finding's signature (shell-style patterns allowed): one in a shared decoder
    (CBOR) shows in every target."""
    return sorted({v["signature"] for v in known_findings().values()})


def is_known(sig: str, known: list[str] | None = None) -> bool:
    return any(fnmatch.fnmatchcase(sig, pattern)
               for pattern in (known_signatures() if known is None else known))
