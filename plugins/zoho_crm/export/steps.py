"""The export's page steps after download: unzip a page, validate it, write it as typed Parquet, then publish the
export with its manifest.

Plain functions (no Airflow) on the records of :mod:`zoho_crm.export.records`, reading and writing through the
run's store (:mod:`zoho_crm.export.storage`): the DAG's tasks call them, tests and the bench can too. A page step
adds its artifacts to the page's ``files``; a publish places every file of the staging area's ``export/`` folder
that the pages list, so a new step producing a published artifact needs no change here. Bad data raises
:class:`ExportStepError` with a summary of the first problems and where the files are kept for inspection.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoho_crm.export.layout import (
    DOWNLOADS_SUBDIR,
    EXPORT_SUBDIR,
    POINTER_NAME,
    Retention,
    new_version_name,
    page_dir_name,
)
from zoho_crm.export.records import ExportRun, ExportStepError, PageRecord, StoredFile
from zoho_crm.export.storage import ExportStore, Placement, open_store
from zoho_crm.files.archive import ArchiveError, extract_page
from zoho_crm.files.digest import file_sha256

ZIP = "zip"
REPORT = "report"
PARQUET = "parquet"

__all__ = ["PARQUET", "REPORT", "ZIP", "ExportStepError", "export_schema", "parquet_page", "publish_export",
           "schema_drift_entry", "unzip_page", "validate_page"]


def unzip_page(download: Mapping[str, Any], run: ExportRun) -> PageRecord:
    """Extract a downloaded page into the run's ``export/page_NNNN/``; return its record (``zip`` and data file).

    The zip is read through the store (a local copy on object storage), so the download may have run on another
    host.

    :param download: the download task's result (``page``, ``job_id``, ``file_type``, ``count``, ``key`` of the
        zip relative to the run's ``downloads/`` folder, ``sha256``).
    :param run: the export run.
    """
    store = open_store(run.store)
    page = PageRecord(page=int(download["page"]), job_id=str(download["job_id"]),
                      file_type=str(download["file_type"]), count=download.get("count"))
    zipped = StoredFile(f"{DOWNLOADS_SUBDIR}/{download['key']}", str(download["sha256"]))
    key = run.staged(zipped.path)
    page_dir = f"{EXPORT_SUBDIR}/{page_dir_name(page.page)}"
    with ExitStack() as stack:
        try:
            archive = stack.enter_context(store.read_local(key))
            actual = file_sha256(archive) if archive.is_file() else "(missing)"
        except FileNotFoundError:
            actual = "(missing)"
        if actual != zipped.sha256:
            raise ExportStepError(
                f"{page.owner}: {store.address(key)} is not the file that was downloaded (sha256 {actual}, "
                f"downloaded {zipped.sha256}): rerun the download task to fetch it again."
            )
        target = stack.enter_context(store.write_local(run.staged(page_dir)))
        try:
            extracted = extract_page(archive, target, job_id=page.job_id, file_type=page.file_type)
        except ArchiveError as err:
            raise ExportStepError(
                f"{page.owner}: the downloaded archive {store.address(key)} was refused: {err}. It is kept for "
                "inspection; rerun the download task to fetch it again."
            ) from err
    data = StoredFile(f"{page_dir}/{extracted.path.name}", extracted.sha256)
    return PageRecord(page=page.page, job_id=page.job_id, file_type=page.file_type, count=page.count,
                      files={ZIP: zipped, page.file_type: data}, archive_warnings=tuple(extracted.warnings))


def validate_page(page: PageRecord, run: ExportRun, *, field_metadata: list[dict] | None) -> PageRecord:
    """Validate an extracted page, write its ``report.json`` beside it (``files["report"]``), raise if invalid.

    The page is read and its id index (for the export check) written through the store, so the unzip may have
    run on another host.

    :param page: the unzip step's record.
    :param run: the export run (its query's fields are the expected columns).
    :param field_metadata: the module's field metadata for type checks (CSV), or None to skip them.
    """
    # Imported here: pyarrow costs every DAG parse and every other task's start-up a few tenths of a second.
    from zoho_crm.validation import Problem, validate_csv, validate_ics
    from zoho_crm.validation.export_checks import CHECKS_SUBDIR, page_index_in
    from zoho_crm.validation.page import REPORT_NAME

    store = open_store(run.store)
    data = page.data_file
    page_dir = Path(data.path).parent
    with store.read_local(run.staged(data.path)) as path, store.write_local(run.staged(CHECKS_SUBDIR)) as checks:
        index = page_index_in(checks, page_dir.name, data.sha256)  # sorted ids for the export check
        if page.file_type == "ics":  # an override's series may be on another page: resolved by check_export
            report = validate_ics(path, expected_count=page.count, orphan_overrides="note", index_to=index)
        else:
            report = validate_csv(path, fields=list(run.query.fields) or None, field_metadata=field_metadata,
                                  expected_count=page.count, index_to=index)
    report.warnings.extend(Problem("archive", warning) for warning in page.archive_warnings)
    report.file = Path(data.path).name  # the report sits beside its file, which moves when the export is published
    report_path = f"{page_dir.as_posix()}/{REPORT_NAME}"
    store.write_json(run.staged(report_path), report.to_dict())
    if not report.valid:
        raise ExportStepError(f"{page.owner} is invalid; files kept in {store.address(run.staged(page_dir.as_posix()))}"
                              ":\n" + report.summary())
    with store.read_local(run.staged(report_path)) as written_report:  # the digest of what the store holds
        written = StoredFile(report_path, file_sha256(written_report))
    return PageRecord(page=page.page, job_id=page.job_id, file_type=page.file_type, count=page.count,
                      files={**page.files, REPORT: written}, records=report.records, valid=True,
                      warnings=len(report.warnings), archive_warnings=page.archive_warnings)


def parquet_page(page: PageRecord, run: ExportRun, *, field_metadata: list[dict] | None) -> PageRecord:
    """Write a validated CSV page as typed Parquet beside it (``page_NNNN/{job_id}.parquet``, ``files["parquet"]``);
    an ICS page is returned unchanged.

    :param page: the validate step's record.
    :param run: the export run.
    :param field_metadata: the module's field metadata (None: every column is text, and the schema says so).
    """
    if page.file_type != "csv":
        return page
    if not page.valid:
        raise ExportStepError(f"{page.owner} has not passed validation: run the validate step first.")
    from zoho_crm.tables.parquet import ParquetConversionError, write_page_parquet

    store = open_store(run.store)
    data = page.data_file
    page_dir = Path(data.path).parent.as_posix()
    name = f"{page.job_id}.parquet"
    # Through the seam: a local copy of the page and a local folder whose file lands beside it in the store.
    with store.read_local(run.staged(data.path)) as csv_path, store.write_local(run.staged(page_dir)) as out:
        try:
            written = write_page_parquet(csv_path, out / name, field_metadata)
        except ParquetConversionError as err:
            raise ExportStepError(f"{page.owner}: {err}") from err
    return page.with_files(**{PARQUET: StoredFile(f"{page_dir}/{name}", written.sha256)})


def export_schema(run: ExportRun, pages: Sequence[PageRecord]) -> dict[str, Any] | None:
    """The typed schema the export's Parquet pages share (``TableSchema.to_json``), or None without Parquet.

    :param run: the export run.
    :param pages: the export's pages after the Parquet step.
    :raises ExportStepError: two pages have different schemas.
    """
    from zoho_crm.tables import parquet  # sets pyarrow's allocator up before importing it

    store = open_store(run.store)
    found: dict[str, Any] | None = None
    for page in sorted(pages, key=lambda page: page.page):
        stored = page.files.get(PARQUET)
        if stored is None:
            continue
        with store.open(run.staged(stored.path)) as handle:  # the footer only, not a copy of the whole file
            metadata = parquet.pq.read_schema(handle).metadata or {}
        schema = json.loads(metadata[parquet.SCHEMA_METADATA_KEY])
        if found is None:
            found = schema
        elif schema != found:
            raise ExportStepError(f"{page.owner}: its Parquet schema differs from the first page's: rerun the export.")
    return found


def schema_drift_entry(previous: Mapping[str, Any] | None, schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The manifest's ``schema_drift``: what changed from the previous published export's schema to this one.

    :param previous: ``{"schema": ..., "run_key": ..., "manifest": ...}`` of the previous export of the module
        with the same fields (None: nothing to compare with).
    :param schema: this export's schema (:func:`export_schema`).
    """
    if not previous or not previous.get("schema") or not schema:
        return None
    from zoho_crm.tables.schema import TableSchema, schema_drift

    drift = schema_drift(TableSchema.from_json(dict(previous["schema"])), TableSchema.from_json(dict(schema)))
    return {**drift.to_json(), "changed_any": not drift.empty, "unsafe": [c.name for c in drift.unsafe],
            "summary": drift.describe(), "previous": {"run_key": previous.get("run_key"),
                                                       "manifest": previous.get("manifest")}}


def publish_export(
    run: ExportRun,
    pages: Sequence[PageRecord],
    *,
    retention: Retention | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """Publish the pages as a new version of the run key, point its ``manifest.json`` at it, clean up.

    Exactly the files the manifest lists (each page's files in the staging area's ``export/`` folder) are placed
    in a fresh version and flushed; then the pointer is replaced in one atomic step. Nothing else in staging is
    ever published. A crash before the pointer write leaves the previous export current (retention removes the
    half-made version) and a retry publishes again from staging, which is removed only afterwards. Old versions,
    abandoned staging and expired manual exports are then removed by ``retention`` (default: from the
    environment). Returns the manifest with ``path`` (the run key's place) and ``manifest`` (the pointer).

    :param run: the export run.
    :param pages: every page of the export, validated.
    :param retention: what to keep (default: :meth:`Retention.from_env`).
    :param extra: more manifest keys from the run's other steps (e.g. ``parquet``, ``schema_drift``,
        ``full_load``); they cannot replace the keys the publish writes.
    """
    retention = retention or Retention.from_env()  # a bad setting fails here, before anything is written
    store = open_store(run.store)
    ordered = sorted(pages, key=lambda page: page.page)
    numbers = [page.page for page in ordered]
    if numbers != list(range(1, len(ordered) + 1)):
        raise ExportStepError(f"pages {numbers} are not the complete sequence 1..{len(ordered)}: rerun the export.")
    published = _already_published(store.current_manifest(run.final), ordered, run.run_id)
    if published is None:
        from zoho_crm.validation.export_checks import check_export  # ids and overrides across pages

        entries = [{"page": page.page, "file": page.data_file.path, "sha256": page.data_file.sha256}
                   for page in ordered]
        with _checks_folder(store, run) as checks:
            warnings = check_export(entries, None, run.query.file_type, error=ExportStepError,
                                    partial=run.query.partial, checks_dir=checks,
                                    read_page=lambda relative: store.read_local(run.staged(relative)))
        now = datetime.now(UTC)
        version = new_version_name(now)
        manifest = _manifest(run, ordered, version, warnings, now)
        manifest.update((key, value) for key, value in (extra or {}).items() if key not in manifest)
        placements = [
            Placement(run.staged(stored.path), f"{run.final}/{stored.published_path(version)}", stored.sha256,
                      page.owner)
            for page in ordered for stored in page.files.values() if stored.published
        ]
        store.publish_version(run.final, version, placements, manifest, staging=run.staging)
        published = manifest
    store.remove(run.staging)
    store.prune(run.query.module, retention)
    return {**published, "path": store.address(run.final), "manifest": store.address(f"{run.final}/{POINTER_NAME}")}


@contextmanager
def _checks_folder(store: ExportStore, run: ExportRun) -> Iterator[Path]:
    """The run's id indexes as a local folder (a copy on object storage); an empty scratch folder when no page left
    any (the export check then indexes the pages from their files)."""
    from zoho_crm.validation.export_checks import CHECKS_SUBDIR

    with ExitStack() as stack:
        try:
            checks = stack.enter_context(store.read_local(run.staged(CHECKS_SUBDIR)))
        except FileNotFoundError:
            checks = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zoho-checks-")))
        yield checks


def _manifest(
    run: ExportRun, pages: list[PageRecord], version: str, warnings: list[str], now: datetime
) -> dict[str, Any]:
    query = run.query
    return {
        "module": query.module,
        "file_type": query.file_type,
        "fields": list(query.fields),
        "criteria": query.criteria,
        "cvid": query.cvid,
        "time_range": list(query.time_range) if query.time_range else None,
        "interval_gap": run.interval_gap,
        "run_key": run.run_key,
        "run_id": run.run_id,
        "version": version,
        "pages": [_manifest_page(page, version) for page in pages],
        "page_count": len(pages),
        "record_count": sum(page.records or 0 for page in pages),
        "job_ids": [page.job_id for page in pages],
        "valid": all(page.valid for page in pages),
        "warnings": warnings,
        "created_at": now.isoformat(timespec="seconds"),
    }


def _manifest_page(page: PageRecord, version: str) -> dict[str, Any]:
    """A page of the manifest: ``file`` (the data file) and ``report`` as readers know them, and ``files``, every
    published artifact by kind, each with its path relative to the run key and its sha256."""
    files = {kind: {"path": stored.published_path(version), "sha256": stored.sha256}
             for kind, stored in page.files.items() if stored.published}
    zipped = page.files.get(ZIP)
    return {
        "page": page.page,
        "job_id": page.job_id,
        "count": page.count,
        "records": page.records,
        "zip_sha256": zipped.sha256 if zipped else None,
        "file": files[page.file_type]["path"],
        "sha256": page.data_file.sha256,
        "report": files[REPORT]["path"],
        "valid": page.valid,
        "warnings": page.warnings,
        "files": files,
    }


def _already_published(
    current: dict[str, Any] | None, pages: list[PageRecord], run_id: str
) -> dict[str, Any] | None:
    """The current manifest if it is this very publish (a retry after the pointer was written), else None."""
    if current and current.get("run_id") == run_id and "version" in current:
        listed = [(page.get("page"), page.get("job_id"), page.get("sha256")) for page in current.get("pages") or []]
        if listed == [(page.page, page.job_id, page.data_file.sha256) for page in pages]:
            return current
    return None
