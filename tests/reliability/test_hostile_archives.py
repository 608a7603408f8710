"""Hostile archives and files through the DAG's own steps: the ``unzip`` and ``validate`` tasks call
:func:`unzip_page` and :func:`validate_page`, ``manifest`` calls :func:`publish_export`. Each bad page is
refused with an :class:`ExportStepError` naming the problem and what to do, nothing half-written is left, and
nothing is ever published."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.export.support import export_run, final, staging
from tests.validation.builders import (
    FIELDS,
    HEADER,
    JOB_ID,
    csv_text,
    good_csv,
    good_row,
    page_zip,
    set_central_sizes,
    set_encrypted_flag,
    write_file,
    write_zip,
)
from zoho_crm.export.layout import DOWNLOADS_SUBDIR, EXPORT_SUBDIR
from zoho_crm.export.records import ExportRun, ExportStepError
from zoho_crm.export.steps import publish_export, unzip_page, validate_page
from zoho_crm.files.digest import file_sha256


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


def _crc_broken(path: Path) -> Path:
    write_zip(path, [(f"{JOB_ID}.csv", good_csv())], zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    data[data.index(b"Last_Name")] = ord("X")
    path.write_bytes(bytes(data))
    return path


def _truncated(path: Path) -> Path:
    page_zip(path.parent, good_csv(200)).rename(path)
    path.write_bytes(path.read_bytes()[:-60])
    return path


def _lying_sizes(path: Path) -> Path:
    page_zip(path.parent, b"id\n" + b"0" * (20 * 2**20)).rename(path)
    set_central_sizes(path, file_size=1000)
    return path


def _encrypted(path: Path) -> Path:
    page_zip(path.parent, good_csv()).rename(path)
    set_encrypted_flag(path)
    return path


HOSTILE_ARCHIVES = {
    "traversal": (lambda p: write_zip(p, [("../evil.csv", b"id\n1\n")]), "path traversal"),
    "absolute": (lambda p: write_zip(p, [("/etc/evil.csv", b"id\n1\n")]), "absolute path"),
    "symlink": (lambda p: write_zip(p, [(_symlink(f"{JOB_ID}.csv"), b"/etc/passwd")]), "symbolic link"),
    "two-members": (
        lambda p: write_zip(p, [(f"{JOB_ID}.csv", good_csv()), ("x.csv", good_csv())]),
        "expected exactly one member, found 2",
    ),
    "empty-zip": (lambda p: write_zip(p, []), "expected exactly one member, found 0"),
    "directory": (lambda p: write_zip(p, [(f"{JOB_ID}/", b"")]), "a directory, not a file"),
    "wrong-type": (lambda p: write_zip(p, [(f"{JOB_ID}.ics", b"BEGIN:VCALENDAR\n")]), "wrong extension"),
    "encrypted": (_encrypted, "encrypted"),
    "zip-bomb": (
        lambda p: write_zip(p, [(f"{JOB_ID}.csv", b"id\n" + b"0" * (20 * 2**20))]),
        "zip bomb",
    ),
    "lying-sizes": (_lying_sizes, "Bad CRC-32"),
    "crc-mismatch": (_crc_broken, "Bad CRC-32"),
    "truncated": (_truncated, "corrupt or truncated zip"),
    "not-a-zip": (lambda p: write_file(p.parent, p.name, b'{"code": "INTERNAL_ERROR"}'), "corrupt or truncated"),
    "zero-bytes": (lambda p: write_file(p.parent, p.name, b""), "corrupt or truncated"),
}


def _run(tmp_path: Path) -> tuple[ExportRun, Path, Path]:
    """A run of Leads in a local store at ``tmp_path``; its staging area and run key directory on disk."""
    run = export_run(tmp_path, "run", "r")
    return run, staging(run), final(run)


def _download(run: ExportRun, build, count: int = 3) -> dict:
    downloads = staging(run) / DOWNLOADS_SUBDIR
    downloads.mkdir(parents=True, exist_ok=True)
    path = build(downloads / f"{JOB_ID}.zip")
    return {
        "page": 1, "job_id": JOB_ID, "file_type": "csv", "key": path.relative_to(downloads).as_posix(),
        "path": str(path), "count": count, "sha256": file_sha256(path),
    }


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("case", sorted(HOSTILE_ARCHIVES))
def test_hostile_archive_is_refused_by_the_unzip_step(tmp_path: Path, case: str) -> None:
    build, reason = HOSTILE_ARCHIVES[case]
    run, staged, published = _run(tmp_path)
    download = _download(run, build)
    with pytest.raises(ExportStepError) as raised:
        unzip_page(download, run)
    message = str(raised.value)
    assert reason in message
    assert f"page 1 (job {JOB_ID})" in message and "rerun the download task" in message
    # Nothing extracted (no member, no temporary file); only the refused archive is kept for inspection.
    assert _files(staged) == [f"{DOWNLOADS_SUBDIR}/{JOB_ID}.zip"]
    assert not published.exists()


BAD_PAGES = {
    "duplicate-ids": (csv_text([HEADER, good_row(1), good_row(1), good_row(2)]).encode(), 3, "duplicate record id"),
    "ragged-row": (csv_text([HEADER, good_row(1), good_row(2)[:4], good_row(3)]).encode(), 3, "4 columns, the header has 9"),
    "bad-utf8": (good_csv(3).replace("Müller 2".encode(), b"M\xfcller 2"), 3, "invalid UTF-8"),
    "count-mismatch": (good_csv(3), 5, "3 records, but the job reported count 5"),
    "no-id-column": (csv_text([HEADER[1:]] + [good_row(n)[1:] for n in (1, 2, 3)]).encode(), 3, "record id column missing"),
    "bad-type": (csv_text([HEADER, good_row(1), [*good_row(2)[:6], "forty-two", *good_row(2)[7:]]]).encode(), 2,
                 "column No_of_Employees: not an integer of at most 64 bits"),
}


@pytest.mark.parametrize("case", sorted(BAD_PAGES))
def test_invalid_page_is_refused_by_the_validate_step_and_never_published(tmp_path: Path, case: str) -> None:
    data, count, named = BAD_PAGES[case]
    run, staged, published = _run(tmp_path)
    page = unzip_page(_download(run, lambda p: page_zip(p.parent, data), count=count), run)
    with pytest.raises(ExportStepError) as raised:
        validate_page(page, run, field_metadata=FIELDS)
    message = str(raised.value)
    page_dir = staged / EXPORT_SUBDIR / "page_0001"
    assert f"page 1 (job {JOB_ID}) is invalid; files kept in {page_dir}" in message
    assert named in message.split("\n", 1)[1], message
    # The page and its report stay in staging for inspection; no temporary file, nothing published.
    assert _files(page_dir) == [f"{JOB_ID}.csv", "report.json"]
    assert not [p for p in staged.rglob("*") if p.name.startswith(".")]
    assert not published.exists()


def test_a_missing_page_is_never_published(tmp_path: Path) -> None:
    run, _staged, published = _run(tmp_path)
    page = unzip_page(_download(run, lambda p: page_zip(p.parent, good_csv(3))), run)
    checked = validate_page(page, run, field_metadata=FIELDS)
    with pytest.raises(ExportStepError, match=r"pages \[1, 3\] are not the complete sequence 1\.\.2: rerun"):
        publish_export(run, [checked, replace(checked, page=3)])
    assert not published.exists()


def test_an_archive_changed_since_its_download_is_refused(tmp_path: Path) -> None:
    """The unzip step checks the file is the one downloaded (sha256 in the download's XCom) before extracting."""
    run, staged, _published = _run(tmp_path)
    download = _download(run, lambda p: page_zip(p.parent, good_csv(3)).rename(p))
    Path(download["path"]).write_bytes(b"PK" + Path(download["path"]).read_bytes()[2:-1])
    with pytest.raises(ExportStepError, match="is not the file that was downloaded") as raised:
        unzip_page(download, run)
    assert "rerun the download task" in str(raised.value)
    assert _files(staged) == [f"{DOWNLOADS_SUBDIR}/{JOB_ID}.zip"]
