"""Extract and validate one downloaded page, writing ``report.json`` beside the extracted file."""

from __future__ import annotations

import time
from pathlib import Path

from zoho_crm.archive import extract_page
from zoho_crm.validation.csv_page import validate_csv
from zoho_crm.validation.ics_page import validate_ics
from zoho_crm.validation.report import ValidationReport

REPORT_NAME = "report.json"


def validate_page(
    zip_path: str | Path,
    dest_dir: str | Path,
    *,
    job_id: str | None,
    file_type: str,
    fields: list[str] | None = None,
    field_metadata: list[dict] | dict | None = None,
    expected_count: int | None = None,
) -> ValidationReport:
    """Extract ``zip_path`` into ``dest_dir``, validate it and write ``dest_dir/report.json``.

    Archive problems raise :class:`zoho_crm.archive.ArchiveError`; data problems land in the report.
    """
    started = time.perf_counter()
    page = extract_page(Path(zip_path), Path(dest_dir), job_id=job_id, file_type=file_type)
    extracted = time.perf_counter() - started
    if file_type == "csv":
        report = validate_csv(page.path, fields=fields, field_metadata=field_metadata,
                              expected_count=expected_count, sha256=page.sha256)
    else:
        report = validate_ics(page.path, expected_count=expected_count, sha256=page.sha256)
        if fields:
            report.notes.append("fields are not applicable to ICS pages and were ignored")
    for warning in page.warnings:
        report.warn("archive", warning)
    report.timings = {"extract": extracted, **report.timings, "total": time.perf_counter() - started}
    report.write_json(Path(dest_dir) / REPORT_NAME)
    return report
