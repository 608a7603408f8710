"""Every error code of the facts file is reachable, with its HTTP status and Zoho's error body."""

from __future__ import annotations

import json

import pytest

from include.devtools.zoho_simulator.data import MODULES
from tests.devtools.simulator.sim_client import (
    create,
    create_ok,
    details,
    download,
    http,
    module_query,
    wait_state,
)

MT = {"api_name": "Modified_Time"}
TEXT = {"api_name": "Last_Name"}


def cond(field=MT, comparator="greater_equal", value="2026-11-01T00:00:00+00:00"):
    return {"field": field, "comparator": comparator, "value": value}


CREATE_CASES = {
    # name: (request body, expected HTTP status, expected code)
    "criteria not an object": ({"query": module_query("Leads", criteria=[1])}, 400, "INVALID_CRITERIA"),
    "unknown criteria field": ({"query": module_query("Leads", criteria=cond({"api_name": "Nope"}))}, 400,
                               "INVALID_CRITERIA"),
    "datetime with millis": ({"query": module_query("Leads", criteria=cond(value="2026-11-01T00:00:00.000+00:00"))},
                             400, "INVALID_CRITERIA"),
    "datetime without offset": ({"query": module_query("Leads", criteria=cond(value="2026-11-01T00:00:00"))}, 400,
                                "INVALID_CRITERIA"),
    "between with one value": ({"query": module_query("Leads", criteria=cond(comparator="between",
                                                                              value=["2026-11-01T00:00:00Z"]))},
                               400, "INVALID_CRITERIA"),
    "empty group": ({"query": module_query("Leads", criteria={"group_operator": "and", "group": []})}, 400,
                    "INVALID_CRITERIA"),
    "condition and group in one node": ({"query": module_query("Leads", criteria={
        **cond(), "group_operator": "and", "group": [cond()]})}, 400, "AMBIGUOUS_CRITERIA"),
    "greater_than on text": ({"query": module_query("Leads", criteria=cond(TEXT, "greater_than", "x"))}, 400,
                             "FIELD_COMPARATOR_IN_CRITERIA_NOT_SUPPORTED"),
    "group operator xor": ({"query": module_query("Leads", criteria={"group_operator": "xor",
                                                                      "group": [cond(), cond()]})}, 400,
                           "GROUP_OPERATOR_NOT_SUPPORTED"),
    "Notes": ({"query": module_query("Notes")}, 400, "MODULE_NOT_SUPPORTED"),
    "Attachments": ({"query": module_query("Attachments")}, 400, "MODULE_NOT_SUPPORTED"),
    "Emails": ({"query": module_query("Emails")}, 400, "MODULE_NOT_SUPPORTED"),
    "unknown module": ({"query": module_query("Nonsense")}, 400, "MODULE_NOT_SUPPORTED"),
    "ics for Leads": ({"query": module_query("Leads"), "file_type": "ics"}, 400, "MODULE_NOT_SUPPORTED"),
    "unknown cvid": ({"query": module_query("Leads", cvid="123")}, 400, "CVID_NOT_SUPPORTED"),
    "page beyond data": ({"query": module_query("Leads", page=2)}, 400, "PAGE_RANGE_EXCEEDED"),
    "page not an int": ({"query": module_query("Leads", page="1")}, 400, "PAGE_RANGE_EXCEEDED"),
    "callback url": ({"query": module_query("Leads"), "callback": {"url": "ftp:/x", "method": "post"}}, 400,
                     "INVALID_CALLBACK_URL"),
    "callback method": ({"query": module_query("Leads"), "callback": {"url": "http://h/cb", "method": "get"}}, 400,
                        "INVALID_CALLBACK_METHOD"),
    "body not an object": ([1, 2], 400, "REQUEST_BODY_NOT_SUPPORTED"),
    "no query": ({"file_type": "csv"}, 400, "REQUEST_BODY_NOT_SUPPORTED"),
    "fields with ics": ({"query": module_query("Events", fields=["Event_Title"]), "file_type": "ics"}, 400,
                        "REQUEST_BODY_NOT_SUPPORTED"),
    "unknown file_type": ({"query": module_query("Leads"), "file_type": "xlsx"}, 400, "REQUEST_BODY_NOT_SUPPORTED"),
    "unknown field in fields": ({"query": module_query("Leads", fields=["Nope"])}, 400, "FIELD_NOT_AVAILABLE"),
}


def assert_error(answer, status: int, code: str) -> None:
    assert answer.status == status, answer.json
    assert answer.headers["Content-Type"].startswith("application/json")
    assert set(answer.json) == {"code", "details", "message", "status"}
    assert answer.json["code"] == code and answer.json["status"] == "error"
    assert isinstance(answer.json["details"], dict) and answer.json["message"]


@pytest.mark.parametrize("name", list(CREATE_CASES))
def test_create_errors(sim, token, name: str) -> None:
    body, status, code = CREATE_CASES[name]
    answer = http(f"{sim.url}/crm/bulk/v8/read", "POST", body, token)
    assert_error(answer, status, code)
    assert sim.requests("create")[-1]["status"] == status


def test_page_range_exceeded_names_the_last_page(sim, token) -> None:
    answer = create(sim, token, module_query("Leads", page=3))
    assert_error(answer, 400, "PAGE_RANGE_EXCEEDED")
    assert answer.json["details"]["max_limit"] == 1


def test_page_token_on_v6(sim, token) -> None:
    assert_error(create(sim, token, module_query("Leads", page_token="abc"), version="v6"), 400,
                 "PAGE_RANGE_EXCEEDED")


def test_media_type(sim, token) -> None:
    raw = json.dumps({"query": module_query("Leads")}).encode()
    assert_error(http(f"{sim.url}/crm/bulk/v8/read", "POST", raw=raw, token=token, content_type=None), 415,
                 "MEDIA_TYPE_NOT_SUPPORTED")
    assert_error(http(f"{sim.url}/crm/bulk/v8/read", "POST", raw=raw, token=token, content_type="text/plain"), 415,
                 "MEDIA_TYPE_NOT_SUPPORTED")


def test_url_pattern_and_method(sim, token) -> None:
    for path in ("/crm/bulk/v9/read", "/crm/bulk/v1/read", "/crm/bulk/v8/reads", "/crm/v8/settings/field"):
        assert_error(http(f"{sim.url}{path}", "POST", {}, token), 404, "INVALID_URL_PATTERN")
    assert_error(http(f"{sim.url}/crm/bulk/v8/read", "GET", token=token), 400, "INVALID_REQUEST_METHOD")
    assert_error(http(f"{sim.url}/crm/bulk/v8/read/1", "DELETE", token=token), 400, "INVALID_REQUEST_METHOD")


def test_permissions(sim, token) -> None:
    sim.set_faults(no_permission_modules=["Deals"], unauthorized_modules=["Cases"])
    assert_error(create(sim, token, module_query("Deals")), 403, "NO_PERMISSION")
    assert_error(create(sim, token, module_query("Cases")), 400, "AUTHORIZATION_FAILED")
    assert create(sim, token, module_query("Leads")).status == 201


def test_unknown_job_and_download_before_completion(sim, token) -> None:
    assert_error(details(sim, token, "5725767000000000001"), 404, "RESOURCE_NOT_FOUND")
    assert_error(download(sim, token, "5725767000000000001"), 404, "RESOURCE_NOT_FOUND")
    sim.set_faults(job_seconds=30)
    job_id = create_ok(sim, token, module_query("Leads"))
    early = download(sim, token, job_id)
    assert_error(early, 400, "INVALID_REQUEST")
    assert early.json["details"]["state"] in ("ADDED", "QUEUED", "IN PROGRESS")


def test_job_ids_are_19_digits_and_every_module_exports(sim, token) -> None:
    ids = [create_ok(sim, token, module_query(module)) for module in MODULES]
    assert all(len(i) == 19 and i.isdigit() for i in ids) and len(set(ids)) == len(ids)
    states = {wait_state(sim, token, i)["state"] for i in ids}
    assert states == {"COMPLETED"}


def test_internal_error_and_too_many_requests_bodies(sim, token) -> None:
    sim.set_faults(error_rate=1.0)
    assert_error(create(sim, token, module_query("Leads")), 500, "INTERNAL_ERROR")
    sim.set_faults(error_rate=0.0, download_limit=1)
    sim.foreign_downloads(1)
    assert_error(download(sim, token, "5725767000000000001"), 429, "TOO_MANY_REQUESTS")
