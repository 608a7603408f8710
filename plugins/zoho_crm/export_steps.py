"""The export's file steps after download: unzip a page, validate it, write the manifest and publish.

Plain functions (no Airflow): the DAG's tasks call them, tests can too. Bad data raises
:class:`ExportStepError` with a summary of the first problems and where the files are kept for inspection.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoho_crm.archive import ArchiveError, extract_page
from zoho_crm.atomic_files import write_json_atomic
from zoho_crm.digest import file_sha256
from zoho_crm.export_layout import page_dir_name, publish

EXPORT_SUBDIR = "export"
DOWNLOADS_SUBDIR = "downloads"
REPORT_NAME = "report.json"
MANIFEST_NAME = "manifest.json"


class ExportStepError(Exception):
    """A page that cannot be published: unsafe archive or invalid data (the message says which and where)."""


def unzip_page(download: dict[str, Any], staging: Path) -> dict[str, Any]:
    """Extract a downloaded page into ``staging/export/page_NNNN/``; return the page record for validation."""
    page_dir = staging / EXPORT_SUBDIR / page_dir_name(int(download["page"]))
    archive = Path(download["path"])
    actual = file_sha256(archive) if archive.is_file() else "(missing)"
    if actual != download["sha256"]:
        raise ExportStepError(
            f"page {download['page']} (job {download['job_id']}): {archive} is not the file that was downloaded "
            f"(sha256 {actual}, downloaded {download['sha256']}): rerun the download task to fetch it again."
        )
    page_dir.mkdir(parents=True, exist_ok=True)
    try:
        extracted = extract_page(
            Path(download["path"]), page_dir, job_id=download["job_id"], file_type=download["file_type"]
        )
    except ArchiveError as err:
        raise ExportStepError(
            f"page {download['page']} (job {download['job_id']}): the downloaded archive {download['path']} was "
            f"refused: {err}. It is kept for inspection; rerun the download task to fetch it again."
        ) from err
    return {
        **download,
        "extracted_path": str(extracted.path),
        "extracted_sha256": extracted.sha256,
        "extracted_size": extracted.size,
        "member_name": extracted.member_name,
        "archive_warnings": list(extracted.warnings),
    }


def validate_page(
    page: dict[str, Any], *, fields: list[str] | None, field_metadata: list[dict] | None
) -> dict[str, Any]:
    """Validate an extracted page, write its ``report.json`` beside it, and raise if it is invalid."""
    # Imported here: pyarrow costs every DAG parse and every other task's start-up a few tenths of a second.
    from zoho_crm.validation import Problem, validate_csv, validate_ics

    path = Path(page["extracted_path"])
    if page["file_type"] == "ics":
        report = validate_ics(path, expected_count=page.get("count"))
    else:
        report = validate_csv(
            path, fields=fields or None, field_metadata=field_metadata, expected_count=page.get("count")
        )
    report.warnings.extend(Problem("archive", warning) for warning in page.get("archive_warnings", []))
    report_path = path.parent / REPORT_NAME
    report.file = path.name  # the report sits beside its file, which moves when the export is published
    report.write_json(report_path)
    if not report.valid:
        raise ExportStepError(
            f"page {page['page']} (job {page['job_id']}) is invalid; files kept in {path.parent}:\n"
            + report.summary()
        )
    return {
        "page": int(page["page"]),
        "job_id": page["job_id"],
        "count": page.get("count"),
        "records": report.records,
        "zip_sha256": page.get("sha256"),
        "file": str(path.relative_to(path.parent.parent)),
        "sha256": page["extracted_sha256"],
        "report": str(report_path.relative_to(path.parent.parent)),
        "valid": True,
        "warnings": len(report.warnings),
    }


def publish_export(
    query: dict[str, Any], pages: list[dict[str, Any]], *, staging: Path, final: Path, run_id: str
) -> dict[str, Any]:
    """Write the manifest, move the export into its final place (replacing an older one) and clean up."""
    ordered = sorted(pages, key=lambda page: page["page"])
    numbers = [page["page"] for page in ordered]
    if numbers != list(range(1, len(ordered) + 1)):
        raise ExportStepError(f"pages {numbers} are not the complete sequence 1..{len(ordered)}: rerun the export.")
    manifest = {
        "module": query["module"],
        "file_type": query["file_type"],
        "fields": query.get("fields") or [],
        "criteria": query.get("criteria"),
        "cvid": query.get("cvid"),
        "time_range": query.get("time_range"),
        "run_key": query["run_key"],
        "run_id": run_id,
        "pages": ordered,
        "page_count": len(ordered),
        "record_count": sum(page["records"] for page in ordered),
        "job_ids": [page["job_id"] for page in ordered],
        "valid": all(page["valid"] for page in ordered),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    export = staging / EXPORT_SUBDIR
    export.mkdir(parents=True, exist_ok=True)
    write_json_atomic(export / MANIFEST_NAME, manifest)
    publish(export, final)
    shutil.rmtree(staging, ignore_errors=True)
    return {**manifest, "path": str(final), "manifest": str(final / MANIFEST_NAME)}
