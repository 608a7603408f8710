"""Where an export run writes, as store keys: run keys, staging, version names, the pointer; retention settings.

Layout of a store (``$ZOHO_EXPORT_DIR``, default ``./output``, for the local store)::

    {module}/{run_key}/manifest.json                        the pointer: the manifest of the current version
    {module}/{run_key}/v{stamp}-{hex}/page_0001/{job_id}.csv + report.json   one version per publish
    .staging/{module}/{run_key}@{run_hash}/downloads|export|checks/...     work in progress, never read by consumers

Keys are ``/``-separated and relative to the store (see :mod:`zoho_crm.export.storage`). A run works only in its
staging area; what its ``export/`` folder holds is what a publish places into a fresh version, and then the
pointer is replaced in one atomic step (``os.replace``; a single object write on a bucket), so a reader of
``manifest.json`` sees the previous complete export or the new one, never a mix, and a rerun or backfill of the
same interval replaces its output instead of adding to it. Page paths in the manifest are relative to the run
key. :class:`Retention` says how long what no pointer names is kept.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

STAGING = ".staging"
POINTER_NAME = "manifest.json"
DOWNLOADS_SUBDIR = "downloads"
"""Where a run's zips are downloaded, in its staging area (never published)."""
EXPORT_SUBDIR = "export"
"""What a run publishes, in its staging area: each page's files under ``export/page_NNNN/``."""
INTERVAL_RUN_TYPES = ("scheduled", "backfill")
MANUAL_PREFIX = "manual--"
MANUAL_ID_CHARS = 80  # of the sanitised run id in a manual key; the hash beside it keeps the key unique
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_VERSION = re.compile(r"^v(\d{8}T\d{6}Z)-[0-9a-f]{6}$")

RETENTION_HOURS_ENV = "ZOHO_EXPORT_RETENTION_HOURS"
STAGING_RETENTION_DAYS_ENV = "ZOHO_EXPORT_STAGING_RETENTION_DAYS"
MANUAL_RETENTION_DAYS_ENV = "ZOHO_EXPORT_MANUAL_RETENTION_DAYS"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_STAMP_FORMAT)


def run_key(run_type: str, run_id: str, interval_start: datetime | None, interval_end: datetime | None) -> str:
    """Name a run's output: its data interval for scheduled and backfill runs, its own run id otherwise.

    A manual key is the run id made file-name safe and cut to :data:`MANUAL_ID_CHARS`, plus a hash of the whole
    run id: two run ids never share a key (``a/b`` and ``a:b`` differ) and the key stays far below 255 bytes.
    """
    if run_type in INTERVAL_RUN_TYPES and interval_start and interval_end:
        return f"{_stamp(interval_start)}--{_stamp(interval_end)}"
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id)[:MANUAL_ID_CHARS].strip("-.") or "run"
    return f"{MANUAL_PREFIX}{readable}--{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


def final_key(module: str, key: str) -> str:
    """The run key's place in a store: it holds the pointer ``manifest.json`` and the published versions.

    :param module: the module's API name.
    :param key: the run key (:func:`run_key`).
    """
    return f"{module}/{key}"


def staging_key(module: str, key: str, run_id: str) -> str:
    """The run's private work area in a store (stable across task retries of the same run).

    :param module: the module's API name.
    :param key: the run key (:func:`run_key`).
    :param run_id: the DAG run id.
    """
    run_hash = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"{STAGING}/{module}/{key}@{run_hash}"


def page_dir_name(page: int) -> str:
    """A page's folder: ``page_0001``."""
    return f"page_{page:04d}"


def new_version_name(moment: datetime | None = None) -> str:
    """A fresh version directory name: ``v{UTC stamp}-{6 random hex}`` (its time is in its name)."""
    return f"v{_stamp(moment or datetime.now(UTC))}-{secrets.token_hex(3)}"


def version_time(name: str) -> datetime | None:
    """When a version directory was started (from its name), or None if ``name`` is not a version."""
    match = _VERSION.match(name)
    return datetime.strptime(match.group(1), _STAMP_FORMAT).replace(tzinfo=UTC) if match else None


@dataclass(frozen=True)
class Retention:
    """How long a store's ``prune`` keeps what the pointers no longer name (see the README, "Output")."""

    versions: timedelta = timedelta(hours=24)  # a replaced or abandoned version, after it stopped being current
    staging: timedelta = timedelta(days=7)  # a staging directory nothing has written to (failed, abandoned runs)
    manual: timedelta | None = timedelta(days=30)  # a manual export, after its publish (None: kept forever)

    @classmethod
    def from_env(cls) -> Retention:
        """The defaults, changed by ``ZOHO_EXPORT_RETENTION_HOURS``, ``..._STAGING_RETENTION_DAYS`` and
        ``..._MANUAL_RETENTION_DAYS`` (0 keeps manual exports forever); raises ValueError on a bad value."""
        default = cls()
        versions = _env_number(RETENTION_HOURS_ENV)
        staging = _env_number(STAGING_RETENTION_DAYS_ENV)
        manual = _env_number(MANUAL_RETENTION_DAYS_ENV)
        return cls(
            versions=default.versions if versions is None else timedelta(hours=versions),
            staging=default.staging if staging is None else timedelta(days=staging),
            manual=default.manual if manual is None else (timedelta(days=manual) if manual > 0 else None),
        )


def _env_number(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise ValueError(f"{name} must be a number of at least 0, not {raw!r}")
    return value
