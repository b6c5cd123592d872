"""Vectors for group messages (vectors/group.json, kind "group-message").

Each case names an `operation`:
- "sender-chain": input a chain root; outputs message key, nonce base and next chain key for
  the first generations.
- "messages-v2": a small group's epoch (spec 09 §9.11: the key schedule's member_base, group
  context and roster size; each member's record signing key from a seed) and a sequence of
  messages (sender, body, reuse guard); outputs every blob and content digest. The verifier
  re-seals each message and checks the blob byte for byte, then opens it as another member
  would (sender data, chain, signature) and checks the body.
- "open-v2": one blob with an error expected (tampered ciphertext, forged signature).
(The "-v2" names are the wire version's; version 1's "messages" and "open" are withdrawn.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from triple_ratchet.errors import UnsupportedError
from triple_ratchet.group.key_schedule import derive_epoch_v2
from triple_ratchet.group.message import (
    CONTENT_APPLICATION,
    VERSION,
    Content,
    GroupMessage,
    open_content,
    open_sender_data,
    seal,
)
from triple_ratchet.group.sender_chain import ReceivingChain, SendingChain
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite
from triple_ratchet.testvectors import (
    CaseResult,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

KIND = "group-message"
FILE = "group.json"
GROUP_ID = bytes.fromhex("67726f75702d766563746f72732d3031")
EPOCH = 3
GENERATIONS = 4


def suite_by_name(name: str) -> Suite:
    for suite in CLASSICAL_SUITES:
        if suite.name == name:
            return suite
    raise UnsupportedError(f"unknown suite {name!r}")


def _h(b: bytes) -> str:
    return b.hex()


def _chain_case(suite: Suite, rng: DeterministicRandom) -> dict[str, Any]:
    root = rng(suite.hash_len)
    chain = SendingChain(root)
    steps = []
    for _ in range(GENERATIONS):
        keys, nxt = chain.step(suite)
        steps.append({"generation": keys.generation, "message_key": _h(keys.key),
                      "nonce_base": _h(keys.nonce_base), "next_chain_key": _h(nxt.chain_key)})
        chain = nxt
    return {"description": "sender chain: first generations", "suite": suite.name,
            "inputs": {"operation": "sender-chain", "chain_root": _h(root)},
            "outputs": {"steps": steps}}


def _epoch(suite: Suite, inputs: dict[str, Any]) -> tuple[Any, list[Any]]:
    secrets = derive_epoch_v2(suite, bytes.fromhex(inputs["member_base"]),
                              bytes.fromhex(inputs["group_context"]),
                              len(inputs["signing_seeds"]))
    keys = [suite.signing_from_seed(bytes.fromhex(s)) for s in inputs["signing_seeds"]]
    return secrets, keys


def _seal_all(suite: Suite, inputs: dict[str, Any]) -> list[dict[str, str]]:
    secrets, keys = _epoch(suite, inputs)
    version = VERSION
    chains = [SendingChain(r) for r in secrets.chain_roots]
    last_seen = b""
    out = []
    for m in inputs["messages"]:
        sender = m["sender"]
        mk, chains[sender] = chains[sender].step(suite)
        content = Content(suite.suite_id, GROUP_ID, EPOCH, sender, mk.generation,
                          CONTENT_APPLICATION, last_seen, bytes.fromhex(m["body"]), version)
        blob = seal(suite, content, keys[sender], mk, bytes.fromhex(m["reuse_guard"]),
                    secrets.sender_data_secret, secrets.mailbox.mailbox_id)
        last_seen = content.digest(suite)
        out.append({"blob": _h(blob), "digest": _h(last_seen)})
    return out


def _open(suite: Suite, inputs: dict[str, Any], blob: bytes) -> bytes:
    """Open `blob` as a fresh receiver of the epoch would."""
    secrets, keys = _epoch(suite, inputs)
    msg = GroupMessage.from_bytes(suite, blob, version=VERSION)
    expect_equal("mailbox id", msg.mailbox_id.hex(), secrets.mailbox.mailbox_id.hex())
    sd = open_sender_data(suite, msg, secrets.sender_data_secret)
    mk, _ = ReceivingChain(secrets.chain_roots[sd.sender]).keys_for(suite, sd.generation)
    content = open_content(suite, msg, sd, mk, GROUP_ID, EPOCH, keys[sd.sender].public_key())
    return content.body


def _messages_v2_case(suite: Suite, rng: DeterministicRandom) -> dict[str, Any]:
    n = 3
    inputs: dict[str, Any] = {
        "operation": "messages-v2", "group_id": _h(GROUP_ID), "epoch": EPOCH,
        "member_base": _h(rng(suite.hash_len)), "group_context": _h(rng(suite.hash_len)),
        "signing_seeds": [_h(rng(32)) for _ in range(n)],
        "messages": [{"sender": s, "body": _h(f"v2 message {i} from {s}".encode()),
                      "reuse_guard": _h(rng(8))} for i, s in enumerate([2, 0, 2, 1, 0])],
    }
    return {"description": "a 3-member version-2 epoch: derived keys and five signed, encrypted "
                           "messages of wire version 2",
            "suite": suite.name, "inputs": inputs, "outputs": {"messages": _seal_all(suite,
                                                                                     inputs)}}


def _negative_cases(suite: Suite, good: dict[str, Any]) -> list[dict[str, Any]]:
    blob = bytes.fromhex(good["outputs"]["messages"][0]["blob"])
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    inputs = dict(good["inputs"])
    # The first message's sender's neighbour signs it with its own record key.
    sender = inputs["messages"][0]["sender"]
    seeds = list(inputs["signing_seeds"])
    seeds[sender] = seeds[(sender + 1) % len(seeds)]
    forged_inputs = dict(inputs, signing_seeds=seeds)
    forged = bytes.fromhex(_seal_all(suite, forged_inputs)[0]["blob"])
    open_op = "open-v2"
    return [
        {"description": "tampered ciphertext", "suite": suite.name,
         "inputs": dict(inputs, operation=open_op, blob=_h(bytes(tampered))),
         "error": {"type": "AuthenticationError"}},
        {"description": "message signed by another member", "suite": suite.name,
         "inputs": dict(inputs, operation=open_op, blob=_h(forged)),
         "error": {"type": "InvalidSignature"}},
    ]


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for suite in CLASSICAL_SUITES:
        rng = DeterministicRandom(b"group vectors " + suite.name.encode())
        cases.append(_chain_case(suite, rng))
    for suite in CLASSICAL_SUITES:
        rng = DeterministicRandom(b"group vectors v2 " + suite.name.encode())
        good = _messages_v2_case(suite, rng)
        cases.append(good)
        cases += _negative_cases(suite, good)
    return {FILE: document(KIND, "Group messages: sender chains, sealed messages, rejections",
                           cases)}


def _check(case: dict[str, Any]) -> None:
    suite = suite_by_name(case["suite"])
    inputs = case["inputs"]
    op = inputs["operation"]
    if op == "sender-chain":
        chain = SendingChain(bytes.fromhex(inputs["chain_root"]))
        for want in case["outputs"]["steps"]:
            keys, chain = chain.step(suite)
            expect_equal("message key", _h(keys.key), want["message_key"])
            expect_equal("nonce base", _h(keys.nonce_base), want["nonce_base"])
            expect_equal("next chain key", _h(chain.chain_key), want["next_chain_key"])
    elif op == "messages-v2":
        got = _seal_all(suite, inputs)
        for i, (g, want) in enumerate(zip(got, case["outputs"]["messages"], strict=True)):
            expect_equal(f"message {i} blob", g["blob"], want["blob"])
            expect_equal(f"message {i} digest", g["digest"], want["digest"])
            body = _open(suite, inputs, bytes.fromhex(want["blob"]))
            expect_equal(f"message {i} body", _h(body), inputs["messages"][i]["body"])
    elif op == "open-v2":
        _open(suite, inputs, bytes.fromhex(inputs["blob"]))
    else:
        raise AssertionError(f"unknown operation {op!r}")


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


register(lambda: {KIND: verify})
register_generator(generate)
