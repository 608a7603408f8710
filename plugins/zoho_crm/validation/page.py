"""Extract and validate one downloaded page, writing ``report.json`` beside the extracted file."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from zoho_crm.files.archive import ExtractedPage, extract_page
from zoho_crm.validation.csv_page import validate_csv_stream
from zoho_crm.validation.ics_page import OrphanPolicy, validate_ics
from zoho_crm.validation.report import ValidationReport

REPORT_NAME = "report.json"
QUEUED_CHUNKS = 4


def validate_page(
    zip_path: str | Path,
    dest_dir: str | Path,
    *,
    job_id: str | None,
    file_type: str,
    fields: list[str] | None = None,
    field_metadata: list[dict] | dict | None = None,
    expected_count: int | None = None,
    orphan_overrides: OrphanPolicy = "error",
) -> ValidationReport:
    """Extract ``zip_path`` into ``dest_dir``, validate it and write ``dest_dir/report.json``.

    Archive problems raise :class:`zoho_crm.files.archive.ArchiveError`; data problems land in the report.
    CSV pages are validated while they are extracted. ``orphan_overrides``: see :func:`validate_ics`.
    """
    started = time.perf_counter()
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    if file_type == "csv":
        report, page = _extract_and_validate_csv(zip_path, dest_dir, job_id, fields, field_metadata, expected_count)
    else:
        page = extract_page(zip_path, dest_dir, job_id=job_id, file_type=file_type)
        report = validate_ics(page.path, expected_count=expected_count, sha256=page.sha256,
                              orphan_overrides=orphan_overrides)
        if fields:
            report.notes.append("fields are not applicable to ICS pages and were ignored")
    for warning in page.warnings:
        report.warn("archive", warning)
    report.timings = {**report.timings, "total": time.perf_counter() - started}
    report.write_json(dest_dir / REPORT_NAME)
    return report


def _extract_and_validate_csv(
    zip_path: Path,
    dest_dir: Path,
    job_id: str | None,
    fields: list[str] | None,
    field_metadata: list[dict] | dict | None,
    expected_count: int | None,
) -> tuple[ValidationReport, ExtractedPage]:
    """Extraction runs in a thread (zlib, hashing and writes release the GIL) feeding a bounded queue of
    chunks to the validator, so both proceed together; an archive error wins over any report."""
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_CHUNKS)
    outcome: dict[str, object] = {}
    started = time.perf_counter()

    def extract() -> None:
        try:
            outcome["page"] = extract_page(zip_path, dest_dir, job_id=job_id, file_type="csv", on_chunk=chunks.put)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            outcome["extract"] = time.perf_counter() - started
            chunks.put(None)

    ended = threading.Event()

    def stream() -> Iterator[bytes]:
        while (chunk := chunks.get()) is not None:
            yield chunk
        ended.set()

    def page() -> ExtractedPage:
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["page"]  # type: ignore[return-value]

    worker = threading.Thread(target=extract, name="extract-page", daemon=True)
    worker.start()
    try:
        report = validate_csv_stream(stream(), lambda: page().path, fields=fields, field_metadata=field_metadata,
                                     expected_count=expected_count)
    finally:
        while not ended.is_set() and chunks.get() is not None:  # let the extraction finish
            pass
        worker.join()
    extracted = page()
    report.file, report.sha256 = str(extracted.path), extracted.sha256
    report.timings = {"extract": outcome["extract"], **report.timings}  # type: ignore[dict-item]
    return report, extracted
