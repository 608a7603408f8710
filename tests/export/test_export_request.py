"""Params and data interval -> checked query, run key and time range (pure; no Airflow run needed)."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime

import pytest
from airflow.sdk.exceptions import ParamValidationError

from zoho_crm.bulk_read_query import InvalidBulkReadQuery
from zoho_crm.export_dag import build_export_dag
from zoho_crm.export_request import PARAM_NAMES, resolve_export, zoho_datetime

DAY = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)


def resolve(params: dict, run_type: str = "manual", interval=(None, None)) -> dict:
    return resolve_export(params, run_type=run_type, run_id="manual__2026-11-29T04:00:00+00:00",
                          interval_start=interval[0], interval_end=interval[1], custom_modules=("Shipments",))


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
