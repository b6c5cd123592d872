"""Vectors for the hub (vectors/hub.json, kind "hub"; spec 10).

Each case names an `operation`:
- "access": inputs access_seed (the access key is `signing_from_seed`), nonce, identity (an
  identity encoding, spec 03: what a directory id hashes); outputs access_public, mailbox_id,
  signed_message (what the access key signs), signature (deterministic in both suites),
  directory_id_input (the exact bytes hashed) and directory_id.
- "verify_proof": inputs mailbox_id, suite_id, public_key, signature, nonce; passes or names
  the error (a key that does not hash to the id, a proof for another challenge, unknown suite).
- "client_frame" / "hub_frame": input frame; output the decoded frame as `{"type": NAME,
  field: value...}` (bytes as hex). A valid frame re-encodes to the same bytes; malformed
  frames name their error.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from typing import Any

from triple_ratchet.hub import frames as f
from triple_ratchet.hub.access import (
    LABEL_HUB_DIRECTORY_ID,
    AccessKey,
    AccessProof,
    challenge_message,
    directory_id,
    verify_proof,
)
from triple_ratchet.identity import Identity, IdentityKeyPair
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, DEFAULT_SUITE, Suite, suite_by_name
from triple_ratchet.testvectors import (
    CaseResult,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

KIND = "hub"
FILE = "hub.json"


def describe(value: Any) -> Any:
    """A decoded frame as JSON values: dataclasses become objects with their type name."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, enum.IntEnum):
        return int(value)
    if isinstance(value, int | str):
        return value
    if isinstance(value, tuple):
        return [describe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": type(value).__name__}
        for fld in dataclasses.fields(value):
            out[fld.name] = describe(getattr(value, fld.name))
        return out
    raise TypeError(f"cannot describe {type(value).__name__}")




def _access(suite: Suite, seed: bytes, nonce: bytes, identity: bytes) -> dict[str, Any]:
    key = AccessKey.from_seed(suite, seed)
    proof = key.prove(nonce)
    verify_proof(proof, nonce)
    # A directory id hashes the whole identity encoding (spec 03), nothing less: refuse others.
    Identity.from_bytes(identity, suite)
    hashed = (bytes([len(LABEL_HUB_DIRECTORY_ID)]) + LABEL_HUB_DIRECTORY_ID
              + suite.suite_id.to_bytes(2, "big") + identity)
    return {
        "access_public": key.public_key.hex(),
        "mailbox_id": key.mailbox_id.hex(),
        "signed_message": challenge_message(nonce, key.mailbox_id).hex(),
        "signature": proof.signature.hex(),
        "directory_id_input": hashed.hex(),
        "directory_id": directory_id(suite, identity).hex(),
    }


def _check(case: dict[str, Any]) -> None:
    inputs = case["inputs"]
    op = inputs["operation"]
    got: dict[str, Any]
    if op == "access":
        got = _access(suite_by_name(case["suite"]), bytes.fromhex(inputs["access_seed"]),
                      bytes.fromhex(inputs["nonce"]), bytes.fromhex(inputs["identity"]))
    elif op == "verify_proof":
        proof = AccessProof(bytes.fromhex(inputs["mailbox_id"]), inputs["suite_id"],
                            bytes.fromhex(inputs["public_key"]),
                            bytes.fromhex(inputs["signature"]))
        verify_proof(proof, bytes.fromhex(inputs["nonce"]))
        got = {}
    elif op in ("client_frame", "hub_frame"):
        raw = bytes.fromhex(inputs["frame"])
        frame = (f.decode_client_frame(raw) if op == "client_frame"
                 else f.decode_hub_frame(raw))
        expect_equal("re-encoding", f.encode(frame).hex(), inputs["frame"])
        got = {"frame": describe(frame)}
    else:
        raise AssertionError(f"unknown operation {op!r}")
    for key, want in case.get("outputs", {}).items():
        expect_equal(key, got.get(key), want)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def _case(description: str, suite: Suite | None, inputs: dict[str, Any],
          error: str | None = None) -> dict[str, Any]:
    case: dict[str, Any] = {"description": description,
                            "suite": suite.name if suite else None, "inputs": inputs}
    if error is not None:
        case["error"] = {"type": error}
    else:
        case["outputs"] = _outputs(case)
    return case


def _outputs(case: dict[str, Any]) -> dict[str, Any]:
    inputs = case["inputs"]
    op = inputs["operation"]
    if op == "access":
        return _access(suite_by_name(case["suite"]), bytes.fromhex(inputs["access_seed"]),
                       bytes.fromhex(inputs["nonce"]), bytes.fromhex(inputs["identity"]))
    if op == "verify_proof":
        return {}
    raw = bytes.fromhex(inputs["frame"])
    frame = f.decode_client_frame(raw) if op == "client_frame" else f.decode_hub_frame(raw)
    return {"frame": describe(frame)}


def _frame_cases(rng: DeterministicRandom) -> list[dict[str, Any]]:
    mbx, other = rng(32), rng(32)
    key = AccessKey.from_seed(DEFAULT_SUITE, rng(32))
    inc = rng(f.INCARNATION_LEN)
    t = 1_767_225_600_000  # hub times are Unix milliseconds
    client: list[tuple[str, f.ClientFrame]] = [
        ("HELLO", f.Hello(f.PROTOCOL_VERSION)),
        ("AUTH", f.Auth(1, key.prove(rng(32)))),
        ("CREATE pinned group", f.Create(2, mbx, f.Kind.GROUP, True)),
        ("CREATE inbox", f.Create(3, mbx, f.Kind.INBOX, False)),
        ("CREATE control", f.Create(3, mbx, f.Kind.CONTROL, False)),
        ("UNPIN", f.Unpin(4, mbx)),
        ("PUT", f.Put(5, mbx, rng(16), b"opaque blob")),
        ("FETCH", f.Fetch(6, mbx, inc, 41, 256)),
        ("SUBSCRIBE", f.Subscribe(7, mbx, inc, 0)),
        ("UNSUBSCRIBE", f.Unsubscribe(8, mbx)),
        ("ACK", f.Ack(9, mbx, inc, 12)),
        ("PUBLISH", f.Publish(10, mbx, other, b"signed bundle", (b"otk-1", b"otk-2"))),
        ("TAKE_BUNDLE", f.TakeBundle(11, mbx)),
        ("PUBLISH_JOIN_KEYS", f.PublishJoinKeys(12, mbx, other, b"last-resort join key",
                                                (b"join-1", b"join-2"))),
        ("PUBLISH_JOIN_KEYS one-time only", f.PublishJoinKeys(13, mbx, other, None,
                                                              (b"join-3",))),
        ("TAKE_JOIN_KEY", f.TakeJoinKey(14, mbx)),
    ]
    hub: list[tuple[str, f.HubFrame]] = [
        ("CHALLENGE", f.Challenge(f.PROTOCOL_VERSION, rng(32), f.MAX_BLOB_SIZE, inc)),
        ("OK", f.Ok(2)),
        ("PUT_OK duplicate", f.PutOk(5, 17, t, True)),
        ("BATCH fell behind, more", f.Batch(6, mbx, inc, 43, t + 9, True, True,
                                            (f.Entry(42, t, b"a"), f.Entry(43, t, b"bc")))),
        ("BATCH empty", f.Batch(6, mbx, inc, 43, t + 9, False, False, ())),
        ("PUSH", f.Push(mbx, inc, 44, t + 12, False, (f.Entry(44, t + 11, b"live"),))),
        ("RESYNC", f.Resync(mbx, 44)),
        ("BUNDLE with prekey", f.Bundle(11, b"signed bundle", b"otk-1", 1)),
        ("BUNDLE without prekey", f.Bundle(11, b"signed bundle", None, 0)),
        ("ERROR", f.Error(9, f.ErrorCode.REFUSED, "cursor was never issued")),
        ("JOIN_KEY one-time", f.JoinKey(14, False, b"join-1", 2)),
        ("JOIN_KEY last resort", f.JoinKey(14, True, b"last-resort join key", 0)),
    ]
    cases = [_case(f"client {name}", None, {"operation": "client_frame",
                                            "frame": f.encode(fr).hex()}) for name, fr in client]
    cases += [_case(f"hub {name}", None, {"operation": "hub_frame",
                                          "frame": f.encode(fr).hex()}) for name, fr in hub]
    put = f.encode(f.Put(5, mbx, bytes(16), b"x"))
    bad_client = [
        ("empty frame", b"", "DecodeError"),
        ("unknown type", b"\x7f" + put[1:], "DecodeError"),
        ("PUT with empty blob", put[:-1], "DecodeError"),
        ("trailing byte", f.encode(f.Ack(9, mbx, inc, 1)) + b"\x00", "DecodeError"),
        ("pinned flag 2", f.encode(f.Create(2, mbx, f.Kind.GROUP, False))[:-1] + b"\x02",
         "DecodeError"),
        ("kind 4", f.encode(f.Create(2, mbx, f.Kind.GROUP, False))[:-2] + b"\x04\x00",
         "DecodeError"),
        ("join key publish without a key", f.encode(f.PublishJoinKeys(15, mbx, other, None, ())),
         "DecodeError"),
        ("fetch limit 0", f.encode(f.Fetch(6, mbx, inc, 0, 1))[:-2] + b"\x00\x00", "DecodeError"),
        ("blob over MAX_BLOB_SIZE", put[:-1] + bytes(f.MAX_BLOB_SIZE + 1), "LimitExceeded"),
    ]
    cases += [_case(f"client rejects {name}", None,
                    {"operation": "client_frame", "frame": raw.hex()}, err)
              for name, raw, err in bad_client]
    batch = f.encode(f.Batch(6, mbx, inc, 43, t, False, False,
                             (f.Entry(42, t, b"a"), f.Entry(43, t, b"b"))))
    flags = 1 + 4 + 32 + f.INCARNATION_LEN + 8 + 8
    bad_hub = [
        ("unknown flag bit", batch[:flags] + b"\x04" + batch[flags + 1:], "DecodeError"),
        ("cursors not increasing", f.encode(f.Batch(6, mbx, inc, 42, t, False, False,
                                                    (f.Entry(42, t, b"a"),
                                                     f.Entry(42, t, b"b")))),
         "DecodeError"),
        ("entry times decreasing", f.encode(f.Batch(6, mbx, inc, 43, t, False, False,
                                                    (f.Entry(42, t, b"a"),
                                                     f.Entry(43, t - 1, b"b")))),
         "DecodeError"),
        ("next cursor not the last entry", f.encode(f.Push(mbx, inc, 50, t, False,
                                                           (f.Entry(44, t, b"x"),))),
         "DecodeError"),
        ("unknown error code", f.encode(f.Error(1, f.ErrorCode.REFUSED, ""))[:5] + b"\x63",
         "DecodeError"),
    ]
    cases += [_case(f"hub rejects {name}", None,
                    {"operation": "hub_frame", "frame": raw.hex()}, err)
              for name, raw, err in bad_hub]
    return cases


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for suite in CLASSICAL_SUITES:
        rng = DeterministicRandom(b"hub vectors " + suite.name.encode())
        seed, nonce = rng(32), rng(32)
        identity = IdentityKeyPair.generate(suite, DeterministicRandom(rng(32))).public.to_bytes()
        cases.append(_case("access key, mailbox id, challenge signature, directory id", suite,
                           {"operation": "access", "access_seed": seed.hex(),
                            "nonce": nonce.hex(), "identity": identity.hex()}))
        key = AccessKey.from_seed(suite, seed)
        proof = key.prove(nonce)
        base = {"operation": "verify_proof", "mailbox_id": key.mailbox_id.hex(),
                "suite_id": suite.suite_id, "public_key": key.public_key.hex(),
                "signature": proof.signature.hex(), "nonce": nonce.hex()}
        cases.append(_case("a valid proof", suite, base))
        cases.append(_case("a proof for another connection's challenge", suite,
                           {**base, "nonce": rng(32).hex()}, "InvalidSignature"))
        other = AccessKey.from_seed(suite, rng(32))
        cases.append(_case("a key that does not hash to the mailbox id", suite,
                           {**base, "public_key": other.public_key.hex(),
                            "signature": other.prove(nonce).signature.hex()},
                           "InvalidSignature"))
        cases.append(_case("an unknown suite id", suite, {**base, "suite_id": 0x7777},
                           "UnsupportedError"))
    cases += _frame_cases(DeterministicRandom(b"hub frame vectors"))
    return {FILE: document(KIND, "Hub access proofs, ids and wire frames (spec 10)", cases)}


register(lambda: {KIND: verify})
register_generator(generate)
