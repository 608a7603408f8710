"""Where an export run writes: run keys, staging directories and the atomic publish of a finished run.

Layout under ``$ZOHO_EXPORT_DIR`` (default ``./output``)::

    {module}/{run_key}/manifest.json
    {module}/{run_key}/page_0001/{job_id}.csv + report.json
    .staging/{module}/{run_key}@{run_hash}/...   work in progress, never read by consumers

A run works only in its staging directory; :func:`publish` moves the finished tree into place with renames,
so ``{module}/{run_key}`` is either the previous complete export or the new complete one, never a mix, and a
rerun or backfill of the same interval replaces its output instead of adding to it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

EXPORT_DIR_ENV = "ZOHO_EXPORT_DIR"
STAGING = ".staging"
INTERVAL_RUN_TYPES = ("scheduled", "backfill")


def export_root() -> Path:
    """The export root: ``$ZOHO_EXPORT_DIR`` or ``./output``."""
    return Path(os.environ.get(EXPORT_DIR_ENV) or "output").resolve()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_key(run_type: str, run_id: str, interval_start: datetime | None, interval_end: datetime | None) -> str:
    """Name a run's output: its data interval for scheduled and backfill runs, its own run id otherwise."""
    if run_type in INTERVAL_RUN_TYPES and interval_start and interval_end:
        return f"{_stamp(interval_start)}--{_stamp(interval_end)}"
    return "manual--" + re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-")


def final_dir(module: str, key: str, root: Path | None = None) -> Path:
    return (root or export_root()) / module / key


def staging_dir(module: str, key: str, run_id: str, root: Path | None = None) -> Path:
    """The run's private work directory (stable across task retries of the same run)."""
    run_hash = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return (root or export_root()) / STAGING / module / f"{key}@{run_hash}"


def page_dir_name(page: int) -> str:
    return f"page_{page:04d}"


def publish(staging: Path, final: Path) -> Path:
    """Replace ``final`` by ``staging`` with renames on one filesystem; the old output is removed afterwards."""
    final.parent.mkdir(parents=True, exist_ok=True)
    retired = staging.parent / f".retired-{uuid.uuid4().hex}"
    if final.exists():
        os.replace(final, retired)
    os.replace(staging, final)
    shutil.rmtree(retired, ignore_errors=True)
    return final
