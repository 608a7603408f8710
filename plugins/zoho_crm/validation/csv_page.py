"""Validation of one Bulk Read CSV page: header, shape, UTF-8, ids, value formats and record count."""

from __future__ import annotations

import time
from pathlib import Path

from zoho_crm.validation.csv_header import HEADER, check_header, read_header
from zoho_crm.validation.csv_locate import RAGGED_LIMIT, locate, position
from zoho_crm.validation.csv_scan import scan_csv
from zoho_crm.validation.digest import file_sha256
from zoho_crm.validation.field_types import FORMAT_BY_DATA_TYPE, ValueFormat, metadata_fields
from zoho_crm.validation.report import ValidationReport


def validate_csv(
    path: str | Path,
    *,
    fields: list[str] | None = None,
    field_metadata: list[dict] | dict | None = None,
    expected_count: int | None = None,
    sha256: str | None = None,
) -> ValidationReport:
    """Validate a CSV page. ``sha256`` may pass the digest already computed while extracting."""
    started = time.perf_counter()
    path = Path(path)
    report = ValidationReport(file=str(path), file_type="csv")
    report.sha256 = sha256 or file_sha256(path)
    names, bom = read_header(path)
    if bom:
        report.warn("line 1", "file starts with a UTF-8 byte order mark (tolerated)")
    if names is None:
        report.error(HEADER, "file is empty: no header row")
        return report
    report.columns = names
    metadata = metadata_fields(field_metadata)
    metadata_names = [f["api_name"] for f in metadata] if metadata else None
    id_index = check_header(report, names, fields, metadata_names)
    formats = _column_formats(report, names, metadata)
    report.timings["header"] = time.perf_counter() - started

    scan_started = time.perf_counter()
    scan = scan_csv(path, names, id_index, formats)
    report.timings["scan"] = time.perf_counter() - scan_started
    report.records = scan.rows + scan.ragged

    needs_positions = scan.issues or scan.ragged or scan.duplicate_ids or scan.failure
    if needs_positions:
        locate_started = time.perf_counter()
        found = locate(
            path,
            len(names),
            {issue.index for issue in scan.issues},
            ragged_total=scan.ragged if not scan.failure else 2**62,
            id_index=id_index,
            duplicate_ids=frozenset(scan.duplicate_ids),
            duplicate_total=scan.duplicate_id_count,
        )
        report.timings["locate"] = time.perf_counter() - locate_started
        _report_rows(report, scan, found, names)
    for where, reason in scan.overflow:
        report.error(where, reason)
    for j in scan.empty_columns:
        report.warn(f"column {names[j]}", "empty on every row (Zoho empties restricted fields over the API)")
    if expected_count is not None and report.records != expected_count and not scan.failure:
        report.error("file", f"{report.records} records, but the job reported count {expected_count}")
    report.timings["validate"] = time.perf_counter() - started
    return report


def _column_formats(report: ValidationReport, names: list[str], metadata: list[dict]) -> dict[int, ValueFormat]:
    if not metadata:
        report.checks_skipped.append("value types: no field metadata given, only the id and the shape were checked")
        return {}
    data_types = {f["api_name"]: str(f.get("data_type", "")) for f in metadata}
    formats = {j: FORMAT_BY_DATA_TYPE[data_types[n]] for j, n in enumerate(names)
               if data_types.get(n) in FORMAT_BY_DATA_TYPE}
    unchecked = sorted({data_types[n] for n in names if n in data_types} - set(FORMAT_BY_DATA_TYPE))
    if unchecked:
        report.notes.append(f"values of data types {', '.join(unchecked)} are not format-checked")
    report.notes.append(f"{len(formats)} columns format-checked from field metadata")
    return formats


def _report_rows(report: ValidationReport, scan, found, names: list[str]) -> None:
    if scan.failure:
        report.error("file", f"CSV could not be parsed to the end: {scan.failure}")
        report.checks_skipped.append("rows after the parse failure were checked for shape and ids only")
        report.records = found.records
    for line, record, count in found.ragged:
        report.error(position(line, record), f"{count} columns, the header has {len(names)}")
    if scan.ragged > RAGGED_LIMIT:
        report.error("rows", f"{scan.ragged} rows in total do not have the header's {len(names)} columns")
    for issue in sorted(scan.issues, key=lambda i: i.index):
        line, record = found.positions.get(issue.index, (0, 0))
        where = position(line, record, issue.column) if line else f"row {issue.index + 1}, column {issue.column}"
        report.error(where, issue.reason)
    for line, record, value in found.duplicates:
        report.error(position(line, record, report.id_column), f"duplicate record id {value}")
    if scan.duplicate_id_count > len(found.duplicates):
        report.error(f"column {report.id_column}", f"{scan.duplicate_id_count} repeated record ids in total")
