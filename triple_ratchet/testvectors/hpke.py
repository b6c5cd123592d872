"""HPKE and sealing vectors: RFC 9180's own JSON file, and ours (vectors/sealing.json).

**RFC 9180** (cfrg/draft-irtf-cfrg-hpke `test-vectors.json`): a top-level JSON *list* of cases,
each with `mode`, `kem_id`, `kdf_id`, `aead_id`. A base-mode case (mode 0) of a KEM, KDF and AEAD
we implement is checked field by field: DeriveKeyPair of `ikmE` and `ikmR` (`skEm`, `pkEm`,
`skRm`, `pkRm`), `enc` and `shared_secret` from Encap with that ephemeral, Decap, the key schedule
(`key_schedule_context`, `secret`, `key`, `base_nonce`, `exporter_secret`), every encryption in
sequence order (its `nonce`, `ct` from sealing `pt` with `aad`, and `pt` from opening `ct`) and
every export. Any difference fails the case. Other cases are skipped with the parameter that
excludes them (mode, KEM, KDF, AEAD): the file has no verdicts, and none is consulted.

**Ours** (kind "sealing", spec 02 "HPKE" and 11.v2.12): operation "hpke" (single-shot seal and
open through a protocol suite's HPKE suite, fixed `ikm_e`) and "bundle" (R2 sealings of a small
roster, their Merkle leaves, root and paths, each opened by its recipient), with negative cases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from triple_ratchet.errors import TripleRatchetError
from triple_ratchet.group import sealing as sl
from triple_ratchet.random import DeterministicRandom
from triple_ratchet.suites import CLASSICAL_SUITES, Suite, suite_by_name
from triple_ratchet.suites.hpke import AEADS, KDFS, KEMS, DhKem, HpkeSuite, hpke_for_suite
from triple_ratchet.testvectors import (
    CaseResult,
    Verifier,
    case,
    document,
    expect_equal,
    register,
    register_detector,
    register_generator,
    run_cases,
)

_MODES = {0: "base", 1: "psk", 2: "auth", 3: "auth_psk"}
# Names of the RFC's other identifiers, for skip reasons only.
_OTHER_KEMS = {0x0011: "DHKEM(P-384, HKDF-SHA384)", 0x0012: "DHKEM(P-521, HKDF-SHA512)",
               0x0021: "DHKEM(X448, HKDF-SHA512)", 0x0040: "ML-KEM-512",
               0x0042: "ML-KEM-1024", 0x0051: "MLKEM1024-P384"}
# draft-ietf-hpke-hpke's single-stage KDFs.
_OTHER_KDFS = {0x0002: "HKDF-SHA384", 0x0003: "HKDF-SHA512", 0x0010: "SHAKE128",
               0x0011: "SHAKE256", 0x0012: "TurboSHAKE128", 0x0013: "TurboSHAKE256"}
_OTHER_AEADS = {0xFFFF: "export-only"}


# --- RFC 9180 -------------------------------------------------------------------------------------


def _h(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{field} is not a hex string")
    return bytes.fromhex(value)


def _skip_reason(c: dict[str, Any]) -> str | None:
    """Why a case is not run, from its parameters only (never from any expected value)."""
    mode, kem, kdf, aead = (c.get(k) for k in ("mode", "kem_id", "kdf_id", "aead_id"))
    if mode != 0:
        name = _MODES.get(mode, "unknown") if isinstance(mode, int) else "unknown"
        return f"mode {mode!r} ({name}): only base mode (0) is used"
    if kem not in KEMS:
        name = _OTHER_KEMS.get(kem, "unknown") if isinstance(kem, int) else "unknown"
        return f"KEM {_id(kem)} ({name}): not used"
    if kdf not in KDFS:
        name = _OTHER_KDFS.get(kdf, "unknown") if isinstance(kdf, int) else "unknown"
        return f"KDF {_id(kdf)} ({name}): not used"
    if aead not in AEADS:
        name = _OTHER_AEADS.get(aead, "unknown") if isinstance(aead, int) else "unknown"
        return f"AEAD {_id(aead)} ({name}): not implemented"
    return None


def _id(value: object) -> str:
    return f"0x{value:04x}" if isinstance(value, int) else repr(value)


def check_rfc9180_case(c: dict[str, Any]) -> None:
    """Raise AssertionError (or a library error) unless every value of a runnable case is ours."""
    hpke = HpkeSuite(KEMS[c["kem_id"]], KDFS[c["kdf_id"]], AEADS[c["aead_id"]])
    kem = hpke.kem
    info = _h(c["info"], "info")
    # A DHKEM's ephemeral is DeriveKeyPair(ikmE); a post-quantum or hybrid KEM's ikmE is its
    # EncapsDerand randomness (draft-ietf-hpke-pq), with no ephemeral key pair to compare.
    dh = isinstance(kem, DhKem)
    for who in ("E", "R") if dh else ("R",):
        pair = kem.derive_key_pair(_h(c[f"ikm{who}"], f"ikm{who}"))
        expect_equal(f"sk{who}m", pair.private_key.hex(), c[f"sk{who}m"])
        expect_equal(f"pk{who}m", pair.public_key.hex(), c[f"pk{who}m"])
    expect_equal("public key of skRm", kem.public_key_of(_h(c["skRm"], "skRm")).hex(), c["pkRm"])
    shared, enc = kem.encap(_h(c["pkRm"], "pkRm"), _h(c["ikmE"], "ikmE"))
    expect_equal("enc", enc.hex(), c["enc"])
    expect_equal("shared_secret", shared.hex(), c["shared_secret"])
    expect_equal("Decap shared_secret", kem.decap(_h(c["enc"], "enc"), _h(c["skRm"], "skRm")).hex(),
                 c["shared_secret"])
    # draft-ietf-hpke-pq's file gives suite_id instead of the intermediate key-schedule values.
    if dh or "key_schedule_context" in c:
        expect_equal("key_schedule_context", hpke.key_schedule_context(info).hex(),
                     c["key_schedule_context"])
        expect_equal("secret", hpke.schedule_secret(shared).hex(), c["secret"])
    if not dh or "suite_id" in c:
        expect_equal("suite_id", hpke.suite_id.hex(), c["suite_id"])
    sender = hpke.key_schedule(shared, info)
    expect_equal("key", sender.key.hex(), c["key"])
    expect_equal("base_nonce", sender.base_nonce.hex(), c["base_nonce"])
    expect_equal("exporter_secret", sender.exporter_secret.hex(), c["exporter_secret"])
    recipient = hpke.setup_recipient(_h(c["enc"], "enc"), _h(c["skRm"], "skRm"), info)
    for seq, e in enumerate(c["encryptions"]):
        aad, pt, ct = _h(e["aad"], "aad"), _h(e["pt"], "pt"), _h(e["ct"], "ct")
        expect_equal(f"encryption {seq} nonce", sender.nonce(seq).hex(), e["nonce"])
        expect_equal(f"encryption {seq} ct", sender.seal(aad, pt).hex(), e["ct"])
        expect_equal(f"encryption {seq} pt", recipient.open(aad, ct).hex(), e["pt"])
    for n, x in enumerate(c["exports"]):
        length = x["L"]
        if type(length) is not int:
            raise ValueError(f"export {n}: L is not an integer")
        got = recipient.export(_h(x["exporter_context"], "exporter_context"), length)
        expect_equal(f"export {n}", got.hex(), x["exported_value"])


def verify_rfc9180(doc: Any) -> Iterator[CaseResult]:
    for index, c in enumerate(doc):
        if not isinstance(c, dict):
            yield CaseResult(f"#{index}", "failed", "case is not a JSON object")
            continue
        name = (f"#{index} mode {c.get('mode')} KEM {_id(c.get('kem_id'))} "
                f"KDF {_id(c.get('kdf_id'))} AEAD {_id(c.get('aead_id'))}")
        reason = _skip_reason(c)
        if reason is not None:
            yield CaseResult(name, "skipped", reason)
            continue
        try:
            check_rfc9180_case(c)
        except AssertionError as exc:
            yield CaseResult(name, "failed", f"mismatch: {exc}")
        except TripleRatchetError as exc:
            yield CaseResult(name, "failed", f"refused with {type(exc).__name__}: {exc}")
        except Exception as exc:  # a malformed case fails, never passes
            yield CaseResult(name, "failed", f"crashed with {type(exc).__name__}: {exc}")
        else:
            yield CaseResult(name, "passed")


def detect(doc: Any) -> Verifier | None:
    if (isinstance(doc, list) and doc and isinstance(doc[0], dict)
            and {"mode", "kem_id", "kdf_id", "aead_id"} <= doc[0].keys()):
        return verify_rfc9180
    return None


# --- Ours: vectors/sealing.json -------------------------------------------------------------------

KIND = "sealing"
FILE = "sealing.json"


def _hpke_outputs(hpke: HpkeSuite, inputs: dict[str, Any]) -> dict[str, Any]:
    pk_r = hpke.kem.derive_key_pair(bytes.fromhex(inputs["ikm_r"]))
    info, aad = bytes.fromhex(inputs["info"]), bytes.fromhex(inputs["aad"])
    pt = bytes.fromhex(inputs["plaintext"])
    enc, ct = hpke.seal(bytes.fromhex(inputs.get("public_key", pk_r.public_key.hex())), info, aad,
                        pt, bytes.fromhex(inputs["ikm_e"]))
    opened = hpke.open(pk_r.private_key, enc, info, aad, ct)
    expect_equal("opened plaintext", opened, pt)
    return {"private_key": pk_r.private_key.hex(), "public_key": pk_r.public_key.hex(),
            "enc": enc.hex(), "ct": ct.hex()}


def _context(suite: Suite, inputs: dict[str, Any]) -> sl.SealingContext:
    return sl.SealingContext(suite, bytes.fromhex(inputs["group_id"]), inputs["epoch"],
                             bytes.fromhex(inputs["run_session_id"]),
                             bytes.fromhex(inputs["roster_hash"]))


def _bundle_outputs(suite: Suite, inputs: dict[str, Any]) -> dict[str, Any]:
    context = _context(suite, inputs)
    hpke = context.hpke
    commit_secret = bytes.fromhex(inputs["commit_secret"])
    members = inputs["recipients"]
    pairs = [hpke.kem.derive_key_pair(bytes.fromhex(m["ikm_r"])) for m in members]
    recipients = [sl.Recipient(m["roster_index"], bytes.fromhex(m["identity"]), p.public_key,
                               bytes.fromhex(m["plaintext"]))
                  for m, p in zip(members, pairs, strict=True)]
    secret = sl.seal_secret(suite, commit_secret, context.run_session_id)
    bundle = sl.seal_bundle(context, commit_secret, recipients)
    leaf_hashes = sl.leaves(suite, recipients, bundle.sealings)
    paths = [sl.merkle_path(suite, leaf_hashes, i) for i in range(len(leaf_hashes))]
    for i, (r, pair, s) in enumerate(zip(recipients, pairs, bundle.sealings, strict=True)):
        expect_equal(f"recipient {i} opens", sl.open_sealing(context, r.identity,
                                                             pair.private_key, s), r.plaintext)
        sl.verify_merkle_path(suite, bundle.root, len(leaf_hashes), i, leaf_hashes[i], paths[i])
    return {
        "seal_secret": secret.hex(),
        "sealings": [
            {"public_key": r.public_key.hex(), "info": context.info(r.identity).hex(),
             "ikm_e": sl.ephemeral_ikm(context, secret, r).hex(), "enc": s.enc.hex(),
             "ct": s.ct.hex(), "leaf": leaf.hex(), "path": [p.hex() for p in path]}
            for r, s, leaf, path in zip(recipients, bundle.sealings, leaf_hashes, paths,
                                        strict=True)
        ],
        "bundle_root": bundle.root.hex(),
    }


def _open_case(suite: Suite, inputs: dict[str, Any]) -> dict[str, Any]:
    hpke = hpke_for_suite(suite)
    pair = hpke.kem.derive_key_pair(bytes.fromhex(inputs["ikm_r"]))
    pt = hpke.open(pair.private_key, bytes.fromhex(inputs["enc"]), bytes.fromhex(inputs["info"]),
                   bytes.fromhex(inputs["aad"]), bytes.fromhex(inputs["ct"]))
    return {"plaintext": pt.hex()}


def _path_case(suite: Suite, inputs: dict[str, Any]) -> dict[str, Any]:
    sl.verify_merkle_path(suite, bytes.fromhex(inputs["bundle_root"]), inputs["size"],
                          inputs["index"], bytes.fromhex(inputs["leaf"]),
                          [bytes.fromhex(p) for p in inputs["path"]])
    return {"verified": True}


_OPERATIONS: dict[str, Callable[[Suite, dict[str, Any]], dict[str, Any]]] = {
    "hpke": lambda suite, inputs: _hpke_outputs(hpke_for_suite(suite), inputs),
    "bundle": _bundle_outputs,
    "hpke_open": _open_case,
    "merkle_path": _path_case,
}


def _check(c: dict[str, Any]) -> None:
    suite = suite_by_name(c["suite"])
    inputs = c["inputs"]
    operation = _OPERATIONS.get(inputs["operation"])
    if operation is None:
        raise AssertionError(f"unknown operation {inputs['operation']!r}")
    got = operation(suite, inputs)
    if "outputs" in c:
        expect_equal("output names", sorted(got), sorted(c["outputs"]))
        for key, want in c["outputs"].items():
            expect_equal(key, got[key], want)


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def _flip(hex_value: str, at: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_value))
    raw[at] ^= 0x01
    return raw.hex()


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for suite in CLASSICAL_SUITES:
        rng = DeterministicRandom(b"sealing vectors " + suite.name.encode())
        hpke = hpke_for_suite(suite)
        n_ikm = hpke.kem.n_ikm
        # Off the curve (P-256) or of small order (X25519): refused by the key decoders.
        bad_key = "04" + "00" * 64 if suite.dh_public_len == 65 else "00" * 32
        for description, info, aad, pt in (
            ("single-shot, empty info and aad", b"", b"", b"sealed secret"),
            ("single-shot with info and aad", rng(40), rng(16), rng(suite.hash_len)),
        ):
            inputs = {"operation": "hpke", "ikm_r": rng(n_ikm).hex(), "ikm_e": rng(n_ikm).hex(),
                      "info": info.hex(), "aad": aad.hex(), "plaintext": pt.hex()}
            outputs = _hpke_outputs(hpke, inputs)
            cases.append(case(f"HPKE {hpke.name}: {description}", suite.name, inputs, outputs))
            opened = {"operation": "hpke_open", "ikm_r": inputs["ikm_r"], "enc": outputs["enc"],
                      "info": inputs["info"], "aad": inputs["aad"], "ct": outputs["ct"]}
            for what, changed, error in (
                ("ct", {"ct": _flip(outputs["ct"], 3)}, "AuthenticationError"),
                ("aad", {"aad": (aad + b"!").hex()}, "AuthenticationError"),
                ("info", {"info": (info + b"!").hex()}, "AuthenticationError"),
                ("enc (another valid key)", {"enc": hpke.kem.derive_key_pair(
                    rng(n_ikm)).public_key.hex()}, "AuthenticationError"),
                ("enc (not a valid key)", {"enc": bad_key}, "InvalidKey"),
                ("enc (truncated)", {"enc": outputs["enc"][:-2]}, "InvalidKey"),
            ):
                cases.append(case(f"HPKE {hpke.name}: {description}, altered {what}",
                                  suite.name, {**opened, **changed}, error=error))
        cases.append(case(f"HPKE {hpke.name}: seal to an invalid public key", suite.name,
                          {"operation": "hpke", "ikm_r": rng(n_ikm).hex(),
                           "ikm_e": rng(n_ikm).hex(), "info": "", "aad": "", "plaintext": "00",
                           "public_key": bad_key}, error="InvalidKey"))
        for size in (0, 1, 3):
            commit_secret = rng(suite.hash_len)
            member_base = rng(suite.hash_len)
            bundle_inputs: dict[str, Any] = {
                "operation": "bundle", "group_id": rng(16).hex(), "epoch": 7,
                "run_session_id": rng(suite.hash_len).hex(),
                "roster_hash": rng(suite.hash_len).hex(),
                "commit_secret": commit_secret.hex(),
                # roster indices skip the committee (0 and 2 here); the last recipient is a
                # joiner, sealed member_base
                "recipients": [
                    {"roster_index": index, "identity": rng(33).hex(),
                     "ikm_r": rng(n_ikm).hex(),
                     "plaintext": (member_base if p == size - 1 else commit_secret).hex()}
                    for p, index in enumerate((1, 3, 4)[:size])
                ],
            }
            outputs = _bundle_outputs(suite, bundle_inputs)
            cases.append(case(f"R2 bundle of {size} sealing(s)", suite.name, bundle_inputs,
                              outputs))
            if size == 3:
                last = outputs["sealings"][2]
                good = {"operation": "merkle_path", "bundle_root": outputs["bundle_root"],
                        "size": 3, "index": 2, "leaf": last["leaf"], "path": last["path"]}
                cases.append(case("Merkle path of the promoted last leaf", suite.name, good,
                                  {"verified": True}))
                for what, changed, error in (
                    ("leaf", {"leaf": _flip(last["leaf"])}, "AuthenticationError"),
                    ("path", {"path": [_flip(last["path"][0])]}, "AuthenticationError"),
                    ("root", {"bundle_root": _flip(outputs["bundle_root"])},
                     "AuthenticationError"),
                    ("position", {"index": 1}, "AuthenticationError"),
                    ("size", {"size": 4}, "AuthenticationError"),
                    ("position outside the bundle", {"index": 3}, "DecodeError"),
                ):
                    cases.append(case(f"Merkle path with altered {what}", suite.name,
                                      {**good, **changed}, error=error))
    return {FILE: document(KIND, "HPKE single-shot sealing (spec 02) and R2 bundles with their "
                                 "Merkle root and paths (spec 11 v2)", cases)}


register(lambda: {KIND: verify})
register_generator(generate)
register_detector(detect, top_level=list)
