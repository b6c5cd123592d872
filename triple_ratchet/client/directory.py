"""What a client publishes in the hub's directory, and its invite string (spec/15-client.md).

The directory keeps bytes under a directory id (a hash of the identity encoding). The client
publishes there, encrypted under a key derived from the identity (spec 10.3), so the hub reads
none of it:

- the **entry** (the bundle slot): `CBOR["contact", name, inbox mailbox id, PrekeyBundle]`;
- one-time **prekeys** (pairwise): `CBOR["prekey", PrekeyBundle with a one-time prekey]`;
- group **join keys**: the `SignedJoinKey` itself (as the demo does).

Whoever knows the identity (from an invite, a QR code) can read them; the fetcher checks that
the signed bundle or join key inside names the identity it asked for.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, UsageError
from triple_ratchet.group.records import JoinKey
from triple_ratchet.identity import Identity, PrekeyBundle
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.random import system_random
from triple_ratchet.suites import Suite

# demo.LABEL_DIRECTORY_ENTRY's value (spec 10.3). Registered under the demo's name while demo.py
# defines it; the integrator renames this one LABEL_DIRECTORY_ENTRY once the demo imports it.
DIRECTORY_ENTRY_LABEL = b"triple-ratchet directory entry"
INVITE_PREFIX = "tr1:"
MAX_NAME_LEN = 256
# Bidirectional overrides, isolates and marks ("alice" could be shown for "ecila"), and line
# and paragraph separators (a new line in many interfaces).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                  "\u200e\u200f\u061c\u2028\u2029")


def clean_name(name: str) -> str:
    """A name without control characters (a terminal's escape sequences) or bidi overrides:
    names come from peers, and apps print them."""
    return "".join(c for c in name if unicodedata.category(c) != "Cc" and c not in _BIDI)


def check_name(value: cbor.CborValue, what: str) -> str:
    """A display or group name from a peer, cleaned (`clean_name`)."""
    return clean_name(cbor.as_str(value, what, max_length=MAX_NAME_LEN))


def _key(suite: Suite, identity: bytes) -> bytes:
    return suite.expand_label(suite.hash(identity), DIRECTORY_ENTRY_LABEL, b"",
                              suite.aead_key_len)


def seal(suite: Suite, identity: bytes, plaintext: bytes) -> bytes:
    """`nonce ‖ AEAD(key(identity), nonce, plaintext, aad = label)`."""
    nonce = system_random(suite.aead_nonce_len)
    return nonce + suite.aead_encrypt(_key(suite, identity), nonce, plaintext,
                                      DIRECTORY_ENTRY_LABEL)


def open_sealed(suite: Suite, identity: bytes, blob: bytes) -> bytes:
    n = suite.aead_nonce_len
    if len(blob) < n + suite.aead_tag_len:
        raise DecodeError("directory entry too short")
    return suite.aead_decrypt(_key(suite, identity), blob[:n], blob[n:], DIRECTORY_ENTRY_LABEL)


@dataclass(frozen=True)
class ContactEntry:
    """A member's published entry: display name, inbox, and a last-resort prekey bundle."""

    name: str
    inbox_id: bytes = field(repr=False)
    bundle: PrekeyBundle = field(repr=False)

    def seal(self, suite: Suite) -> bytes:
        plain = cbor.encode(["contact", self.name, self.inbox_id, self.bundle.to_bytes()])
        return seal(suite, self.bundle.identity.to_bytes(), plain)

    @classmethod
    def open(cls, suite: Suite, identity: bytes, blob: bytes) -> ContactEntry:
        f = cbor.as_list(cbor.decode(open_sealed(suite, identity, blob), max_items=64),
                         "directory entry", 4)
        if f[0] != "contact":
            raise DecodeError("not a contact entry")
        bundle = PrekeyBundle.from_bytes(cbor.as_bytes(f[3], "bundle", max_length=4096), suite)
        if bundle.identity.to_bytes() != identity:
            raise DecodeError("the directory entry is another identity's")
        return cls(check_name(f[1], "name"),
                   cbor.as_bytes(f[2], "inbox id", length=MAILBOX_ID_LEN), bundle)


def seal_prekey(bundle: PrekeyBundle) -> bytes:
    return seal(bundle.suite, bundle.identity.to_bytes(),
                cbor.encode(["prekey", bundle.to_bytes()]))


def open_prekey(suite: Suite, identity: bytes, blob: bytes) -> PrekeyBundle:
    f = cbor.as_list(cbor.decode(open_sealed(suite, identity, blob), max_items=8),
                     "one-time prekey", 2)
    if f[0] != "prekey":
        raise DecodeError("not a one-time prekey entry")
    bundle = PrekeyBundle.from_bytes(cbor.as_bytes(f[1], "bundle", max_length=4096), suite)
    if bundle.identity.to_bytes() != identity:
        raise DecodeError("the one-time prekey is another identity's")
    return bundle


def seal_join_key(suite: Suite, identity: bytes, signed_join_key: bytes) -> bytes:
    return seal(suite, identity, signed_join_key)


def open_join_key(suite: Suite, identity: bytes, blob: bytes) -> JoinKey:
    join_key = JoinKey.from_bytes(suite, open_sealed(suite, identity, blob))
    if join_key.identity != identity:
        raise DecodeError("the directory handed out another member's join key")
    return join_key


@dataclass(frozen=True)
class Invite:
    """What one user gives another to be found: the identity and a display name, no secret.
    As a string: `tr1:` + base64url(CBOR["invite", identity, name]), without padding."""

    identity: bytes = field(repr=False)
    name: str

    def __str__(self) -> str:
        raw = cbor.encode(["invite", self.identity, self.name])
        return INVITE_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, text: str) -> Invite:
        if not isinstance(text, str) or not text.startswith(INVITE_PREFIX):
            raise UsageError(f"an invite starts with {INVITE_PREFIX!r}")
        body = text[len(INVITE_PREFIX):].strip()
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise DecodeError("invite is not base64url") from None
        f = cbor.as_list(cbor.decode(raw, max_size=2048, max_items=8), "invite", 3)
        if f[0] != "invite":
            raise DecodeError("not an invite")
        identity = cbor.as_bytes(f[1], "identity", max_length=512)
        Identity.from_bytes(identity)  # a valid identity (its DH key signed by its signing key)
        return cls(identity, check_name(f[2], "name"))


__all__ = ["DIRECTORY_ENTRY_LABEL", "ContactEntry", "Invite", "open_join_key", "open_prekey",
           "seal_join_key", "seal_prekey"]
