"""The export store on object storage (``s3://``, ``gs://``, any fsspec URL) through ``airflow.sdk.ObjectStoragePath``.

Same layout and same versioned publish as on disk (:mod:`zoho_crm.export.layout`): a publish copies the staged
objects into a fresh version (server side), re-reads each one and checks its sha256, and only then writes the
pointer ``manifest.json``, one object PUT, which readers see whole or not at all. Readers go by the pointer and
never list. A task killed before the pointer write leaves an unnamed version that retention removes (its age is in
its name). Files stream in blocks of :data:`BLOCK_SIZE` both ways, so memory does not grow with the file.

An object store has no local paths: a step works on local scratch files inside one task and hands them over
through the store (:meth:`ObjectExportStore.write_local`, :meth:`ObjectExportStore.read_local`, ``upload``,
``download``). Credentials come from an Airflow connection: the URL's ``conn_id@`` part
(``s3://aws_exports@bucket/prefix``) or ``conn_id``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from zoho_crm.export.layout import POINTER_NAME, STAGING, Retention
from zoho_crm.export.records import ExportStepError
from zoho_crm.export.storage import EXPORT_CONN_ID_ENV, ExportStore, Placement, check_key, plan_run_key

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

BLOCK_SIZE = 5 * 2**20
"""Bytes buffered per transfer: an upload's multipart part (S3's smallest; 10,000 parts make 48 GiB at most), a
download's read-ahead. An upload holds a few copies of one part (buffer, request body, checksums)."""
_CHUNK = 2**20
_TIME_FIELDS = ("LastModified", "mtime", "updated", "last_modified", "created")  # s3fs, local/sftp, gcsfs, adlfs


class ObjectExportStore(ExportStore):
    """Everything under one object-storage URL.

    :param url: the store's URL, e.g. ``s3://bucket/exports`` or ``s3://aws_exports@bucket/exports`` (the
        ``conn_id@`` part names the Airflow connection with the credentials).
    :param conn_id: the Airflow connection, when the URL does not name one (default: the filesystem's own
        credential chain, e.g. boto3's for S3).
    """

    def __init__(self, url: str, *, conn_id: str | None = None) -> None:
        parts = urlsplit(url)
        userinfo, _, bucket = parts.netloc.rpartition("@")
        if not parts.scheme or parts.scheme == "file" or not bucket:
            raise ValueError(
                f"export store {url!r} is not an object-storage URL: give scheme://bucket/prefix, e.g. "
                "s3://my-bucket/zoho (or a local directory)."
            )
        if parts.query or parts.fragment:
            raise ValueError(f"export store {url!r}: drop the ?query or #fragment; give scheme://bucket/prefix.")
        prefix = parts.path.strip("/")
        if prefix:
            check_key(prefix, url)
        self.protocol = parts.scheme
        self.conn_id = conn_id or userinfo or None
        self._base = f"{bucket}/{prefix}" if prefix else bucket

    @property
    def location(self) -> str:
        user = f"{self.conn_id}@" if self.conn_id else ""
        return f"{self.protocol}://{user}{self._base}"

    @cached_property
    def fs(self) -> AbstractFileSystem:
        """The fsspec filesystem, authenticated by the Airflow connection (resolved at first use)."""
        from airflow.sdk import ObjectStoragePath

        if self.conn_id:
            from airflow.sdk import Connection
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                Connection.get(self.conn_id)  # a missing connection is an error here, not silent anonymous access
            except AirflowNotFoundException:
                raise ValueError(
                    f"export store {self.address('')!r}: the Airflow connection {self.conn_id!r} is not defined: "
                    f"create it (for s3:// of type aws) or name another in the URL's conn_id@ part or in "
                    f"${EXPORT_CONN_ID_ENV}."
                ) from None
        try:
            return ObjectStoragePath(f"{self.protocol}://{self._base}", conn_id=self.conn_id).fs
        except (ImportError, ValueError) as err:
            raise ValueError(
                f"export store {self.address('')!r}: no filesystem for {self.protocol}:// ({err}); install its "
                "provider (s3: apache-airflow-providers-amazon[s3fs], gs: apache-airflow-providers-google)."
            ) from err

    # The seam's operations.

    def local_path(self, key: str) -> Path:
        raise ExportStepError(
            f"{self.address(key)} is in an object store and has no local path: work on local scratch files "
            "with the store's write_local/read_local (or upload/download)."
        )

    def write_json(self, key: str, payload: Any) -> None:
        data = json.dumps(payload, indent=2, ensure_ascii=False, default=str).encode()
        self.fs.pipe_file(self._path(key), data)  # one PUT: readers see the old object or the new one

    def read_json(self, key: str) -> Any:
        return json.loads(self.fs.cat_file(self._path(key)))

    def publish_version(
        self, final: str, version: str, files: Sequence[Placement], manifest: dict[str, Any], *, staging: str
    ) -> None:
        version_key = f"{final}/{version}"
        try:
            for placement in files:
                self._place(placement, version_key)
        except BaseException:
            self._remove_quietly(version_key)  # never pointed at; a hard kill leaves it to prune
            raise
        self._write_pointer(final, manifest)

    def remove(self, key: str) -> None:
        path = self._path(key)
        self.fs.invalidate_cache(path)
        with suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)

    def prune(self, module: str, retention: Retention, now: datetime | None = None) -> list[str]:
        now = now or datetime.now(UTC)
        removed: list[str] = []
        for run_key in self._folders(module):
            try:
                removed += self._prune_run_key(f"{module}/{run_key}", retention, now)
            except OSError as err:
                log.warning("Retention skipped %s: %s", self.address(f"{module}/{run_key}"), err)
        for work in self._folders(f"{STAGING}/{module}"):
            key = f"{STAGING}/{module}/{work}"
            try:
                changed = self._newest_change(key)
                if changed is not None and now - changed >= retention.staging:
                    self.remove(key)
                    removed.append(key)
            except OSError as err:
                log.warning("Retention skipped %s: %s", self.address(key), err)
        if removed:
            log.info("Retention removed %d old version(s), export(s) or staging dir(s) of %s", len(removed), module)
        return removed

    def address(self, key: str) -> str:
        return f"{self.protocol}://{self._base}/{key}" if key else f"{self.protocol}://{self._base}"

    # Files in and out of the store.

    def open(self, key: str) -> IO[bytes]:
        return self.fs.open(self._path(key), "rb", block_size=BLOCK_SIZE)

    def upload(self, local: Path, key: str) -> str:
        path = self._path(key)
        digest = hashlib.sha256()
        with open(local, "rb") as source, self.fs.open(path, "wb", block_size=BLOCK_SIZE) as target:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                target.write(chunk)
        sent = digest.hexdigest()
        stored = self._sha256(path)
        if stored != sent:
            self._remove_quietly(key)
            raise ExportStepError(
                f"{self.address(key)}: the uploaded object differs from {local} (sha256 {stored}, sent {sent}); "
                "it was removed: retry the task."
            )
        return sent

    def download(self, key: str, local: Path) -> str:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        partial = local.with_name(f".{local.name}.part")
        try:
            with self.open(key) as source, open(partial, "wb") as target:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    target.write(chunk)
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)
        return digest.hexdigest()

    @contextmanager
    def read_local(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        self.fs.invalidate_cache(path)
        with _scratch() as scratch:
            if self.fs.isfile(path):
                local = scratch / path.rsplit("/", 1)[-1]
                self.download(key, local)
                yield local
                return
            found = sorted(self.fs.find(path))
            if not found:
                raise FileNotFoundError(f"{self.address(key)}: nothing is there")
            for item in found:
                relative = item[len(path):].lstrip("/")
                self.download(f"{key}/{relative}", scratch.joinpath(*relative.split("/")))
            yield scratch

    @contextmanager
    def write_local(self, key: str) -> Iterator[Path]:
        self._path(key)  # a bad key fails before any work
        with _scratch() as scratch:
            yield scratch
            for local in sorted(item for item in scratch.rglob("*") if item.is_file()):
                self.upload(local, f"{key}/{local.relative_to(scratch).as_posix()}")

    # Internals.

    def _path(self, key: str) -> str:
        return f"{self._base}/{check_key(key, self.location)}"

    def _sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb", block_size=BLOCK_SIZE) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def _place(self, placement: Placement, version_key: str) -> None:
        """Copy one staged object into the version (server side), then check what landed."""
        try:
            source, target = self._path(placement.source), self._path(placement.target)
        except ExportStepError:
            raise ExportStepError(
                f"{placement.owner}: {placement.source!r} -> {placement.target!r} is not a key inside the export."
            ) from None
        if not placement.target.startswith(f"{version_key}/"):
            raise ExportStepError(f"{placement.owner}: {placement.target!r} is not a key inside the new version.")
        try:
            self.fs.copy(source, target)
        except FileNotFoundError:
            raise ExportStepError(
                f"{placement.owner}: {self.address(placement.source)} is missing: clear the run's unzip and "
                "validate tasks to extract it again."
            ) from None
        if self._sha256(target) != placement.sha256:
            raise ExportStepError(
                f"{placement.owner}: {self.address(placement.source)} is not the validated file (sha256 differs): "
                "clear the run's unzip and validate tasks."
            )

    def _write_pointer(self, final: str, manifest: dict[str, Any]) -> None:
        """The publish's one visible step: the pointer object, written whole by one PUT."""
        self.write_json(f"{final}/{POINTER_NAME}", manifest)

    def _remove_quietly(self, key: str) -> None:
        try:
            self.remove(key)
        except OSError as err:
            log.warning("Could not remove %s (retention will): %s", self.address(key), err)

    def _folders(self, key: str) -> list[str]:
        """The names of the folders (common prefixes) directly under ``key``."""
        path = self._path(key)
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return sorted(entry["name"].rstrip("/").rsplit("/", 1)[-1] for entry in entries
                      if entry.get("type") == "directory")

    def _prune_run_key(self, run_key: str, retention: Retention, now: datetime) -> list[str]:
        path = self._path(run_key)
        self.fs.invalidate_cache(path)
        entries = {entry["name"].rstrip("/").rsplit("/", 1)[-1]: entry.get("type") == "directory"
                   for entry in self.fs.ls(path, detail=True)}
        whole, names = plan_run_key(run_key.rsplit("/", 1)[-1], entries, lambda: self._current_version(run_key),
                                    retention, now)
        if whole:
            self.fs.rm_file(self._path(f"{run_key}/{POINTER_NAME}"))  # readers lose the export whole, never half
            self.remove(run_key)
            return [run_key]
        for name in names:
            self.remove(f"{run_key}/{name}")
        return [f"{run_key}/{name}" for name in names]

    def _current_version(self, run_key: str) -> str | None:
        current = self.current_manifest(run_key)
        try:
            return str(current["version"]) if current else None
        except KeyError:
            return None

    def _newest_change(self, key: str) -> datetime | None:
        """The latest modification time of any object under ``key`` (None if the filesystem tells none)."""
        newest: datetime | None = None
        for info in self.fs.find(self._path(key), detail=True).values():
            when = _modified(info)
            if when is None:
                log.warning("Retention cannot date %s: the filesystem gives no modification time", info.get("name"))
                return None
            newest = max(newest, when) if newest else when
        return newest


def _modified(info: dict[str, Any]) -> datetime | None:
    for field in _TIME_FIELDS:
        value = info.get(field)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value:
            with suppress(ValueError):
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


@contextmanager
def _scratch() -> Iterator[Path]:
    """A private local folder for one task's files (under ``$TMPDIR``), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="zoho-export-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
