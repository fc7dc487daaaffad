"""The few GGUF header fields discovery needs, read straight from the file's key-value
section. ``gguf.GGUFReader`` maps every tensor and turns the tokenizer's arrays into
numpy objects first: 8.3 s for the bundled 253 MB Gemma on every start, against a few
tenths of a second here."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"GGUF"
# Value types of the GGUF spec: fixed sizes (bytes) of the scalar ones.
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_FORMATS |= {10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
MAX_KEYS = 100_000


class HeaderError(ValueError):
    pass


def read_fields(path: Path) -> dict[str, Any]:
    """The header's scalar and string values by key (arrays are skipped)."""
    with path.open("rb") as f:
        if f.read(4) != MAGIC:
            raise HeaderError("not a GGUF file")
        version, _tensors, count = struct.unpack("<IQQ", _exact(f, 20))
        if version < 2 or count > MAX_KEYS:
            raise HeaderError(f"unsupported GGUF header (version {version}, {count} keys)")
        out: dict[str, Any] = {}
        for _ in range(count):
            key = _string(f)
            kind = _u32(f)
            if kind == _ARRAY:
                _skip_array(f)
            else:
                out[key] = _value(f, kind)
        return out


def _exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise HeaderError("truncated GGUF header")
    return data


def _u32(f: BinaryIO) -> int:
    return int(struct.unpack("<I", _exact(f, 4))[0])


def _string(f: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _exact(f, 8))
    if length > 1 << 24:
        raise HeaderError("implausible string length in a GGUF header")
    return _exact(f, length).decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind == _STRING:
        return _string(f)
    fmt = _FORMATS.get(kind)
    if fmt is None:
        raise HeaderError(f"unknown GGUF value type {kind}")
    return struct.unpack(fmt, _exact(f, _SIZES[kind]))[0]


def _skip_array(f: BinaryIO) -> None:
    kind = _u32(f)
    (count,) = struct.unpack("<Q", _exact(f, 8))
    if kind in _SIZES:
        f.seek(count * _SIZES[kind], 1)
        return
    if kind != _STRING:
        raise HeaderError(f"unsupported GGUF array type {kind}")
    for _ in range(count):  # a vocabulary: each string's length, then skip it
        (length,) = struct.unpack("<Q", _exact(f, 8))
        f.seek(length, 1)
