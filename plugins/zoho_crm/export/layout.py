"""Where an export run writes: run keys, staging, version directories, the pointer, and retention.

Layout under ``$ZOHO_EXPORT_DIR`` (default ``./output``)::

    {module}/{run_key}/manifest.json                        the pointer: the manifest of the current version
    {module}/{run_key}/v{stamp}-{hex}/page_0001/{job_id}.csv + report.json   one version per publish
    .staging/{module}/{run_key}@{run_hash}/...              work in progress, never read by consumers

A run works only in its staging directory. Publishing puts exactly the files its manifest lists into a fresh
version directory and then replaces the pointer in one atomic step (``os.replace``; a single object write on a
bucket), so a reader of ``manifest.json`` sees the previous complete export or the new one, never a mix, and a
rerun or backfill of the same interval replaces its output instead of adding to it. Page paths in the manifest
are relative to the run-key directory. :func:`prune` removes what no pointer needs any more.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

EXPORT_DIR_ENV = "ZOHO_EXPORT_DIR"
STAGING = ".staging"
POINTER_NAME = "manifest.json"
INTERVAL_RUN_TYPES = ("scheduled", "backfill")
MANUAL_PREFIX = "manual--"
MANUAL_ID_CHARS = 80  # of the sanitised run id in a manual key; the hash beside it keeps the key unique
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_VERSION = re.compile(r"^v(\d{8}T\d{6}Z)-[0-9a-f]{6}$")
_LEGACY_PAGE = re.compile(r"^page_\d{4,}$")  # pages published directly under the run key by older releases

RETENTION_HOURS_ENV = "ZOHO_EXPORT_RETENTION_HOURS"
STAGING_RETENTION_DAYS_ENV = "ZOHO_EXPORT_STAGING_RETENTION_DAYS"
MANUAL_RETENTION_DAYS_ENV = "ZOHO_EXPORT_MANUAL_RETENTION_DAYS"


def export_root() -> Path:
    """The export root: ``$ZOHO_EXPORT_DIR`` or ``./output``."""
    return Path(os.environ.get(EXPORT_DIR_ENV) or "output").resolve()


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


def final_dir(module: str, key: str, root: Path | None = None) -> Path:
    """The run key's directory: it holds the pointer ``manifest.json`` and the published versions."""
    return (root or export_root()) / module / key


def staging_dir(module: str, key: str, run_id: str, root: Path | None = None) -> Path:
    """The run's private work directory (stable across task retries of the same run)."""
    run_hash = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return (root or export_root()) / STAGING / module / f"{key}@{run_hash}"


def page_dir_name(page: int) -> str:
    return f"page_{page:04d}"


def new_version_name(moment: datetime | None = None) -> str:
    """A fresh version directory name: ``v{UTC stamp}-{6 random hex}`` (its time is in its name)."""
    return f"v{_stamp(moment or datetime.now(UTC))}-{secrets.token_hex(3)}"


def version_time(name: str) -> datetime | None:
    """When a version directory was started (from its name), or None if ``name`` is not a version."""
    match = _VERSION.match(name)
    return datetime.strptime(match.group(1), _STAMP_FORMAT).replace(tzinfo=UTC) if match else None


def current_version(run_dir: Path) -> str | None:
    """The version the run key's pointer names (None without a readable pointer)."""
    try:
        return str(json.loads((run_dir / POINTER_NAME).read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Retention:
    """How long :func:`prune` keeps what the pointers no longer name (see the README, "Output")."""

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


def prune(root: Path, module: str, retention: Retention, now: datetime | None = None) -> list[Path]:
    """Remove what no pointer needs any more under ``root`` for ``module``; return what was removed.

    * a version directory the pointer does not name, once it has not been current for ``retention.versions``
      (a replaced version: since the current one was published; an abandoned or crashed attempt: since it started),
      and pages an older release published directly under the run key, by the same rule;
    * a manual run key whose current version was published more than ``retention.manual`` ago (pointer first);
    * a staging directory of the module in which nothing changed for ``retention.staging``.

    Best effort: a file system error is logged and skipped, never raised (the export is already published).
    """
    now = now or datetime.now(UTC)
    removed: list[Path] = []
    module_dir = root / module
    for run_dir in _subdirs(module_dir):
        try:
            removed += _prune_run_key(run_dir, retention, now)
        except OSError as err:
            log.warning("Retention skipped %s: %s", run_dir, err)
    for work in _subdirs(root / STAGING / module):
        try:
            if now - _newest_change(work) >= retention.staging:
                shutil.rmtree(work)
                removed.append(work)
        except OSError as err:
            log.warning("Retention skipped %s: %s", work, err)
    if removed:
        log.info("Retention removed %d old version(s), export(s) or staging dir(s) of %s", len(removed), module)
    return removed


def _prune_run_key(run_dir: Path, retention: Retention, now: datetime) -> list[Path]:
    entries = {entry.name: entry for entry in run_dir.iterdir()}
    versions = {name: version_time(name) for name in entries}
    count = sum(1 for when in versions.values() if when)
    legacy = any(map(_LEGACY_PAGE.match, entries))
    expires = run_dir.name.startswith(MANUAL_PREFIX) and retention.manual is not None
    if not expires and not legacy and (count == 0 or (count == 1 and POINTER_NAME in entries)):
        return []  # the common case: one published version and nothing else; no pointer to read
    current = current_version(run_dir)
    published = versions.get(current) if current else None
    if (expires and published and retention.manual is not None
            and all(now - when >= retention.manual for when in versions.values() if when)):
        (run_dir / POINTER_NAME).unlink(missing_ok=True)  # readers lose the export whole, never half of it
        shutil.rmtree(run_dir)
        return [run_dir]
    removed = []
    for name, entry in entries.items():
        started = versions[name]
        if name == current or not (started or _LEGACY_PAGE.match(name)) or not entry.is_dir():
            continue
        # Not current since the current version was published (or, for an attempt, since it started).
        idle_since = max(filter(None, (published, started)), default=None)
        if idle_since is None:  # an old page directory beside no versioned pointer: not ours to judge
            continue
        if now - idle_since >= retention.versions:
            shutil.rmtree(entry)
            removed.append(entry)
    if removed and not any(run_dir.iterdir()):
        run_dir.rmdir()
    return removed


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [entry for entry in folder.iterdir() if entry.is_dir()]
    except FileNotFoundError:
        return []


def _newest_change(folder: Path) -> datetime:
    """The latest modification time of ``folder`` or anything under it (UTC)."""
    newest = folder.stat().st_mtime
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
            except FileNotFoundError:
                continue
    return datetime.fromtimestamp(newest, UTC)
