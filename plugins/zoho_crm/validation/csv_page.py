"""Validation of one Bulk Read CSV page: header, shape, UTF-8, ids, value formats and record count."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from zoho_crm.files.digest import file_sha256
from zoho_crm.validation.csv_header import HEADER, check_header, read_header
from zoho_crm.validation.csv_pieces import TrailingBlankLines, file_chunks, iter_pieces
from zoho_crm.validation.csv_scan import scan_csv
from zoho_crm.validation.field_types import INTEGER, ValueFormat, field_format, metadata_fields
from zoho_crm.validation.id_index import IDS, index_path
from zoho_crm.validation.report import ValidationReport


def validate_csv(
    path: str | Path,
    *,
    fields: list[str] | None = None,
    field_metadata: list[dict] | dict | None = None,
    expected_count: int | None = None,
    index_to: Path | None = None,
) -> ValidationReport:
    """Validate a CSV page file; with ``index_to`` (a path prefix) also write its sorted ids to ``<prefix>.ids``."""
    path = Path(path)
    report = validate_csv_stream(file_chunks(path), lambda: path, fields=fields, field_metadata=field_metadata,
                                 expected_count=expected_count, index_to=index_to)
    report.file, report.sha256 = str(path), file_sha256(path)
    return report


def validate_csv_stream(
    chunks: Iterator[bytes],
    path_of: Callable[[], Path],
    *,
    fields: list[str] | None = None,
    field_metadata: list[dict] | dict | None = None,
    expected_count: int | None = None,
    index_to: Path | None = None,
) -> ValidationReport:
    """Validate a CSV page arriving as byte chunks (e.g. while it is being extracted).

    ``path_of`` names the complete file once the chunks are exhausted; it is read again only to locate
    repeated ids. Empty lines at the very end of the file are not records (a warning says so). The caller
    sets ``file`` and ``sha256``.
    """
    started = time.perf_counter()
    report = ValidationReport(file="", file_type="csv")
    chunks = iter(chunks)
    header = read_header(chunks)
    if header.bom:
        report.warn("line 1", "file starts with a UTF-8 byte order mark (tolerated)")
    if header.names is None:
        report.error(HEADER, header.problem or "no header row")
        return report
    names = report.columns = header.names
    metadata = metadata_fields(field_metadata)
    id_index = check_header(report, names, fields, [f["api_name"] for f in metadata] if metadata else None)
    formats = _column_formats(report, names, metadata, id_index)
    if not names:
        return report

    scan_started = time.perf_counter()
    trailing = TrailingBlankLines()
    scan = scan_csv(
        trailing.trim(iter_pieces(chunks, header.first_line, header.rest)), names, id_index, formats,
        reread=lambda: TrailingBlankLines().trim(
            iter_pieces(file_chunks(path_of(), header.data_offset), header.first_line)),
        ids_path=index_path(index_to, IDS) if index_to is not None else None,
    )
    if trailing.count:
        report.warn(f"line {trailing.first_line}", f"{trailing.count} empty line(s) at the end of the file: not "
                                                   "records, ignored")
    report.timings["scan"] = time.perf_counter() - scan_started
    report.records = scan.records
    report.errors += scan.problems
    if scan.unparsable:
        report.checks_skipped.append("parts of the file that are not parsable CSV were not checked")
    for j in scan.empty_columns:
        report.warn(f"column {names[j]}", "empty on every row (Zoho empties restricted fields over the API)")
    if expected_count is not None and report.records != expected_count:
        report.error("file", f"{report.records} records, but the job reported count {expected_count}")
    report.timings["validate"] = time.perf_counter() - started
    return report


def _column_formats(
    report: ValidationReport, names: list[str], metadata: list[dict], id_index: int | None
) -> dict[int, ValueFormat]:
    """Each checked column's format from the field metadata; with metadata the record id is a 64-bit integer too
    (without, ids are only checked for presence and uniqueness)."""
    if not metadata:
        report.checks_skipped.append("value types: no field metadata given, only the id and the shape were checked")
        return {}
    by_name = {f["api_name"]: f for f in metadata}
    formats = {j: found for j, n in enumerate(names) if n in by_name and (found := field_format(by_name[n]))}
    if id_index is not None:
        formats[id_index] = INTEGER
    unchecked = sorted({str(by_name[n].get("data_type", "")) for j, n in enumerate(names)
                        if n in by_name and j not in formats})
    if unchecked:
        report.notes.append(f"values of data types {', '.join(unchecked)} are not format-checked")
    report.notes.append(f"{len(formats)} columns format-checked from field metadata")
    return formats
