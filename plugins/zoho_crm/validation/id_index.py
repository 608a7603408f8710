"""A page's id index: sorted sidecar files of its record ids (and, for ICS, series and overrides).

The validate step writes them once per page; the export check merges them across pages in bounded memory.
Each file holds one value per line, sorted by bytes; control bytes and backslashes are escaped so that the
newline (and the tab separating an override's UID from its RECURRENCE-ID) sorts before every value byte.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

IDS = ".ids"  # CSV: record ids; ICS: UIDs of events without RECURRENCE-ID (series and single events)
SERIES = ".series"  # ICS: UIDs of recurring series (VEVENT with RRULE)
OVERRIDES = ".overrides"  # ICS: "UID<TAB>RECURRENCE-ID" of edited occurrences
WRITE_SLICE = 65536
_UNSAFE = re.compile(rb"[\x00-\x1f\\]")


def escape(value: bytes) -> bytes:
    """``value`` with control bytes and backslashes written as ``\\xNN`` (no byte below 0x20 remains)."""
    return _UNSAFE.sub(lambda match: b"\\x%02x" % match.group()[0], value)


def unescape(value: bytes) -> str:
    """The escaped ``value`` for messages (escapes kept, invalid UTF-8 replaced)."""
    return value.decode("utf-8", "replace")


def index_path(prefix: Path, kind: str) -> Path:
    """The sidecar of one kind (``IDS``, ``SERIES``, ``OVERRIDES``) beside the prefix."""
    return prefix.with_name(prefix.name + kind)


def write_sorted(path: Path, values: Iterable[bytes]) -> Path:
    """Write escaped ``values`` one per line, sorted, atomically (temp file then rename)."""
    lines = sorted(values)
    return _write(path, (b"\n".join(lines[i : i + WRITE_SLICE]) + b"\n" for i in range(0, len(lines), WRITE_SLICE)))


def write_sorted_numbers(path: Path, numbers: np.ndarray) -> Path:
    """Write non-negative int64 ``numbers`` as decimal lines sorted by bytes, without a Python object per number.

    Zoho ids all have 19 digits: then numeric order is byte order and the digits are computed column by column.
    """
    values = np.sort(numbers)
    if not len(values) or len(str(values[0])) != len(str(values[-1])):
        text = np.sort(values.astype("S20"))  # mixed widths: sort the texts
        return _write(path, (b"\n".join(text[i : i + WRITE_SLICE].tolist()) + b"\n"
                             for i in range(0, len(text), WRITE_SLICE)))

    def slices() -> Iterator[bytes]:
        width = len(str(values[-1]))
        for start in range(0, len(values), WRITE_SLICE):
            part = values[start : start + WRITE_SLICE]
            out = np.empty((len(part), width + 1), np.uint8)
            for k in range(width):
                out[:, k] = part // 10 ** (width - 1 - k) % 10 + 48
            out[:, width] = 10
            yield out.tobytes()

    return _write(path, slices())


def _write(path: Path, parts: Iterable[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        for part in parts:
            handle.write(part)
    os.replace(tmp, path)
    return path
