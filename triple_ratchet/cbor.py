"""Strict canonical CBOR: the one wire encoding of the library (spec/01-encoding.md).

Only a small subset of CBOR (RFC 8949) is used: unsigned and negative integers (-2^64 .. 2^64-1),
byte strings, UTF-8 text strings, arrays, maps with int or text keys, false, true and null. It is
always encoded in the core deterministic form of RFC 8949 §4.2.1 and decoded strictly: anything
outside the subset or not canonical is a `DecodeError`, so `encode(decode(x)) == x` for every
accepted `x` and each value has exactly one encoding (signatures and hashes over encodings are
therefore well defined).

The decoder is hand-written rather than built on cbor2 because cbor2 accepts duplicate keys,
non-shortest integers and indefinite lengths, and it resolves shared-reference tags, so a few
hundred bytes can expand to 2^39 items. Every declared length is checked against the remaining
input and the item budget before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Union

from triple_ratchet.errors import DecodeError, LimitExceeded, UsageError

# A decoded value. Arrays decode to lists and maps to dicts.
CborValue = Union[  # noqa: UP007 - a recursive alias needs the string forward references
    int, bytes, str, bool, None, list["CborValue"], dict[int | str, "CborValue"]
]

# What `encode` accepts: the decoded types, plus any sequence (tuple) or mapping. Sequence and
# Mapping are covariant in their values, so e.g. a `dict[str, bytes]` type-checks here.
CborEncodable = Union[  # noqa: UP007
    int,
    bytes,
    str,
    bool,
    None,
    Sequence["CborEncodable"],
    Mapping[int, "CborEncodable"],
    Mapping[str, "CborEncodable"],
    Mapping[int | str, "CborEncodable"],
]

# Default limits (spec/01-encoding.md, "Limits"). 1 MiB bounds any single message or saved
# state; 100 000 items bounds the per-item Python object cost (~100 B each) to ~10 MB; depth 32 is
# far above any structure we define (the deepest the test suite decodes, a saved group session
# state, nests 8 levels).
DEFAULT_MAX_SIZE = 1 << 20
DEFAULT_MAX_ITEMS = 100_000
DEFAULT_MAX_DEPTH = 32
# The decoder recurses once per nesting level; this keeps it far from Python's recursion limit.
MAX_DEPTH_CAP = 256
# Encoding refuses deeper values (and so cyclic ones) instead of overflowing the Python stack.
MAX_ENCODE_DEPTH = 256

_UINT64_MAX = (1 << 64) - 1
_INT_MIN = -(1 << 64)

# Smallest argument value allowed with additional information 24..27 (shortest form rule).
_MIN_ARG = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}

_MAJOR_NAMES = (
    "unsigned integer",
    "negative integer",
    "byte string",
    "text string",
    "array",
    "map",
    "tag",
    "simple value/float",
)


# --------------------------------------------------------------------------------------------
# Encoding


# Every one-byte encoding, so small heads cost a list lookup instead of a bytes() call.
_ONE_BYTE = tuple(bytes((i,)) for i in range(256))
# Heads of byte strings shorter than 256 bytes (keys, nonces, signatures: the common case).
_SHORT_BSTR_HEAD = tuple(bytes((0x40 | n,)) if n < 24 else bytes((0x58, n)) for n in range(256))


def _head(major: int, arg: int) -> bytes:
    """The initial byte and shortest argument for major type `major` and argument `arg`."""
    mt = major << 5
    if arg < 24:
        return _ONE_BYTE[mt | arg]
    if arg < 0x100:
        return bytes((mt | 24, arg))
    if arg < 0x10000:
        return bytes((mt | 25,)) + arg.to_bytes(2, "big")
    if arg < 0x100000000:
        return bytes((mt | 26,)) + arg.to_bytes(4, "big")
    return bytes((mt | 27,)) + arg.to_bytes(8, "big")


def _encode_into(value: object, out: list[bytes], depth: int) -> None:
    # Exact-type checks first: they are the hot path and exclude bool, which is an int subclass
    # but encodes as a simple value. Subclasses (IntEnum, StrEnum, ...) take the slower path.
    if type(value) is bytes:
        length = len(value)
        out.append(_SHORT_BSTR_HEAD[length] if length < 256 else _head(2, length))
        out.append(value)
    elif type(value) is int:
        if 0 <= value < 24:
            out.append(_ONE_BYTE[value])
        else:
            _encode_int(value, out)
    elif type(value) is list or type(value) is tuple:
        _encode_array(value, out, depth)
    elif type(value) is str:
        _encode_str(value, out)
    elif type(value) is dict:
        _encode_map(value, out, depth)
    elif value is None:
        out.append(b"\xf6")
    elif value is True:
        out.append(b"\xf5")
    elif value is False:
        out.append(b"\xf4")
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out.append(_head(2, len(raw)))
        out.append(raw)
    elif isinstance(value, int):
        # int.__int__/str.encode read the underlying value: a (str, Enum) member's str() would
        # be its name ("Kind.A"), not its value.
        _encode_int(int.__int__(value), out)
    elif isinstance(value, str):
        _encode_str(value, out)
    elif isinstance(value, Mapping):
        _encode_map(value, out, depth)
    elif isinstance(value, Sequence):
        _encode_array(value, out, depth)
    else:
        raise UsageError(f"cbor.encode: cannot encode a value of type {type(value).__name__}")


def _encode_int(value: int, out: list[bytes]) -> None:
    if value >= 0:
        if value > _UINT64_MAX:
            raise UsageError("cbor.encode: integer above 2^64-1")
        out.append(_head(0, value))
    else:
        if value < _INT_MIN:
            raise UsageError("cbor.encode: integer below -2^64")
        out.append(_head(1, -1 - value))


def _utf8(value: str) -> bytes:
    try:
        return str.encode(value, "utf-8")
    except UnicodeEncodeError:
        pass
    # Outside the handler, so the UnicodeEncodeError (which holds the text) is not __context__.
    raise UsageError("cbor.encode: text contains a lone surrogate (not UTF-8)")


def _encode_str(value: str, out: list[bytes]) -> None:
    raw = _utf8(value)
    out.append(_head(3, len(raw)))
    out.append(raw)


def _encode_array(value: Sequence[object], out: list[bytes], depth: int) -> None:
    if depth >= MAX_ENCODE_DEPTH:
        raise UsageError(f"cbor.encode: nesting deeper than {MAX_ENCODE_DEPTH} (a cycle?)")
    out.append(_head(4, len(value)))
    depth += 1
    append = out.append
    for element in value:
        # Inline the commonest elements (byte strings, small ints) to save a call each.
        if type(element) is bytes:
            length = len(element)
            append(_SHORT_BSTR_HEAD[length] if length < 256 else _head(2, length))
            append(element)
        elif type(element) is int and 0 <= element < 24:
            append(_ONE_BYTE[element])
        else:
            _encode_into(element, out, depth)


def _encode_map(value: Mapping[object, object], out: list[bytes], depth: int) -> None:
    if depth >= MAX_ENCODE_DEPTH:
        raise UsageError(f"cbor.encode: nesting deeper than {MAX_ENCODE_DEPTH} (a cycle?)")
    # encode_key also refuses keys that are not int or str.
    pairs = [(encode_key(key), item) for key, item in value.items()]
    # Canonical order: bytewise on the encoded keys (never on the values: they may not compare).
    pairs.sort(key=_first)
    # Two keys of a dict can still encode alike (int/str subclasses with their own equality):
    # that would be a duplicate key on the wire.
    for index in range(1, len(pairs)):
        if pairs[index][0] == pairs[index - 1][0]:
            raise UsageError("cbor.encode: two map keys have the same encoding")
    out.append(_head(5, len(pairs)))
    depth += 1
    for key_bytes, item in pairs:
        out.append(key_bytes)
        _encode_into(item, out, depth)


_first = itemgetter(0)


def encode_key(key: object) -> bytes:
    """The encoding of a map key, which must be an int or str (UsageError otherwise).

    Equal to `encode(key)`; map entries are sorted by it.
    """
    if type(key) is str:
        raw = _utf8(key)
        length = len(raw)
        return (_ONE_BYTE[0x60 | length] if length < 24 else _head(3, length)) + raw
    if type(key) is int and 0 <= key < 24:
        return _ONE_BYTE[key]
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise UsageError(f"cbor.encode: map key of type {type(key).__name__} (only int or str)")
    out: list[bytes] = []
    if isinstance(key, int):
        _encode_int(int.__int__(key), out)
    else:
        _encode_str(key, out)
    return b"".join(out)


def encode(value: CborEncodable) -> bytes:
    """Encode `value` in canonical CBOR (RFC 8949 §4.2.1). Unsupported values raise UsageError."""
    out: list[bytes] = []
    _encode_into(value, out, 0)
    return b"".join(out)


# --------------------------------------------------------------------------------------------
# Decoding


def _simple_error(ai: int, offset: int) -> DecodeError:
    if ai in (25, 26, 27):
        return DecodeError(f"floating-point value at offset {offset} (floats are not allowed)")
    if ai == 23:
        return DecodeError(f"simple value 'undefined' at offset {offset} (not allowed)")
    if ai == 31:
        return DecodeError(f"break code 0xff at offset {offset} outside an indefinite-length item")
    if ai in (28, 29, 30):
        return DecodeError(f"reserved additional information {ai} at offset {offset}")
    return DecodeError(f"simple value at offset {offset} (only false, true and null are allowed)")


class _Decoder:
    """One decode call: the input, its length and the remaining item budget."""

    __slots__ = ("budget", "data", "max_depth", "size")

    def __init__(self, data: bytes, max_items: int, max_depth: int) -> None:
        self.data = data
        self.size = len(data)
        self.budget = max_items - 1  # the top-level item
        self.max_depth = max_depth

    def item(self, pos: int, depth: int) -> tuple[CborValue, int]:
        data = self.data
        size = self.size
        if pos >= size:
            raise DecodeError(f"truncated input: expected a data item at offset {pos}")
        start = pos
        initial = data[pos]
        major = initial >> 5
        ai = initial & 0x1F
        pos += 1

        if major == 7:
            if ai == 20:
                return False, pos
            if ai == 21:
                return True, pos
            if ai == 22:
                return None, pos
            raise _simple_error(ai, start)
        if major == 6:
            raise DecodeError(f"tag at offset {start} (tags are not allowed)")

        if ai < 24:
            arg = ai
        elif ai < 28:
            width = 1 << (ai - 24)
            end = pos + width
            if end > size:
                raise DecodeError(
                    f"truncated input: {_MAJOR_NAMES[major]} argument at offset {start} needs "
                    f"{width} bytes"
                )
            arg = data[pos] if width == 1 else int.from_bytes(data[pos:end], "big")
            if arg < _MIN_ARG[ai]:
                raise DecodeError(
                    f"non-shortest argument encoding of a {_MAJOR_NAMES[major]} at offset {start}"
                )
            pos = end
        elif ai == 31:
            if major in (2, 3, 4, 5):
                raise DecodeError(
                    f"indefinite-length {_MAJOR_NAMES[major]} at offset {start} (not allowed)"
                )
            raise DecodeError(
                f"additional information 31 on a {_MAJOR_NAMES[major]} at offset {start}"
            )
        else:
            raise DecodeError(f"reserved additional information {ai} at offset {start}")

        if major == 0:
            return arg, pos
        if major == 1:
            return -1 - arg, pos
        if major == 2 or major == 3:
            end = pos + arg
            if end > size:
                raise DecodeError(
                    f"truncated input: {_MAJOR_NAMES[major]} at offset {start} declares {arg} "
                    f"bytes, {size - pos} remain"
                )
            if major == 2:
                return data[pos:end], end
            try:
                return data[pos:end].decode("utf-8"), end
            except UnicodeDecodeError as exc:
                bad = pos + exc.start
            # Raised outside the handler: the UnicodeDecodeError holds the input bytes (maybe a
            # saved state's keys) and must not ride along as __context__.
            raise DecodeError(f"invalid UTF-8 in text string at offset {start} (byte {bad})")

        depth += 1
        if depth > self.max_depth:
            raise LimitExceeded(f"nesting deeper than {self.max_depth} at offset {start}")
        if major == 4:
            # Every item takes at least one byte: a larger count cannot be satisfied.
            if arg > size - pos:
                raise DecodeError(
                    f"truncated input: array at offset {start} declares {arg} items, "
                    f"{size - pos} bytes remain"
                )
            # Charge the elements to the item budget before allocating anything for them.
            if arg > self.budget:
                raise LimitExceeded(f"item count limit exceeded by the array at offset {start}")
            self.budget -= arg
            items: list[CborValue] = []
            append = items.append
            item = self.item
            for _ in range(arg):
                # Fast paths for the common elements (small ints, short byte strings); anything
                # else, including every error, goes through the general `item`.
                if pos < size:
                    initial = data[pos]
                    if initial < 0x18:
                        append(initial)
                        pos += 1
                        continue
                    if 0x40 <= initial < 0x58:
                        end = pos + initial - 0x3F
                        if end <= size:
                            append(data[pos + 1 : end])
                            pos = end
                            continue
                    elif initial == 0x58 and pos + 1 < size:
                        length = data[pos + 1]
                        end = pos + 2 + length
                        if length >= 24 and end <= size:
                            append(data[pos + 2 : end])
                            pos = end
                            continue
                value, pos = item(pos, depth)
                append(value)
            return items, pos

        # major == 5: a map
        if 2 * arg > size - pos:
            raise DecodeError(
                f"truncated input: map at offset {start} declares {arg} pairs, "
                f"{size - pos} bytes remain"
            )
        if 2 * arg > self.budget:
            raise LimitExceeded(f"item count limit exceeded by the map at offset {start}")
        self.budget -= 2 * arg
        result: dict[int | str, CborValue] = {}
        previous = b""
        for _ in range(arg):
            key_start = pos
            if pos >= size:
                raise DecodeError(f"truncated input: expected a map key at offset {pos}")
            key_major = data[pos] >> 5
            if key_major not in (0, 1, 3):
                raise DecodeError(
                    f"map key at offset {pos} is a {_MAJOR_NAMES[key_major]} (only int or text)"
                )
            key, pos = self.item(pos, depth)
            key_bytes = data[key_start:pos]
            if key_bytes <= previous:
                if key_bytes == previous:
                    raise DecodeError(f"duplicate map key at offset {key_start}")
                raise DecodeError(f"map key at offset {key_start} out of canonical order")
            previous = key_bytes
            value, pos = self.item(pos, depth)
            result[key] = value  # type: ignore[index]  # key is int or str, checked above
        return result, pos


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> CborValue:
    """Decode exactly one canonical CBOR item of our subset, with nothing after it.

    Raises DecodeError for malformed or non-canonical input and LimitExceeded when the input is
    larger than `max_size` bytes, holds more than `max_items` items (every item counts, map keys
    included) or nests arrays/maps deeper than `max_depth`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UsageError(f"cbor.decode: expected bytes, got {type(data).__name__}")
    if not 0 <= max_depth <= MAX_DEPTH_CAP:
        raise UsageError(f"cbor.decode: max_depth must be between 0 and {MAX_DEPTH_CAP}")
    if max_items < 1:
        raise UsageError("cbor.decode: max_items must be at least 1")
    # The size is checked before a bytearray or memoryview is copied.
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > max_size:
        raise LimitExceeded(
            f"input of {size} bytes exceeds the limit of {max_size} bytes at offset {max_size}"
        )
    if not isinstance(data, bytes):
        data = bytes(data)
    value, pos = _Decoder(data, max_items, max_depth).item(0, 0)
    if pos != len(data):
        raise DecodeError(f"{len(data) - pos} trailing bytes after the item, at offset {pos}")
    return value


# --------------------------------------------------------------------------------------------
# Strict field readers: each names the field (`what`) when it rejects a value.


# --- Hot-path forms of the same encoding ----------------------------------------------------
# Message paths encode and parse flat arrays of unsigned ints and byte strings on every message.
# These two functions do that without the general dispatch; each returns exactly what
# `encode`/`decode` would, and `decode_flat` answers None (never a different value) for anything
# it does not handle, so the caller falls back to `decode`, which names the fault.


def bstr_head(length: int) -> bytes:
    """The canonical head of a byte string of `length` bytes."""
    return _SHORT_BSTR_HEAD[length] if length < 256 else _head(2, length)


def uint_head(value: int) -> bytes:
    """The canonical encoding of the unsigned integer `value` (0..2^64-1)."""
    if type(value) is not int or not 0 <= value <= _UINT64_MAX:
        raise UsageError("an unsigned integer must be in [0, 2^64-1]")
    return _head(0, value)


def encode_flat(items: Sequence[int | bytes]) -> bytes:
    """`encode(list(items))` for a flat array of byte strings and unsigned integers."""
    out = [_head(4, len(items))]
    append = out.append
    for item in items:
        if type(item) is bytes:
            length = len(item)
            append(_SHORT_BSTR_HEAD[length] if length < 256 else _head(2, length))
            append(item)
        elif type(item) is int and 0 <= item < 24:
            append(_ONE_BYTE[item])
        elif type(item) is int and 0 <= item <= _UINT64_MAX:
            append(_head(0, item))
        else:
            return encode(list(items))
    return b"".join(out)


def decode_flat(data: bytes, length: int) -> list[int | bytes] | None:
    """The items of a canonical array of exactly `length` (< 24) unsigned ints and byte strings
    with nothing after it, or None for anything else. The caller bounds `len(data)` first."""
    if type(data) is not bytes or not data or data[0] != 0x80 | length or length >= 24:
        return None
    out: list[int | bytes] = []
    pos, end_of_data = 1, len(data)
    for _ in range(length):
        if pos >= end_of_data:
            return None
        initial = data[pos]
        major, ai = initial >> 5, initial & 0x1F
        if major not in (0, 2) or ai > 27:
            return None
        if ai < 24:
            arg, pos = ai, pos + 1
        else:
            start = pos + 1
            pos = start + (1 << (ai - 24))
            if pos > end_of_data:
                return None
            arg = int.from_bytes(data[start:pos], "big")
            if arg < _MIN_ARG[ai]:
                return None  # not the shortest head
        if major == 0:
            out.append(arg)
        else:
            if pos + arg > end_of_data:
                return None
            out.append(data[pos:pos + arg])
            pos += arg
    return out if pos == end_of_data else None


def as_list(v: CborValue, what: str, length: int | None = None) -> list[CborValue]:
    if not isinstance(v, list):
        raise DecodeError(f"{what}: expected an array, got {_type_name(v)}")
    if length is not None and len(v) != length:
        raise DecodeError(f"{what}: expected {length} elements, got {len(v)}")
    return v


def as_bytes(
    v: CborValue, what: str, length: int | None = None, max_length: int | None = None
) -> bytes:
    if not isinstance(v, bytes):
        raise DecodeError(f"{what}: expected a byte string, got {_type_name(v)}")
    if length is not None and len(v) != length:
        raise DecodeError(f"{what}: expected {length} bytes, got {len(v)}")
    if max_length is not None and len(v) > max_length:
        raise DecodeError(f"{what}: {len(v)} bytes is longer than the maximum {max_length}")
    return v


def as_int(v: CborValue, what: str, minimum: int = 0, maximum: int = _UINT64_MAX) -> int:
    # `type(...) is int` rejects bool, which Python treats as an int subclass.
    if type(v) is not int:
        raise DecodeError(f"{what}: expected an integer, got {_type_name(v)}")
    if v < minimum or v > maximum:
        raise DecodeError(f"{what}: {v} is outside [{minimum}, {maximum}]")
    return v


def as_str(v: CborValue, what: str, max_length: int | None = None) -> str:
    """`max_length` counts UTF-8 bytes (the wire length), not code points."""
    if not isinstance(v, str):
        raise DecodeError(f"{what}: expected a text string, got {_type_name(v)}")
    # A code point takes 1..4 UTF-8 bytes, so only the middle range needs the encoded length.
    if max_length is not None and len(v) * 4 > max_length:
        encoded_length = len(v.encode("utf-8"))
        if encoded_length > max_length:
            raise DecodeError(
                f"{what}: {encoded_length} UTF-8 bytes is longer than the maximum {max_length}"
            )
    return v


def as_bool(v: CborValue, what: str) -> bool:
    if not isinstance(v, bool):
        raise DecodeError(f"{what}: expected a boolean, got {_type_name(v)}")
    return v


def as_map(v: CborValue, what: str) -> dict[int | str, CborValue]:
    if not isinstance(v, dict):
        raise DecodeError(f"{what}: expected a map, got {_type_name(v)}")
    return v


def _type_name(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, bytes):
        return "a byte string"
    if isinstance(v, str):
        return "a text string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a map"
    return type(v).__name__


__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_SIZE",
    "CborEncodable",
    "CborValue",
    "as_bool",
    "as_bytes",
    "as_int",
    "as_list",
    "as_map",
    "as_str",
    "bstr_head",
    "decode",
    "decode_flat",
    "encode",
    "encode_flat",
    "encode_key",
    "uint_head",
]
