"""Vectors for the epoch key schedule (vectors/key-schedule.json, kind "key-schedule").

Each case names an `operation`:
- "epoch": inputs init_secret, transcript_hash, payloads (roster size = their number); outputs
  the epoch secret (an intermediate, for debugging other implementations) and every derived value.
- "joiner_confirmation": inputs init_secret, previous_roster, session_id; output confirmation.
- "attempt": input attempt_secret; outputs the attempt mailbox key pair, id and traffic key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from triple_ratchet.group import key_schedule as ks
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import ALL_SUITES, Suite, suite_by_name
from triple_ratchet.testvectors import (
    CaseResult,
    case,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

KIND = "key-schedule"
FILE = "key-schedule.json"


def _mailbox(m: ks.MailboxKeys) -> dict[str, str]:
    return {
        "access_private": m.access_key.to_bytes().hex(),
        "access_public": m.access_public.hex(),
        "mailbox_id": m.mailbox_id.hex(),
    }


def _epoch_outputs(suite: Suite, init: bytes, th: bytes, payloads: list[bytes]) -> dict[str, Any]:
    e = ks.derive_epoch(suite, init, th, payloads)
    return {
        "epoch_secret": ks.extract_epoch_secret(suite, init, th, payloads).hex(),
        "chain_roots": [r.hex() for r in e.chain_roots],
        "sender_data_secret": e.sender_data_secret.hex(),
        "group_mailbox": _mailbox(e.mailbox),
        "epoch_id": e.epoch_id.hex(),
        "init_secret_next": e.init_secret_next.hex(),
    }


def _attempt_outputs(suite: Suite, secret: bytes) -> dict[str, Any]:
    a = ks.derive_attempt(suite, secret)
    return {"attempt_mailbox": _mailbox(a.mailbox), "traffic_key": a.traffic_key.hex()}


def _check(case: dict[str, Any]) -> None:
    suite = suite_by_name(case["suite"])
    inputs = case["inputs"]
    op = inputs["operation"]
    if op == "epoch":
        payloads = [bytes.fromhex(p) for p in inputs["payloads"]]
        expect_equal("roster_size", len(payloads), inputs["roster_size"])
        got = _epoch_outputs(
            suite,
            bytes.fromhex(inputs["init_secret"]),
            bytes.fromhex(inputs["transcript_hash"]),
            payloads,
        )
    elif op == "joiner_confirmation":
        got = {
            "confirmation": ks.joiner_confirmation(
                suite,
                bytes.fromhex(inputs["init_secret"]),
                [bytes.fromhex(r) for r in inputs["previous_roster"]],
                bytes.fromhex(inputs["session_id"]),
            ).hex()
        }
    elif op == "attempt":
        got = _attempt_outputs(suite, bytes.fromhex(inputs["attempt_secret"]))
    else:
        raise AssertionError(f"unknown operation {op!r}")
    if "outputs" in case:
        for key, want in case["outputs"].items():
            expect_equal(key, got.get(key), want)




def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def _case(description: str, suite: Suite, inputs: dict[str, Any],
          outputs: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    return case(description, suite.name, inputs, outputs, error)


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for suite in ALL_SUITES:
        rng = DeterministicRandom(b"key-schedule vectors " + suite.name.encode())
        for description, init, n in (
            ("creation: init_secret(0), all zero, makes epoch 1; one member",
             ks.initial_init_secret(suite), 1),
            ("three members", rng(suite.hash_len), 3),
            ("five members", rng(suite.hash_len), 5),
        ):
            th = rng(ks.TRANSCRIPT_HASH_LEN)
            payloads = [rng(ks.PAYLOAD_LEN) for _ in range(n)]
            inputs = {
                "operation": "epoch",
                "init_secret": init.hex(),
                "transcript_hash": th.hex(),
                "payloads": [p.hex() for p in payloads],
                "roster_size": n,
            }
            cases.append(_case(description, suite, inputs,
                               _epoch_outputs(suite, init, th, payloads)))
        init = rng(suite.hash_len)
        roster = [rng(33), rng(33)]
        session = rng(suite.hash_len)
        cases.append(_case(
            "joiner confirmation over a two-member previous roster", suite,
            {"operation": "joiner_confirmation", "init_secret": init.hex(),
             "previous_roster": [r.hex() for r in roster], "session_id": session.hex()},
            {"confirmation": ks.joiner_confirmation(suite, init, roster, session).hex()},
        ))
        secret = rng(suite.hash_len)
        cases.append(_case(
            "attempt secret derivations", suite,
            {"operation": "attempt", "attempt_secret": secret.hex()},
            _attempt_outputs(suite, secret),
        ))
        # Negative cases: the schedule refuses inputs of the wrong shape.
        good = {
            "operation": "epoch",
            "init_secret": rng(suite.hash_len).hex(),
            "transcript_hash": rng(ks.TRANSCRIPT_HASH_LEN).hex(),
            "payloads": [rng(32).hex(), rng(32).hex()],
            "roster_size": 2,
        }
        cases.append(_case("payload of 31 bytes", suite,
                           {**good, "payloads": [rng(31).hex(), rng(32).hex()]},
                           error="UsageError"))
        cases.append(_case("payload of 33 bytes", suite,
                           {**good, "payloads": [rng(32).hex(), rng(33).hex()]},
                           error="UsageError"))
        cases.append(_case("init_secret one byte short", suite,
                           {**good, "init_secret": rng(suite.hash_len - 1).hex()},
                           error="UsageError"))
        cases.append(_case("transcript hash of 32 bytes", suite,
                           {**good, "transcript_hash": rng(32).hex()}, error="UsageError"))
        cases.append(_case("no payloads at all", suite,
                           {**good, "payloads": [], "roster_size": 0}, error="LimitExceeded"))
        cases.append(_case("attempt secret of the wrong length", suite,
                           {"operation": "attempt", "attempt_secret": rng(16).hex()},
                           error="UsageError"))
    return {FILE: document(KIND, "Epoch key schedule (spec 08): every derived value", cases)}


register(lambda: {KIND: verify})
register_generator(generate)
