"""Params and data interval -> checked query, run key and time range (pure; no Airflow run needed)."""

from __future__ import annotations

import copy
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import lazy_object_proxy
import pytest
from airflow.sdk.api.datamodels._generated import DagRun, DagRunState, DagRunType
from airflow.sdk.exceptions import ParamValidationError

from tests.export.support import INTERVAL, export_run, validated
from zoho_crm.api.query import InvalidBulkReadQuery
from zoho_crm.export.dag import build_export_dag
from zoho_crm.export.params import PARAM_NAMES
from zoho_crm.export.records import ExportQuery, ExportRun, interval_gap, zoho_datetime
from zoho_crm.export.steps import publish_export

DAY = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)


def resolve(params: dict, run_type: str = "manual", interval=(None, None)) -> dict:
    """The run's XCom (query and run key) from Params, as the resolve_query task builds it."""
    query = ExportQuery.from_params(params, run_type=run_type, interval_start=interval[0],
                                    interval_end=interval[1], custom_modules=("Shipments",))
    run = ExportRun.create(query, run_type=run_type, run_id="manual__2026-11-29T04:00:00+00:00",
                           interval_start=interval[0], interval_end=interval[1], store="/nowhere")
    assert ExportRun.from_xcom(run.to_xcom()) == run, "the run crosses XCom unchanged"
    return run.to_xcom()


def test_scheduled_run_exports_its_data_interval_by_modified_time() -> None:
    query = resolve({"module": "Leads", "fields": [], "file_type": "csv"}, "scheduled", DAY)
    assert query["criteria"] == {"group_operator": "and", "group": [
        {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": "2026-11-10T00:00:00+00:00"},
        {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": "2026-11-11T00:00:00+00:00"},
    ]}
    assert query["run_key"] == "20261110T000000Z--20261111T000000Z"
    assert resolve({"module": "Leads"}, "backfill", DAY)["run_key"] == query["run_key"]


def test_manual_run_exports_everything_under_its_own_key() -> None:
    query = resolve({"module": "leads"})
    assert query["module"] == "Leads" and query["criteria"] is None and query["time_range"] is None
    assert re.fullmatch(r"manual--manual__2026-11-29T04-00-00-00-00--[0-9a-f]{12}", query["run_key"])


def test_time_range_override_and_user_criteria_are_combined() -> None:
    user = {"field": {"api_name": "Lead_Status"}, "comparator": "equal", "value": "Contacted"}
    query = resolve({"module": "Leads", "criteria": user, "modified_from": "2026-11-01T00:00:00Z",
                     "modified_to": "2026-11-02T05:30:00+05:30"})
    assert query["time_range"] == ["2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00"]
    assert query["criteria"]["group"][0] == user


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"module": "Leadz"}, "unknown module 'Leadz'"),
        ({"module": ""}, "module is empty"),
        ({"module": "Leads", "file_type": "ics"}, "works only for module Events"),
        ({"module": "Events", "file_type": "ics", "fields": ["Subject"]}, "fields are not allowed"),
        ({"module": "Notes"}, "Notes cannot be exported with Bulk Read"),
        ({"module": "Leads", "modifed_from": "2026-11-01T00:00:00Z"}, "unknown parameter.*'modifed_from'"),
        ({"module": "Leads", "criteria": "{not json"}, "criteria is not valid JSON"),
        ({"module": "Leads", "criteria": {"field": {"api_name": "X"}, "group": []}}, "mixes a condition and a group"),
        ({"module": "Leads", "modified_from": "2026-11-01T00:00:00+00:00"}, "give both modified_from"),
        ({"module": "Leads", "modified_from": "2026-11-02T00:00:00Z", "modified_to": "2026-11-01T00:00:00Z"},
         "the start must be before the end"),
        ({"module": "Leads", "modified_from": "2026-11-01T00:00:00", "modified_to": "2026-11-02T00:00:00Z"},
         "has no offset"),
    ],
)
def test_invalid_requests_say_what_to_change(params: dict, message: str) -> None:
    with pytest.raises(InvalidBulkReadQuery, match=message):
        resolve(params)


def test_custom_module_from_the_config_is_accepted_in_any_case() -> None:
    assert resolve({"module": "Shipments"})["module"] == resolve({"module": "shipments"})["module"] == "Shipments"


def test_zoho_datetime_has_no_milliseconds_and_an_offset() -> None:
    assert zoho_datetime(datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)) == "2026-11-01T12:30:15+00:00"


def _form(dag, **conf):
    """The DAG's Params with a trigger form's values, validated as Airflow does when a run is created."""
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_trigger_form_schema_rejects_what_json_schema_can_express() -> None:
    dag = build_export_dag("form_check", schedule=None, custom_modules=["Shipments"])
    assert _form(dag, module="Events", file_type="ics")["file_type"] == "ics"
    assert _form(dag, module="price_books")["module"] == "price_books"
    assert _form(dag, module="shipments")["module"] == "shipments"
    group = {"group_operator": "or", "group": [
        {"field": {"api_name": "Lead_Status"}, "comparator": "equal", "value": "Contacted"},
        {"group_operator": "AND", "group": [{"field": {"api_name": "City"}, "comparator": "in", "value": ["X"]}]},
    ]}
    assert _form(dag, criteria=group)["criteria"] == group
    for bad in ({"file_type": "pdf"}, {"module": "Leads; DROP"}, {"fields": ["Last Name"]}, {"cvid": "abc"},
                {"modified_from": "yesterday"}, {"module": ""}, {"module": "NoSuchModule"}, {"module": "Notes"},
                {"criteria": {"foo": 1}},
                {"criteria": {"field": {"api_name": "Lead_Status"}, "comparator": "explodes", "value": "x"}},
                {"criteria": {"field": {"api_name": "X"}, "comparator": "equal"}},
                {"criteria": {"field": {"api_name": "X"}, "comparator": "equal", "value": 1, "group": []}},
                {"criteria": {"group_operator": "xor", "group": [group]}},
                {"criteria": {"group_operator": "and", "group": [{"foo": 1}]}}):
        with pytest.raises(ParamValidationError):
            _form(dag, **bad)


def test_the_form_has_exactly_the_params_the_export_reads() -> None:
    assert set(build_export_dag("form_keys", schedule=None).params) == set(PARAM_NAMES)


def nov(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


def test_a_scheduled_run_after_skipped_intervals_reports_the_gap_and_its_backfill() -> None:
    gap = interval_gap("scheduled", nov(3), nov(8), dag_id="zoho_crm_leads_csv")
    assert gap is not None
    assert (gap["start"], gap["end"]) == ("2026-11-03T00:00:00+00:00", "2026-11-08T00:00:00+00:00")
    assert gap["backfill_command"] == (
        "airflow backfill create --dag-id zoho_crm_leads_csv --from-date 2026-11-03T00:00:00+00:00 "
        "--to-date 2026-11-07T23:59:59+00:00 --reprocess-behavior failed"
    )
    assert "nothing was exported for 2026-11-03T00:00:00+00:00 .. 2026-11-08T00:00:00+00:00" in gap["message"]
    assert gap["backfill_command"] in gap["message"] and "Trigger > Backfill" in gap["message"]


@pytest.mark.parametrize(
    ("run_type", "prev_end", "start"),
    [
        ("scheduled", nov(8), nov(8)),  # the previous success ended where this run starts
        ("scheduled", None, nov(8)),  # the first run: nothing before it to compare
        ("scheduled", nov(9), nov(8)),  # overlapping intervals (a changed schedule) leave nothing out
        ("backfill", nov(3), nov(8)),  # a backfill runs old intervals, in any order, on purpose
        ("manual", nov(3), nov(8)),
        ("scheduled", nov(3), None),
    ],
    ids=["contiguous", "first-run", "overlap", "backfill", "manual", "no-interval"],
)
def test_no_gap_without_a_scheduled_run_starting_after_the_previous_success(run_type, prev_end, start) -> None:
    assert interval_gap(run_type, prev_end, start, dag_id="zoho_crm_leads_csv") is None


def _resolve_query_context(run_type: str, prev_end) -> dict:
    """The part of a task context resolve_query reads, built as Airflow 3.3's task runner builds it: the API's
    DagRun model, and prev_data_interval_end_success as a lazy proxy (it asks the API server when read)."""
    start, end = nov(8), nov(9)
    run = DagRun(
        dag_id="gap_check", run_id=f"{run_type}__2026-11-08T00:00:00+00:00", logical_date=start,
        data_interval_start=start, data_interval_end=end, run_after=end, start_date=end, end_date=None,
        run_type=DagRunType(run_type), state=DagRunState.RUNNING, consumed_asset_events=[], partition_key=None,
    )
    return {
        "dag_run": run, "params": {"module": "Leads", "fields": [], "file_type": "csv"},
        "data_interval_start": start, "data_interval_end": end,
        "prev_data_interval_end_success": lazy_object_proxy.Proxy(prev_end),
    }


def test_resolve_query_warns_about_a_gap_and_adds_it_to_the_query(caplog, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZOHO_EXPORT_DIR", str(tmp_path))
    resolve_query = build_export_dag("gap_check").get_task("resolve_query").python_callable
    with caplog.at_level(logging.WARNING, logger="zoho_crm.export.tasks"):
        query = resolve_query(**_resolve_query_context("scheduled", lambda: nov(3)))
        assert query["interval_gap"]["start"] == "2026-11-03T00:00:00+00:00"
        assert query["interval_gap"]["end"] == query["time_range"][0] == "2026-11-08T00:00:00+00:00"
        assert query["store"] == str(tmp_path) and query["download_dir"].startswith(str(tmp_path))
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
            query["interval_gap"]["message"]]
        caplog.clear()
        # The first run (Airflow hands a proxy of None) and a backfill (never asks for the previous success) and a
        # run right after the previous success do not warn.
        assert resolve_query(**_resolve_query_context("scheduled", lambda: None))["interval_gap"] is None
        assert resolve_query(**_resolve_query_context("scheduled", lambda: nov(8)))["interval_gap"] is None
        never = lambda: pytest.fail("a backfill must not ask for the previous success")  # noqa: E731
        assert resolve_query(**_resolve_query_context("backfill", never))["interval_gap"] is None
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_manifest_carries_the_gap(tmp_path) -> None:
    gap = interval_gap("scheduled", nov(3), nov(10), dag_id="zoho_crm_leads_csv")
    for run_id, query_gap in (("scheduled__gap", gap), ("scheduled__none", None)):
        run = export_run(tmp_path, INTERVAL, run_id, interval_gap=query_gap)
        summary = publish_export(run, [validated(run, 1, "1001")])
        assert summary["interval_gap"] == query_gap
        assert json.loads(Path(summary["manifest"]).read_text())["interval_gap"] == query_gap
