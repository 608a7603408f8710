"""The export's file steps after download: unzip a page, validate it, write the manifest and publish.

Plain functions (no Airflow): the DAG's tasks call them, tests can too. Bad data raises
:class:`ExportStepError` with a summary of the first problems and where the files are kept for inspection.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoho_crm.export.layout import Retention, new_version_name, page_dir_name, prune
from zoho_crm.files.archive import ArchiveError, extract_page
from zoho_crm.files.atomic import fsync_path, write_json_atomic
from zoho_crm.files.digest import file_sha256

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
    from zoho_crm.validation.export_checks import page_index_prefix

    path = Path(page["extracted_path"])
    index = page_index_prefix(path, page["extracted_sha256"])  # sorted ids for the export check
    if page["file_type"] == "ics":  # an override's series may be on another page: resolved by check_export
        report = validate_ics(path, expected_count=page.get("count"), orphan_overrides="note", index_to=index)
    else:
        report = validate_csv(
            path, fields=fields or None, field_metadata=field_metadata, expected_count=page.get("count"),
            index_to=index,
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
    query: dict[str, Any],
    pages: list[dict[str, Any]],
    *,
    staging: Path,
    final: Path,
    run_id: str,
    retention: Retention | None = None,
) -> dict[str, Any]:
    """Publish the pages as a new version under ``final``, point ``final/manifest.json`` at it, clean up.

    Exactly the files the manifest lists (each page's file and report) are placed in a fresh version directory and
    flushed; then the pointer is replaced in one atomic step. Nothing else in staging is ever published. A crash
    before the pointer write leaves the previous export current (retention removes the half-made version) and a
    retry publishes again from staging, which is removed only afterwards. Old versions, abandoned staging and
    expired manual exports are then removed by ``retention`` (default: from the environment).
    """
    retention = retention or Retention.from_env()  # a bad setting fails here, before anything is written
    ordered = sorted(pages, key=lambda page: page["page"])
    numbers = [page["page"] for page in ordered]
    if numbers != list(range(1, len(ordered) + 1)):
        raise ExportStepError(f"pages {numbers} are not the complete sequence 1..{len(ordered)}: rerun the export.")
    pointer = final / MANIFEST_NAME
    published = _already_published(pointer, ordered, run_id)
    if published is None:
        from zoho_crm.validation.export_checks import check_export  # ids and overrides across pages

        warnings = check_export(ordered, staging / EXPORT_SUBDIR, query["file_type"], error=ExportStepError,
                                partial=bool(query.get("time_range") or query.get("criteria") or query.get("cvid")))
        now = datetime.now(UTC)
        version = new_version_name(now)
        manifest = {
            "module": query["module"],
            "file_type": query["file_type"],
            "fields": query.get("fields") or [],
            "criteria": query.get("criteria"),
            "cvid": query.get("cvid"),
            "time_range": query.get("time_range"),
            "interval_gap": query.get("gap"),
            "run_key": query["run_key"],
            "run_id": run_id,
            "version": version,
            "pages": [{**page, "file": f"{version}/{page['file']}", "report": f"{version}/{page['report']}"}
                      for page in ordered],
            "page_count": len(ordered),
            "record_count": sum(page["records"] for page in ordered),
            "job_ids": [page["job_id"] for page in ordered],
            "valid": all(page["valid"] for page in ordered),
            "warnings": warnings,
            "created_at": now.isoformat(timespec="seconds"),
        }
        try:
            _write_version(staging / EXPORT_SUBDIR, final / version, ordered)
        except Exception:
            shutil.rmtree(final / version, ignore_errors=True)  # never pointed at; a hard crash leaves it to prune
            raise
        write_json_atomic(pointer, manifest, temp_dir=staging, durable=True)  # the one step readers see
        published = manifest
    shutil.rmtree(staging, ignore_errors=True)
    prune(final.parent.parent, final.parent.name, retention)
    return {**published, "path": str(final), "manifest": str(pointer)}


def _already_published(pointer: Path, pages: list[dict[str, Any]], run_id: str) -> dict[str, Any] | None:
    """The current manifest if it is this very publish (a retry after the pointer was written), else None."""
    try:
        current = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(current, dict) and current.get("run_id") == run_id and "version" in current:
        if _identities(current.get("pages") or []) == _identities(pages):
            return current
    return None


def _identities(pages: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [(page.get("page"), page.get("job_id"), page.get("sha256")) for page in pages]


def _write_version(export: Path, version_dir: Path, pages: list[dict[str, Any]]) -> None:
    """Place each page's file and report from ``export`` into ``version_dir``, check them, flush them to disk.

    Files are hard-linked (copied where links are impossible), so staging stays whole until the pointer is written.
    """
    version_dir.mkdir(parents=True)
    for page in pages:
        for key in ("file", "report"):
            relative = Path(page[key])
            if relative.is_absolute() or ".." in relative.parts:
                raise ExportStepError(f"page {page['page']}: {page[key]!r} is not a path inside the export.")
            source, target = export / relative, version_dir / relative
            if not source.is_file():
                raise ExportStepError(
                    f"page {page['page']} (job {page['job_id']}): {source} is missing: clear the run's unzip and "
                    "validate tasks to extract it again."
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
            fsync_path(target)
        if file_sha256(version_dir / page["file"]) != page["sha256"]:
            raise ExportStepError(
                f"page {page['page']} (job {page['job_id']}): {export / page['file']} is not the validated file "
                "(sha256 differs): clear the run's unzip and validate tasks."
            )
    for folder in sorted({(version_dir / page["file"]).parent for page in pages}):
        fsync_path(folder)
    fsync_path(version_dir)
    fsync_path(version_dir.parent)
