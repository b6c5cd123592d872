"""One error hierarchy for the whole library.

Errors split by who was wrong (as h11 does): the caller misused the API (`UsageError`), or the
input from a peer or relay was bad (`RemoteError` and its kinds). Messages name what was wrong and
never contain key material, plaintext or other secrets.
"""

from __future__ import annotations


class TripleRatchetError(Exception):
    """Base class of every error this library raises."""


# --- Local: the caller did something wrong -------------------------------------------------


class UsageError(TripleRatchetError):
    """The API was called in a way it does not allow (wrong argument, wrong order)."""


class StateError(UsageError):
    """The session is in a state where this call is not possible (e.g. it hit a fatal error)."""


# --- Remote: the input was bad ------------------------------------------------------------


class RemoteError(TripleRatchetError):
    """Input received from a peer or relay was rejected. The session state is unchanged."""


class DecodeError(RemoteError):
    """Bytes are not a well-formed encoding (truncated, non-canonical, wrong type or size)."""


class InvalidKey(DecodeError):
    """A key encoding is malformed or not a valid public key (off curve, identity, low order)."""


class AuthenticationError(RemoteError):
    """An AEAD tag, MAC or signature did not verify."""


class InvalidSignature(AuthenticationError):
    """A signature did not verify."""


class ReplayError(RemoteError):
    """A message, prekey or proposal was already processed."""


class LimitExceeded(RemoteError):
    """A size, count or skip bound was exceeded."""


class ProtocolError(RemoteError):
    """Well-formed, authentic input that breaks a protocol rule (wrong epoch, unknown member...)."""


class StaleStateError(ProtocolError):
    """A message we sent from a later copy of this state authenticated under our own key: this
    state is an old copy (a restored backup, a rolled-back row). Nothing must be sent from it
    (its next generations were used already); the session itself is unchanged."""


class UnsupportedError(RemoteError):
    """A suite, version or parameter this library deliberately does not implement."""


class HubRefused(RemoteError):
    """The hub refused what a hub client did in the background for a followed mailbox (a
    resync's fetch, a re-subscription after a reconnect): that mailbox is no longer followed.
    `mailbox` names it, `cursor` is the last cursor delivered and `incarnation` the store
    history it belongs to (follow again from there once the cause is dealt with), `refusal` is
    the typed error of the hub's answer (also the `__cause__`)."""

    def __init__(self, message: str, mailbox: bytes, cursor: int,
                 refusal: RemoteError, incarnation: bytes | None = None) -> None:
        super().__init__(message)
        self.mailbox = mailbox
        self.cursor = cursor
        self.incarnation = incarnation
        self.refusal = refusal
        self.__cause__ = refusal


class DkgError(ProtocolError):
    """A DKG participant misbehaved. `culprit` is its index when one can be named."""

    def __init__(self, message: str, culprit: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.culprit = culprit
        self.reason = reason or message


__all__ = [
    "AuthenticationError",
    "DecodeError",
    "DkgError",
    "HubRefused",
    "InvalidKey",
    "InvalidSignature",
    "LimitExceeded",
    "ProtocolError",
    "RemoteError",
    "ReplayError",
    "StaleStateError",
    "StateError",
    "TripleRatchetError",
    "UnsupportedError",
    "UsageError",
]
