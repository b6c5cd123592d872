"""GroupMessage: the wire format of one message in a group mailbox (spec: Group messages).

Sign-then-encrypt. The content is signed with the sender's per-epoch signing key, then padded
and encrypted under the sender chain's message key; sender index, generation and the nonce's
reuse guard travel in a sender-data field encrypted under the epoch's sender-data secret with a
key and nonce derived from a sample of the content ciphertext (as MLS does). The hub sees only
the mailbox id and a padded blob.

The functions here are pure; which chain and which signing key to use is the session's business.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field

from triple_ratchet import cbor
from triple_ratchet.errors import DecodeError, LimitExceeded, UnsupportedError, UsageError
from triple_ratchet.group.sender_chain import (
    REUSE_GUARD_LEN,
    KeyedHmac,
    MessageKeys,
    hash_of,
)
from triple_ratchet.mailbox import MAILBOX_ID_LEN
from triple_ratchet.suites import SigningKey, Suite, VerifyingKey

LABEL_GROUP_CONTENT_SIGNATURE = b"triple-ratchet v1 group content signature"
LABEL_GROUP_MESSAGE_DIGEST = b"triple-ratchet v1 group message digest"
LABEL_GROUP_MESSAGE_AAD = b"triple-ratchet v1 group message aad"
LABEL_GROUP_SENDER_DATA_KEY = b"group sender data key"
LABEL_GROUP_SENDER_DATA_NONCE = b"group sender data nonce"

WIRE_GROUP_MESSAGE = 0x20
# The wire version (spec 09 §9.11): messages are signed with the sender's current record key and
# carry application content only. Version 1 (the withdrawn epoch change's) is refused.
VERSION = 2
VERSIONS = frozenset({VERSION})
V1_UNSUPPORTED = "protocol version 1 is no longer supported"

# Content types (the whole registry; anything else is refused). Proposals are control entries
# (spec 11.v2.6), never group messages: type 2, version 1's proposal, is refused.
CONTENT_APPLICATION = 1
CONTENT_TYPES = frozenset({CONTENT_APPLICATION})


def content_types(version: int) -> frozenset[int]:
    return CONTENT_TYPES if version == VERSION else frozenset()

# Padded plaintext lengths: powers of two from 256 B to 128 KiB, so the hub learns only a
# bucket. The application body is capped so that the largest bucket always has room for the
# signature and framing.
PAD_BUCKETS = tuple(1 << k for k in range(8, 18))
MAX_BODY = 64 * 1024
# Sender data: index (4) ‖ generation (4) ‖ reuse guard (8).
SENDER_DATA_LEN = 8 + REUSE_GUARD_LEN
MAX_GROUP_ID_LEN = 64
MAX_ROSTER_INDEX = 2**32 - 1
# Upper bound of a whole blob (largest bucket, tags, framing), checked before any decoding.
MAX_BLOB_LEN = PAD_BUCKETS[-1] + 256


@dataclass(frozen=True)
class Content:
    """What a sender signs (and, after verification, what a receiver has)."""

    suite_id: int
    group_id: bytes
    epoch: int
    sender: int
    generation: int
    content_type: int
    last_seen: bytes  # digest of the last message the sender saw in this epoch, or b""
    body: bytes = field(repr=False)
    version: int = VERSION

    def to_be_signed(self) -> bytes:
        # Computed once per message (the sender signs it and digests it, the receiver verifies
        # it and digests it); cached outside the fields, so equality is unaffected.
        tbs: bytes | None = self.__dict__.get("_tbs")
        if tbs is None:
            tail = (self.sender, self.generation, self.content_type, self.last_seen, self.body)
            if (type(self.suite_id) is int and type(self.group_id) is bytes
                    and type(self.epoch) is int and self.version in VERSIONS):
                # The first five elements are the same for a whole epoch: encoded once.
                tbs = (_TBS_HEAD
                       + _tbs_prefix(self.suite_id, self.group_id, self.epoch, self.version)
                       + cbor.encode_flat(tail)[1:])
            else:
                tbs = cbor.encode_flat((LABEL_GROUP_CONTENT_SIGNATURE, self.version,
                                        self.suite_id, self.group_id, self.epoch, *tail))
            self.__dict__["_tbs"] = tbs
        return tbs

    def digest(self, suite: Suite) -> bytes:
        """The causal digest of this message: over the signed content, never the signature
        (ECDSA signatures are malleable, so the same message could have two digests)."""
        if suite.suite_id != self.suite_id:
            return suite.hash(LABEL_GROUP_MESSAGE_DIGEST + self.to_be_signed())
        digest: bytes | None = self.__dict__.get("_digest")
        if digest is None:
            digest = self.__dict__["_digest"] = hash_of(
                suite, LABEL_GROUP_MESSAGE_DIGEST + self.to_be_signed())
        return digest


@dataclass(frozen=True)
class SenderData:
    sender: int
    generation: int
    reuse_guard: bytes

    def to_bytes(self) -> bytes:
        return (self.sender.to_bytes(4, "big") + self.generation.to_bytes(4, "big")
                + self.reuse_guard)

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderData:
        if len(data) != SENDER_DATA_LEN:
            raise DecodeError("sender data has the wrong length")
        return cls(int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big"),
                   data[8:])


@dataclass(frozen=True)
class GroupMessage:
    """The parsed, still encrypted blob."""

    mailbox_id: bytes
    sender_data: bytes
    ciphertext: bytes
    version: int = VERSION

    def to_bytes(self) -> bytes:
        mailbox, sender_data, ciphertext = self.mailbox_id, self.sender_data, self.ciphertext
        if (type(mailbox) is bytes and len(mailbox) == MAILBOX_ID_LEN
                and type(sender_data) is bytes and type(ciphertext) is bytes
                and self.version in _MESSAGE_PREFIXES):
            return b"".join((_MESSAGE_PREFIXES[self.version], mailbox,
                             cbor.bstr_head(len(sender_data)), sender_data,
                             cbor.bstr_head(len(ciphertext)), ciphertext))
        return cbor.encode_flat((WIRE_GROUP_MESSAGE, self.version, mailbox, sender_data,
                                 ciphertext))

    @classmethod
    def from_bytes(cls, suite: Suite, blob: bytes, *, version: int = VERSION) -> GroupMessage:
        """Parse a blob of wire `version`: version 1 is refused with `UnsupportedError`
        (spec 09 §9.11), any other mismatch is a `DecodeError`."""
        if len(blob) > MAX_BLOB_LEN:
            raise LimitExceeded("group message larger than the largest bucket")
        fast = cls._parse_canonical(suite, blob, version)
        # Anything else takes the strict general decoder, which names what is wrong.
        return fast if fast is not None else cls._parse_strict(suite, blob, version)

    @classmethod
    def _parse_strict(cls, suite: Suite, blob: bytes, version: int = VERSION) -> GroupMessage:
        items = cbor.as_list(cbor.decode(blob, max_size=MAX_BLOB_LEN, max_items=8, max_depth=2),
                             "group message", length=5)
        if cbor.as_int(items[0], "message type") != WIRE_GROUP_MESSAGE:
            raise DecodeError("not a group message")
        found = cbor.as_int(items[1], "version")
        if found != version:
            if found == 1:
                raise UnsupportedError(V1_UNSUPPORTED)
            raise DecodeError("unsupported group message version")
        mailbox = cbor.as_bytes(items[2], "mailbox id", length=MAILBOX_ID_LEN)
        sender_data = cbor.as_bytes(items[3], "sender data",
                                    length=SENDER_DATA_LEN + suite.aead_tag_len)
        ciphertext = cbor.as_bytes(items[4], "ciphertext",
                                   max_length=PAD_BUCKETS[-1] + suite.aead_tag_len)
        if len(ciphertext) - suite.aead_tag_len not in PAD_BUCKETS:
            raise DecodeError("ciphertext length is not a padding bucket")
        return cls(mailbox, sender_data, ciphertext, version)

    @classmethod
    def _parse_canonical(cls, suite: Suite, blob: bytes, version: int = VERSION
                         ) -> GroupMessage | None:
        """The common case through `cbor.decode_flat`: every check of the strict path, so both
        paths accept the same blobs with the same result; None sends the blob to the strict
        path, which names what is wrong."""
        items = cbor.decode_flat(blob, 5)
        if items is None:
            return None
        kind, found, mailbox, sender_data, ciphertext = items
        if (kind != WIRE_GROUP_MESSAGE or found != version
                or type(mailbox) is not bytes or len(mailbox) != MAILBOX_ID_LEN
                or type(sender_data) is not bytes
                or len(sender_data) != SENDER_DATA_LEN + suite.aead_tag_len
                or type(ciphertext) is not bytes
                or len(ciphertext) - suite.aead_tag_len not in PAD_BUCKETS):
            return None
        return cls(mailbox, sender_data, ciphertext, version)


@functools.lru_cache(maxsize=256)
def _tbs_prefix(suite_id: int, group_id: bytes, epoch: int, version: int = VERSION) -> bytes:
    """The signed content's first five elements, without the array head."""
    return cbor.encode_flat((LABEL_GROUP_CONTENT_SIGNATURE, version, suite_id, group_id,
                             epoch))[1:]


# [WIRE_GROUP_MESSAGE, version, mailbox id (32 bytes), ... per wire version
_MESSAGE_PREFIXES = {v: (b"\x85"  # CBOR array of 5
                         + cbor.encode_flat((WIRE_GROUP_MESSAGE, v))[1:]
                         + cbor.bstr_head(MAILBOX_ID_LEN))
                     for v in VERSIONS}
_TBS_HEAD = b"\x8a"  # the signed content is a CBOR array of 10


def pad(data: bytes) -> bytes:
    """ISO/IEC 7816-4 padding (0x80 then zeros) to the smallest bucket that fits."""
    for bucket in PAD_BUCKETS:
        if len(data) + 1 <= bucket:
            return data + b"\x80" + bytes(bucket - len(data) - 1)
    raise UsageError("message too large for the largest padding bucket")


def unpad(data: bytes) -> bytes:
    end = len(data.rstrip(b"\x00"))
    if end == 0 or data[end - 1] != 0x80:
        raise DecodeError("bad padding")
    return data[:end - 1]


def _sample(suite: Suite, ciphertext: bytes) -> bytes:
    return ciphertext[:suite.hash_len]


def _aad(mailbox_id: bytes) -> bytes:
    return LABEL_GROUP_MESSAGE_AAD + mailbox_id


@functools.cache
def _sender_data_infos(suite: Suite) -> tuple[bytes, bytes]:
    """`label_info` of the two sender-data derivations without their context: the context (a
    ciphertext sample) is always `hash_len` bytes and comes last, so info = prefix ‖ sample.
    Both outputs fit in one hash block, so `expand_label` is HMAC(secret, info ‖ 0x01)[:n]."""
    h = suite.hash_len
    if suite.aead_key_len > h or suite.aead_nonce_len > h:
        raise UsageError("suite's AEAD key or nonce is longer than its hash")
    return (suite.label_info(LABEL_GROUP_SENDER_DATA_KEY, bytes(h), suite.aead_key_len)[:-h],
            suite.label_info(LABEL_GROUP_SENDER_DATA_NONCE, bytes(h), suite.aead_nonce_len)[:-h])


def sender_data_mac(suite: Suite, secret: bytes) -> KeyedHmac:
    """HMAC keyed with the epoch's sender-data secret, for both per-message derivations: the
    key setup is then done once per epoch, and OpenSSL's per-call lookup never."""
    return KeyedHmac(suite, secret)


def _sender_data_key_nonce(suite: Suite, secret: bytes, ciphertext: bytes,
                           mac: KeyedHmac | None = None) -> tuple[bytes, bytes]:
    sample = _sample(suite, ciphertext)
    if len(sample) != suite.hash_len:  # never for a padded ciphertext; kept exact anyway
        return (suite.expand_label(secret, LABEL_GROUP_SENDER_DATA_KEY, sample,
                                   suite.aead_key_len),
                suite.expand_label(secret, LABEL_GROUP_SENDER_DATA_NONCE, sample,
                                   suite.aead_nonce_len))
    key_info, nonce_info = _sender_data_infos(suite)
    if mac is None:
        name = suite.hash_name
        return (hmac.digest(secret, key_info + sample + b"\x01", name)[:suite.aead_key_len],
                hmac.digest(secret, nonce_info + sample + b"\x01", name)[:suite.aead_nonce_len])
    return (mac.digest(key_info + sample + b"\x01")[:suite.aead_key_len],
            mac.digest(nonce_info + sample + b"\x01")[:suite.aead_nonce_len])


def seal(suite: Suite, content: Content, signing_key: SigningKey, keys: MessageKeys,
         reuse_guard: bytes, sender_data_secret: bytes, mailbox_id: bytes, *,
         sender_data_hmac: KeyedHmac | None = None) -> bytes:
    """Sign, pad and encrypt `content`; returns the blob for `mailbox_id`.

    `sender_data_hmac`, if given, must be `sender_data_mac(suite, sender_data_secret)`."""
    if content.version not in VERSIONS:
        raise UsageError("unknown group message version")
    if content.content_type not in content_types(content.version):
        raise UsageError("unknown content type")
    if len(content.body) > MAX_BODY:
        raise UsageError(f"message body larger than {MAX_BODY} bytes")
    if keys.generation != content.generation:
        raise UsageError("message keys belong to another generation")
    signature = signing_key.sign(content.to_be_signed())
    plaintext = pad(cbor.encode_flat((content.content_type, content.last_seen, content.body,
                                 signature)))
    aad = _aad(mailbox_id)
    ciphertext = suite.aead_encrypt(keys.key, keys.nonce(reuse_guard), plaintext, aad)
    sd_key, sd_nonce = _sender_data_key_nonce(suite, sender_data_secret, ciphertext,
                                              sender_data_hmac)
    sender_data = (content.sender.to_bytes(4, "big") + content.generation.to_bytes(4, "big")
                   + reuse_guard)  # SenderData(...).to_bytes()
    encrypted_sd = suite.aead_encrypt(sd_key, sd_nonce, sender_data, aad)
    return GroupMessage(mailbox_id, encrypted_sd, ciphertext, content.version).to_bytes()


def open_sender_data(suite: Suite, message: GroupMessage, sender_data_secret: bytes, *,
                     sender_data_hmac: KeyedHmac | None = None) -> SenderData:
    """Decrypt the sender-data field (authenticates only that a member of the epoch wrote it).

    `sender_data_hmac`, if given, must be `sender_data_mac(suite, sender_data_secret)`."""
    sd_key, sd_nonce = _sender_data_key_nonce(suite, sender_data_secret, message.ciphertext,
                                              sender_data_hmac)
    return SenderData.from_bytes(
        suite.aead_decrypt(sd_key, sd_nonce, message.sender_data, _aad(message.mailbox_id)))


@dataclass(frozen=True)
class Opened:
    content: Content
    signature: bytes = field(repr=False)


def open_content(suite: Suite, message: GroupMessage, sender_data: SenderData, keys: MessageKeys,
                 group_id: bytes, epoch: int, verifying_key: VerifyingKey) -> Content:
    """Decrypt, unpad, decode and verify the signature. Raises; never returns unverified content."""
    plaintext = suite.aead_decrypt(keys.key, keys.nonce(sender_data.reuse_guard),
                                   message.ciphertext, _aad(message.mailbox_id))
    inner = unpad(plaintext)
    items: list[cbor.CborValue] | list[int | bytes] | None = cbor.decode_flat(inner, 4)
    if items is None:  # not the canonical layout: the strict decoder says what is wrong
        items = cbor.as_list(cbor.decode(inner, max_size=len(plaintext), max_items=8,
                                         max_depth=2), "group content", length=4)
    content_type = cbor.as_int(items[0], "content type")
    if content_type not in content_types(message.version):
        raise DecodeError("unknown content type")
    last_seen = cbor.as_bytes(items[1], "last seen digest", max_length=suite.hash_len)
    if len(last_seen) not in (0, suite.hash_len):
        raise DecodeError("last seen digest has the wrong length")
    body = cbor.as_bytes(items[2], "body", max_length=MAX_BODY)
    signature = cbor.as_bytes(items[3], "signature", length=suite.signature_len)
    content = Content(suite.suite_id, group_id, epoch, sender_data.sender,
                      sender_data.generation, content_type, last_seen, body, message.version)
    verifying_key.verify(signature, content.to_be_signed())
    return content


def same_bytes(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
