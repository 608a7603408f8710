"""The storage seam: where export runs are staged and published, behind one small interface.

:class:`ExportStore` is all the export steps know of storage. Keys are ``/``-separated and relative to the store
(see :mod:`zoho_crm.export.layout` for the layout). A run's staging area is a local work area (the download task
writes its zips there and the page steps read and write the page files in it); publishing places the listed staged
files into a fresh version and then replaces the run key's pointer in one atomic step. :class:`LocalExportStore`
keeps everything under one directory; another backend (object storage) is one more subclass and a line in
:func:`open_store`, no step changes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from zoho_crm.export.layout import MANUAL_PREFIX, POINTER_NAME, STAGING, Retention, version_time
from zoho_crm.export.records import ExportStepError
from zoho_crm.files.atomic import fsync_path, write_json_atomic
from zoho_crm.files.digest import file_sha256

log = logging.getLogger(__name__)

EXPORT_DIR_ENV = "ZOHO_EXPORT_DIR"
DEFAULT_EXPORT_DIR = "output"
_LEGACY_PAGE = re.compile(r"^page_\d{4,}$")  # pages published directly under the run key by older releases


@dataclass(frozen=True)
class Placement:
    """One staged file to publish: from ``source`` (staging key) to ``target`` (key in the new version).

    :param source: the staged file's key.
    :param target: its key in the version (under ``{final}/{version}/``).
    :param sha256: its digest, checked once placed.
    :param owner: what it belongs to, for messages (``page 1 (job 1001)``).
    """

    source: str
    target: str
    sha256: str
    owner: str


class ExportStore(ABC):
    """Where export runs are staged and published (keys relative to the store)."""

    @property
    @abstractmethod
    def location(self) -> str:
        """What :func:`open_store` opens this store again from (a run carries it across tasks in XCom)."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """The local path of a staging key (file or folder), for steps that read or write staged files.

        :param key: a key in a run's staging area.
        """

    @abstractmethod
    def write_json(self, key: str, payload: Any) -> None:
        """Write ``payload`` as JSON at ``key`` atomically: readers see the old content or the new one.

        :param key: the file's key.
        :param payload: JSON-serialisable data.
        """

    @abstractmethod
    def read_json(self, key: str) -> Any:
        """The JSON at ``key``; raises FileNotFoundError when there is none, ValueError when it is not JSON.

        :param key: the file's key.
        """

    @abstractmethod
    def current_manifest(self, final: str) -> dict[str, Any] | None:
        """The manifest the run key's pointer holds (None without a readable pointer).

        :param final: the run key's place (:func:`zoho_crm.export.layout.final_key`).
        """

    @abstractmethod
    def publish_version(
        self, final: str, version: str, files: Sequence[Placement], manifest: dict[str, Any], *, staging: str
    ) -> None:
        """Place exactly ``files`` into version ``version`` of ``final``, check and flush them, then replace the
        pointer with ``manifest`` in one atomic step. A failure before the pointer write leaves the previous
        export current and removes the half-made version. Raises :class:`ExportStepError` for a missing or
        changed file.

        :param final: the run key's place.
        :param version: the new version's name (:func:`zoho_crm.export.layout.new_version_name`).
        :param files: the staged files and where they go; every target is inside the version.
        :param manifest: the pointer's new content.
        :param staging: the run's staging area (scratch space for the pointer write).
        """

    @abstractmethod
    def remove(self, key: str) -> None:
        """Remove everything under ``key`` (a run's staging area once published); nothing there is fine.

        :param key: a folder's key.
        """

    @abstractmethod
    def prune(self, module: str, retention: Retention, now: datetime | None = None) -> list[str]:
        """Remove what no pointer of ``module`` needs any more (see :class:`Retention`); return the removed keys.
        Best effort: a storage error is logged and skipped, never raised (the export is already published).

        :param module: the module's API name.
        :param retention: how long replaced versions, idle staging areas and manual exports are kept.
        :param now: the time to judge by (default: now).
        """

    @abstractmethod
    def address(self, key: str) -> str:
        """Where a reader finds ``key`` (a local path here; a URL for a remote store).

        :param key: a file's or folder's key.
        """


def open_store(location: str) -> ExportStore:
    """The store at ``location`` (an :attr:`ExportStore.location`): a local directory today.

    :param location: the store's location, e.g. ``/srv/exports``.
    """
    if "://" in location:
        raise ValueError(f"export store {location!r}: only local directories are supported; give a path")
    return LocalExportStore(Path(location))


def default_store() -> ExportStore:
    """The deployment's store: the local directory ``$ZOHO_EXPORT_DIR`` (default ``./output``)."""
    return LocalExportStore(Path(os.environ.get(EXPORT_DIR_ENV) or DEFAULT_EXPORT_DIR))


class LocalExportStore(ExportStore):
    """Everything under one local directory: versions by hard links (copies where links are impossible), each
    file and folder flushed, the pointer replaced with ``os.replace``.

    :param root: the export directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    @property
    def location(self) -> str:
        return str(self.root)

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def write_json(self, key: str, payload: Any) -> None:
        write_json_atomic(self._path(key), payload)

    def read_json(self, key: str) -> Any:
        return json.loads(self._path(key).read_text(encoding="utf-8"))

    def current_manifest(self, final: str) -> dict[str, Any] | None:
        try:
            current = self.read_json(f"{final}/{POINTER_NAME}")
        except (OSError, ValueError):
            return None
        return current if isinstance(current, dict) else None

    def publish_version(
        self, final: str, version: str, files: Sequence[Placement], manifest: dict[str, Any], *, staging: str
    ) -> None:
        version_dir = self._path(f"{final}/{version}")
        try:
            self._write_version(version_dir, files)
        except Exception:
            shutil.rmtree(version_dir, ignore_errors=True)  # never pointed at; a hard crash leaves it to prune
            raise
        pointer = self._path(f"{final}/{POINTER_NAME}")
        write_json_atomic(pointer, manifest, temp_dir=self._path(staging), durable=True)  # the one step readers see

    def remove(self, key: str) -> None:
        shutil.rmtree(self._path(key), ignore_errors=True)

    def prune(self, module: str, retention: Retention, now: datetime | None = None) -> list[str]:
        now = now or datetime.now(UTC)
        removed: list[Path] = []
        for run_dir in _subdirs(self._path(module)):
            try:
                removed += _prune_run_key(run_dir, retention, now)
            except OSError as err:
                log.warning("Retention skipped %s: %s", run_dir, err)
        for work in _subdirs(self._path(f"{STAGING}/{module}")):
            try:
                if now - _newest_change(work) >= retention.staging:
                    shutil.rmtree(work)
                    removed.append(work)
            except OSError as err:
                log.warning("Retention skipped %s: %s", work, err)
        if removed:
            log.info("Retention removed %d old version(s), export(s) or staging dir(s) of %s", len(removed), module)
        return [path.relative_to(self.root).as_posix() for path in removed]

    def address(self, key: str) -> str:
        return str(self._path(key))

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if not key or relative.is_absolute() or ".." in relative.parts:
            raise ExportStepError(f"{key!r} is not a path inside the export store {self.root}.")
        return self.root.joinpath(*relative.parts)

    def _write_version(self, version_dir: Path, files: Sequence[Placement]) -> None:
        """Place each file into ``version_dir``, check it, flush it; staging stays whole (links or copies)."""
        version_dir.mkdir(parents=True)
        targets = []
        for placement in files:
            source, target = self._placed(placement, version_dir)
            if not source.is_file():
                raise ExportStepError(
                    f"{placement.owner}: {source} is missing: clear the run's unzip and validate tasks to extract "
                    "it again."
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
            fsync_path(target)
            if file_sha256(target) != placement.sha256:
                raise ExportStepError(
                    f"{placement.owner}: {source} is not the validated file (sha256 differs): clear the run's unzip "
                    "and validate tasks."
                )
            targets.append(target)
        for folder in sorted({target.parent for target in targets}):
            fsync_path(folder)
        fsync_path(version_dir)
        fsync_path(version_dir.parent)

    def _placed(self, placement: Placement, version_dir: Path) -> tuple[Path, Path]:
        try:
            source, target = self._path(placement.source), self._path(placement.target)
        except ExportStepError:
            raise ExportStepError(
                f"{placement.owner}: {placement.source!r} -> {placement.target!r} is not a path inside the export."
            ) from None
        if not target.is_relative_to(version_dir):
            raise ExportStepError(f"{placement.owner}: {placement.target!r} is not a path inside the new version.")
        return source, target


def _prune_run_key(run_dir: Path, retention: Retention, now: datetime) -> list[Path]:
    entries = {entry.name: entry for entry in run_dir.iterdir()}
    versions = {name: version_time(name) for name in entries}
    count = sum(1 for when in versions.values() if when)
    legacy = any(map(_LEGACY_PAGE.match, entries))
    expires = run_dir.name.startswith(MANUAL_PREFIX) and retention.manual is not None
    if not expires and not legacy and (count == 0 or (count == 1 and POINTER_NAME in entries)):
        return []  # the common case: one published version and nothing else; no pointer to read
    current = _current_version(run_dir)
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


def _current_version(run_dir: Path) -> str | None:
    """The version the run key's pointer names (None without a readable pointer)."""
    try:
        return str(json.loads((run_dir / POINTER_NAME).read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
