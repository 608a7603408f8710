"""Helpers of the export tests: pages made by the real download, unzip and validate steps; a publish; a reader."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.validation.builders import FIELDS, good_csv, write_zip
from zoho_crm.export.layout import final_dir, run_key, staging_dir
from zoho_crm.export.steps import DOWNLOADS_SUBDIR, publish_export, unzip_page, validate_page
from zoho_crm.files.digest import file_sha256

INTERVAL = run_key("scheduled", "scheduled__x", datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC))


def extracted(staging: Path, page: int, job_id: str, csv: bytes | None = None, count: int = 3) -> dict[str, Any]:
    """Download (a zip in staging), unzip and extract one page; returns the unzip step's page record."""
    downloads = staging / DOWNLOADS_SUBDIR
    downloads.mkdir(parents=True, exist_ok=True)
    archive = write_zip(downloads / f"{job_id}.zip", [(f"{job_id}.csv", csv or good_csv(count, first=page * 1000))])
    download = {"page": page, "job_id": job_id, "file_type": "csv", "path": str(archive), "count": count,
                "sha256": file_sha256(archive)}
    return unzip_page(download, staging)


def validated(staging: Path, page: int, job_id: str, count: int = 3) -> dict[str, Any]:
    return validate_page(extracted(staging, page, job_id, count=count), fields=None, field_metadata=FIELDS)


def publish(root: Path, key: str, run_id: str, pages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    query = {"module": "Leads", "file_type": "csv", "run_key": key}
    return publish_export(query, pages, staging=staging_dir("Leads", key, run_id, root),
                          final=final_dir("Leads", key, root), run_id=run_id, **kwargs)


def read_export(final: Path) -> tuple[dict[str, Any], set[str]]:
    """What a reader does: the pointer, then every file it lists, each checked; returns (manifest, listed files)."""
    manifest = json.loads((final / "manifest.json").read_text())
    listed = {"manifest.json"}
    for page in manifest["pages"]:
        assert file_sha256(final / page["file"]) == page["sha256"], page
        assert json.loads((final / page["report"]).read_text())["valid"], page
        listed |= {page["file"], page["report"]}
    assert len(manifest["pages"]) == manifest["page_count"]
    return manifest, listed


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
