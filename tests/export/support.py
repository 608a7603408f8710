"""Helpers of the export tests: pages made by the real download, unzip and validate steps; a publish; a reader."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.validation.builders import FIELDS, good_csv, write_zip
from zoho_crm.export.layout import DOWNLOADS_SUBDIR, run_key
from zoho_crm.export.records import ExportQuery, ExportRun, PageRecord
from zoho_crm.export.steps import unzip_page, validate_page
from zoho_crm.export.storage import LocalExportStore
from zoho_crm.files.digest import file_sha256

INTERVAL = run_key("scheduled", "scheduled__x", datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC))


def export_run(root: Path, key: str, run_id: str, query: ExportQuery | None = None, **changes: Any) -> ExportRun:
    """A run of ``query`` (default: Leads as CSV) under run key ``key``, in a local store at ``root``."""
    return ExportRun(query or ExportQuery("Leads"), run_key=key, run_id=run_id, store=str(root), **changes)


def staging(run: ExportRun) -> Path:
    """The run's staging area on disk."""
    return LocalExportStore(Path(run.store)).local_path(run.staging)


def final(run: ExportRun) -> Path:
    """The run key's directory on disk (pointer and versions)."""
    return LocalExportStore(Path(run.store)).local_path(run.final)


def download(run: ExportRun, page: int, job_id: str, data: bytes, file_type: str, count: int) -> dict[str, Any]:
    """A downloaded page as the download task leaves it: the zip in the run's download dir, its XCom."""
    downloads = staging(run) / DOWNLOADS_SUBDIR
    downloads.mkdir(parents=True, exist_ok=True)
    archive = write_zip(downloads / f"{job_id}.zip", [(f"{job_id}.{file_type}", data)])
    return {"page": page, "job_id": job_id, "file_type": file_type, "key": archive.name, "path": str(archive),
            "count": count, "sha256": file_sha256(archive)}


def extracted(run: ExportRun, page: int, job_id: str, csv: bytes | None = None, count: int = 3) -> PageRecord:
    """Download (a zip in staging), unzip and extract one page; returns the unzip step's page record."""
    return unzip_page(download(run, page, job_id, csv or good_csv(count, first=page * 1000), "csv", count), run)


def validated(run: ExportRun, page: int, job_id: str, count: int = 3) -> PageRecord:
    return validate_page(extracted(run, page, job_id, count=count), run, field_metadata=FIELDS)


def read_export(final: Path) -> tuple[dict[str, Any], set[str]]:
    """What a reader does: the pointer, then every file it lists, each checked; returns (manifest, listed files)."""
    manifest = json.loads((final / "manifest.json").read_text())
    listed = {"manifest.json"}
    for page in manifest["pages"]:
        assert file_sha256(final / page["file"]) == page["sha256"], page
        assert json.loads((final / page["report"]).read_text())["valid"], page
        for stored in page["files"].values():
            assert file_sha256(final / stored["path"]) == stored["sha256"], page
        assert {page["file"], page["report"]} <= {stored["path"] for stored in page["files"].values()}
        listed |= {page["file"], page["report"]}
    assert len(manifest["pages"]) == manifest["page_count"]
    return manifest, listed


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
