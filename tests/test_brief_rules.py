"""Tests for the brief's (R) rules and the anchors' flaws that no other test file pins down.

Each test names the rule it guards; spec/13-security.md ends with the table from every rule of
the brief to the test(s) that would fail if the code regressed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_group_epoch_change import create, of, texts
from test_group_support import T0, T0_MS, Net, make_group, make_identities
from test_hub_frames import CLIENT_FRAMES, HUB_FRAMES

from triple_ratchet import cbor
from triple_ratchet.dkg import cocktail
from triple_ratchet.dkg.cocktail import transcript_hash
from triple_ratchet.dkg.cocktail_participant import Participant
from triple_ratchet.dkg.ed25519 import Point, Scalar
from triple_ratchet.double_ratchet import DoubleRatchet
from triple_ratchet.errors import (
    InvalidSignature,
    ProtocolError,
    RemoteError,
    ReplayError,
    TripleRatchetError,
)
from triple_ratchet.group import key_schedule as ks
from triple_ratchet.group.attempt_mailbox import open_item
from triple_ratchet.group.epoch_change import PHASE_TIMEOUT_MS, Attempt, _send, _Stream
from triple_ratchet.group.events import (
    AttemptAborted,
    EpochChanged,
    EpochChangeStarted,
    ForkDetected,
    Ignored,
    MessageReceived,
    Outgoing,
)
from triple_ratchet.group.message import (
    CONTENT_APPLICATION,
    CONTENT_PROPOSAL,
    Content,
    GroupMessage,
    SenderData,
    _aad,
    _sender_data_key_nonce,
    pad,
)
from triple_ratchet.group.session import GroupSession, encrypt_in_epoch
from triple_ratchet.group.welcome import Welcome
from triple_ratchet.identity import Account, Identity, IdentityKeyPair
from triple_ratchet.pairwise import PairwiseSession
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, DEFAULT_SUITE, X25519_SHA512_XCHACHA20, Suite
from triple_ratchet.suites import p256 as p256_module
from triple_ratchet.suites import x25519 as x25519_module

SUITES = pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
MIN_SECRET = 16  # shorter values could match public bytes by chance


def _worth_scanning(value: object) -> bytes | None:
    """`value` as bytes if it is worth looking for (all-zero strings are public constants, such
    as init_secret(0), not secrets)."""
    if isinstance(value, bytes | bytearray) and len(value) >= MIN_SECRET and any(value):
        return bytes(value)
    return None


# --- Recording every secret a run creates --------------------------------------------------------


@dataclass
class Recorder:
    """Every secret (and every hidden public value) the library creates while it is installed."""

    secrets: dict[bytes, str] = field(default_factory=dict)
    hidden: dict[bytes, str] = field(default_factory=dict)  # public, but never for the hub

    def secret(self, what: str, value: object) -> None:
        """A secret found in a state: its name replaces a generic one from a primitive hook."""
        if (v := _worth_scanning(value)) is not None:
            self.secrets[v] = what

    def generic(self, what: str, value: object) -> None:
        if (v := _worth_scanning(value)) is not None:
            self.secrets.setdefault(v, what)

    def hide(self, what: str, value: object, *, generic: bool = False) -> None:
        if (v := _worth_scanning(value)) is not None:
            if generic:
                self.hidden.setdefault(v, what)
            else:
                self.hidden[v] = what

    def group(self, session: GroupSession) -> None:
        """Every secret a group session holds right now (epochs, grace epochs, attempt)."""
        s = session._s
        epochs = ([s.epoch] if s.epoch is not None else []) + [g.state for g in s.grace]
        for e in epochs:
            self.secret("sender-data secret", e.sender_data_secret)
            self.secret("group mailbox access key", e.mailbox_access_key)
            self.secret("init_secret(e+1)", e.init_secret)
            self.secret("per-epoch signing key", e.signing_key)
            self.secret("sending chain key", e.sending.chain_key)
            for chain in e.receiving:
                if chain is not None:
                    self.secret("receiving chain key", chain.chain_key)
                    for _, key, nonce_base in chain.skipped:
                        self.secret("skipped message key", key)
                        self.secret("skipped nonce base", nonce_base)
            for m in e.roster:
                self.hide("identity key", m.identity_key)
                self.hide("per-epoch signing public key", m.signing_key)
        for plaintext in s.held:
            self.secret("held plaintext", plaintext)
        if s.attempt is not None:
            self.attempt(s.attempt)

    def attempt(self, a: Attempt) -> None:
        self.secret("attempt secret", a.proposal.proposal.attempt_secret)
        self.secret("init_secret(e)", a.init_secret)
        for identity in a.proposal.proposal.new_roster:
            self.hide("identity key", identity)
        for p in a.payloads:
            self.secret("DKG payload", p)
        if not a.seed:
            return
        self.secret("attempt seed", a.seed)
        self.secret("DKG static secret d_i", a.dkg_secret().to_bytes())
        self.secret("own DKG payload", a.payload())
        self.secret("per-epoch signing key", a.epoch_signing_key().to_bytes())
        self.hide("per-epoch signing public key", a.epoch_signing_key().public_key().to_bytes())
        if a.transcript and a.payloads:
            self.secret("epoch secret", ks.extract_epoch_secret(
                a.suite, a.init_secret, transcript_hash(a.transcript), a.payloads))
            with contextlib.suppress(TripleRatchetError):
                self.secret("DKG secret share x_i", _secret_share(a).to_bytes())

    def ratchet(self, state: bytes) -> None:
        """Double Ratchet state fields: DHs private, RK, CKs, CKr, HKs, HKr, NHKs, NHKr, MKs."""
        f = cbor.as_list(cbor.decode(state), "dr", 17)
        for i in range(4, 13):
            if i != 5:  # 5 is DHr, the peer's public key
                self.secret(f"double ratchet field {i}", f[i])
        for entry in cbor.as_list(f[16], "skipped"):
            hk, chain = cbor.as_list(entry, "skipped chain", 2)
            self.secret("skipped header key", hk)
            for key in cbor.as_list(chain, "skipped keys"):
                self.secret("skipped message key", cbor.as_list(key, "skipped key", 2)[1])

    def pairwise(self, session: PairwiseSession) -> None:
        f = cbor.as_list(cbor.decode(session.to_bytes()), "pairwise", 4)
        self.ratchet(cbor.as_bytes(f[3], "dr"))

    def identity(self, ident: IdentityKeyPair) -> None:
        self.secret("identity signing key", ident._signing_key.to_bytes())
        self.secret("identity DH key", ident.dh_private_key.to_bytes())
        self.hide("identity", ident.public.to_bytes())
        self.hide("identity signing public key", ident.public.signing_key.to_bytes())
        self.hide("identity DH public key", ident.public.dh_key.to_bytes())

    def leaks(self, blob: bytes) -> list[str]:
        found = [f"secret {what}" for s, what in self.secrets.items() if s in blob]
        return found + [f"hidden {what}" for s, what in self.hidden.items() if s in blob]


def _secret_share(a: Attempt) -> Scalar:
    """x_i, recomputed the way the attempt computes it (the attempt never stores it)."""
    from triple_ratchet.dkg.attempt import SignedRound1
    params = a.params()
    part = Participant(params, a.dkg_secret(), payload=a.payload(),
                       rng=_Stream(a.suite, a.seed, b"round 1"))
    part.round1()
    rounds = [SignedRound1.from_bytes(r).parse(params) for r in a.round1 if r is not None]
    return part.receive_round1(rounds).secret_share


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Hooks the primitives so that every private key, AEAD key, extracted secret, derived
    secret, DKG scalar and signature created during the test is recorded."""
    rec = Recorder()

    def wrap(owner: Any, name: str, record: Callable[[Any, tuple[Any, ...]], None]) -> None:
        original = getattr(owner, name)

        def hooked(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            record(result, args)
            return result
        monkeypatch.setattr(owner, name, hooked)

    def signing_key(key: Any, args: tuple[Any, ...]) -> None:
        rec.generic("signing key", key.to_bytes())
        rec.hide("signing public key", key.public_key().to_bytes(), generic=True)
        if len(args) > 1:
            rec.generic("signing seed", args[1])

    for suite in ALL_SUITES:
        cls = type(suite)
        wrap(cls, "generate_dh", lambda r, a: rec.generic("DH private key", r.to_bytes()))
        wrap(cls, "generate_signing", signing_key)
        wrap(cls, "signing_from_seed", signing_key)
        wrap(cls, "aead_encrypt", lambda r, a: rec.generic("AEAD key", a[1]))
        wrap(cls, "hkdf_extract", lambda r, a: rec.generic("HKDF extract output", r))
        wrap(cls, "expand_label", lambda r, a: rec.generic(
            f"expand_label {bytes(a[2])!r}", r))
    for signer in (p256_module._P256Signing, x25519_module._Ed25519Signing):
        wrap(signer, "sign", lambda r, a: rec.hide("signature", r, generic=True))
    original_random = Scalar.__dict__["random"].__func__
    original_nonzero = Scalar.__dict__["random_nonzero"].__func__

    def scalar_random(cls: type[Scalar], rng: Any = None) -> Scalar:
        s: Scalar = original_random(cls, rng) if rng is not None else original_random(cls)
        rec.generic("DKG scalar", s.to_bytes())
        return s

    def scalar_nonzero(cls: type[Scalar], rng: Any = None) -> Scalar:
        s: Scalar = original_nonzero(cls, rng) if rng is not None else original_nonzero(cls)
        rec.generic("DKG scalar", s.to_bytes())
        return s

    monkeypatch.setattr(Scalar, "random", classmethod(scalar_random))
    monkeypatch.setattr(Scalar, "random_nonzero", classmethod(scalar_nonzero))
    # Snapshot every group session after every call that can change it.
    for name in ("receive", "tick", "encrypt", "propose"):
        def make(name: str) -> None:
            original = getattr(GroupSession, name)

            def hooked(self: GroupSession, *args: Any, **kwargs: Any) -> Any:
                rec.group(self)
                result = original(self, *args, **kwargs)
                rec.group(self)
                return result
            monkeypatch.setattr(GroupSession, name, hooked)
        make(name)
    return rec


# --- A group run whose welcomes travel in real pairwise sessions --------------------------------


@dataclass
class PairwiseNet(Net):
    """`Net`, but every welcome travels in a PairwiseSession, as a real app sends it."""

    accounts: dict[str, Account] = field(default_factory=dict)
    pairwise_blobs: list[bytes] = field(default_factory=list)
    pairwise_sessions: list[PairwiseSession] = field(default_factory=list)
    welcomes: list[bytes] = field(default_factory=list)
    recorder: Recorder | None = None

    def deliver_welcomes(self) -> None:
        rng = DeterministicRandom(b"pairwise net")
        while self.pending_welcomes:
            recipient, welcome, welcomer = self.pending_welcomes.pop(0)
            name = next(n for n, i in self.identities.items() if i.public.to_bytes() == recipient)
            sender = next(i for i in self.identities.values() if i.public.to_bytes() == welcomer)
            account = self.accounts[name]
            bundle = account.new_bundles(1, rng)[0]
            outbound, first = PairwiseSession.initiate(sender, bundle, rng, plaintext=welcome)
            inbound, got, peer = PairwiseSession.respond(account, first, rng)
            assert got == welcome
            self.welcomes.append(welcome)
            # A short conversation, so DH ratchet steps run too.
            more = [inbound.encrypt(b"thanks, joining" * 3), outbound.encrypt(b"see you" * 5)]
            assert outbound.decrypt(more[0]) == b"thanks, joining" * 3
            assert inbound.decrypt(more[1]) == b"see you" * 5
            self.pairwise_blobs += [first, *more]
            self.pairwise_sessions += [outbound, inbound]
            if self.recorder is not None:
                self.recorder.pairwise(outbound)
                self.recorder.pairwise(inbound)
            session, events, sends = GroupSession.join(
                account.identity, welcome, peer, self.now,
                rng=DeterministicRandom(b"j" + recipient))
            self.members[name] = session
            self.events[name] += events
            self.send(name, sends)


def _pairwise_net(suite: Suite, n: int, extra: int, rec: Recorder | None = None) -> PairwiseNet:
    rng = DeterministicRandom(b"accounts" + suite.name.encode())
    net = PairwiseNet(recorder=rec)
    for name in "abcdefgh"[:n + extra]:
        account = Account.generate(suite, rng)
        net.accounts[name] = account
        net.identities[name] = account.identity
    others = [net.accounts[x].public_identity for x in "abcdefgh"[1:n]]
    session, sends = GroupSession.create(net.identities["a"], others, net.now,
                                         rng=DeterministicRandom(b"creator" + suite.name.encode()))
    net.members["a"] = session
    net.send("a", sends)
    net.run()
    return net


def _body(label: str) -> bytes:
    return f"plaintext {label} ".encode() * 4


@SUITES
def test_no_secret_or_hidden_public_value_in_any_blob(suite: Suite, recorder: Recorder) -> None:
    """Anchor flaw "private ephemeral keys sent inside headers", and the (R) rule on what the hub
    sees: scan every blob of a full run (create, messages, add, remove, refresh; welcomes over
    pairwise sessions) for every secret any session held and for identity keys, per-epoch
    public keys, signatures and plaintexts."""
    rec = recorder
    net = _pairwise_net(suite, 3, extra=1, rec=rec)
    for ident in net.identities.values():
        rec.identity(ident)
    for name in "abc":
        net.send(name, net.members[name].encrypt(_body(name), net.now))
    net.run()
    net.send("b", net.members["b"].propose(net.now, add=[net.accounts["d"].public_identity]))
    net.send("a", net.members["a"].encrypt(_body("during the add"), net.now))
    net.run()
    net.send("d", net.members["d"].encrypt(_body("d"), net.now))
    net.run()
    net.send("a", net.members["a"].propose(net.now, remove=[net.identities["c"].public]))
    net.run()
    net.send("d", net.members["d"].propose(net.now))  # refresh
    net.run()
    net.send("b", net.members["b"].encrypt(_body("last"), net.now))
    net.run()
    assert {net.members[x].epoch for x in "abd"} == {4}
    assert _body("last") in texts(net, "d") and _body("d") in texts(net, "a")
    for name in net.members:
        rec.group(net.members[name])
    for s in net.pairwise_sessions:
        rec.pairwise(s)
    for label in ("a", "b", "c", "d", "during the add", "last"):
        rec.secret("plaintext", _body(label))
    # Public values the hub sees by design are not secrets: mailbox ids (they are hashes).
    blobs = [b for log in net.hub.logs.values() for b in log]
    for box in net.hub.logs:
        rec.secrets.pop(box, None)
    assert len(rec.secrets) > 200 and len(blobs) > 40 and len(net.pairwise_blobs) >= 3
    kinds = set(rec.secrets.values())
    for needed in ("epoch secret", "DKG static secret d_i", "DKG secret share x_i",
                   "DH private key", "double ratchet field 6", "sending chain key", "AEAD key",
                   "per-epoch signing key", "identity signing key", "attempt secret"):
        assert needed in kinds, needed
    assert {"signature", "identity key", "identity signing public key", "identity DH public key",
            "per-epoch signing public key"} <= set(rec.hidden.values())
    for blob in blobs + net.pairwise_blobs:
        assert rec.leaks(blob) == []
    # Positive control: the welcomes (plaintext inside pairwise sessions) do hold secrets, and
    # the scan finds them there.
    assert len(net.welcomes) == 3
    for welcome in net.welcomes:
        assert "secret attempt secret" in rec.leaks(welcome)
    assert "secret init_secret(e)" in rec.leaks(net.welcomes[-1])  # d's: init_secret(1)
    # Everything on the hub is padded: group messages and attempt items come in few sizes.
    assert len({len(b) for b in blobs}) <= 12


# --- The epoch secret is not computable from public values ---------------------------------------


def _creation_at_round3(suite: Suite) -> tuple[Net, Attempt]:
    """A group of three being created (epoch 0 -> 1), stopped when `a` holds every payload."""
    ids = make_identities(3, suite, seed=b"observer")
    net = Net()
    for name, ident in zip("abc", ids, strict=True):
        net.identities[name] = ident
    session, sends = GroupSession.create(ids[0], [i.public for i in ids[1:]], net.now,
                                         rng=DeterministicRandom(b"observed creator"))
    net.members["a"] = session
    net.send("a", sends)
    for _ in range(20):
        attempt = net.members["a"]._s.attempt
        if attempt is not None and attempt.payloads:
            return net, attempt
        net.step()
    raise AssertionError("a never reached round 3")


@SUITES
def test_passive_observer_cannot_compute_the_epoch_secret(suite: Suite) -> None:
    """Anchor flaw "root keys derived from the public group key". For the group's first epoch
    init_secret(0) is public (all zero), so an observer that also knew the whole transcript, every
    public key (identities, DKG keys, the COCKTAIL group key Y, per-epoch keys) and every blob on
    the hub lacks only the payloads, which never appear in the clear, not even to a reader of the
    attempt mailbox: every guess of them gives other chain roots."""
    net, attempt = _creation_at_round3(suite)
    init, th = attempt.init_secret, transcript_hash(attempt.transcript)
    assert init == bytes(len(init))  # init_secret(0): public
    net.run()
    a = net.members["a"]
    assert a.epoch == 1 and a._s.epoch is not None
    e = a._s.epoch
    real = ks.derive_epoch(suite, init, th, attempt.payloads)
    # The roots the members use are the key schedule's, from these (secret) payloads.
    assert e.sending.chain_key == real.chain_roots[0]
    assert [c.chain_key for c in e.receiving if c is not None] == list(real.chain_roots[1:])
    assert e.sender_data_secret == real.sender_data_secret
    secret_values = {*real.chain_roots, real.sender_data_secret, real.init_secret_next,
                     real.mailbox.access_key.to_bytes(),
                     ks.extract_epoch_secret(suite, init, th, attempt.payloads)}
    # Everything public the observer could feed the key schedule instead of the payloads.
    announced = [attempt.announcement_of(i) for i in range(1, 4)]
    y = _group_public_key(attempt)
    public = [y, th, *(x.dkg_key for x in announced), *(x.signing_key for x in announced),
              *(i.public.to_bytes() for i in net.identities.values()), real.epoch_id,
              *net.hub.logs]
    from triple_ratchet.dkg.attempt import SignedRound1
    public += [SignedRound1.from_bytes(r).payload_hash for r in attempt.round1 if r is not None]
    guesses: list[list[bytes]] = [[bytes(32)] * 3, [y[:32]] * 3]
    guesses += [[suite.hash(p)[:32]] * 3 for p in public]
    guesses += [[x.dkg_key[:32] for x in announced]]
    for guess in guesses:
        derived = ks.derive_epoch(suite, init, th, guess)
        assert not {*derived.chain_roots, derived.sender_data_secret} & secret_values
    for ikm in public:
        assert suite.hkdf_extract(th, init + ikm) not in secret_values
        assert suite.hkdf_extract(b"", ikm) not in secret_values
    # The payloads never travel in the clear: not in any hub blob, and not in any attempt item
    # as a reader of the attempt mailbox (e.g. a member being removed) opens it.
    box, key = attempt.mailbox()
    items = [open_item(suite, key, box, blob)[1] for blob in net.hub.logs[box]]
    assert len(items) >= 9  # 3 announcements, 3 round-1 messages, 3 round-3 signatures
    for payload in attempt.payloads:
        for blob in [b for log in net.hub.logs.values() for b in log] + items:
            assert payload not in blob


def _group_public_key(a: Attempt) -> bytes:
    from triple_ratchet.dkg.attempt import SignedRound1
    params = a.params()
    part = Participant(params, a.dkg_secret(), payload=a.payload(),
                       rng=_Stream(a.suite, a.seed, b"round 1"))
    part.round1()
    rounds = [SignedRound1.from_bytes(r).parse(params) for r in a.round1 if r is not None]
    return part.receive_round1(rounds).group_public_key.to_bytes()


# --- Concurrent senders in one epoch do not fork ------------------------------------------------


def test_concurrent_senders_in_one_epoch_do_not_fork() -> None:
    """Anchor flaw "one root chain shared by all senders (concurrent senders fork it)": three
    members send at once, all at the same generations; every receiver decrypts all of it, in
    each sender's order, and each encrypt is one ciphertext for the whole group."""
    sessions, _ = make_group(4)
    hub: list[tuple[int, bytes]] = []
    for k in range(3):
        for sender in range(3):  # nobody has read anything yet
            (out,) = sessions[sender].encrypt(b"%d-%d" % (sender, k), T0)
            assert isinstance(out, Outgoing)
            hub.append((sender, out.blob))
    # Per-sender chains: the generation-0 keys of the three senders are distinct.
    d = sessions[3]._s.epoch
    assert d is not None
    roots = [c.chain_key for c in d.receiving if c is not None]
    assert len(set(roots)) == 3
    for reader in range(4):
        got = []
        for sender, blob in hub:
            if sender == reader:
                continue
            events, _ = sessions[reader].receive(blob, T0, entry_time=T0_MS)
            got += [(e.sender_index, e.generation, e.body) for e in events
                    if isinstance(e, MessageReceived)]
        expected = [(s, k, b"%d-%d" % (s, k)) for k in range(3) for s in range(3) if s != reader]
        assert got == expected
    # And the conversation goes on: replies chain to what each member saw.
    (reply,) = sessions[3].encrypt(b"reply", T0)
    assert isinstance(reply, Outgoing)
    for reader in range(3):
        events, _ = sessions[reader].receive(reply.blob, T0, entry_time=T0_MS)
        (msg,) = [e for e in events if isinstance(e, MessageReceived)]
        assert msg.body == b"reply" and msg.predecessor_known


def test_concurrent_senders_after_a_real_dkg() -> None:
    net = create(3)
    for name in "abc":  # one chain per sender: every member holds three distinct roots
        e = net.members[name]._s.epoch
        assert e is not None
        roots = {e.sending.chain_key, *(c.chain_key for c in e.receiving if c is not None)}
        assert len(roots) == 3
    for name in "abc":
        net.send(name, net.members[name].encrypt(b"at once from " + name.encode(), net.now))
    net.run()
    for name in "abc":
        assert sorted(texts(net, name)) == sorted(b"at once from " + x.encode()
                                                   for x in "abc" if x != name)
        assert all(e.generation == 0 for e in of(net, name, MessageReceived))


# --- Group content signatures cover every field (R) -------------------------------------------


def _seal_signed_over(session: GroupSession, sent: Content, to_be_signed: bytes,
                      signature: bytes | None = None) -> bytes:
    """Like message.seal, but the signature is over `to_be_signed` instead of `sent`."""
    state = session._s.epoch
    assert state is not None
    suite = state.suite
    from triple_ratchet.group.sender_chain import SendingChain
    keys, _ = SendingChain(state.sending.chain_key).step(suite)
    assert keys.generation == sent.generation == 0
    if signature is None:
        signature = state.own_signing_key().sign(to_be_signed)
    guard = b"\x05" * 8
    aad = _aad(state.mailbox_id)
    plaintext = pad(cbor.encode([sent.content_type, sent.last_seen, sent.body, signature]))
    ct = suite.aead_encrypt(keys.key, keys.nonce(guard), plaintext, aad)
    sd_key, sd_nonce = _sender_data_key_nonce(suite, state.sender_data_secret, ct)
    sd = suite.aead_encrypt(sd_key, sd_nonce,
                            SenderData(sent.sender, sent.generation, guard).to_bytes(), aad)
    return GroupMessage(state.mailbox_id, sd, ct).to_bytes()


def _to_be_signed(c: Content, label: bytes = b"triple-ratchet v1 group content signature",
                  version: int = 1) -> bytes:
    return cbor.encode([label, version, c.suite_id, c.group_id, c.epoch, c.sender, c.generation,
                        c.content_type, c.last_seen, c.body])


@SUITES
def test_content_signature_covers_every_field(suite: Suite) -> None:
    """(R) the per-epoch signature is over label, version, suite, group id, epoch, sender index,
    generation, content type, causal data and body: a signature over any other value of any of
    them, carried by an otherwise valid message, is refused and consumes nothing."""
    (a, b), _ = make_group(2, suite)
    e = a._s.epoch
    assert e is not None
    sent = Content(suite.suite_id, e.group_id, e.epoch, 0, 0, CONTENT_APPLICATION, b"", b"hello")
    assert sent.to_be_signed() == _to_be_signed(sent)  # the layout this test assumes
    variants = [
        _to_be_signed(sent, label=b"triple-ratchet v1 group content signaturE"),
        _to_be_signed(sent, version=2),
        _to_be_signed(replace(sent, suite_id=3 - suite.suite_id)),
        _to_be_signed(replace(sent, group_id=b"H" * 16)),
        _to_be_signed(replace(sent, epoch=2)),
        _to_be_signed(replace(sent, sender=1)),
        _to_be_signed(replace(sent, generation=1)),
        _to_be_signed(replace(sent, content_type=CONTENT_PROPOSAL)),
        _to_be_signed(replace(sent, last_seen=bytes(suite.hash_len))),
        _to_be_signed(replace(sent, body=b"hellO")),
    ]
    before = b.to_bytes()
    for tbs in variants:
        with pytest.raises(InvalidSignature):
            b.receive(_seal_signed_over(a, sent, tbs), T0, entry_time=T0_MS)
        assert b.to_bytes() == before
    # The same construction with the right signature input is accepted (the test can pass).
    events, _ = b.receive(_seal_signed_over(a, sent, _to_be_signed(sent)), T0,
                          entry_time=T0_MS)
    assert [m.body for m in events if isinstance(m, MessageReceived)] == [b"hello"]


def test_malleated_ecdsa_signature_is_the_same_message() -> None:
    """(R) the causal digest is over the signed content, never the signature bytes (ECDSA is
    malleable): a copy with (r, n - s) is a replay, and its digest is the original's."""
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    (a, b, c), _ = make_group(3)
    e = a._s.epoch
    assert e is not None
    sent = Content(DEFAULT_SUITE.suite_id, e.group_id, e.epoch, 0, 0, CONTENT_APPLICATION, b"",
                   b"malleable")
    signature = e.own_signing_key().sign(sent.to_be_signed())
    r, s = signature[:32], int.from_bytes(signature[32:], "big")
    other = r + (n - s).to_bytes(32, "big")
    e.verifying_key(0).verify(other, sent.to_be_signed())  # both encodings verify
    original = _seal_signed_over(a, sent, b"", signature)
    malleated = _seal_signed_over(a, sent, b"", other)
    assert original != malleated
    (first,) = [m for m in b.receive(original, T0, entry_time=T0_MS)[0]
                if isinstance(m, MessageReceived)]
    before = b.to_bytes()
    with pytest.raises(ReplayError):
        b.receive(malleated, T0, entry_time=T0_MS)
    assert b.to_bytes() == before
    (at_c,) = [m for m in c.receive(malleated, T0, entry_time=T0_MS)[0]
               if isinstance(m, MessageReceived)]
    assert at_c.digest == first.digest and at_c.body == b"malleable"


# --- Epoch change rules (R) ---------------------------------------------------------------------


def test_grace_period_accepts_old_messages_only_from_the_new_roster() -> None:
    """(R) activation: in the grace period, epoch-e messages are accepted only from members of
    the new roster. A removed member's epoch-e message is refused, state unchanged."""
    net = create(3)
    backup = net.members["c"].to_bytes()
    old_box = net.members["a"].mailbox_id
    net.send("a", net.members["a"].propose(net.now, remove=[net.identities["c"].public]))
    net.run()
    a = net.members["a"]
    assert a.epoch == 2 and old_box in a.mailboxes()  # still in grace
    assert a.mailbox_id != old_box  # the group mailbox rotates with the epoch
    stale_c = GroupSession.from_bytes(backup, net.identities["c"])
    (out,) = stale_c.encrypt(b"from the removed member", net.now)
    assert isinstance(out, Outgoing) and out.mailbox_id == old_box
    before = a.to_bytes()
    with pytest.raises(ProtocolError, match="not in the new roster"):
        a.receive(out.blob, net.now, entry_time=net.now_ms)
    assert a.to_bytes() == before


def test_one_proposal_per_member_per_epoch_and_the_next_one_after_an_abort() -> None:
    """(R) proposal: the attempt is the first valid proposal in mailbox order; later ones wait;
    a member's second proposal in one epoch is ignored and reported; after an abort the next
    proposal in order becomes the attempt."""
    from triple_ratchet.group.epoch_change import _announce
    from triple_ratchet.group.proposal import REASON_REFRESH, make_proposal

    net = create(3)
    a, b = net.members["a"], net.members["b"]
    net.send("b", b.propose(net.now))
    net.send("a", a.propose(net.now))
    eb = b._s.epoch
    assert eb is not None
    second = make_proposal(net.identities["b"], group_id=eb.group_id, epoch=eb.epoch,
                           public_epoch_id=eb.public_epoch_id, old_roster=b.roster, added=[],
                           removed=[], reason=REASON_REFRESH, rng=DeterministicRandom(b"2nd"))
    blob, state = encrypt_in_epoch(eb, CONTENT_PROPOSAL, second.to_bytes(),
                                   DeterministicRandom(b"2nd blob"))
    b._s = replace(b._s, epoch=state)
    net.hub.append(eb.mailbox_id, blob)
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    b_id, a_id = (net.identities[x].public.to_bytes() for x in "ba")
    for name in "ac":
        assert any(isinstance(e, Ignored) and "second proposal" in e.reason and e.member == b_id
                   for e in net.events[name])
    # c equivocates in b's attempt: it aborts; a's waiting proposal becomes the attempt.
    c = net.members["c"]
    attempt = c._s.attempt
    assert attempt is not None and attempt.proposal.proposal.proposer == b_id
    forged = _announce(replace(attempt, seed=b"\x07" * 32), net.identities["c"],
                       DeterministicRandom(b"e"))
    net.hub.append(forged.mailbox_id, forged.blob)
    net.run()
    assert {net.members[x].epoch for x in "abc"} == {2}
    assert len({net.members[x].public_epoch_id for x in "abc"}) == 1
    for name in "abc":
        started = [e.proposer for e in of(net, name, EpochChangeStarted) if e.epoch == 1]
        assert started == [b_id, a_id]
        assert [x.reason for x in of(net, name, AttemptAborted)] == ["equivocation"]
        assert len(of(net, name, EpochChanged)) == 2  # creation, then a's refresh


def test_proposal_roster_and_threshold_are_checked_and_bound_into_the_session_id() -> None:
    """(R) proposal: the new roster must be the old one plus and minus the listed members, the
    threshold must be in bounds, and the COCKTAIL session id (the proposal hash) binds roster,
    suite and epoch. A validly signed proposal that breaks this starts nothing."""
    from triple_ratchet.group.proposal import Proposal, SignedProposal
    from triple_ratchet.identity import LABEL_IDENTITY_PROPOSAL

    net = create(3, extra=1)
    a = net.members["a"]
    e = a._s.epoch
    assert e is not None
    roster = a.roster
    d_id = net.identities["d"].public.to_bytes()
    good = Proposal(e.suite_id, e.group_id, e.epoch, e.public_epoch_id, roster[0], 0, (d_id,),
                    (), (*roster, d_id), 2, b"n" * 32, b"s" * DEFAULT_SUITE.hash_len)
    good.check_roster(roster)
    bad = [
        replace(good, new_roster=(roster[1], roster[0], roster[2], d_id)),  # reordered
        replace(good, new_roster=roster),  # d missing
        replace(good, new_roster=(*roster[:2], d_id)),  # c dropped without being listed
        replace(good, threshold=0),
        replace(good, threshold=5),
        replace(good, reason=1),  # a refresh that changes the roster
    ]
    for p in bad:
        with pytest.raises(ProtocolError):
            p.check_roster(roster)
    sid = good.session_id(DEFAULT_SUITE)
    for other in (replace(good, new_roster=(*roster, b"x" * 40)), replace(good, epoch=2),
                  replace(good, suite_id=X25519_SHA512_XCHACHA20.suite_id),
                  replace(good, threshold=3)):
        assert other.session_id(DEFAULT_SUITE) != sid
    # Delivered validly signed and encrypted in the group mailbox: ignored, no attempt.
    body = bad[2].body()
    signed = SignedProposal(bad[2], body, net.identities["a"].sign(LABEL_IDENTITY_PROPOSAL, body))
    blob, state = encrypt_in_epoch(e, CONTENT_PROPOSAL, signed.to_bytes(),
                                   DeterministicRandom(b"bad roster"))
    a._s = replace(a._s, epoch=state)
    for name in "bc":
        events, sends = net.members[name].receive(blob, net.now, entry_time=net.now_ms)
        assert any(isinstance(x, Ignored) and "proposal refused" in x.reason for x in events)
        assert sends == [] and net.members[name].attempt_phase is None


@pytest.mark.parametrize("abort_first", [True, False])
def test_first_of_abort_or_certificate_in_mailbox_order_decides(abort_first: bool) -> None:
    """(R) for each member, the first of {a valid abort, the complete certificate} in the DKG
    mailbox's order decides the attempt: an abort read before the last round-3 signature kills
    it for everyone (the signature after it is never counted); one after it changes nothing."""
    from triple_ratchet.group.attempt_mailbox import ABORT_EQUIVOCATION, KIND_ABORT, Abort

    net = create(3)
    net.send("a", net.members["a"].propose(net.now))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    attempt = net.members["b"]._s.attempt
    assert attempt is not None
    box = attempt.mailbox()[0]
    for name in "abc":
        net.read(name, box)  # announcements: everyone sends round 1
    net.read("a", box)  # a's round-3 signature
    net.read("b", box)  # b's round-3 signature
    if not abort_first:
        net.read("c", box)  # c's round-3 signature: the certificate is complete in the log
    abort = Abort.sign(attempt.dkg_secret(), attempt.session_id, 2, ABORT_EQUIVOCATION, (3,),
                       b"", DeterministicRandom(b"late or early"))
    out = _send(attempt, KIND_ABORT, abort.to_bytes(), DeterministicRandom(b"abort blob"))
    net.hub.append(out.mailbox_id, out.blob)
    net.run()
    epochs = {net.members[x].epoch for x in "abc"}
    aborted = [of(net, x, AttemptAborted) for x in "abc"]
    if abort_first:
        assert epochs == {1} and all(len(x) == 1 for x in aborted)
    else:
        assert epochs == {2} and not any(aborted)
    assert len({net.members[x].public_epoch_id for x in "abc"}) == 1


def test_second_abort_from_one_member_in_one_epoch_is_ignored_and_reported() -> None:
    """(R) at most one abort per member per epoch: a member that aborted one attempt cannot
    abort the next one in the same epoch (so it can delay an epoch change, not stop it)."""
    from triple_ratchet.group.attempt_mailbox import (
        ABORT_EQUIVOCATION,
        ABORT_TIMEOUT,
        KIND_ABORT,
        Abort,
    )

    net = create(3)
    net.send("b", net.members["b"].propose(net.now))
    net.send("a", net.members["a"].propose(net.now))  # waits behind b's
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    first = net.members["a"]._s.attempt
    assert first is not None
    for name in "abc":
        net.read(name, first.mailbox()[0])  # announcements
    rng = DeterministicRandom(b"a aborts twice")
    abort = Abort.sign(first.dkg_secret(), first.session_id, 1, ABORT_EQUIVOCATION, (3,), b"", rng)
    out = _send(first, KIND_ABORT, abort.to_bytes(), rng)
    net.hub.append(out.mailbox_id, out.blob)
    for _ in range(3):
        net.step()  # everyone reads the abort and begins a's proposal
        second = net.members["a"]._s.attempt
        if second is not None and second.session_id != first.session_id:
            break
    assert second is not None and second.session_id != first.session_id
    assert all(net.members[x]._s.attempt is not None for x in "abc")
    again = Abort.sign(second.dkg_secret(), second.session_id, 1, ABORT_TIMEOUT, (2,), b"", rng)
    net.hub.now_ms += PHASE_TIMEOUT_MS  # a timeout abort, posted once the phase timed out
    out = _send(second, KIND_ABORT, again.to_bytes(), rng)
    net.hub.append(out.mailbox_id, out.blob)
    net.run()
    a_id = net.identities["a"].public.to_bytes()
    for name in "abc":
        assert len(of(net, name, AttemptAborted)) == 1
        assert any(isinstance(e, Ignored) and "second abort" in e.reason and e.member == a_id
                   for e in net.events[name])
    assert {net.members[x].epoch for x in "abc"} == {2}


def test_member_being_removed_cannot_abort_its_removal() -> None:
    """(R) abort: only participants of the attempt (its new roster) may abort it."""
    from triple_ratchet.group.attempt_mailbox import ABORT_TIMEOUT, KIND_ABORT, Abort

    net = create(3)
    net.send("a", net.members["a"].propose(net.now, remove=[net.identities["c"].public]))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    attempt = net.members["c"]._s.attempt
    assert attempt is not None and attempt.own_index is None
    box = attempt.mailbox()[0]
    for name in "abc":
        net.read(name, box)  # the announcements
    rng = DeterministicRandom(b"c aborts")
    for index in (1, 2):  # c signs as a and as b with a key of its own
        abort = Abort.sign(Scalar.random_nonzero(rng), attempt.session_id, index, ABORT_TIMEOUT,
                           (1,), b"", rng)
        fake = _send(attempt, KIND_ABORT, abort.to_bytes(), rng)
        net.hub.append(fake.mailbox_id, fake.blob)
    net.strict = False
    net.run()
    assert {net.members[x].epoch for x in "ab"} == {2}
    assert net.members["a"].roster == tuple(net.identities[x].public.to_bytes() for x in "ab")
    assert not of(net, "a", AttemptAborted) and not of(net, "b", AttemptAborted)
    assert all(isinstance(err, RemoteError) for x in "ab" for err in net.errors[x])
    assert len([err for x in "ab" for err in net.errors[x]]) == 4


def test_conflicting_signed_round3_messages_are_reported() -> None:
    """(R) fork detection: a member's second round-3 message, validly signed with its DKG key
    but over another transcript (what a member shown another branch would send), is reported by
    everyone as "conflicting round 3"; it cannot stop the attempt."""
    from triple_ratchet.group.attempt_mailbox import KIND_ROUND3, Round3

    net = create(3)
    net.send("a", net.members["a"].propose(net.now))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    attempt = net.members["a"]._s.attempt
    assert attempt is not None
    box = attempt.mailbox()[0]
    for name in "abc":
        net.read(name, box)  # announcements: everyone sends round 1
    net.read("a", box)  # a reads round 1 and sends its round-3 signature
    attempt = net.members["a"]._s.attempt
    assert attempt is not None and attempt.phase.value == "round3"
    other = cocktail.schnorr_sign(attempt.dkg_secret(), b"a transcript of another branch")
    fake = _send(attempt, KIND_ROUND3, Round3(1, other).to_bytes(), DeterministicRandom(b"r3"))
    net.hub.append(fake.mailbox_id, fake.blob)
    net.run()
    a_id = net.identities["a"].public.to_bytes()
    for name in "abc":
        forks = [f for f in of(net, name, ForkDetected) if f.kind == "conflicting round 3"]
        assert [f.member for f in forks] == [a_id]
    assert {net.members[x].epoch for x in "abc"} == {2}
    assert not of(net, "b", AttemptAborted)


def test_share_failing_its_commitment_is_blamed_in_a_group() -> None:
    """Anchor flaw "fragments never checked against commitments": a dealer whose share for b
    decrypts fine but is off by one against its VSS commitment is blamed by b, with evidence
    every member judges the same, and no epoch starts."""
    from triple_ratchet.dkg.attempt import sign_round1
    from triple_ratchet.dkg.cocktail_messages import Round1Message
    from triple_ratchet.group.attempt_mailbox import KIND_ROUND1

    net = create(3)
    net.send("a", net.members["a"].propose(net.now))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    c = net.members["c"]
    attempt = c._s.attempt
    assert attempt is not None
    box = attempt.mailbox()[0]
    for name in "ab":
        net.read(name, box)
    for blob in net.hub.unread("c", box):  # c reads; its genuine round 1 is never sent
        c.receive(blob, net.now, entry_time=net.now_ms)
    attempt = c._s.attempt
    assert attempt is not None and attempt.phase.value == "round1"
    params = attempt.params()
    d = attempt.dkg_secret()
    rng = DeterministicRandom(b"bad dealer")
    poly = cocktail.Polynomial.random(params.t, rng)
    e_scalar = Scalar.random_nonzero(rng)
    eph = Point.base_mul(e_scalar)
    commitment = poly.commitment()
    pop = cocktail.schnorr_sign(poly.secret, cocktail.pop_message(params.context, commitment, eph))
    me = Point.base_mul(d)
    cts = []
    for j, rec in enumerate(params.static_keys, start=1):
        key = cocktail.h6(cocktail.sender_ecdh(e_scalar, d, rec), eph, me, rec, params.context)
        share = poly.evaluate(j) + (Scalar(1) if j == 2 else Scalar(0))
        cts.append(cocktail.encrypt_share(key, share, attempt.payload()))
    bad = Round1Message(commitment, pop, eph, tuple(cts))
    signed = sign_round1(params, d, bad, attempt.payload(), rng)
    forged = _send(attempt, KIND_ROUND1, signed.to_bytes(), rng)
    net.hub.append(forged.mailbox_id, forged.blob)
    net.run()
    b_id, c_id = (net.identities[x].public.to_bytes() for x in "bc")
    for name in "abc":
        (aborted,) = of(net, name, AttemptAborted)
        assert aborted.reason == "blame" and aborted.by == b_id
        assert aborted.named == (c_id,) and aborted.detail == "share-mismatch"
    assert {net.members[x].epoch for x in "abc"} == {1}


# --- Malformed input never panics -----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One entry point fed untrusted bytes: `feed` raises only RemoteError, and checks itself
    that a refused input left the state as it was."""

    name: str
    valid: tuple[bytes, ...]
    feed: Callable[[bytes], None]
    # For member (insider) input: True if the input was accepted, not refused.
    accepts: Callable[[bytes], bool] | None = None


def _group_target(name: str, state: bytes, ident: IdentityKeyPair,
                  valid: list[bytes]) -> Target:
    def feed(data: bytes) -> None:
        session = GroupSession.from_bytes(state, ident, rng=DeterministicRandom(b"fuzz"))
        try:
            session.receive(data, T0 + 1, entry_time=T0_MS + 1_000)
        except RemoteError:
            assert session.to_bytes() == state
            return
        assert data in valid, "a blob that is not one of the valid ones was accepted"
    return Target(name, tuple(valid), feed)


def _insider_target(name: str, state: bytes, ident: IdentityKeyPair, valid: list[bytes],
                    make_blob: Callable[[bytes], bytes | None]) -> Target:
    """Input from a member: `make_blob` turns the fuzzed bytes into a blob that passes every
    key the member holds (AEAD, sender data, its own signature). Such a blob may be accepted
    (e.g. reported as a fork); a refusal must be a RemoteError that leaves the state as it was,
    and the state after an acceptance must still serialize and load."""
    def accepts(data: bytes) -> bool:
        blob = make_blob(data)
        if blob is None:
            return False  # not something even a malicious member could build
        session = GroupSession.from_bytes(state, ident, rng=DeterministicRandom(b"fuzz"))
        try:
            session.receive(blob, T0 + 1, entry_time=T0_MS + 1_000)
        except RemoteError:
            assert session.to_bytes() == state
            return False
        after = session.to_bytes()
        assert GroupSession.from_bytes(after, ident).to_bytes() == after
        return True

    def feed(data: bytes) -> None:
        accepts(data)
    return Target(name, tuple(valid), feed, accepts)


def _decoder_target(name: str, valid: list[bytes], decode: Callable[[bytes], Any],
                    encode: Callable[[Any], bytes]) -> Target:
    def feed(data: bytes) -> None:
        try:
            value = decode(data)
        except RemoteError:
            return
        assert encode(value) == data, "accepted a non-canonical encoding"
    return Target(name, tuple(valid), feed)


def _build_targets() -> list[Target]:
    from triple_ratchet.dkg.attempt import SignedRound1, sign_round1
    from triple_ratchet.group.announcement import SignedAnnouncement
    from triple_ratchet.group.attempt_mailbox import KIND_ANNOUNCEMENT, KIND_ROUND1, seal_item
    from triple_ratchet.group.proposal import SignedProposal
    from triple_ratchet.hub import frames
    from triple_ratchet.identity import PrekeyBundle

    targets: list[Target] = []
    # Group: an active member, fed current-epoch messages.
    (a, b, c), ids = make_group(3, seed=b"fuzz group")
    valid = [out.blob for s in (a, c, a) for out in s.encrypt(b"m" * 40, T0)
             if isinstance(out, Outgoing)]
    targets.append(_group_target("group receive, active", b.to_bytes(), ids[1], valid))
    # Group: a member in round 3 of a real attempt, fed every blob of the run (round-3 items
    # unread yet among them), with a welcome and a proposal taken from it.
    net = create(3, extra=1)
    net.send("a", net.members["a"].propose(net.now, add=[net.identities["d"].public]))
    for name in "abc":
        net.read(name, net.members[name].mailbox_id)
    welcome = net.pending_welcomes[0][1]
    net.deliver_welcomes()  # d joins and announces
    box = net.members["b"].mailboxes()[-1]
    for _ in range(2):
        for name in "abcd":
            net.read(name, box)
    mid = net.members["b"]
    assert mid.attempt_phase == "round3"
    blobs = [x for log in net.hub.logs.values() for x in log]
    targets.append(_group_target("group receive, mid-attempt", mid.to_bytes(),
                                 net.identities["b"], blobs))
    attempt = mid._s.attempt
    assert attempt is not None
    targets.append(_decoder_target("Welcome.from_bytes", [welcome], Welcome.from_bytes,
                                   lambda w: w.to_bytes()))
    targets.append(_decoder_target("SignedProposal.from_bytes", [attempt.proposal.to_bytes()],
                                   SignedProposal.from_bytes, lambda p: p.to_bytes()))
    key = attempt.mailbox()[1]
    announcements = [p for k, p in (open_item(attempt.suite, key, box, x)
                                    for x in net.hub.logs[box]) if k == KIND_ANNOUNCEMENT]
    targets.append(_decoder_target(
        "SignedAnnouncement.from_bytes", announcements,
        lambda d: SignedAnnouncement.from_bytes(DEFAULT_SUITE, d), lambda s: s.encoded))
    targets.append(_decoder_target(
        "GroupMessage.from_bytes", valid, lambda d: GroupMessage.from_bytes(DEFAULT_SUITE, d),
        lambda m: m.to_bytes()))
    # Insiders: attempt items sealed with the traffic key every participant holds.
    def sealed_item(data: bytes) -> bytes | None:
        if not data:
            return None
        return seal_item(attempt.suite, key, box, data[0], data[1:], DeterministicRandom(b"s"))
    items = [bytes([k]) + p for k, p in (open_item(attempt.suite, key, box, x)
                                         for x in net.hub.logs[box])]
    targets.append(_insider_target("attempt items from a member", mid.to_bytes(),
                                   net.identities["b"], items, sealed_item))
    # Insiders: a round-1 message signed by participant c itself, read by a in round 1.
    net1 = create(3)
    net1.send("a", net1.members["a"].propose(net1.now))
    for name in "abc":
        net1.read(name, net1.members[name].mailbox_id)
    box1 = net1.members["a"].mailboxes()[-1]
    for name in "abc":
        net1.read(name, box1)  # a read only the announcements; b and c dealt round 1
    reader = net1.members["a"]
    assert reader.attempt_phase == "round1"
    dealer = net1.members["c"]._s.attempt
    assert dealer is not None
    params1 = dealer.params()
    key1 = dealer.mailbox()[1]
    genuine = [SignedRound1.from_bytes(p) for k, p in (open_item(dealer.suite, key1, box1, x)
                                                      for x in net1.hub.logs[box1])
               if k == KIND_ROUND1]
    c_message = next(r.message for r in genuine if r.sender == 3)

    def signed_by_c(data: bytes) -> bytes | None:
        try:
            signed = sign_round1(params1, dealer.dkg_secret(), data, dealer.payload(),
                                 DeterministicRandom(b"c"))
        except TripleRatchetError:
            return None
        return seal_item(dealer.suite, key1, box1, KIND_ROUND1, signed.to_bytes(),
                         DeterministicRandom(b"s1"))
    targets.append(_insider_target("round 1 signed by a member", reader.to_bytes(),
                                   net1.identities["a"], [c_message], signed_by_c))
    # Insiders: group content under the right chain and sender-data keys, any plaintext.
    (ga, gb), gids = make_group(2, seed=b"insider")
    ge = ga._s.epoch
    assert ge is not None
    from triple_ratchet.group.sender_chain import SendingChain
    gkeys, _ = SendingChain(ge.sending.chain_key).step(DEFAULT_SUITE)
    content = Content(DEFAULT_SUITE.suite_id, ge.group_id, ge.epoch, 0, 0, CONTENT_APPLICATION,
                      b"", b"insider")
    plaintext = cbor.encode([CONTENT_APPLICATION, b"", b"insider",
                             ge.own_signing_key().sign(content.to_be_signed())])

    def content_from_a_member(data: bytes) -> bytes | None:
        if len(data) >= 128 * 1024:
            return None
        guard = b"\x03" * 8
        aad = _aad(ge.mailbox_id)
        ct = DEFAULT_SUITE.aead_encrypt(gkeys.key, gkeys.nonce(guard), pad(data), aad)
        sd_key, sd_nonce = _sender_data_key_nonce(DEFAULT_SUITE, ge.sender_data_secret, ct)
        sd = DEFAULT_SUITE.aead_encrypt(sd_key, sd_nonce, SenderData(0, 0, guard).to_bytes(), aad)
        return GroupMessage(ge.mailbox_id, sd, ct).to_bytes()
    targets.append(_insider_target("group content from a member", gb.to_bytes(), gids[1],
                                   [plaintext], content_from_a_member))
    # Insiders: a proposal body that member a signs itself, sent in the group mailbox.
    from triple_ratchet.group.proposal import SignedProposal as _SignedProposal
    from triple_ratchet.identity import LABEL_IDENTITY_PROPOSAL
    pnet = create(3, extra=1)
    proposer, receiver = pnet.members["a"], pnet.members["b"]
    pe = proposer._s.epoch
    assert pe is not None
    proposer.propose(pnet.now, add=[pnet.identities["d"].public])
    own = proposer._s.own_proposal
    assert own is not None
    genuine_body = _SignedProposal.from_bytes(own[1]).body

    def proposal_signed_by_a(data: bytes) -> bytes | None:
        signed = cbor.encode([data, pnet.identities["a"].sign(LABEL_IDENTITY_PROPOSAL, data)])
        blob, _ = encrypt_in_epoch(pe, CONTENT_PROPOSAL, signed, DeterministicRandom(b"p"))
        return blob
    targets.append(_insider_target("proposal signed by a member", receiver.to_bytes(),
                                   pnet.identities["b"], [genuine_body], proposal_signed_by_a))
    # Pairwise: decrypt, respond, and the Double Ratchet under them; bundles and identities.
    rng = DeterministicRandom(b"fuzz pairwise")
    alice = IdentityKeyPair.generate(X25519_SHA512_XCHACHA20, rng)
    bob = Account.generate(X25519_SHA512_XCHACHA20, rng)
    bundle = bob.new_bundles(1, rng)[0]
    first_bob = bob.to_bytes()
    alice_session, first = PairwiseSession.initiate(alice, bundle, rng, plaintext=b"hi")

    def respond(data: bytes) -> None:
        account = Account.from_bytes(first_bob)
        try:
            PairwiseSession.respond(account, data, DeterministicRandom(b"r"))
        except RemoteError:
            assert account.to_bytes() == first_bob
            return
        assert data == first
    targets.append(Target("PairwiseSession.respond", (first,), respond))
    bob_session, _, _ = PairwiseSession.respond(Account.from_bytes(first_bob), first, rng)
    messages = [alice_session.encrypt(b"x" * n) for n in (0, 10, 100)]
    pair_state = bob_session.to_bytes()

    def pairwise_decrypt(data: bytes) -> None:
        session = PairwiseSession.from_bytes(pair_state, DeterministicRandom(b"d"))
        try:
            session.decrypt(data)
        except RemoteError:
            assert session.to_bytes() == pair_state
            return
        assert data in messages
    targets.append(Target("PairwiseSession.decrypt", tuple(messages), pairwise_decrypt))
    bob_key = DEFAULT_SUITE.generate_dh(rng)
    dr_a = DoubleRatchet.initiate(DEFAULT_SUITE, bytes(range(32)), bob_key.public_key(), b"ad",
                                  rng=rng)
    dr_b = DoubleRatchet.respond(DEFAULT_SUITE, bytes(range(32)), bob_key, b"ad", rng=rng)
    dr_messages = [dr_a.encrypt(b"y" * n) for n in (1, 50)]
    dr_b.decrypt(dr_messages[0])
    dr_messages.append(dr_a.encrypt(b"z"))
    dr_state = dr_b.to_bytes()

    def ratchet_decrypt(data: bytes) -> None:
        dr = DoubleRatchet.from_bytes(dr_state)
        try:
            dr.decrypt(data)
        except RemoteError:
            assert dr.to_bytes() == dr_state
            return
        assert data in dr_messages[1:]
    targets.append(Target("DoubleRatchet.decrypt", tuple(dr_messages), ratchet_decrypt))
    targets.append(_decoder_target("PrekeyBundle.from_bytes", [bundle.to_bytes()],
                                   PrekeyBundle.from_bytes, lambda x: x.to_bytes()))
    targets.append(_decoder_target("Identity.from_bytes", [alice.public.to_bytes()],
                                   Identity.from_bytes, lambda x: x.to_bytes()))
    # Hub frames, both directions.
    targets.append(_decoder_target("hub client frames",
                                   [frames.encode(x) for x in CLIENT_FRAMES[:5]],
                                   frames.decode_client_frame, frames.encode))
    targets.append(_decoder_target("hub frames", [frames.encode(x) for x in HUB_FRAMES],
                                   frames.decode_hub_frame, frames.encode))
    return targets


@pytest.fixture(scope="module")
def fuzz_targets() -> dict[str, Target]:
    return {t.name: t for t in _build_targets()}


TARGET_NAMES = ["group receive, active", "group receive, mid-attempt", "Welcome.from_bytes",
                "SignedProposal.from_bytes", "SignedAnnouncement.from_bytes",
                "GroupMessage.from_bytes", "PairwiseSession.respond", "PairwiseSession.decrypt",
                "DoubleRatchet.decrypt", "PrekeyBundle.from_bytes", "Identity.from_bytes",
                "hub client frames", "hub frames", "attempt items from a member",
                "round 1 signed by a member", "group content from a member",
                "proposal signed by a member"]


@st.composite
def _mutated(draw: st.DrawFn, valid: tuple[bytes, ...]) -> bytes:
    blob = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "overwrite", "append",
                                   "repeat"]))
        i = draw(st.integers(0, max(len(blob) - 1, 0)))
        if op == "flip" and blob:
            blob[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del blob[i:]
        elif op == "insert":
            blob[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del blob[i:i + draw(st.integers(1, 16))]
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            blob[i:i + len(chunk)] = chunk
        elif op == "append":
            blob += draw(st.binary(min_size=1, max_size=16))
        else:
            blob[i:i] = blob[i:i + draw(st.integers(1, 32))]
    return bytes(blob)


def _fuzz(target: Target, data: st.DataObject) -> None:
    blob = data.draw(st.one_of(st.binary(max_size=400), _mutated(target.valid)), label="input")
    target.feed(blob)  # anything but a RemoteError propagates and fails the test


@pytest.mark.parametrize("name", TARGET_NAMES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_malformed_input_gives_typed_errors_and_leaves_state_unchanged(
        fuzz_targets: dict[str, Target], name: str, data: st.DataObject) -> None:
    """Anchor flaw "panics on malformed input": random bytes and mutations (flips, cuts,
    insertions, deletions, repeats) of valid blobs, fed to every entry point that reads bytes
    from a peer or the hub, give a RemoteError and leave the state exactly as it was; only the
    unmutated valid blobs are accepted, and decoders accept only the canonical encoding."""
    _fuzz(fuzz_targets[name], data)


def test_every_target_accepts_its_valid_inputs(fuzz_targets: dict[str, Target]) -> None:
    """The fuzz targets are live: each valid input goes through (so a refusal means something)."""
    assert sorted(fuzz_targets) == sorted(TARGET_NAMES)
    for t in fuzz_targets.values():
        for blob in t.valid:
            t.feed(blob)
        if t.accepts is not None:  # member input: at least the genuine items go through
            assert any(t.accepts(blob) for blob in t.valid), t.name


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGET_NAMES)
@settings(max_examples=2000 if os.environ.get("TRIPLE_RATCHET_FUZZ") == "long" else 40,
          deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_malformed_input_long(fuzz_targets: dict[str, Target], name: str,
                              data: st.DataObject) -> None:
    _fuzz(fuzz_targets[name], data)
