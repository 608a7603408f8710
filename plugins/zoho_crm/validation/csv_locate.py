"""Slow second pass (stdlib csv) run only when the fast pass found something: turns row indices into
line and record numbers, and finds ragged rows and repeated ids."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RAGGED_LIMIT = 20
DUPLICATE_LIMIT = 20


@dataclass
class Located:
    """Positions found by the second pass. Lines and records are 1-based; the header is record 0."""

    positions: dict[int, tuple[int, int]] = field(default_factory=dict)
    ragged: list[tuple[int, int, int]] = field(default_factory=list)
    duplicates: list[tuple[int, int, str]] = field(default_factory=list)
    records: int = 0


def position(line: int, record: int, column: str | None = None) -> str:
    """The report's position text, e.g. "line 12 (record 10), column Email"."""
    text = f"line {line} (record {record})"
    return f"{text}, column {column}" if column else text


@contextmanager
def _large_fields() -> Iterator[None]:
    previous = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def locate(
    path: Path,
    columns: int,
    wanted: set[int],
    *,
    ragged_total: int,
    id_index: int | None = None,
    duplicate_ids: frozenset[str] = frozenset(),
    duplicate_total: int = 0,
) -> Located:
    """Walk the file once, stopping as soon as everything asked for has been found."""
    found = Located()
    seen_ids: set[str] = set()
    wanted = set(wanted)
    index = -1
    with _large_fields(), open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        reader = csv.reader(text)
        if next(reader, None) is None:
            return found
        previous_line = reader.line_num
        for record, row in enumerate(reader, start=1):
            line, previous_line = previous_line + 1, reader.line_num
            found.records = record
            if row and len(row) != columns:
                if len(found.ragged) < RAGGED_LIMIT:
                    found.ragged.append((line, record, len(row)))
            else:
                index += 1
                if index in wanted:
                    found.positions[index] = (line, record)
                    wanted.discard(index)
                if duplicate_ids and id_index is not None and row:
                    value = row[id_index]
                    if value in duplicate_ids:
                        if value in seen_ids and len(found.duplicates) < DUPLICATE_LIMIT:
                            found.duplicates.append((line, record, value))
                        seen_ids.add(value)
            if (
                not wanted
                and len(found.ragged) >= min(ragged_total, RAGGED_LIMIT)
                and len(found.duplicates) >= min(duplicate_total, DUPLICATE_LIMIT)
            ):
                break
    return found
