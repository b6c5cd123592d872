"""Driving epoch changes for one member (spec 11): proposals, the attempt, its end.

`AttemptDriver` holds what the drive needs besides the state (our identity, randomness, the
group's proposal policy). Each method takes the session's `SessionState`, returns the new one
and appends what to report and send to an `Out`; the session commits it only if nothing raised.
The application-message path is `message_path`; `session.GroupSession` ties both together.
"""

from __future__ import annotations

from dataclasses import replace

from triple_ratchet.errors import (
    LimitExceeded,
    ProtocolError,
    RemoteError,
    StateError,
)
from triple_ratchet.group import epoch_change
from triple_ratchet.group.attempt_mailbox import (
    ABORT_TIMEOUT,
    open_item,
)
from triple_ratchet.group.epoch import EpochState
from triple_ratchet.group.epoch_change import Step
from triple_ratchet.group.events import (
    AttemptAborted,
    EpochChanged,
    EpochChangeStarted,
    Ignored,
    MembershipChanged,
    Outgoing,
    RejoinNeeded,
    RemovedFromGroup,
    WelcomeOut,
)
from triple_ratchet.group.message import (
    CONTENT_PROPOSAL,
    Content,
)
from triple_ratchet.group.message_path import (
    encrypt_in_epoch,
)
from triple_ratchet.group.proposal import (
    REASON_REFRESH,
    REASON_UNRESPONSIVE,
    Proposal,
    SignedProposal,
    make_proposal,
)
from triple_ratchet.group.session_state import (
    ABORT_NAMES,
    ACTIVE,
    ENDED,
    GRACE_MS,
    MAX_GRACE_EPOCHS,
    REASON_NAMES,
    Grace,
    Out,
    Policy,
    SessionState,
    send_application,
)
from triple_ratchet.group.welcome import Welcome
from triple_ratchet.identity import IdentityKeyPair
from triple_ratchet.random import RandomSource


class AttemptDriver:
    """The epoch-change half of one member's session (the session owns the state)."""

    def __init__(self, identity: IdentityKeyPair, rng: RandomSource,
                 policy: Policy | None) -> None:
        self._identity = identity
        self._rng = rng
        self._policy = policy

    def begin(self, s: SessionState, signed: SignedProposal, previous: tuple[bytes, ...],
              init_secret: bytes, now_ms: int, out: Out) -> SessionState:
        """`signed` is now the attempt: announce (if in its roster) and welcome its joiners."""
        p = signed.proposal
        sent = s.epoch.sending.generation if s.epoch is not None else 0
        last = s.epoch.last_sent if s.epoch is not None else b""
        if s.restored and s.epoch is not None and self._identity.public.to_bytes() in p.new_roster:
            # A restored state cannot know whether its newer self already announced here.
            out.events.append(RejoinNeeded(p.epoch))
        step = epoch_change.start(signed, previous, init_secret, self._identity, self._rng,
                                  sent_count=sent, last_sent=last)
        attempt = step.attempt
        if s.restored and s.epoch is not None:
            attempt = replace(attempt, silent=True)
            step = replace(step, outgoing=())
        out.sends.extend(step.outgoing)
        out.events.append(EpochChangeStarted(p.epoch, p.proposer, p.added, p.removed,
                                             REASON_NAMES[p.reason], attempt.mailbox()[0]))
        if p.proposer == self._identity.public.to_bytes():
            welcome = Welcome(signed, previous, init_secret).to_bytes()
            out.sends.extend(WelcomeOut(a, welcome) for a in p.added)
        return replace(s, attempt=attempt)

    def on_proposal(self, s: SessionState, content: Content, now_ms: int, out: Out) -> SessionState:
        if s.epoch is None:
            raise StateError("no epoch for this step")
        sender_identity = s.epoch.roster[content.sender].identity_key
        try:
            signed = SignedProposal.from_bytes(content.body)
        except RemoteError as exc:
            out.events.append(Ignored(f"invalid proposal: {exc}", sender_identity))
            return s
        if signed.proposal.proposer != sender_identity:
            out.events.append(Ignored("proposal signed by someone other than its sender",
                                      sender_identity))
            return s
        return self._consider(s, signed, now_ms, out)

    def on_own_echo(self, s: SessionState, blob: bytes, now_ms: int, out: Out) -> SessionState:
        if s.own_proposal is not None and s.own_proposal[0] == blob:
            signed = SignedProposal.from_bytes(s.own_proposal[1])
            s = replace(s, own_proposal=None)
            return self._consider(s, signed, now_ms, out)
        return s

    def _consider(self, s: SessionState, signed: SignedProposal, now_ms: int,
                  out: Out) -> SessionState:
        """A proposal read from the group mailbox, in order: start it, queue it or ignore it."""
        if s.epoch is None:
            raise StateError("no epoch for this step")
        p = signed.proposal
        who = p.proposer
        try:
            self._check_proposal(s.epoch, p)
        except (ProtocolError, LimitExceeded) as exc:
            # Ignored, never raised: the message's generation is consumed like any other's
            # (raising would leave it unconsumed and report a false gap later).
            out.events.append(Ignored(f"proposal refused: {exc}", who))
            return s
        if who in s.proposers:
            out.events.append(Ignored("second proposal from one member in one epoch", who))
            return s
        s = replace(s, proposers=(*s.proposers, who))
        if s.attempt is not None:
            return replace(s, queue=(*s.queue, signed.to_bytes()))
        return self._begin_in_epoch(s, signed, now_ms, out)

    def _begin_in_epoch(self, s: SessionState, signed: SignedProposal, now_ms: int,
                        out: Out) -> SessionState:
        """Start `signed` as the attempt of our epoch, if its reason is justified now.

        An "unresponsive" label is checked here, when the proposal's turn comes, never when it
        is read: the timeout that justifies it may be read after the proposal (another mailbox),
        and every member must reach the same verdict."""
        e = s.epoch
        if e is None:
            raise StateError("no epoch to change")
        p = signed.proposal
        if p.reason == REASON_UNRESPONSIVE and (
                p.added or not p.removed or any(m not in s.unresponsive for m in p.removed)):
            out.events.append(Ignored("removal labelled unresponsive that no timeout justifies",
                                      p.proposer))
            return s
        return self.begin(s, signed, self.roster_of(e), e.init_secret, now_ms, out)

    def _check_proposal(self, e: EpochState, p: Proposal) -> None:
        if p.group_id != e.group_id or p.suite_id != e.suite_id:
            raise ProtocolError("proposal for another group or suite")
        if p.epoch != e.epoch or p.public_epoch_id != e.public_epoch_id:
            raise ProtocolError("proposal for another epoch")
        p.check_roster(self.roster_of(e))
        if self._policy is not None and not self._policy(p):
            raise ProtocolError("refused by policy")

    @staticmethod
    def roster_of(e: EpochState) -> tuple[bytes, ...]:
        return tuple(m.identity_key for m in e.roster)

    def on_attempt_blob(self, s: SessionState, blob: bytes, entry_ms: int, now_ms: int,
                        out: Out) -> SessionState:
        attempt = s.attempt
        if attempt is None:
            raise StateError("no attempt for this blob")
        mailbox, key = attempt.mailbox()
        kind, payload = open_item(attempt.suite, key, mailbox, blob)
        step = epoch_change.receive_item(attempt, kind, payload, self._identity, entry_ms,
                                         self._rng)
        return self._apply(s, step, now_ms, out)

    def _apply(self, s: SessionState, step: Step, now_ms: int, out: Out) -> SessionState:
        p = step.attempt.proposal.proposal
        if step.aborted is not None:
            by = p.new_roster[step.aborted.sender - 1]
            if by in s.aborters:
                out.events.append(Ignored("second abort from one member in one epoch", by))
                return s
            out.events.extend(step.events)
            named = tuple(p.new_roster[i - 1] for i in step.named)
            reason = ABORT_NAMES[step.aborted.reason]
            out.events.append(AttemptAborted(p.epoch, by, reason, named, step.detail))
            s = replace(s, attempt=None, aborters=(*s.aborters, by))
            if s.epoch is None:
                # Our first epoch never came: only a new welcome can bring us in.
                return replace(s, status=ENDED, held=())
            s = self._flush(s, out)
            if s.epoch is None:
                raise StateError("no epoch for this step")
            # Only an old member's timeout can get old members removed (a joiner given a wrong
            # welcome sees everyone fail and must not get them removed).
            if step.aborted.reason == ABORT_TIMEOUT and by in self.roster_of(s.epoch):
                members = self.roster_of(s.epoch)
                s = replace(s, unresponsive=(*s.unresponsive, *(
                    m for m in named if m in members and m not in s.unresponsive)))
                s = self._propose_removal(s, named, now_ms, out)
            return self._next_from_queue(s, now_ms, out)
        out.events.extend(step.events)
        out.sends.extend(step.outgoing)
        if step.removed:
            out.events.append(RemovedFromGroup(p.epoch + 1, p.proposer, REASON_NAMES[p.reason]))
            return replace(s, status=ENDED, attempt=None, held=(), queue=())
        if step.lost:
            out.events.append(RejoinNeeded(p.epoch + 1))
            return replace(s, status=ENDED, attempt=None, held=(), queue=())
        if step.activation is None:
            return replace(s, attempt=step.attempt)
        new = step.activation.state
        grace = tuple(g for g in s.grace if g.until_ms > now_ms)[-(MAX_GRACE_EPOCHS - 1):]
        if s.epoch is not None:
            # Epoch e is kept only to read its late messages: what could start another change
            # from it (init_secret) or send in it (our signing key) goes now.
            old = replace(s.epoch, init_secret=b"", signing_key=b"", signer=None)
            grace = (*grace, Grace(old, step.activation.grace_limits, now_ms + GRACE_MS))
        old_roster = step.attempt.previous_roster
        out.events.append(EpochChanged(new.epoch, new.public_epoch_id, self.roster_of(new)))
        if p.added or p.removed:
            out.events.append(MembershipChanged(new.epoch, p.added, p.removed, p.proposer,
                                                REASON_NAMES[p.reason]))
        del old_roster
        s = replace(s, status=ACTIVE, epoch=new, grace=grace, attempt=None, queue=(),
                    proposers=(), aborters=(), unresponsive=(), own_proposal=None,
                    epoch_started_ms=now_ms,
                    messages_in_epoch=0, restored=False)
        return self._flush(s, out)

    def _flush(self, s: SessionState, out: Out) -> SessionState:
        held, s = s.held, replace(s, held=())
        for plaintext in held:
            s = send_application(s, plaintext, self._rng, out)
        return s

    def _next_from_queue(self, s: SessionState, now_ms: int, out: Out) -> SessionState:
        e = s.epoch
        if e is None:
            raise StateError("no epoch for this step")
        while s.queue and s.attempt is None:
            signed = SignedProposal.from_bytes(s.queue[0])
            s = replace(s, queue=s.queue[1:])
            try:
                self._check_proposal(e, signed.proposal)
            except (ProtocolError, LimitExceeded) as exc:
                out.events.append(Ignored(f"queued proposal refused: {exc}",
                                          signed.proposal.proposer))
                continue
            s = self._begin_in_epoch(s, signed, now_ms, out)
        return s

    def _propose_removal(self, s: SessionState, named: tuple[bytes, ...], now_ms: int,
                         out: Out) -> SessionState:
        """After a timeout abort, the first old member (in roster order) that may still propose
        and was not named proposes removing the unresponsive old members. Everyone computes
        the same choice from what the mailboxes showed. Joiners of the failed attempt are
        dropped (a new proposal with a new welcome can add them)."""
        e = s.epoch
        if e is None:
            raise StateError("no epoch for this step")
        old = self.roster_of(e)
        remove = [m for m in named if m in old]
        candidates = [m for m in old if m not in s.proposers and m not in named]
        me = self._identity.public.to_bytes()
        if not remove or not candidates or candidates[0] != me or s.own_proposal is not None:
            return s
        return self.propose(s, [], remove, REASON_UNRESPONSIVE, now_ms, out)

    def propose(self, s: SessionState, added: list[bytes], removed: list[bytes], reason: int,
                now_ms: int, out: Out) -> SessionState:
        e = s.epoch
        if e is None or s.status != ACTIVE:
            raise StateError("no epoch to propose a change of")
        me = self._identity.public.to_bytes()
        if me in s.proposers or s.own_proposal is not None:
            raise StateError("we already proposed in this epoch")
        signed = make_proposal(self._identity, group_id=e.group_id, epoch=e.epoch,
                               public_epoch_id=e.public_epoch_id, old_roster=self.roster_of(e),
                               added=added, removed=removed, reason=reason, rng=self._rng)
        blob, state = encrypt_in_epoch(e, CONTENT_PROPOSAL, signed.to_bytes(), self._rng)
        out.sends.append(Outgoing(state.mailbox_id, blob))
        return replace(s, epoch=state, own_proposal=(blob, signed.to_bytes()))

    def maybe_refresh(self, s: SessionState, now_ms: int, out: Out) -> SessionState:
        if s.status != ACTIVE or s.attempt is not None or s.own_proposal is not None:
            return s
        if self._identity.public.to_bytes() in s.proposers:
            return s
        due = ((s.refresh_messages and s.messages_in_epoch >= s.refresh_messages)
               or (s.refresh_ms and now_ms - s.epoch_started_ms >= s.refresh_ms))
        if not due:
            return s
        return self.propose(s, [], [], REASON_REFRESH, now_ms, out)

    def expire(self, s: SessionState, now_ms: int, out: Out) -> SessionState:
        """Time out the running attempt's phase if it waited too long (only from `tick`)."""
        if s.attempt is None:
            return s
        step = epoch_change.expire(s.attempt, now_ms, self._rng)
        out.sends.extend(step.outgoing)
        return replace(s, attempt=step.attempt)
