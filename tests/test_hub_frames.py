"""The hub's sans-IO frame codec and access proofs: round trips, strictness, limits."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet.errors import (
    DecodeError,
    InvalidSignature,
    LimitExceeded,
    UnsupportedError,
    UsageError,
)
from triple_ratchet.hub import frames as f
from triple_ratchet.hub.access import (
    LABEL_HUB_CHALLENGE,
    AccessKey,
    AccessProof,
    challenge_message,
    directory_id,
    mailbox_id,
    verify_proof,
)
from triple_ratchet.mailbox import mailbox_id as shared_mailbox_id
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, DEFAULT_SUITE, X25519_SHA512_XCHACHA20

MBX = bytes(range(32))
MBX2 = bytes(range(1, 33))
INC = bytes(range(100, 116))


def _proof() -> AccessProof:
    key = AccessKey.generate(DEFAULT_SUITE, DeterministicRandom(b"proof"))
    return key.prove(bytes(32))


CLIENT_FRAMES: list[f.ClientFrame] = [
    f.Hello(2),
    f.Auth(7, _proof()),
    f.Create(1, MBX, f.Kind.GROUP, True),
    f.Create(2, MBX, f.Kind.INBOX, False),
    f.Unpin(3, MBX),
    f.Put(4, MBX, b"m" * 16, b"blob"),
    f.Put(5, MBX, b"m" * 16, b"x" * f.MAX_BLOB_SIZE),
    f.Create(13, MBX, f.Kind.CONTROL, False),
    f.Fetch(6, MBX, INC, 2**64 - 1, 256),
    f.Subscribe(7, MBX, INC, 0),
    f.Unsubscribe(8, MBX),
    f.Ack(9, MBX, INC, 12),
    f.Publish(10, MBX, MBX2, b"bundle", (b"a", b"b" * f.MAX_PREKEY_SIZE)),
    f.Publish(11, MBX, MBX2, b"bundle", ()),
    f.TakeBundle(12, MBX),
    f.PublishJoinKeys(14, MBX, MBX2, b"last", (b"j1", b"j" * f.MAX_JOIN_KEY_SIZE)),
    f.PublishJoinKeys(15, MBX, MBX2, None, (b"j1",)),
    f.PublishJoinKeys(16, MBX, MBX2, b"last", ()),
    f.TakeJoinKey(17, MBX),
]

HUB_FRAMES: list[f.HubFrame] = [
    f.Challenge(2, b"n" * 32, f.MAX_BLOB_SIZE, INC),
    f.Ok(0xFFFFFFFF),
    f.PutOk(3, 99, 1_700_000_000_123, True),
    f.Batch(4, MBX, INC, 5, 2**64 - 1, True, True,
            (f.Entry(4, 10, b"a"), f.Entry(5, 10, b"bb"))),
    f.Batch(4, MBX, INC, 9, 0, False, False, ()),
    f.Push(MBX, INC, 7, 12, False, (f.Entry(7, 11, b"z"),)),
    f.Push(MBX, INC, 7, 12, True, ()),
    f.Resync(MBX, 42),
    f.Bundle(5, b"bundle", b"prekey", 3),
    f.Bundle(5, b"bundle", None, 0),
    f.Error(0, f.ErrorCode.LIMIT, "rate limited"),
    f.JoinKey(6, False, b"join key", 41),
    f.JoinKey(6, True, b"j" * f.MAX_JOIN_KEY_SIZE, 0),
]


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=lambda fr: type(fr).__name__)
def test_client_frames_round_trip(frame: f.ClientFrame) -> None:
    assert f.decode_client_frame(f.encode(frame)) == frame


@pytest.mark.parametrize("frame", HUB_FRAMES, ids=lambda fr: type(fr).__name__)
def test_hub_frames_round_trip(frame: f.HubFrame) -> None:
    assert f.decode_hub_frame(f.encode(frame)) == frame


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=lambda fr: type(fr).__name__)
def test_every_truncation_and_extension_is_refused(frame: f.ClientFrame) -> None:
    data = f.encode(frame)
    variable_tail = isinstance(frame, f.Put | f.Auth)  # the last field runs to the end
    for cut in range(len(data) - (1 if variable_tail else 0)):
        if variable_tail and cut >= len(data) - len(_tail(frame)):
            continue
        with pytest.raises(DecodeError):
            f.decode_client_frame(data[:cut])
    if not variable_tail:
        with pytest.raises(DecodeError):
            f.decode_client_frame(data + b"\x00")


def _tail(frame: f.ClientFrame) -> bytes:
    if isinstance(frame, f.Put):
        return frame.blob
    assert isinstance(frame, f.Auth)
    return frame.proof.signature


@pytest.mark.parametrize("frame", HUB_FRAMES, ids=lambda fr: type(fr).__name__)
def test_hub_frame_truncations_are_refused(frame: f.HubFrame) -> None:
    data = f.encode(frame)
    if isinstance(frame, f.Error):
        return  # the reason runs to the end; covered below
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            f.decode_hub_frame(data[:cut])
    with pytest.raises(DecodeError):
        f.decode_hub_frame(data + b"\x00")


def test_strict_field_values() -> None:
    put = f.encode(f.Put(1, MBX, bytes(16), b"x"))
    with pytest.raises(DecodeError, match="empty"):
        f.decode_client_frame(put[:-1])
    with pytest.raises(DecodeError, match="unknown client frame"):
        f.decode_client_frame(b"\x7f" + put[1:])
    with pytest.raises(DecodeError, match="unknown hub frame"):
        f.decode_hub_frame(b"\x01\x01")
    create = bytearray(f.encode(f.Create(1, MBX, f.Kind.GROUP, False)))
    create[-2] = 4
    with pytest.raises(DecodeError, match="kind"):
        f.decode_client_frame(bytes(create))
    create[-2], create[-1] = 1, 2
    with pytest.raises(DecodeError, match="0 or 1"):
        f.decode_client_frame(bytes(create))
    fetch = bytearray(f.encode(f.Fetch(1, MBX, INC, 0, 1)))
    fetch[-2:] = struct.pack(">H", 0)
    with pytest.raises(DecodeError, match="limit"):
        f.decode_client_frame(bytes(fetch))
    fetch[-2:] = struct.pack(">H", f.MAX_BATCH_ENTRIES + 1)
    with pytest.raises(DecodeError, match="limit"):
        f.decode_client_frame(bytes(fetch))
    batch = bytearray(f.encode(f.Batch(1, MBX, INC, 0, 0, False, False, ())))
    batch[1 + 4 + 32 + 16 + 8 + 8] = 4
    with pytest.raises(DecodeError, match="flags"):
        f.decode_hub_frame(bytes(batch))
    # Entries must increase, their times must not decrease, and the next cursor must be the
    # last entry's.
    bad = f.encode(f.Batch(1, MBX, INC, 5, 0, False, False,
                           (f.Entry(5, 1, b"a"), f.Entry(5, 1, b"b"))))
    with pytest.raises(DecodeError, match="increase"):
        f.decode_hub_frame(bad)
    bad = f.encode(f.Batch(1, MBX, INC, 6, 0, False, False,
                           (f.Entry(5, 2, b"a"), f.Entry(6, 1, b"b"))))
    with pytest.raises(DecodeError, match="times must not decrease"):
        f.decode_hub_frame(bad)
    bad = f.encode(f.Push(MBX, INC, 9, 0, False, (f.Entry(5, 0, b"a"),)))
    with pytest.raises(DecodeError, match="next cursor"):
        f.decode_hub_frame(bad)
    with pytest.raises(DecodeError, match="must carry a key"):
        f.decode_client_frame(f.encode(f.PublishJoinKeys(1, MBX, MBX2, None, ())))
    with pytest.raises(DecodeError, match="empty"):
        f.decode_client_frame(f.encode(f.PublishJoinKeys(1, MBX, MBX2, b"", ())))
    with pytest.raises(DecodeError, match="empty"):
        f.decode_hub_frame(f.encode(f.JoinKey(1, False, b"", 0)))
    err = f.encode(f.Error(1, f.ErrorCode.REFUSED, "x"))
    with pytest.raises(DecodeError, match="error code"):
        f.decode_hub_frame(err[:5] + b"\x63" + err[6:])
    with pytest.raises(DecodeError, match="ASCII"):
        f.decode_hub_frame(err + "é".encode())
    with pytest.raises(DecodeError, match="binary"):
        f.decode_client_frame("text")  # type: ignore[arg-type]


def test_limits() -> None:
    with pytest.raises(LimitExceeded):
        f.decode_client_frame(f.encode(f.Put(1, MBX, bytes(16), b"x" * (f.MAX_BLOB_SIZE + 1))))
    with pytest.raises(LimitExceeded):
        f.decode_client_frame(b"\x05" + bytes(f.MAX_CLIENT_FRAME))
    big = f.Publish(1, MBX, MBX2, b"b", (b"p",) * (f.MAX_PREKEYS_PER_PUBLISH + 1))
    with pytest.raises(LimitExceeded):
        f.decode_client_frame(f.encode(big))
    with pytest.raises(LimitExceeded):
        f.decode_client_frame(f.encode(f.Publish(1, MBX, MBX2, b"b" * (f.MAX_BUNDLE_SIZE + 1),
                                                 ())))
    with pytest.raises(LimitExceeded):
        too_long = b"p" * (f.MAX_PREKEY_SIZE + 1)
        f.decode_client_frame(f.encode(f.Publish(1, MBX, MBX2, b"b", (too_long,))))
    many = f.PublishJoinKeys(1, MBX, MBX2, None, (b"j",) * (f.MAX_JOIN_KEYS_PER_PUBLISH + 1))
    with pytest.raises(LimitExceeded):
        f.decode_client_frame(f.encode(many))
    with pytest.raises(LimitExceeded):
        f.decode_client_frame(f.encode(f.PublishJoinKeys(
            1, MBX, MBX2, b"j" * (f.MAX_JOIN_KEY_SIZE + 1), ())))
    # A batch claiming more entries than allowed is refused before any entry is read.
    header = b"\x84" + bytes(4) + MBX + INC + bytes(8) + bytes(8) + b"\x00"
    with pytest.raises(LimitExceeded):
        f.decode_hub_frame(header + struct.pack(">H", f.MAX_BATCH_ENTRIES + 1))
    # An entry length beyond the blob limit is refused without reading it.
    with pytest.raises(LimitExceeded):
        f.decode_hub_frame(header + struct.pack(">HQQI", 1, 1, 0, f.MAX_BLOB_SIZE + 1))


def test_the_largest_batch_fits_the_hub_frame_limit() -> None:
    """MAX_HUB_FRAME bounds every answer the hub can send: a full batch of the largest blobs
    and of the most entries (the client's WebSocket layer refuses anything larger)."""
    per = f.MAX_BATCH_BYTES // f.MAX_BATCH_ENTRIES
    full = f.Batch(1, MBX, INC, f.MAX_BATCH_ENTRIES, 2**64 - 1, True, True,
                   tuple(f.Entry(i + 1, i, b"x" * per) for i in range(f.MAX_BATCH_ENTRIES)))
    assert len(f.encode(full)) <= f.MAX_HUB_FRAME
    assert f.decode_hub_frame(f.encode(full)) == full
    big = f.Batch(1, MBX, INC, 1, 0, False, True, (f.Entry(1, 0, b"x" * f.MAX_BLOB_SIZE),))
    assert len(f.encode(big)) <= f.MAX_HUB_FRAME


def test_a_thousand_member_commit_fits_one_blob() -> None:
    """ASYNC-EPOCHS R13: a commit sealed to 1,000 members (117 bytes each) plus generous
    framing is one hub blob; the hub sees only its size."""
    commit = bytes(1000 * 117 + 4096)
    assert f.decode_client_frame(f.encode(f.Put(1, MBX, bytes(16), commit))) == f.Put(
        1, MBX, bytes(16), commit)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_give_typed_errors_only(data: bytes) -> None:
    for decode in (f.decode_client_frame, f.decode_hub_frame):
        with contextlib.suppress(DecodeError, LimitExceeded):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CLIENT_FRAMES + HUB_FRAMES), st.data())
def test_single_byte_flips_never_crash(frame: f.ClientFrame | f.HubFrame,
                                       data: st.DataObject) -> None:
    raw = bytearray(f.encode(frame))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    for decode in (f.decode_client_frame, f.decode_hub_frame):
        with contextlib.suppress(DecodeError, LimitExceeded):
            decode(bytes(raw))


# --- access proofs ---------------------------------------------------------------------------


@pytest.mark.parametrize("suite", CLASSICAL_SUITES, ids=lambda s: s.name)
def test_access_proof_verifies_and_binds_challenge_and_mailbox(suite: object) -> None:
    from triple_ratchet.suites import Suite

    assert isinstance(suite, Suite)
    key = AccessKey.generate(suite, DeterministicRandom(b"k" + bytes([suite.suite_id])))
    assert key.mailbox_id == mailbox_id(suite, key.public_key)
    assert key.mailbox_id == shared_mailbox_id(suite, key.public_key)
    challenge = bytes(range(32))
    proof = key.prove(challenge)
    verify_proof(proof, challenge)
    with pytest.raises(InvalidSignature):
        verify_proof(proof, bytes(32))  # another connection's challenge
    other = AccessKey.generate(suite, DeterministicRandom(b"other"))
    with pytest.raises(InvalidSignature, match="hash"):  # a key that is not the mailbox's
        verify_proof(AccessProof(key.mailbox_id, suite.suite_id, other.public_key,
                                 other.prove(challenge).signature), challenge)
    with pytest.raises(InvalidSignature):  # the right key, a signature for another mailbox
        verify_proof(AccessProof(key.mailbox_id, suite.suite_id, key.public_key,
                                 key.prove(challenge).signature[:-1] + b"\x00"), challenge)
    with pytest.raises(UnsupportedError):
        verify_proof(AccessProof(key.mailbox_id, 0x7777, key.public_key, proof.signature),
                     challenge)


def test_access_key_signs_only_labelled_challenges() -> None:
    msg = challenge_message(bytes(32), MBX)
    assert msg.startswith(bytes([len(LABEL_HUB_CHALLENGE)]) + LABEL_HUB_CHALLENGE)
    assert msg.endswith(bytes(32) + MBX)
    with pytest.raises(UsageError):
        challenge_message(bytes(31), MBX)


def test_ids_depend_on_suite_and_secrets_stay_out_of_repr() -> None:
    key = AccessKey.from_seed(DEFAULT_SUITE, b"s" * 32)
    assert mailbox_id(DEFAULT_SUITE, key.public_key) != mailbox_id(X25519_SHA512_XCHACHA20,
                                                                   key.public_key)
    assert directory_id(DEFAULT_SUITE, key.public_key) != key.mailbox_id
    secret = key._key.to_bytes()
    for text in (repr(key), str(key), repr(key.prove(bytes(32)))):
        assert secret.hex() not in text
        assert "secret" in text or "AccessProof" in text
    assert "blob" not in repr(f.Put(1, MBX, bytes(16), b"blob"))
