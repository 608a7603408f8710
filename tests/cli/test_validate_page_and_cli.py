"""validate_page (extract + validate + report.json) and ``python -m zoho_crm.cli.validate`` exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.validation.builders import (
    FIELDS,
    HEADER,
    JOB_ID,
    csv_text,
    good_csv,
    good_row,
    page_zip,
    write_zip,
)
from zoho_crm.files.archive import CorruptArchiveError, UnsafeArchiveError
from zoho_crm.validation import validate_page

REPO = Path(__file__).resolve().parents[2]
ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Zoho//CRM//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n"
    b"DTSTAMP:20261101T000000Z\r\nDTSTART:20261101T100000Z\r\nDTEND:20261101T110000Z\r\nEND:VEVENT\r\n"
    b"END:VCALENDAR\r\n"
)


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    return subprocess.run([sys.executable, "-m", "zoho_crm.cli.validate", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_validate_page_writes_the_report_next_to_the_file(tmp_path):
    out = tmp_path / "out"
    report = validate_page(page_zip(tmp_path, good_csv(4)), out, job_id=JOB_ID, file_type="csv",
                           field_metadata=FIELDS, expected_count=4)
    assert report.valid, report.summary()
    assert sorted(p.name for p in out.iterdir()) == [f"{JOB_ID}.csv", "report.json"]
    written = json.loads((out / "report.json").read_text())
    assert written == report.to_dict()
    assert set(written["timings"]) >= {"extract", "scan", "validate", "total"}


def test_validate_page_reports_member_name_warning(tmp_path):
    zip_path = page_zip(tmp_path, good_csv(1), member="renamed.csv")
    report = validate_page(zip_path, tmp_path / "out", job_id=JOB_ID, file_type="csv")
    assert [str(w) for w in report.warnings] == [f"archive: member is named 'renamed.csv', expected '{JOB_ID}.csv'"]


def test_validate_page_lets_archive_errors_through(tmp_path):
    zip_path = write_zip(tmp_path / "page.zip", [("../evil.csv", good_csv())])
    with pytest.raises(UnsafeArchiveError, match="path traversal"):
        validate_page(zip_path, tmp_path / "out", job_id=JOB_ID, file_type="csv")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_validate_page_crc_failure_found_after_streaming_wins(tmp_path):
    data = good_csv(3000)
    zip_path = write_zip(tmp_path / "page.zip", [(f"{JOB_ID}.csv", data)], zipfile.ZIP_STORED)
    raw = bytearray(zip_path.read_bytes())
    raw[raw.rindex("Müller".encode()) + 1] ^= 0x01  # late in the member: the CRC fails at its end
    zip_path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArchiveError, match="Bad CRC-32"):
        validate_page(zip_path, tmp_path / "out", job_id=JOB_ID, file_type="csv", expected_count=3000)
    assert list((tmp_path / "out").iterdir()) == []


def test_validate_page_ics(tmp_path):
    zip_path = write_zip(tmp_path / "page.zip", [(f"{JOB_ID}.ics", ICS)])
    report = validate_page(zip_path, tmp_path / "out", job_id=JOB_ID, file_type="ics", expected_count=1)
    assert report.valid and report.records == 1 and (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize("wrapped", [True, False], ids=["settings-fields-answer", "plain-list"])
def test_cli_valid_page_exits_0(tmp_path, wrapped):
    metadata = tmp_path / "fields.json"
    metadata.write_text(json.dumps({"fields": FIELDS} if wrapped else FIELDS))
    done = run_cli(page_zip(tmp_path, good_csv(3)), "--file-type", "csv", "--fields", ",".join(HEADER[1:]),
                   "--fields-metadata", metadata, "--expected-count", "3", "--job-id", JOB_ID,
                   "--output-dir", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report = json.loads(done.stdout)
    assert report["valid"] is True and report["records"] == 3
    assert (tmp_path / "out" / "report.json").exists()


def test_cli_invalid_page_exits_1_with_one_stderr_line_per_problem(tmp_path):
    rows = [good_row(1), good_row(2)[:4], good_row(3)]
    rows[2][3] = "not a date"
    zip_path = page_zip(tmp_path, csv_text([HEADER, *rows]).encode())
    metadata = tmp_path / "fields.json"
    metadata.write_text(json.dumps({"fields": FIELDS}))
    done = run_cli(zip_path, "--file-type", "csv", "--fields-metadata", metadata, "--expected-count", "2")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: line 4 (record 2): 4 columns, the header has 9",
        "error: line 5 (record 3), column Created_Time: not an ISO 8601 datetime with offset "
        "(YYYY-MM-DDTHH:MM:SS+HH:MM): 'not a date'",
        "error: file: 3 records, but the job reported count 2",
    ]
    assert json.loads(done.stdout)["valid"] is False
    default_dirs = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(f"{JOB_ID}.")]
    assert len(default_dirs) == 1 and (default_dirs[0] / "report.json").exists()


def test_cli_unsafe_archive_exits_2(tmp_path):
    zip_path = write_zip(tmp_path / "page.zip", [(f"{JOB_ID}.csv", good_csv()), ("second.csv", good_csv())])
    done = run_cli(zip_path, "--file-type", "csv", "--output-dir", tmp_path / "out")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {zip_path}: expected exactly one member, found 2 ('{JOB_ID}.csv', 'second.csv'); "
        "a Bulk Read result holds one file"
    ]


def test_cli_unreadable_archive_exits_2(tmp_path):
    not_zip = tmp_path / "page.zip"
    not_zip.write_text('{"code": "INTERNAL_ERROR"}')
    done = run_cli(not_zip, "--file-type", "csv", "--output-dir", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {not_zip}: corrupt or truncated zip")
    missing = run_cli(tmp_path / "missing.zip", "--file-type", "csv")
    assert (missing.returncode, missing.stderr.strip()) == (2, f"error: {tmp_path / 'missing.zip'}: no such file")


def test_cli_ics_page(tmp_path):
    zip_path = write_zip(tmp_path / "page.zip", [(f"{JOB_ID}.ics", ICS)])
    done = run_cli(zip_path, "--file-type", "ics", "--expected-count", "1", "--output-dir", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["file_type"] == "ics"


ORPHAN_ICS = ICS.replace(b"END:VEVENT\r\nEND:VCALENDAR", (
    b"END:VEVENT\r\nBEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20261101T000000Z\r\nRECURRENCE-ID:20261108T100000Z\r\n"
    b"DTSTART:20261108T120000Z\r\nDTEND:20261108T130000Z\r\nEND:VEVENT\r\nEND:VCALENDAR"))


def test_cli_orphan_override_is_an_error_unless_part_of_an_export(tmp_path):
    zip_path = write_zip(tmp_path / "page.zip", [(f"{JOB_ID}.ics", ORPHAN_ICS)])
    alone = run_cli(zip_path, "--file-type", "ics", "--expected-count", "1", "--output-dir", tmp_path / "alone")
    assert alone.returncode == 1
    assert "RECURRENCE-ID without a recurring series" in alone.stderr
    part = run_cli(zip_path, "--file-type", "ics", "--expected-count", "1", "--output-dir", tmp_path / "part",
                   "--part-of-export")
    assert part.returncode == 0, part.stderr
    assert part.stderr.startswith("warning: file: 1 override(s) (RECURRENCE-ID) whose series")
    assert json.loads(part.stdout)["valid"] is True
