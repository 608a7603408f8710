"""Checks across the pages of one export (the manifest step): ids repeated on two pages, ICS overrides whose
series is on another page or on none, in bounded memory; pages made by the real unzip and validate steps."""

from __future__ import annotations

import io
import json
import shutil
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest

from tests.devtools.simulator.sim_client import access_token, create_ok, download, module_query, wait_state
from tests.export.support import download as downloaded
from tests.export.support import export_run, final, staging
from tests.simulator_fixtures import start_simulator
from tests.validation.builders import FIELDS, HEADER, csv_text, good_row
from zoho_crm.export.layout import EXPORT_SUBDIR
from zoho_crm.export.records import ExportQuery, ExportRun, PageRecord
from zoho_crm.export.steps import ExportStepError, publish_export, unzip_page
from zoho_crm.export.steps import validate_page as validate_step
from zoho_crm.validation import ExportCheckError, check_export, export_checks
from zoho_crm.validation.export_checks import page_index_prefix
from zoho_crm.validation.id_index import IDS, index_path, write_sorted

KEY = "manual__check"


def check_run(root: Path, module: str = "Leads", file_type: str = "csv", **query: Any) -> ExportRun:
    return export_run(root, KEY, "run1", ExportQuery(module, file_type=file_type, **query))


def page_record(run: ExportRun, page: int, job_id: str, data: bytes, count: int) -> PageRecord:
    """A downloaded page through the pipeline's unzip and validate steps (raises ExportStepError if invalid)."""
    file_type = run.query.file_type
    download_record = downloaded(run, page, job_id, data, file_type, count)
    return validate_step(unzip_page(download_record, run), run, field_metadata=FIELDS if file_type == "csv" else None)


def checked(pages: list[PageRecord]) -> list[dict[str, Any]]:
    """What check_export reads of validated pages: number, data file (relative to the staging area), sha256."""
    return [{"page": page.page, "file": page.data_file.path, "sha256": page.data_file.sha256} for page in pages]


def csv_page(run: ExportRun, page: int, numbers: range) -> PageRecord:
    data = csv_text([HEADER] + [good_row(n) for n in numbers]).encode()
    return page_record(run, page, f"57257670000008590{page:02d}", data, len(numbers))


def test_id_on_two_pages_fails_the_publish_naming_it(tmp_path):
    run = check_run(tmp_path)
    pages = [csv_page(run, 1, range(1, 4)), csv_page(run, 2, range(3, 6)), csv_page(run, 3, range(6, 9))]
    with pytest.raises(ExportStepError) as raised:
        publish_export(run, pages)
    assert "1 record ids on more than one page (5725767000001000003 on pages 1, 2)" in str(raised.value)
    assert "page numbers (API v2-v6)" in str(raised.value)
    assert not (final(run) / "manifest.json").exists()


def test_pages_with_distinct_ids_publish_with_no_warnings(tmp_path):
    run = check_run(tmp_path)
    pages = [csv_page(run, 1, range(1, 4)), csv_page(run, 2, range(4, 7))]
    assert sorted(p.name for p in (staging(run) / "checks").iterdir()) == [
        f"page_000{page.page}.{page.data_file.sha256[:16]}.ids" for page in pages]
    manifest = publish_export(run, pages)
    assert manifest["warnings"] == [] and manifest["record_count"] == 6
    published = [p.name for p in final(run).rglob("*") if p.is_file()]
    assert not [name for name in published if name.endswith(".ids")] and not staging(run).exists()


def write_sidecars(export_dir: Path, page: int, ids: list[bytes]) -> dict[str, Any]:
    """A validated page record whose id sidecar is written directly (the page file itself is not needed)."""
    relative = f"page_{page:04d}/{page}.csv"
    sha = f"{page:064x}"
    write_sorted(index_path(page_index_prefix(export_dir / relative, sha), IDS), ids)
    return {"page": page, "file": relative, "sha256": sha}


def test_millions_of_ids_are_checked_in_bounded_memory(tmp_path):
    export_dir = tmp_path / "staging" / EXPORT_SUBDIR
    per_page = 200_000
    pages = [write_sidecars(export_dir, p, [b"%d" % (5725767000001000000 + p * per_page + i) for i in range(per_page)])
             for p in range(5)]
    planted = b"%d" % (5725767000001000000 + 4 * per_page + 7)
    pages.append(write_sidecars(export_dir, 5, [planted]))
    tracemalloc.start()
    try:
        with pytest.raises(ExportCheckError) as raised:
            check_export(pages, export_dir, "csv", partial=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"1 record ids on more than one page ({planted.decode()} on pages 4, 5)" in str(raised.value)
    assert peak < 4 << 20, f"{peak} bytes traced for 1,000,001 ids (a set of them would take ~100 MB)"


def test_many_pages_are_merged_in_rounds(tmp_path, monkeypatch):
    monkeypatch.setattr(export_checks, "MAX_OPEN", 2)
    export_dir = tmp_path / "staging" / EXPORT_SUBDIR
    pages = [write_sidecars(export_dir, p, [b"%d" % (p * 10 + i) for i in range(3)] + [b"77"] * (p in (2, 5)))
             for p in range(1, 8)]
    with pytest.raises(ExportCheckError) as raised:
        check_export(pages, export_dir, "csv", partial=False)
    assert "1 record ids on more than one page (77 on pages 2, 5)" in str(raised.value)
    assert not list((tmp_path / "staging" / "checks").glob(".merge-*"))


def test_missing_sidecars_are_rebuilt_from_the_page_files(tmp_path):
    run = check_run(tmp_path)
    pages = [csv_page(run, 1, range(1, 4)), csv_page(run, 2, range(2, 4))]
    shutil.rmtree(staging(run) / "checks")
    with pytest.raises(ExportCheckError, match=r"2 record ids on more than one page \(5725767000001000002 on pages "
                                               r"1, 2; 5725767000001000003 on pages 1, 2\)"):
        check_export(checked(pages), staging(run), "csv", partial=False)


# ICS: an override on another page than its series, and an override whose series is not in the export. The pages
# come from the simulator with ics_overrides="apart" (8 events, 4 per page; event 3 is a series with an override).


@pytest.fixture(scope="module")
def apart_sim() -> Iterator:
    with start_simulator(job_seconds=0.1, ics_overrides="apart", per_page_ics=4, records={"Events": 8}) as sim:
        yield sim


def ics_download(sim, token: str, **query: Any) -> tuple[dict, bytes]:
    job_id = create_ok(sim, token, module_query("Events", **query), file_type="ics")
    job = wait_state(sim, token, job_id)
    with zipfile.ZipFile(io.BytesIO(download(sim, token, job_id).body)) as zf:
        return job, zf.read(f"{job_id}.ics")


def ics_page(run: ExportRun, number: int, job: dict, data: bytes) -> PageRecord:
    return page_record(run, number, job["id"], data, job["result"]["count"])


def test_override_on_another_page_than_its_series_publishes(apart_sim, tmp_path):
    token = access_token(apart_sim)
    (job1, data1), (job2, data2) = ics_download(apart_sim, token, page=1), ics_download(apart_sim, token, page=2)
    second = icalendar.Calendar.from_ical(data2).walk("VEVENT")
    assert "RECURRENCE-ID" in second[0] and "RRULE" not in second[0]  # its series is on page 1
    run = check_run(tmp_path, "Events", "ics")
    pages = [ics_page(run, 1, job1, data1), ics_page(run, 2, job2, data2)]
    report = json.loads((staging(run) / pages[1].files["report"].path).read_text())
    assert report["valid"] and any("resolved across the pages of the export" in n for n in report["notes"])
    manifest = publish_export(run, pages)
    assert manifest["warnings"] == [] and manifest["record_count"] == 8


def test_override_without_its_series_warns_in_a_time_range_and_fails_a_full_export(apart_sim, tmp_path):
    token = access_token(apart_sim)
    _, data2 = ics_download(apart_sim, token, page=2)
    following = icalendar.Calendar.from_ical(data2).walk("VEVENT")[1]  # the record the override travels with
    moment = following["LAST-MODIFIED"].dt.astimezone(UTC)
    window = [moment.isoformat(), (moment + timedelta(seconds=1)).isoformat()]
    criteria = {"group_operator": "and", "group": [
        {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": window[0]},
        {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": window[1]}]}
    job, data = ics_download(apart_sim, token, criteria=criteria)
    run = check_run(tmp_path, "Events", "ics", criteria=criteria, time_range=tuple(window))
    pages = [ics_page(run, 1, job, data)]
    with pytest.raises(ExportCheckError, match="whose series .* is on no page of the export .*: a full export must "
                                               "hold every series"):
        check_export(checked(pages), staging(run), "ics", partial=False)
    manifest = publish_export(run, pages)
    assert len(manifest["warnings"]) == 1
    assert manifest["warnings"][0].startswith("1 override(s) (RECURRENCE-ID) whose series (VEVENT with RRULE) is on "
                                              "no page of the export (UID ")
    assert manifest["warnings"][0].endswith("on pages 1): kept, the series lies outside the export's time range "
                                            "or criteria")


def ics(*events: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Zoho//CRM//EN\r\n" + "".join(events)
            + "END:VCALENDAR\r\n").encode()


def vevent(uid: str, extra: str = "") -> str:
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261101T100000Z\r\n"
            f"DTEND:20261101T110000Z\r\n{extra}END:VEVENT\r\n")


SERIES = vevent("s", "RRULE:FREQ=WEEKLY;COUNT=3\r\n")
OVERRIDE = vevent("s", "RECURRENCE-ID:20261108T100000Z\r\n")


def test_series_on_page_1_and_its_override_on_page_2_publish(tmp_path):
    run = check_run(tmp_path, "Events", "ics")
    pages = [page_record(run, 1, "j1", ics(vevent("a"), SERIES), 2),
             page_record(run, 2, "j2", ics(OVERRIDE, vevent("b")), 1)]
    manifest = publish_export(run, pages)
    assert manifest["warnings"] == [] and manifest["record_count"] == 3


def test_same_uid_or_same_override_on_two_pages_fails(tmp_path):
    run = check_run(tmp_path, "Events", "ics")
    pages = [page_record(run, 1, "j1", ics(SERIES, vevent("a"), OVERRIDE), 2),
             page_record(run, 2, "j2", ics(vevent("a"), OVERRIDE), 1)]
    with pytest.raises(ExportCheckError) as raised:
        check_export(checked(pages), staging(run), "ics", partial=True)
    assert "1 event UIDs (without RECURRENCE-ID) on more than one page (a on pages 1, 2)" in str(raised.value)
    assert "1 occurrence(s) overridden on more than one page (UID s RECURRENCE-ID 20261108T100000Z on pages 1, 2)" \
        in str(raised.value)
