"""Reading and checking the header row of a Bulk Read CSV page."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from zoho_crm.validation.csv_pieces import first_boundary
from zoho_crm.validation.report import ValidationReport

BOM = b"\xef\xbb\xbf"
ID_COLUMNS = ("id", "Id")
HEADER = "line 1 (header)"
MAX_HEADER_BYTES = 1 << 20


@dataclass
class Header:
    """The header row: names (None when missing), BOM, where the data starts, and the bytes read past it."""

    names: list[str] | None
    bom: bool
    data_offset: int
    first_line: int
    rest: bytes = b""
    problem: str | None = None


def read_header(chunks: Iterator[bytes]) -> Header:
    """Read the header row from the start of a stream of chunks (consuming only what it needs)."""
    data = b""
    while not first_boundary(data) and len(data) < MAX_HEADER_BYTES:
        chunk = next(chunks, None)
        if chunk is None:
            break
        data += chunk
    bom = data.startswith(BOM)
    start = len(BOM) if bom else 0
    if not data[start:]:
        return Header(None, bom, start, 2, problem="file is empty: no header row")
    cut = first_boundary(data[start:])
    if not cut:
        if len(data) >= MAX_HEADER_BYTES:
            return Header(None, bom, start, 2, problem=f"no end of the header row in the first {len(data)} bytes")
        cut = len(data) - start
    raw = data[start : start + cut]
    try:
        names = next(csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape"), newline="\n")), [])
    except csv.Error as exc:
        return Header(None, bom, start, 2, problem=f"header row unreadable ({exc}); lines must end in LF or CRLF")
    return Header(names, bom, start + cut, 1 + raw.count(b"\n"), data[start + cut :])


def check_header(
    report: ValidationReport, names: list[str], fields: list[str] | None, metadata_names: list[str] | None
) -> int | None:
    """Record header problems in ``report``; return the index of the id column (None if missing)."""
    if not names:
        report.error(HEADER, "empty header row")
        return None
    for position, name in enumerate(names, start=1):
        if not name.strip():
            report.error(f"column {position}", "empty column name in the header")
        elif _has_surrogates(name):
            report.error(f"column {position}", "invalid UTF-8 in the column name")
    for name, count in Counter(names).items():
        if count > 1 and name.strip():
            report.error(f"column {name}", f"duplicate column name ({count} times in the header)")
    present = [name for name in ID_COLUMNS if name in names]
    if not present:
        report.error(HEADER, "record id column missing (expected 'id' or 'Id')")
        id_index = None
    else:
        if len(present) > 1:
            report.error(HEADER, "both 'id' and 'Id' columns present; expected one record id column")
        report.id_column = present[0]
        id_index = names.index(present[0])
    others = [name for name in names if name not in ID_COLUMNS]
    if fields:
        _check_requested(report, others, [f for f in fields if f not in ID_COLUMNS])
    elif metadata_names is not None:
        _check_against_metadata(report, others, metadata_names)
    return id_index


def _check_requested(report: ValidationReport, others: list[str], wanted: list[str]) -> None:
    if others == wanted:
        return
    missing = [name for name in wanted if name not in others]
    unexpected = [name for name in others if name not in wanted]
    for name in missing:
        report.error(f"column {name}", "requested field missing from the file")
    for name in unexpected:
        report.error(f"column {name}", "column not among the requested fields")
    if not missing and not unexpected:
        at = next(i for i, (got, want) in enumerate(zip(others, wanted, strict=True)) if got != want)
        report.error(
            HEADER,
            f"columns not in the requested order: field {at + 1} (not counting the id) is {others[at]!r}, "
            f"expected {wanted[at]!r}",
        )


def _check_against_metadata(report: ValidationReport, others: list[str], metadata_names: list[str]) -> None:
    known = set(metadata_names)
    for name in others:
        if name not in known:
            report.error(f"column {name}", "unknown column: not a field of the module in settings/fields")
    present = set(others)
    for name in metadata_names:
        if name not in present and name not in ID_COLUMNS:
            report.warn(
                f"column {name}",
                "field in settings/fields but not in the file (Zoho leaves out fields it cannot export, "
                "e.g. restricted or non-exportable types)",
            )


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)
