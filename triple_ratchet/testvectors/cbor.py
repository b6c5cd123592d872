"""Vectors for the strict canonical CBOR layer (vectors/cbor.json, kind "cbor"; spec 01).

A valid case has inputs {"value": typed} and outputs {"cbor": hex}: encoding the value must give
exactly those bytes and decoding them must give the value back. A negative case has inputs
{"cbor": hex} and optionally {"limits": {"max_size"|"max_items"|"max_depth": n}}, and names the
error (DecodeError or LimitExceeded) a strict decoder must raise.

Values are "typed JSON", so that byte strings, text and 64-bit integers survive JSON unchanged:
{"int": "<decimal>"}, {"bytes": "<hex>"}, {"text": "..."}, {"bool": true|false}, {"null": null},
{"array": [typed, ...]}, {"map": [[typed key, typed value], ...]}. Map pairs are listed in the
order the case's author wrote them, not necessarily the canonical order: an encoder must sort.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from triple_ratchet import cbor
from triple_ratchet.testvectors import (
    CaseResult,
    document,
    expect_equal,
    register,
    register_generator,
    run_cases,
)

KIND = "cbor"
FILE = "cbor.json"


def from_typed(typed: Any) -> cbor.CborValue:
    """The Python value a typed-JSON description stands for."""
    if not isinstance(typed, dict) or len(typed) != 1:
        raise AssertionError(f"malformed typed value {typed!r}")
    ((tag, body),) = typed.items()
    if tag == "int":
        return int(body)
    if tag == "bytes":
        return bytes.fromhex(body)
    if tag == "text":
        return str(body)
    if tag == "bool":
        return bool(body)
    if tag == "null":
        return None
    if tag == "array":
        return [from_typed(item) for item in body]
    if tag == "map":
        result: dict[int | str, cbor.CborValue] = {}
        for key_typed, value_typed in body:
            key = from_typed(key_typed)
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise AssertionError(f"map key {key_typed!r} is not an int or text")
            result[key] = from_typed(value_typed)
        return result
    raise AssertionError(f"unknown typed value tag {tag!r}")


def to_typed(value: cbor.CborValue) -> Any:
    """The typed-JSON description of a decoded value (maps in canonical key order)."""
    if value is None:
        return {"null": None}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, list):
        return {"array": [to_typed(item) for item in value]}
    pairs = sorted(value.items(), key=lambda pair: cbor.encode_key(pair[0]))
    return {"map": [[to_typed(k), to_typed(v)] for k, v in pairs]}


def _check(case: dict[str, Any]) -> None:
    inputs = case["inputs"]
    if "value" in inputs:
        value = from_typed(inputs["value"])
        want = case["outputs"]["cbor"]
        expect_equal("encode", cbor.encode(value).hex(), want)
        expect_equal("decode", to_typed(cbor.decode(bytes.fromhex(want))), to_typed(value))
        return
    limits = {k: int(v) for k, v in inputs.get("limits", {}).items()}
    decoded = cbor.decode(bytes.fromhex(inputs["cbor"]), **limits)
    # Reaching here means the input was accepted; a negative case then fails in run_cases.
    expect_equal("re-encode", cbor.encode(decoded).hex(), inputs["cbor"])


def verify(doc: dict[str, Any]) -> Iterator[CaseResult]:
    return run_cases(doc, _check)


def _i(n: int) -> dict[str, str]:
    return {"int": str(n)}


def _b(hex_bytes: str) -> dict[str, str]:
    return {"bytes": hex_bytes}


def _t(text: str) -> dict[str, str]:
    return {"text": text}


def _valid_cases() -> list[tuple[str, Any]]:
    null = {"null": None}
    return [
        ("zero", _i(0)),
        ("largest one-byte integer", _i(23)),
        ("smallest integer with a 1-byte argument", _i(24)),
        ("largest 1-byte argument", _i(255)),
        ("smallest 2-byte argument", _i(256)),
        ("smallest 4-byte argument", _i(65536)),
        ("smallest 8-byte argument", _i(2**32)),
        ("largest unsigned integer", _i(2**64 - 1)),
        ("minus one", _i(-1)),
        ("-24, the last one-byte negative integer", _i(-24)),
        ("-25", _i(-25)),
        ("smallest negative integer", _i(-(2**64))),
        ("false", {"bool": False}),
        ("true", {"bool": True}),
        ("null", null),
        ("empty byte string", _b("")),
        ("23-byte string (length in the initial byte)", _b("ab" * 23)),
        ("24-byte string (1-byte length)", _b("cd" * 24)),
        ("256-byte string (2-byte length)", _b("ef" * 256)),
        ("empty text", _t("")),
        ("non-ASCII text", _t("h\u00e9llo \u6c34 \U00010151")),
        ("empty array", {"array": []}),
        (
            "message-shaped array",
            {"array": [_i(16), _b("00" * 32), _i(7), _b(""), {"bool": True}, null]},
        ),
        ("nested arrays", {"array": [{"array": [{"array": []}]}, {"array": [_i(1)]}]}),
        ("empty map", {"map": []}),
        (
            "map keys sort bytewise by encoding, not length-first (24 before -1, ints before "
            "text, 'b' before 'aa')",
            {
                "map": [
                    [_t("aa"), _i(0)],
                    [_t("b"), _i(1)],
                    [_i(-1), _i(2)],
                    [_i(24), _i(3)],
                    [_i(1), _i(4)],
                ]
            },
        ),
        (
            "nested map",
            {"map": [[_t("z"), {"map": [[_i(2), null], [_i(1), {"array": []}]]}], [_i(0), null]]},
        ),
    ]


def _invalid_cases() -> list[tuple[str, str, str, dict[str, int]]]:
    """(description, hex, error, limits)."""
    bomb = (
        "9828"
        + "d81c820000"
        + "".join(
            "d81c82" + ("d81d" + (f"{k - 1:02x}" if k - 1 < 24 else f"18{k - 1:02x}")) * 2
            for k in range(1, 40)
        )
    )
    dec, lim = "DecodeError", "LimitExceeded"
    return [
        ("empty input", "", dec, {}),
        ("trailing byte", "0000", dec, {}),
        ("trailing byte after an array", "820102f6", dec, {}),
        ("non-shortest integer (24 with AI 24 is fine, 0 is not)", "1800", dec, {}),
        ("non-shortest 2-byte argument", "1900ff", dec, {}),
        ("non-shortest 4-byte argument", "1a0000ffff", dec, {}),
        ("non-shortest 8-byte argument", "1b00000000ffffffff", dec, {}),
        ("non-shortest negative integer", "3817", dec, {}),
        ("non-shortest byte-string length", "5801ff", dec, {}),
        ("non-shortest array length", "980100", dec, {}),
        ("non-shortest map length", "b800", dec, {}),
        ("truncated argument", "19ff", dec, {}),
        ("truncated byte string", "4301", dec, {}),
        ("truncated array", "830102", dec, {}),
        ("byte string claiming 2^63 bytes", "5b8000000000000000", dec, {}),
        ("array claiming 2^63 items", "9b800000000000000000", dec, {}),
        ("map claiming 2^63 pairs", "bb80000000000000000000", dec, {}),
        ("map claiming more pairs than half the remaining bytes", "a4010203040506", dec, {}),
        ("float16", "f93c00", dec, {}),
        ("float32", "fa47c35000", dec, {}),
        ("float64", "fb3ff199999999999a", dec, {}),
        ("NaN", "f97e00", dec, {}),
        ("undefined", "f7", dec, {}),
        ("simple value 16", "f0", dec, {}),
        ("simple value 255 (two bytes)", "f8ff", dec, {}),
        ("tag 0 (date string)", "c074323031332d30332d32315432303a30343a30305a", dec, {}),
        ("tag 2 (bignum)", "c249010000000000000000", dec, {}),
        ("tag 55799 (self-described CBOR)", "d9d9f700", dec, {}),
        ("shared-reference bomb (tags 28/29), 2^40 leaves if expanded", bomb, dec, {}),
        ("indefinite-length byte string", "5f42010243030405ff", dec, {}),
        ("indefinite-length text", "7f657374726561646d696e67ff", dec, {}),
        ("indefinite-length array", "9f0102ff", dec, {}),
        ("indefinite-length map", "bf6161f5ff", dec, {}),
        ("lone break code", "ff", dec, {}),
        ("break code inside a definite array", "81ff", dec, {}),
        ("reserved additional information 28", "1c", dec, {}),
        ("reserved additional information 29 on a byte string", "5d", dec, {}),
        ("reserved additional information 30 on a map", "be", dec, {}),
        ("additional information 31 on an unsigned integer", "1f", dec, {}),
        ("invalid UTF-8 (bad continuation byte)", "62c328", dec, {}),
        ("invalid UTF-8 (overlong NUL)", "62c080", dec, {}),
        ("invalid UTF-8 (UTF-16 surrogate)", "63eda080", dec, {}),
        ("invalid UTF-8 (above U+10FFFF)", "64f4908080", dec, {}),
        ("duplicate map key", "a201000100", dec, {}),
        ("duplicate text map key", "a2616100616101", dec, {}),
        ("map keys out of order", "a202000100", dec, {}),
        ("map keys in RFC 7049 length-first order", "a22000181800", dec, {}),
        ("text key before int key", "a261610001 00".replace(" ", ""), dec, {}),
        ("byte-string map key", "a14000", dec, {}),
        ("array map key", "a18000", dec, {}),
        ("boolean map key", "a1f500", dec, {}),
        ("null map key", "a1f600", dec, {}),
        ("33 nested arrays (default max_depth 32)", "81" * 33 + "00", lim, {}),
        ("nesting of 3 with max_depth 2", "81818100", lim, {"max_depth": 2}),
        ("nested maps deeper than max_depth", "a100a100a10000", lim, {"max_depth": 2}),
        ("10 items with max_items 9 (the array counts)", "89" + "00" * 9, lim, {"max_items": 9}),
        ("map keys count as items", "a201000200", lim, {"max_items": 4}),
        ("input longer than max_size", "4401020304", lim, {"max_size": 4}),
    ]


def generate() -> dict[str, dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for description, typed in _valid_cases():
        value = from_typed(typed)
        cases.append(
            {
                "description": description,
                "suite": None,
                "inputs": {"value": typed},
                "outputs": {"cbor": cbor.encode(value).hex()},
            }
        )
    for description, hex_data, error, limits in _invalid_cases():
        inputs: dict[str, Any] = {"cbor": hex_data}
        if limits:
            inputs["limits"] = limits
        cases.append(
            {
                "description": description,
                "suite": None,
                "inputs": inputs,
                "error": {"type": error},
            }
        )
    return {
        FILE: document(KIND, "Strict canonical CBOR (spec 01): encodings and rejections", cases)
    }


register(lambda: {KIND: verify})
register_generator(generate)
