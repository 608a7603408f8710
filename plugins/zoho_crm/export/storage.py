"""The storage seam: where export runs are staged and published, behind one small interface.

:class:`ExportStore` is all the export steps know of storage. Keys are ``/``-separated and relative to the store
(see :mod:`zoho_crm.export.layout` for the layout). A run's staging area is a local work area (the download task
writes its zips there and the page steps read and write the page files in it); publishing places the listed staged
files into a fresh version and then replaces the run key's pointer in one atomic step. :class:`LocalExportStore`
keeps everything under one directory; :class:`zoho_crm.export.object_store.ObjectExportStore` keeps it in a bucket
(``s3://...``, ``gs://...``, any fsspec URL), and :func:`open_store` picks one by the location.

Files cross the seam the same way on every store: :meth:`ExportStore.write_local` gives a step a local folder whose
files land under a key when the step succeeds, :meth:`ExportStore.read_local` a local copy of a key's file or folder
(on disk both are the store's own paths, no copy); ``upload``/``download``/``open`` move single files in bounded
memory. :meth:`ExportStore.local_path` exists on local stores only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

from zoho_crm.export.layout import MANUAL_PREFIX, POINTER_NAME, STAGING, Retention, version_time
from zoho_crm.export.records import ExportStepError
from zoho_crm.files.atomic import create_temp, fsync_path, write_json_atomic
from zoho_crm.files.digest import file_sha256

log = logging.getLogger(__name__)

EXPORT_DIR_ENV = "ZOHO_EXPORT_DIR"
"""The deployment's store: a local directory or an object-storage URL (``s3://[conn_id@]bucket/prefix``)."""
EXPORT_CONN_ID_ENV = "ZOHO_EXPORT_CONN_ID"
"""The Airflow connection with the credentials of an object-storage ``$ZOHO_EXPORT_DIR`` without ``conn_id@``."""
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

    def current_manifest(self, final: str) -> dict[str, Any] | None:
        """The manifest the run key's pointer holds (None without a readable pointer).

        :param final: the run key's place (:func:`zoho_crm.export.layout.final_key`).
        """
        try:
            current = self.read_json(f"{final}/{POINTER_NAME}")
        except (OSError, ValueError):
            return None
        return current if isinstance(current, dict) else None

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

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """The file at ``key``, open for reading in binary (streamed; raises FileNotFoundError when absent).

        :param key: a file's key.
        """

    @abstractmethod
    def upload(self, local: Path, key: str) -> str:
        """Place the local file ``local`` at ``key`` (whole or not at all, streamed) and return its sha256, checked
        on what was stored. Raises :class:`ExportStepError` if the stored file differs.

        :param local: the local file.
        :param key: its key in the store.
        """

    @abstractmethod
    def download(self, key: str, local: Path) -> str:
        """Copy the file at ``key`` to the local file ``local`` (streamed; ``local`` appears whole) and return its
        sha256. Raises FileNotFoundError when ``key`` is absent.

        :param key: a file's key.
        :param local: where to write it (its folder is created).
        """

    @abstractmethod
    def read_local(self, key: str) -> AbstractContextManager[Path]:
        """A local copy of the file or folder at ``key`` for the ``with`` block (raises FileNotFoundError when
        nothing is there). On disk it is the store's own path; on an object store a download into a private scratch
        folder, removed after the block. Treat it as read-only.

        :param key: a file's or folder's key.
        """

    @abstractmethod
    def write_local(self, key: str) -> AbstractContextManager[Path]:
        """A local folder for the ``with`` block whose files end up under ``key`` when the block succeeds.

        On disk it is the store's own folder (created; files written there stay, also after an error); on an
        object store a private scratch folder whose files are uploaded (each checked) after the block and which
        is then removed, so nothing is uploaded when the block fails.

        :param key: a folder's key.
        """


def open_store(location: str, *, conn_id: str | None = None) -> ExportStore:
    """The store at ``location`` (an :attr:`ExportStore.location`): a local directory (or ``file://`` URL), else an
    object-storage URL such as ``s3://bucket/prefix`` or ``s3://conn_id@bucket/prefix``.

    :param location: the store's location, e.g. ``/srv/exports`` or ``s3://aws_exports@my-bucket/zoho``.
    :param conn_id: the Airflow connection of an object store whose URL names none (ignored for directories).
    """
    if "://" not in location:
        return LocalExportStore(Path(location))
    parts = urlsplit(location)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"export store {location!r}: a file:// URL names a local path: file:///srv/exports")
        return LocalExportStore(Path(parts.path))
    # Imported here: fsspec and the storage providers only when a URL is used.
    from zoho_crm.export.object_store import ObjectExportStore

    return ObjectExportStore(location, conn_id=conn_id)


def default_store() -> ExportStore:
    """The deployment's store: ``$ZOHO_EXPORT_DIR`` (default ``./output``), a local directory or an object-storage
    URL whose credentials are the Airflow connection of its ``conn_id@`` part or of ``$ZOHO_EXPORT_CONN_ID``."""
    return open_store(os.environ.get(EXPORT_DIR_ENV) or DEFAULT_EXPORT_DIR,
                      conn_id=os.environ.get(EXPORT_CONN_ID_ENV) or None)


def check_key(key: str, where: str) -> str:
    """``key`` if it names a place inside a store, else :class:`ExportStepError` (empty, absolute, ``..``, ``.``
    or empty parts).

    :param key: the key.
    :param where: the store, for the message.
    """
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ExportStepError(f"{key!r} is not a path inside the export store {where}.")
    return key


def plan_run_key(
    name: str, entries: dict[str, bool], read_current: Callable[[], str | None], retention: Retention, now: datetime
) -> tuple[bool, list[str]]:
    """What retention removes of one run key, the same on every store: ``(True, [])`` for the whole run key (an
    expired manual export), else the entries to remove (replaced or abandoned versions, old page folders).

    :param name: the run key.
    :param entries: its entries, each name with whether it is a folder.
    :param read_current: reads the version its pointer names (called only when something may go).
    :param retention: what to keep.
    :param now: the time to judge by.
    """
    versions = {entry: version_time(entry) for entry in entries}
    count = sum(1 for when in versions.values() if when)
    legacy = any(map(_LEGACY_PAGE.match, entries))
    expires = name.startswith(MANUAL_PREFIX) and retention.manual is not None
    if not expires and not legacy and (count == 0 or (count == 1 and POINTER_NAME in entries)):
        return False, []  # the common case: one published version and nothing else; no pointer to read
    current = read_current()
    published = versions.get(current) if current else None
    if (expires and published and retention.manual is not None
            and all(now - when >= retention.manual for when in versions.values() if when)):
        return True, []
    removed = []
    for entry, is_dir in entries.items():
        started = versions[entry]
        if entry == current or not (started or _LEGACY_PAGE.match(entry)) or not is_dir:
            continue
        # Not current since the current version was published (or, for an attempt, since it started).
        idle_since = max(filter(None, (published, started)), default=None)
        if idle_since is None:  # an old page directory beside no versioned pointer: not ours to judge
            continue
        if now - idle_since >= retention.versions:
            removed.append(entry)
    return False, removed


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

    def open(self, key: str) -> IO[bytes]:
        return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it

    def upload(self, local: Path, key: str) -> str:
        target = self._path(key)
        if Path(local).resolve() == target:
            return file_sha256(target)  # written in place (write_local)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = create_temp(target.parent, f".{target.name}.")
        try:
            with os.fdopen(handle, "wb") as copy, open(local, "rb") as source:
                shutil.copyfileobj(source, copy)
                copy.flush()
                os.fsync(copy.fileno())
            os.replace(temp, target)
        finally:
            Path(temp).unlink(missing_ok=True)
        sent, stored = file_sha256(Path(local)), file_sha256(target)
        if stored != sent:
            raise ExportStepError(f"{target}: the copy differs from {local} (sha256 {stored}, sent {sent}): retry.")
        return stored

    def download(self, key: str, local: Path) -> str:
        source, local = self._path(key), Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = create_temp(local.parent, f".{local.name}.")
        try:
            with os.fdopen(handle, "wb") as copy, open(source, "rb") as reader:
                shutil.copyfileobj(reader, copy)
            os.replace(temp, local)
        finally:
            Path(temp).unlink(missing_ok=True)
        return file_sha256(local)

    @contextmanager
    def read_local(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.exists():
            raise FileNotFoundError(f"{path}: nothing is there")
        yield path

    @contextmanager
    def write_local(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        path.mkdir(parents=True, exist_ok=True)
        yield path

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
    whole, names = plan_run_key(run_dir.name, {name: entry.is_dir() for name, entry in entries.items()},
                                lambda: _current_version(run_dir), retention, now)
    if whole:
        (run_dir / POINTER_NAME).unlink(missing_ok=True)  # readers lose the export whole, never half of it
        shutil.rmtree(run_dir)
        return [run_dir]
    removed = []
    for name in names:
        shutil.rmtree(entries[name])
        removed.append(entries[name])
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
