"""A page's id index: sorted sidecar files of its record ids (and, for ICS, series and overrides).

The validate step writes them once per page; the export check merges them across pages in bounded memory.
Each file holds one value per line, sorted by bytes; control bytes and backslashes are escaped so that the
newline (and the tab separating an override's UID from its RECURRENCE-ID) sorts before every value byte.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

IDS = ".ids"  # CSV: record ids; ICS: UIDs of events without RECURRENCE-ID (series and single events)
SERIES = ".series"  # ICS: UIDs of recurring series (VEVENT with RRULE)
OVERRIDES = ".overrides"  # ICS: "UID<TAB>RECURRENCE-ID" of edited occurrences
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


def write_sorted(path: Path, values: Iterable[bytes], *, presorted: bool = False) -> Path:
    """Write escaped ``values`` one per line, sorted, atomically (temp file then rename)."""
    lines = list(values) if presorted else sorted(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        for start in range(0, len(lines), 65536):
            handle.write(b"".join(line + b"\n" for line in lines[start : start + 65536]))
    os.replace(tmp, path)
    return path
