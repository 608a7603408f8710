"""The export's table steps without Airflow's scheduler: typed Parquet per page (listed, with its schema, in the
manifest), schema drift from the previous export, the load plan of resolve_query (first full load, look-back) and
the load of a published export, on real files and a real PostgreSQL database."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lazy_object_proxy
import psycopg
import pyarrow.parquet as pq
import pytest
from airflow.sdk.api.datamodels._generated import DagRun, DagRunState, DagRunType
from psycopg import sql

from tests.export.support import INTERVAL, export_run, extracted, read_export
from tests.tables.conftest import ADMIN_DSN
from tests.validation.builders import FIELDS, HEADER, csv_text, good_row
from zoho_crm.export.dag import build_export_dag
from zoho_crm.export.load import LOAD_KEY, LoadPlan, load_published, table_asset_uri
from zoho_crm.export.records import ExportQuery, ExportStepError
from zoho_crm.export.steps import (
    PARQUET,
    export_schema,
    parquet_page,
    publish_export,
    schema_drift_entry,
    validate_page,
)
from zoho_crm.files.digest import file_sha256
from zoho_crm.tables.warehouse import read_sync_state

TIMED_FIELDS = [*FIELDS, {"api_name": "Modified_Time", "data_type": "datetime"}]
TIMED_HEADER = [*HEADER, "Modified_Time"]
WAREHOUSE = "zoho_crm_warehouse"


def timed_csv(first: int, records: int, modified: str = "2026-11-10T08:00:00+00:00") -> bytes:
    """A valid Leads-like page with a Modified_Time column."""
    return csv_text([TIMED_HEADER] + [[*good_row(n), modified] for n in range(first, first + records)]).encode()


def typed_page(run, page: int, job_id: str, data: bytes, count: int, metadata=TIMED_FIELDS):
    checked = validate_page(extracted(run, page, job_id, data, count=count), run, field_metadata=metadata)
    return parquet_page(checked, run, field_metadata=metadata)


def publish(run, pages, previous: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    schema = export_schema(run, pages)
    return publish_export(run, pages, extra={"schema": schema, "schema_drift": schema_drift_entry(previous, schema),
                                             **extra})


@pytest.fixture
def warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the local PostgreSQL service as connection ``zoho_crm_warehouse``; dropped after."""
    name = f"zoho_export_tables_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({exc.__class__.__name__})")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        monkeypatch.setenv(f"AIRFLOW_CONN_{WAREHOUSE.upper()}", f"postgres://postgres@127.0.0.1:5432/{name}")
        try:
            yield ADMIN_DSN.replace("dbname=postgres", f"dbname={name}")
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_csv_page_gets_typed_parquet_beside_it_listed_in_the_manifest_with_its_schema(tmp_path: Path) -> None:
    run = export_run(tmp_path, INTERVAL, "scheduled__a")
    pages = [typed_page(run, 1, "1001", timed_csv(1, 3), 3), typed_page(run, 2, "1002", timed_csv(10, 2), 2)]
    assert pages[0].files[PARQUET].path == "export/page_0001/1001.parquet"
    summary = publish(run, pages)
    manifest, _ = read_export(Path(summary["path"]))  # every listed file, the Parquet files included, checked
    parquet = manifest["pages"][0]["files"][PARQUET]
    assert parquet["path"].endswith("/page_0001/1001.parquet")
    table = pq.read_table(Path(summary["path"]) / parquet["path"])
    assert table.num_rows == 3
    assert str(table.schema.field("Id").type) == "int64" and str(table.schema.field("No_of_Employees").type) == "int64"
    assert str(table.schema.field("Modified_Time").type) == "timestamp[us, tz=UTC]"
    assert table.column("Annual_Revenue").to_pylist()[0] == pytest.approx(1234.5)
    assert [c["name"] for c in manifest["schema"]["columns"]] == TIMED_HEADER
    assert not manifest["schema"]["text_only"] and manifest["schema_drift"] is None


def test_without_field_metadata_every_parquet_column_is_text_and_the_schema_says_so(tmp_path: Path) -> None:
    run = export_run(tmp_path, INTERVAL, "scheduled__b")
    summary = publish(run, [typed_page(run, 1, "1001", timed_csv(1, 2), 2, metadata=None)])
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["schema"]["text_only"] is True
    assert {c["type"] for c in manifest["schema"]["columns"] if c["name"] != "Id"} == {"text"}


def test_an_ics_page_passes_the_parquet_step_unchanged(tmp_path: Path) -> None:
    run = export_run(tmp_path, INTERVAL, "scheduled__c", query=ExportQuery("Events", file_type="ics"))
    ics = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
           b"DTSTAMP:20261101T000000Z\r\nDTSTART:20261101T100000Z\r\nDTEND:20261101T110000Z\r\nSUMMARY:a\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    from tests.export.support import download
    from zoho_crm.export.steps import unzip_page

    page = validate_page(unzip_page(download(run, 1, "2001", ics, "ics", 1), run), run, field_metadata=None)
    assert parquet_page(page, run, field_metadata=None) == page
    assert export_schema(run, [page]) is None


def test_schema_drift_from_the_previous_export_is_in_the_manifest(tmp_path: Path) -> None:
    first = export_run(tmp_path, INTERVAL, "scheduled__d1")
    earlier = [f for f in TIMED_FIELDS if f["api_name"] != "Email_Opt_Out"]
    data = csv_text([[c for c in TIMED_HEADER if c != "Email_Opt_Out"]]
                    + [[v for c, v in zip(TIMED_HEADER, [*good_row(1), "2026-11-10T08:00:00+00:00"], strict=True)
                        if c != "Email_Opt_Out"]]).encode()
    before = export_schema(first, [typed_page(first, 1, "1001", data, 1, metadata=earlier)])
    previous = {"schema": before, "run_key": "older", "manifest": "/x/manifest.json"}
    later = export_run(tmp_path, INTERVAL, "scheduled__d2")
    changed = [{**f, "data_type": "text"} if f["api_name"] == "No_of_Employees" else f for f in TIMED_FIELDS]
    summary = publish(later, [typed_page(later, 1, "1002", timed_csv(1, 1), 1, metadata=changed)], previous)
    drift = json.loads(Path(summary["manifest"]).read_text())["schema_drift"]
    assert [c["name"] for c in drift["added"]] == ["Email_Opt_Out"] and drift["removed"] == []
    assert drift["changed"] == [{"name": "No_of_Employees", "old": "bigint", "new": "text", "safe": True}]
    assert drift["changed_any"] and drift["unsafe"] == [] and drift["previous"]["run_key"] == "older"
    assert drift["summary"] == "added Email_Opt_Out (boolean); No_of_Employees bigint -> text (safe)"


def test_a_value_that_does_not_fit_its_type_fails_validation_before_parquet(tmp_path: Path) -> None:
    run = export_run(tmp_path, INTERVAL, "scheduled__e")
    rows = [[*good_row(1), "2026-11-10T08:00:00+00:00"]]
    rows[0][TIMED_HEADER.index("No_of_Employees")] = "4.5"
    with pytest.raises(ExportStepError, match=r"No_of_Employees: not an integer"):
        validate_page(extracted(run, 1, "1001", csv_text([TIMED_HEADER, *rows]).encode(), count=1), run,
                      field_metadata=TIMED_FIELDS)


def _context(run_type: str, dag_id: str, start: datetime, end: datetime, **params: Any) -> dict[str, Any]:
    run = DagRun(
        dag_id=dag_id, run_id=f"{run_type}__{start.isoformat()}", logical_date=start,
        data_interval_start=start, data_interval_end=end, run_after=end, start_date=end, end_date=None,
        run_type=DagRunType(run_type), state=DagRunState.RUNNING, consumed_asset_events=[], partition_key=None,
    )
    return {
        "dag_run": run, "params": {"module": "Leads", "fields": [], "file_type": "csv", **params},
        "data_interval_start": start, "data_interval_end": end,
        "prev_data_interval_end_success": lazy_object_proxy.Proxy(lambda: None),
    }


def test_the_first_interval_run_exports_everything_and_later_ones_look_back(
    warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ZOHO_EXPORT_DIR", str(tmp_path))
    dag = build_export_dag("tables_check", warehouse_conn_id=WAREHOUSE, load_lookback=timedelta(minutes=15))
    resolve_query = dag.get_task("resolve_query").python_callable
    kwargs = dag.get_task("resolve_query").op_kwargs
    start, end = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    with caplog.at_level(logging.INFO, logger="zoho_crm.export.tasks"):
        first = resolve_query(**kwargs, **_context("scheduled", "tables_check", start, end))
    assert first["time_range"] is None and first["criteria"] is None, "no sync state yet: a full export"
    assert first[LOAD_KEY] == {"conn_id": WAREHOUSE, "target": "tables_check", "full_load": True,
                               "interval_end": "2026-11-11T00:00:00+00:00", "lookback_seconds": 0.0}
    assert first["run_key"] == "20261110T000000Z--20261111T000000Z", "the output is still the interval's"
    assert any("exports every record instead of its interval" in r.getMessage() for r in caplog.records)

    # The full export is loaded (sync state: full load done); the next interval is incremental with the look-back.
    run = export_run(tmp_path, first["run_key"], first["run_id"])
    summary = publish(run, [typed_page(run, 1, "1001", timed_csv(1, 3), 3)],
                      full_load=True, table_load=LoadPlan.from_xcom(first[LOAD_KEY]).manifest_entry("Leads"))
    assert json.loads(Path(summary["manifest"]).read_text())["full_load"] is True
    with psycopg.connect(warehouse) as conn:
        counts = load_published(conn, run, LoadPlan.from_xcom(first[LOAD_KEY]), TIMED_FIELDS)
        assert (counts["inserted"], counts["updated"], counts["full_load"]) == (3, 0, True)
        assert read_sync_state(conn, "Leads", "tables_check").full_load_done_at is not None
    later = resolve_query(**kwargs, **_context("scheduled", "tables_check", end, end + timedelta(days=1)))
    assert later["time_range"] == ["2026-11-10T23:45:00+00:00", "2026-11-12T00:00:00+00:00"]
    assert later[LOAD_KEY]["full_load"] is False and later[LOAD_KEY]["lookback_seconds"] == 900
    # Another DAG (target) on the same module has its own first load; a manual run is never widened.
    other = resolve_query(**kwargs, **_context("backfill", "other_dag", start, end))
    assert other["time_range"] is None and other[LOAD_KEY]["full_load"] is True
    manual = resolve_query(**kwargs, **_context("manual", "tables_check", start, end))
    assert manual["time_range"] is None and manual[LOAD_KEY]["interval_end"] is None
    ranged = resolve_query(**kwargs, **_context("manual", "tables_check", start, end,
                                                 modified_from="2026-11-01T00:00:00+00:00",
                                                 modified_to="2026-11-02T00:00:00+00:00"))
    assert ranged["time_range"] == ["2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00"]
    assert ranged[LOAD_KEY]["full_load"] is False
    criteria = {"field": {"api_name": "Lead_Status"}, "comparator": "equal", "value": "Contacted"}
    selected = resolve_query(**kwargs, **_context("manual", "tables_check", start, end, criteria=criteria))
    assert selected["time_range"] is None and selected[LOAD_KEY]["full_load"] is True, "all the query selects"


def test_without_a_warehouse_runs_are_planned_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOHO_EXPORT_DIR", str(tmp_path))
    dag = build_export_dag("no_tables")
    assert "load_table" not in dag.task_ids
    task = dag.get_task("resolve_query")
    start, end = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    query = task.python_callable(**task.op_kwargs, **_context("scheduled", "no_tables", start, end))
    assert query["time_range"] == ["2026-11-10T00:00:00+00:00", "2026-11-11T00:00:00+00:00"]
    assert LOAD_KEY not in query


def test_a_loaded_field_subset_must_have_modified_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("ZOHO_EXPORT_DIR", str(tmp_path))
    task = build_export_dag("subset", warehouse_conn_id=WAREHOUSE).get_task("resolve_query")
    start, end = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    with pytest.raises(AirflowFailException, match="lack Modified_Time.*add it to the fields"):
        task.python_callable(**task.op_kwargs, **_context("manual", "subset", start, end, fields=["Last_Name"]))


def test_the_load_reads_the_published_export_and_refuses_a_changed_file(warehouse: str, tmp_path: Path) -> None:
    run = export_run(tmp_path, INTERVAL, "scheduled__f")
    summary = publish(run, [typed_page(run, 1, "1001", timed_csv(1, 3), 3),
                            typed_page(run, 2, "1002", timed_csv(100, 2), 2)], full_load=False)
    plan = LoadPlan(WAREHOUSE, "tables_check", full_load=False, interval_end="2026-11-11T00:00:00+00:00")
    with psycopg.connect(warehouse) as conn:
        counts = load_published(conn, run, plan, TIMED_FIELDS)
        assert (counts["table"], counts["records"], counts["inserted"], counts["pages"]) == ("zoho_crm.leads", 5, 5, 2)
        again = load_published(conn, run, plan, TIMED_FIELDS)
        assert (again["inserted"], again["updated"], again["skipped"]) == (0, 0, 5), "a rerun changes nothing"
        manifest = json.loads(Path(summary["manifest"]).read_text())
        page = Path(summary["path"]) / manifest["pages"][1]["file"]
        page.write_bytes(page.read_bytes().replace(b"M\xc3\xbcller", b"Mueller"))
        with pytest.raises(ExportStepError, match=r"page 2 .* has sha256 .*the manifest says"):
            load_published(conn, run, plan, TIMED_FIELDS)
        assert conn.execute("SELECT count(*) FROM zoho_crm.leads").fetchone()[0] == 5
    assert file_sha256(page) != manifest["pages"][1]["sha256"]


def test_the_table_asset_names_the_connection_and_the_table() -> None:
    assert table_asset_uri(WAREHOUSE, "Sales_Orders") == "zoho-crm-table://zoho_crm_warehouse/zoho_crm.sales_orders"
    dag = build_export_dag("assets", warehouse_conn_id=WAREHOUSE, schedule=None, custom_modules=["Shipments"])
    load = dag.get_task("load_table")
    inlets = {asset.uri for asset in load.inlets}
    assert table_asset_uri(WAREHOUSE, "Leads") in inlets and table_asset_uri(WAREHOUSE, "Shipments") in inlets
    assert load.max_active_tis_per_dag == 1
    assert {t.task_id for t in load.upstream_list} == {"manifest", "field_metadata", "resolve_query"}
    assert {t.task_id for t in dag.get_task("manifest").upstream_list} == {"resolve_query", "to_parquet"}
