"""The export's records: the query's request bodies page by page, JSON round trips through XCom, and a page's
``files`` map driving what is published and listed in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.export.support import INTERVAL, export_run, files, final, read_export, staging, validated
from zoho_crm.api.query import InvalidBulkReadQuery
from zoho_crm.export.records import ExportQuery, ExportRun, PageRecord, StoredFile
from zoho_crm.export.steps import publish_export
from zoho_crm.files.digest import file_sha256

QUERY = ExportQuery("Leads", fields=("Last_Name", "Email"), cvid="5725767000000087501",
                    criteria={"field": {"api_name": "City"}, "comparator": "equal", "value": "Paris"})


def test_the_query_asks_for_each_next_page_by_token_or_by_number() -> None:
    first = QUERY.to_request_body("v8")
    assert first == {"query": {"module": {"api_name": "Leads"}, "cvid": "5725767000000087501",
                               "fields": ["Last_Name", "Email"], "criteria": QUERY.criteria, "page": 1},
                     "file_type": "csv"}
    finished = {"page": 1, "more_records": True, "next_page_token": "tok-2"}
    by_number = {key: value for key, value in first["query"].items() if key != "page"}
    assert QUERY.next_page(finished, "v8")["query"] == {**by_number, "page_token": "tok-2"}
    assert QUERY.next_page(finished, "v6")["query"]["page"] == 2
    assert QUERY.next_page({**finished, "more_records": False}, "v8") is None
    with pytest.raises(InvalidBulkReadQuery, match="page 1 has more records but no next_page_token"):
        QUERY.next_page({"page": 1, "more_records": True}, "v7")


def test_records_cross_xcom_as_json_and_come_back_equal(tmp_path: Path) -> None:
    run = export_run(tmp_path, INTERVAL, "scheduled__1", QUERY)
    assert ExportRun.from_xcom(json.loads(json.dumps(run.to_xcom()))) == run
    assert ExportQuery.from_xcom(run.to_xcom()) == QUERY, "a run's XCom reads as its query (for the operators)"
    page = validated(export_run(tmp_path, INTERVAL, "scheduled__1"), 1, "1001")
    assert set(page.files) == {"zip", "csv", "report"}
    assert page.files["zip"].path == "downloads/1001.zip" and not page.files["zip"].published
    assert page.files["csv"].path == "export/page_0001/1001.csv" and page.files["csv"].published
    assert PageRecord.from_xcom(json.loads(json.dumps(page.to_xcom()))) == page
    assert page.valid and page.records == 3


def test_every_published_artifact_of_a_page_is_placed_and_listed(tmp_path: Path) -> None:
    """A later page step (e.g. Parquet) adds its file to ``files``; the publish places and lists it, unchanged."""
    run = export_run(tmp_path, INTERVAL, "scheduled__1")
    page = validated(run, 1, "1001")
    extra = staging(run) / "export" / "page_0001" / "1001.parquet"
    extra.write_bytes(b"PAR1 not really")
    page = page.with_files(parquet=StoredFile("export/page_0001/1001.parquet", file_sha256(extra)))
    summary = publish_export(run, [page])
    manifest, listed = read_export(final(run))
    entry = manifest["pages"][0]
    version = manifest["version"]
    assert entry["files"] == {
        "csv": {"path": f"{version}/page_0001/1001.csv", "sha256": page.files["csv"].sha256},
        "report": {"path": f"{version}/page_0001/report.json", "sha256": page.files["report"].sha256},
        "parquet": {"path": f"{version}/page_0001/1001.parquet", "sha256": page.files["parquet"].sha256},
    }
    assert (entry["file"], entry["report"]) == (entry["files"]["csv"]["path"], entry["files"]["report"]["path"])
    assert entry["zip_sha256"] == page.files["zip"].sha256, "the download is not published, its digest is kept"
    assert files(final(run)) == listed | {entry["files"]["parquet"]["path"]}
    assert summary["manifest"] == str(final(run) / "manifest.json")
