"""Strict canonical CBOR (spec/01-encoding.md): RFC 8949 Appendix A, hostile inputs, properties."""

from __future__ import annotations

import ast
import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triple_ratchet import cbor
from triple_ratchet.cbor import (
    CborValue,
    as_bool,
    as_bytes,
    as_int,
    as_list,
    as_map,
    as_str,
    decode,
    encode,
)
from triple_ratchet.errors import DecodeError, LimitExceeded, UsageError

APPENDIX_A = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "vectors-external"
    / "cbor"
    / "appendix_a.json"
)

# Bound for every hostile input: each must be answered well within this.
FAST = 0.5


def _timed_reject(data: bytes, error: type[Exception], **limits: int) -> str:
    """Decode `data`, expect `error` (exactly that class or a subclass) within FAST seconds."""
    start = time.perf_counter()
    with pytest.raises(error) as info:
        decode(data, **limits)
    elapsed = time.perf_counter() - start
    assert elapsed < FAST, f"took {elapsed:.3f} s"
    assert "offset" in str(info.value), "every decode error names where it happened"
    return str(info.value)


def _same(a: object, b: object) -> bool:
    """Structural equality that also compares types (so True != 1 and b"" != "")."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


# --------------------------------------------------------------------------------------------
# RFC 8949 Appendix A


def _expected(example: dict[str, Any]) -> tuple[bool, object]:
    """(known, value) for an Appendix A example, from its JSON value or a simple diagnostic."""
    if "decoded" in example:
        return True, example["decoded"]
    diagnostic = example["diagnostic"]
    match = re.fullmatch(r"h'([0-9a-fA-F]*)'", diagnostic)
    if match:
        return True, bytes.fromhex(match.group(1))
    if re.fullmatch(r"\{[0-9:, ]*\}", diagnostic):
        return True, ast.literal_eval(diagnostic)
    return False, None


def _in_subset(value: object) -> bool:
    if value is None or isinstance(value, bool | bytes | str):
        return True
    if isinstance(value, int):
        return -(1 << 64) <= value < (1 << 64)
    if isinstance(value, list):
        return all(_in_subset(v) for v in value)
    if isinstance(value, dict):
        return all(
            isinstance(k, int | str) and not isinstance(k, bool) and _in_subset(v)
            for k, v in value.items()
        )
    return False  # floats


def _appendix_a() -> list[dict[str, Any]]:
    if not APPENDIX_A.is_file():
        pytest.skip(f"RFC 8949 Appendix A vectors not present at {APPENDIX_A}")
    examples: list[dict[str, Any]] = json.loads(APPENDIX_A.read_text())
    return examples


def test_rfc8949_appendix_a() -> None:
    accepted = rejected = 0
    for example in _appendix_a():
        data = base64.b64decode(example["cbor"])
        assert data.hex() == example["hex"]
        known, value = _expected(example)
        # In our subset: a value of our types, in its canonical (round-trip) encoding. Bignums
        # (tags 2/3) decode to ints beyond 64 bits and so fall outside.
        if known and example["roundtrip"] and _in_subset(value):
            decoded = decode(data)
            assert _same(decoded, value), example["hex"]
            assert encode(decoded) == data, example["hex"]
            accepted += 1
        else:
            with pytest.raises(DecodeError):
                decode(data)
            rejected += 1
    # 16 ints, false/true/null, 2 byte strings, 7 text strings, 4 arrays, 5 maps are ours; the
    # 22 floats, undefined and 3 other simple values, 6 tags, 2 bignums and 11 indefinite-length
    # items are not.
    assert (accepted, rejected) == (37, 45)


# --------------------------------------------------------------------------------------------
# Encoding


def test_encode_known_answers() -> None:
    cases: list[tuple[cbor.CborEncodable, str]] = [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (255, "18ff"),
        (256, "190100"),
        (65535, "19ffff"),
        (65536, "1a00010000"),
        (2**32 - 1, "1affffffff"),
        (2**32, "1b0000000100000000"),
        (2**64 - 1, "1bffffffffffffffff"),
        (-1, "20"),
        (-24, "37"),
        (-25, "3818"),
        (-(2**64), "3bffffffffffffffff"),
        (False, "f4"),
        (True, "f5"),
        (None, "f6"),
        (b"", "40"),
        (b"\x00" * 23, "57" + "00" * 23),
        (b"\x00" * 24, "5818" + "00" * 24),
        (b"\x00" * 256, "590100" + "00" * 256),
        ("", "60"),
        ("ü", "62c3bc"),
        ([], "80"),
        ((1, 2), "820102"),
        ([True, [False]], "82f581f4"),
        ({}, "a0"),
        # RFC 8949 bytewise key order, not RFC 7049 length-first: 24 (0x1818) sorts before
        # -1 (0x20) although its encoding is longer; cbor2's canonical mode gets this wrong.
        ({-1: 0, 24: 0}, "a2181800" + "2000"),
        ({"b": 0, "aa": 0, 1: 0}, "a3" + "0100" + "616200" + "62616100"),
        ({"a": {"c": 1, "b": 2}}, "a16161a2616202616301"),
        # The example of spec/01-encoding.md §1.3.
        ({"b": 0, "aa": 0, 1: 0, -1: 0, 24: 0}, "a50100181800200061620062616100"),
    ]
    for value, expected in cases:
        assert encode(value).hex() == expected, value


def test_encode_accepts_subclasses_and_sequences() -> None:
    import enum

    class Kind(enum.IntEnum):
        HELLO = 3

    assert encode([Kind.HELLO, bytearray(b"ab"), memoryview(b"c")]) == bytes.fromhex(
        "83034261624163"
    )
    keyed: dict[int, str] = {Kind.HELLO: "x"}
    assert encode(keyed) == bytes.fromhex("a1036178")

    class Name(str, enum.Enum):  # noqa: UP042  # str() gives "Name.A": the value must be used
        A = "a"

    class Big(int, enum.Enum):
        B = 300

    mixed: dict[str, int] = {Name.A: Big.B}
    assert encode([Name.A, Big.B, mixed]) == encode(["a", 300, {"a": 300}])


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        float("nan"),
        2**64,
        -(2**64) - 1,
        {1, 2},
        frozenset(),
        object(),
        {b"k": 1},
        {(1,): 1},
        {True: 1},
        {None: 1},
        {1.5: 1},
        "\ud800",
        [1, 2.5],
        {"a": [object()]},
        complex(1, 1),
    ],
)
def test_encode_rejects_unsupported(value: Any) -> None:
    with pytest.raises(UsageError):
        encode(value)


def test_encode_key() -> None:
    for key in (0, 23, 24, -1, -(2**64), 2**64 - 1, "", "a", "x" * 30, "\u6c34"):
        assert cbor.encode_key(key) == encode(key)
    for bad in (True, False, None, b"a", 1.0, (1,), "\udc00", 2**64):
        with pytest.raises(UsageError):
            cbor.encode_key(bad)


def test_encode_rejects_keys_that_encode_alike() -> None:
    class Distinct(int):
        # Identity equality: a dict holds two of these with the same integer value.
        __eq__ = object.__eq__
        __hash__ = object.__hash__

    keys: dict[int, int] = {Distinct(5): 0, Distinct(5): 1}
    assert len(keys) == 2
    with pytest.raises(UsageError, match="same encoding"):
        encode(keys)


def test_encode_rejects_cycles_and_excess_depth() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(UsageError):
        encode(cyclic)
    deep: list[Any] = []
    for _ in range(cbor.MAX_ENCODE_DEPTH + 1):
        deep = [deep]
    with pytest.raises(UsageError):
        encode(deep)


# --------------------------------------------------------------------------------------------
# Decoding: accepted forms and limits


def test_decode_returns_lists_and_dicts() -> None:
    value = decode(bytes.fromhex("82a1616101a0"))
    assert _same(value, [{"a": 1}, {}])
    # A tuple encodes like a list and comes back as one.
    assert _same(decode(encode((1, (2,)))), [1, [2]])


def test_decode_accepts_bytes_like_and_rejects_other_types() -> None:
    assert decode(bytearray(b"\x01")) == 1
    assert decode(memoryview(b"\x41x")) == b"x"
    with pytest.raises(UsageError):
        decode("00")  # type: ignore[arg-type]


def test_decode_limit_parameters_are_checked() -> None:
    with pytest.raises(UsageError):
        decode(b"\x00", max_depth=cbor.MAX_DEPTH_CAP + 1)
    with pytest.raises(UsageError):
        decode(b"\x00", max_items=0)


def test_max_size() -> None:
    data = encode(b"\x00" * 100)
    assert decode(data, max_size=len(data)) == b"\x00" * 100
    message = _timed_reject(data, LimitExceeded, max_size=len(data) - 1)
    assert str(len(data)) in message


def test_max_depth_boundary() -> None:
    def nested(depth: int) -> bytes:
        return b"\x81" * depth + b"\x00"

    decode(nested(cbor.DEFAULT_MAX_DEPTH))
    _timed_reject(nested(cbor.DEFAULT_MAX_DEPTH + 1), LimitExceeded)
    decode(nested(5), max_depth=5)
    _timed_reject(nested(6), LimitExceeded, max_depth=6 - 1)
    # Maps count as nesting too; scalars at the top need no depth.
    decode(b"\xa1\x00" * 3 + b"\x00", max_depth=3)
    _timed_reject(b"\xa1\x00" * 4 + b"\x00", LimitExceeded, max_depth=3)
    assert decode(b"\x00", max_depth=0) == 0
    _timed_reject(b"\x80", LimitExceeded, max_depth=0)
    # The cap itself is usable without exhausting Python's stack.
    decode(nested(cbor.MAX_DEPTH_CAP), max_depth=cbor.MAX_DEPTH_CAP)


def test_max_items_boundary() -> None:
    # [0, 0, ..., 0] with n elements is n + 1 items; map keys count as items.
    data = encode([0] * 9)
    decode(data, max_items=10)
    _timed_reject(data, LimitExceeded, max_items=9)
    data = encode({1: 0, 2: 0})
    decode(data, max_items=5)
    _timed_reject(data, LimitExceeded, max_items=4)
    # Spread over many small containers, the total still counts.
    data = encode([[0, 0]] * 10)
    decode(data, max_items=31)
    _timed_reject(data, LimitExceeded, max_items=30)
    # The default: one array of 100 000 elements is over the limit (the array itself counts).
    big = bytes.fromhex("9a") + (cbor.DEFAULT_MAX_ITEMS).to_bytes(4, "big")
    _timed_reject(big + b"\x00" * cbor.DEFAULT_MAX_ITEMS, LimitExceeded)


# --------------------------------------------------------------------------------------------
# Decoding: hostile and malformed input, each a typed error in bounded time


def test_deep_nesting_bomb() -> None:
    # The 33rd container (depth 33 > 32) is the one reported.
    for data, offset in (
        (b"\x81" * 100_000 + b"\x00", 32),
        (b"\xa1\x00" * 100_000 + b"\x00", 64),
        (b"\x81" * 100_000, 32),  # truncated as well
    ):
        message = _timed_reject(data, LimitExceeded)
        assert f"offset {offset}" in message
        _timed_reject(data, LimitExceeded, max_depth=cbor.MAX_DEPTH_CAP)


@pytest.mark.parametrize("major", [2, 3, 4, 5])
@pytest.mark.parametrize("length", [2**63, 2**64 - 1, 2**32, 2**31, 1000])
def test_huge_declared_length(major: int, length: int) -> None:
    # The shortest head for `length`, so only the length itself is wrong.
    ai, width = (27, 8) if length >= 2**32 else (26, 4) if length >= 2**16 else (25, 2)
    head = bytes(((major << 5) | ai,)) + length.to_bytes(width, "big")
    message = _timed_reject(head + b"\x00" * 8, DecodeError)
    assert "offset 0" in message
    assert "truncated" in message


def test_huge_declared_length_nested() -> None:
    # A claim deep inside a valid prefix reports its own offset.
    data = bytes.fromhex("8301029b") + (2**63).to_bytes(8, "big")
    message = _timed_reject(data, DecodeError)
    assert "offset 3" in message


def _shared_reference_bomb(levels: int) -> bytes:
    """cbor2's value-sharing bomb: level k = 28([29(k-1), 29(k-1)]), so level k is 2^k leaves."""

    def tag(number: int) -> bytes:
        return bytes((0xD8, number))

    def uint(value: int) -> bytes:
        return bytes((value,)) if value < 24 else bytes((0x18, value))

    parts = [tag(28) + b"\x82\x00\x00"]
    for k in range(1, levels):
        ref = tag(29) + uint(k - 1)
        parts.append(tag(28) + b"\x82" + ref + ref)
    return bytes((0x98, levels)) + b"".join(parts)


def test_shared_reference_tag_bomb() -> None:
    bomb = _shared_reference_bomb(40)
    assert len(bomb) < 400
    # The bomb is real: cbor2 accepts it and builds a DAG whose expansion has 2^40 leaves.
    loaded = cbor2.loads(bomb)
    top = loaded[-1]
    assert top[0] is top[1]
    message = _timed_reject(bomb, DecodeError)
    assert "tag" in message
    assert "offset 2" in message


@pytest.mark.parametrize(
    "hex_data",
    [
        "a2010001 00",  # {1: 0, 1: 0}
        "a2616100616101",  # {"a": 0, "a": 1}
        "a3010002000100",  # duplicate that is also out of order
    ],
)
def test_duplicate_map_keys(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data.replace(" ", "")), DecodeError)
    assert "duplicate" in message or "order" in message


def test_duplicate_map_key_message() -> None:
    message = _timed_reject(bytes.fromhex("a201000100"), DecodeError)
    assert "duplicate map key at offset 3" in message


@pytest.mark.parametrize(
    "hex_data",
    [
        "a2020001 00",  # 2 before 1
        "a2200018 1800",  # -1 before 24: RFC 7049 length-first order, not ours
        "a2616200616100",  # "b" before "a"
        "a2616100 0100",  # text before int: 0x61 > 0x01
        "a2626161006162 00",  # "aa" before "b"
    ],
)
def test_non_canonical_key_order(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data.replace(" ", "")), DecodeError)
    assert "canonical order" in message


@pytest.mark.parametrize(
    "hex_data",
    [
        "1800",
        "1817",
        "190000",
        "1900ff",
        "1a0000ffff",
        "1b00000000ffffffff",
        "3800",
        "3900ff",
        "5800",
        "5817" + "00" * 23,
        "590000",
        "7800",
        "9800",
        "b800",
        "9900 00",
        "8118 05",  # nested
        "a1 1801 00",  # as a map key
    ],
)
def test_non_shortest_arguments(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data.replace(" ", "")), DecodeError)
    assert "non-shortest" in message


def test_trailing_bytes() -> None:
    for data in (b"\x00\x00", encode([1, 2]) + b"\x00", b"\x80\xff", encode(b"x") + b"\xf6"):
        message = _timed_reject(data, DecodeError)
        assert "trailing" in message


def _sample_message() -> bytes:
    return encode(
        [
            1,
            -7,
            2**40,
            b"\x01" * 30,
            "héllo",
            {"k": [True, False, None], 3: b""},
            [[], {}],
            2**64 - 1,
            -(2**64),
            b"\xaa" * 300,
        ]
    )


def test_truncation_at_every_offset() -> None:
    data = _sample_message()
    decode(data)
    start = time.perf_counter()
    for cut in range(len(data)):
        with pytest.raises(DecodeError) as info:
            decode(data[:cut])
        assert "offset" in str(info.value)
    assert time.perf_counter() - start < FAST


@pytest.mark.parametrize(
    "hex_data",
    [
        "62c328",  # bad continuation byte
        "62c080",  # overlong NUL
        "63eda080",  # UTF-16 surrogate
        "61ff",
        "61 80",  # lone continuation
        "64f4908080",  # above U+10FFFF
        "62e282",  # truncated sequence inside the declared length
        "81 62c328",  # nested
    ],
)
def test_invalid_utf8(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data.replace(" ", "")), DecodeError)
    assert "UTF-8" in message


@pytest.mark.parametrize("hex_data", ["f93c00", "fa47c35000", "fb3ff199999999999a", "f97e00"])
def test_floats(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data), DecodeError)
    assert "float" in message


@pytest.mark.parametrize("hex_data", ["5fff", "5f4100ff", "7fff", "9fff", "9f00ff", "bfff"])
def test_indefinite_lengths(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data), DecodeError)
    assert "indefinite" in message


@pytest.mark.parametrize("hex_data", ["1f", "3f", "df"])
def test_additional_information_31_on_other_majors(hex_data: str) -> None:
    _timed_reject(bytes.fromhex(hex_data), DecodeError)


def test_break_code() -> None:
    for data in (b"\xff", b"\x81\xff", b"\xa1\x00\xff"):
        message = _timed_reject(data, DecodeError)
        assert "break" in message


@pytest.mark.parametrize("major", range(8))
@pytest.mark.parametrize("ai", [28, 29, 30])
def test_reserved_additional_information(major: int, ai: int) -> None:
    message = _timed_reject(bytes(((major << 5) | ai,)) + b"\x00" * 8, DecodeError)
    # Tags are refused as tags before their argument is looked at.
    assert ("reserved" in message) or (major == 6 and "tag" in message)


@pytest.mark.parametrize("hex_data", ["f0", "f3", "f7", "f820", "f8ff", "f818"])
def test_other_simple_values(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data), DecodeError)
    assert "simple value" in message


@pytest.mark.parametrize(
    "hex_data",
    [
        "c074323031332d30332d32315432303a30343a30305a",
        "c249010000000000000000",
        "d81c00",
        "d9d9f700",
    ],
)
def test_tags(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data), DecodeError)
    assert "tag" in message


@pytest.mark.parametrize(
    "hex_data",
    ["a14000", "a18000", "a1a000", "a1f500", "a1f600", "a1c000 00", "a1f93c00 00"],
)
def test_map_key_types(hex_data: str) -> None:
    message = _timed_reject(bytes.fromhex(hex_data.replace(" ", "")), DecodeError)
    assert "map key" in message


def test_empty_input() -> None:
    message = _timed_reject(b"", DecodeError)
    assert "offset 0" in message


# --------------------------------------------------------------------------------------------
# Strict field readers


def test_as_list() -> None:
    assert as_list([1, 2], "x", length=2) == [1, 2]
    assert as_list([], "x") == []
    bad_values: list[CborValue] = [{}, b"", "ab", None, 1]
    for bad in bad_values:
        with pytest.raises(DecodeError, match="the field"):
            as_list(bad, "the field")
    with pytest.raises(DecodeError, match="the field: expected 3"):
        as_list([1, 2], "the field", length=3)


def test_as_bytes() -> None:
    assert as_bytes(b"abc", "k", length=3) == b"abc"
    assert as_bytes(b"abc", "k", max_length=3) == b"abc"
    bad_values: list[CborValue] = ["abc", [97], None, 0, True]
    for bad in bad_values:
        with pytest.raises(DecodeError, match="the key"):
            as_bytes(bad, "the key")
    with pytest.raises(DecodeError, match="the key: expected 32 bytes"):
        as_bytes(b"abc", "the key", length=32)
    with pytest.raises(DecodeError, match="the key"):
        as_bytes(b"abcd", "the key", max_length=3)


def test_as_int() -> None:
    assert as_int(0, "n") == 0
    assert as_int(2**64 - 1, "n") == 2**64 - 1
    assert as_int(-5, "n", minimum=-10, maximum=10) == -5
    bad_values: list[CborValue] = [True, False, None, b"1", "1", [1]]
    for bad in bad_values:
        with pytest.raises(DecodeError, match="counter"):
            as_int(bad, "counter")
    with pytest.raises(DecodeError, match="counter"):
        as_int(-1, "counter")
    with pytest.raises(DecodeError, match="counter"):
        as_int(11, "counter", maximum=10)
    with pytest.raises(DecodeError, match="counter"):
        as_int(4, "counter", minimum=5)


def test_as_str() -> None:
    assert as_str("héllo", "s", max_length=6) == "héllo"
    assert as_str("", "s", max_length=0) == ""
    with pytest.raises(DecodeError, match="name: 6 UTF-8 bytes"):
        as_str("héllo", "name", max_length=5)
    with pytest.raises(DecodeError, match="name"):
        as_str("x" * 100, "name", max_length=99)
    bad_values: list[CborValue] = [b"x", 1, None, ["x"]]
    for bad in bad_values:
        with pytest.raises(DecodeError, match="name"):
            as_str(bad, "name")


def test_as_bool_and_as_map() -> None:
    assert as_bool(True, "b") is True
    assert as_bool(False, "b") is False
    bad_values: list[CborValue] = [0, 1, None, b""]
    for bad in bad_values:
        with pytest.raises(DecodeError, match="flag"):
            as_bool(bad, "flag")
    assert as_map({"a": 1}, "m") == {"a": 1}
    bad_map_values: list[CborValue] = [[], None, b"", 0]
    for bad_map in bad_map_values:
        with pytest.raises(DecodeError, match="the map"):
            as_map(bad_map, "the map")


# --------------------------------------------------------------------------------------------
# Properties

_INTS = st.integers(min_value=-(2**64), max_value=2**64 - 1)
_SCALARS = st.one_of(_INTS, st.binary(max_size=300), st.text(max_size=40), st.booleans(), st.none())
_KEYS = st.one_of(_INTS, st.text(max_size=10))
_VALUES: st.SearchStrategy[CborValue] = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=8), st.dictionaries(_KEYS, children, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(_VALUES)
def test_round_trip(value: CborValue) -> None:
    data = encode(value)
    decoded = decode(data)
    assert _same(decoded, value)
    assert encode(decoded) == data
    # An independent decoder reads the same value.
    assert _same(cbor2.loads(data), value)


def _shape(value: object) -> tuple[int, int]:
    """(items, depth) of a decoded value, counted as spec/01-encoding.md §1.4 counts them."""
    if isinstance(value, list):
        shapes = [_shape(v) for v in value]
    elif isinstance(value, dict):
        shapes = [_shape(k) for k in value] + [_shape(v) for v in value.values()]
    else:
        return 1, 0
    return 1 + sum(i for i, _ in shapes), 1 + max((d for _, d in shapes), default=0)


def _check_arbitrary(data: bytes, max_items: int = 1000, max_depth: int = 16) -> None:
    try:
        value = decode(data, max_items=max_items, max_depth=max_depth)
    except (DecodeError, LimitExceeded) as exc:
        assert "offset" in str(exc)
        return
    items, depth = _shape(value)
    assert items <= max_items
    assert depth <= max_depth
    # Accepted input is canonical: it re-encodes to exactly the same bytes, and an independent
    # decoder reads the same value from it.
    assert encode(value) == data
    assert _same(cbor2.loads(data), value)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes(data: bytes) -> None:
    _check_arbitrary(data)


def _mutations(data: bytes, draw: Callable[[st.SearchStrategy[int]], int]) -> Iterator[bytes]:
    position = draw(st.integers(min_value=0, max_value=len(data) - 1))
    byte = draw(st.integers(min_value=0, max_value=255))
    yield data[:position] + bytes((byte,)) + data[position + 1 :]
    yield data[:position] + bytes((byte,)) + data[position:]
    yield data[:position] + data[position + 1 :]


@settings(max_examples=300, deadline=None)
@given(_VALUES, st.data())
def test_mutated_valid_encodings(value: CborValue, data: st.DataObject) -> None:
    # Small edits of valid messages reach much deeper into the decoder than random bytes.
    max_items = data.draw(st.integers(min_value=1, max_value=60))
    max_depth = data.draw(st.integers(min_value=0, max_value=5))
    for mutated in _mutations(encode(value), data.draw):
        _check_arbitrary(mutated, max_items, max_depth)
    # The unmutated value against tight limits: accepted exactly when its shape fits.
    items, depth = _shape(value)
    try:
        decode(encode(value), max_items=max_items, max_depth=max_depth)
        accepted = True
    except LimitExceeded:
        accepted = False
    assert accepted == (items <= max_items and depth <= max_depth)


@pytest.mark.slow
@settings(max_examples=5_000, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_long(data: bytes) -> None:
    _check_arbitrary(data)


# --------------------------------------------------------------------------------------------
# Our vector file (vectors/cbor.json)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "cbor.json"


def test_vector_file_is_generated_and_passes() -> None:
    from triple_ratchet.testvectors import cbor as cbor_vectors
    from triple_ratchet.testvectors import verify_document

    doc = json.loads(VECTORS.read_text())
    assert doc == cbor_vectors.generate()["cbor.json"]
    results = list(verify_document(doc))
    failed = [r for r in results if r.status != "passed"]
    assert not failed, failed
    valid = sum(1 for case in doc["cases"] if "outputs" in case)
    assert (valid, len(results) - valid) == (27, 58)


def test_vector_file_tampering_is_caught() -> None:
    from triple_ratchet.testvectors import verify_document

    doc = json.loads(VECTORS.read_text())
    cases = doc["cases"]
    # A wrong expected encoding, a wrong value, and a rejected input turned into a valid one.
    valid = next(i for i, c in enumerate(cases) if c["description"] == "nested map")
    cases[valid]["outputs"]["cbor"] = cases[valid]["outputs"]["cbor"][:-2] + "f5"
    cases[0]["inputs"]["value"] = {"int": "1"}
    invalid = next(i for i, c in enumerate(cases) if c["description"] == "duplicate map key")
    cases[invalid]["inputs"]["cbor"] = "a201000200"
    failed = {i for i, r in enumerate(verify_document(doc)) if r.status == "failed"}
    assert failed == {0, valid, invalid}


# --- The hot-path forms agree with the general encoder and decoder -----------------------


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.binary(max_size=300)),
                max_size=23))
def test_decode_flat_returns_what_decode_returns(items: list[int | bytes]) -> None:
    data = cbor.encode_flat(items)
    assert data == cbor.encode(items)
    assert cbor.decode_flat(data, len(items)) == cbor.decode(data)
    assert cbor.decode_flat(data, len(items) + 1) is None
    assert cbor.decode_flat(data + b"\x00", len(items)) is None
    if data[1:]:
        assert cbor.decode_flat(data[:-1], len(items)) is None


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=23))
def test_decode_flat_never_accepts_what_decode_refuses(data: bytes, length: int) -> None:
    fast = cbor.decode_flat(data, length)
    if fast is not None:
        assert cbor.decode(data) == fast
