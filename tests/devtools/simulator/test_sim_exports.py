"""Exports: CSV content, fields order, criteria subsets, both pagination styles, page tokens, ICS, callbacks."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import zipfile

import icalendar

from include.devtools.zoho_simulator.data import MODULES
from tests.devtools.simulator.sim_client import (
    access_token,
    create,
    create_ok,
    download,
    http,
    module_query,
    wait_state,
)
from tests.local_http import QuietHandler, serving
from tests.simulator_fixtures import start_simulator

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def export(sim, token, query, version="v8", **extra) -> tuple[dict, list[dict[str, str]], list[str]]:
    """Create, wait, download: (job details, CSV rows as dicts, header)."""
    job_id = create_ok(sim, token, query, version, **extra)
    job = wait_state(sim, token, job_id, version=version)
    answer = download(sim, token, job_id, version)
    assert answer.status == 200, answer.json
    with zipfile.ZipFile(io.BytesIO(answer.body)) as zf:
        assert zf.namelist() == [f"{job_id}.csv"]
        text = zf.read(f"{job_id}.csv").decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    return job, [dict(zip(header, row, strict=True)) for row in reader], header


def test_all_fields_csv_values(sim, token) -> None:
    job, rows, header = export(sim, token, module_query("Leads"))
    spec = MODULES["Leads"]
    assert header == [f.api_name for f in spec.fields] and header[0] == "id" and len(header) == 40
    assert job["result"]["count"] == len(rows) == 300 and job["result"]["more_records"] is False
    assert "next_page_token" not in job["result"]
    assert all(len(r["id"]) == 19 and r["id"].isdigit() for r in rows)
    assert all(ISO.match(r["Modified_Time"]) and ISO.match(r["Created_Time"]) for r in rows)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["Date_of_Birth"]) for r in rows)
    assert {r["Email_Opt_Out"] for r in rows} == {"true", "false"}
    assert all(len(r["Owner"]) == 19 for r in rows)
    values = [v for r in rows for v in r.values()]
    assert any("\n" in v for v in values) and any('"' in v for v in values) and any("," in v for v in values)
    assert any(not v.isascii() for v in values) and "" in values
    assert {r["Health_Notes"] for r in rows} == {""}, "a restricted health field is empty on every row"
    assert set(sim.record_ids("Leads")) == {r["id"] for r in rows}


def test_fields_order_and_owner_subfield(sim, token) -> None:
    fields = ["Modified_Time", "Last_Name", "Owner", "Owner.last_name", "Email"]
    job, rows, header = export(sim, token, module_query("Contacts", fields=fields))
    assert header == ["id", *fields]
    assert job["query"]["fields"] == fields
    assert any(r["Owner.last_name"] == "Boyle" for r in rows if r["Owner"] == "5725767000000411001")


def test_criteria_subsets(sim, token) -> None:
    criteria = {"group_operator": "or", "group": [
        {"group_operator": "and", "group": [
            {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": "2026-11-10T00:00:00+00:00"},
            {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": "2026-11-20T00:00:00+01:00"}]},
        {"field": {"api_name": "Lead_Source"}, "comparator": "in", "value": ["Partner", "Trade Show"]}]}
    job, rows, _ = export(sim, token, module_query("Leads", criteria=criteria, fields=["Modified_Time", "Lead_Source"]))
    expected = sim.record_ids("Leads", criteria)
    assert 0 < len(rows) == job["result"]["count"] == len(expected) < 300
    assert [r["id"] for r in rows] == expected
    between = {"field": {"api_name": "Created_Time"}, "comparator": "between",
               "value": ["2026-11-03T00:00:00+00:00", "2026-11-05T00:00:00+00:00"]}
    _, rows, _ = export(sim, token, module_query("Leads", criteria=between, fields=["Created_Time"]))
    assert [r["id"] for r in rows] == sim.record_ids("Leads", between)
    equal = {"field": {"api_name": "Last_Name"}, "comparator": "equal", "value": "García"}
    _, rows, _ = export(sim, token, module_query("Leads", criteria=equal, fields=["Last_Name"]))
    assert rows and {r["Last_Name"] for r in rows} == {"García"}


def test_empty_export_completes_with_count_0(sim, token) -> None:
    none = {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": "2000-01-01T00:00:00+00:00"}
    job, rows, header = export(sim, token, module_query("Deals", criteria=none))
    assert job["state"] == "COMPLETED" and job["result"]["count"] == 0 and rows == [] and header[0] == "id"


def test_page_tokens_v8(sim, token) -> None:
    sim.set_faults(per_page_csv=120)
    seen, query, pages = [], module_query("Leads", fields=["Last_Name"]), []
    while True:
        job, rows, _ = export(sim, token, query)
        pages.append(job["result"])
        seen += [r["id"] for r in rows]
        if not job["result"]["more_records"]:
            break
        query = module_query("Leads", fields=["Last_Name"], page_token=job["result"]["next_page_token"])
    assert [p["count"] for p in pages] == [120, 120, 60] and [p["page"] for p in pages] == [1, 2, 3]
    assert "next_page_token" not in pages[-1] and all(p["per_page"] == 120 for p in pages)
    assert seen == sim.record_ids("Leads")


def test_page_numbers_v2_to_v6(sim, token) -> None:
    sim.set_faults(per_page_csv=120)
    for version in ("v2", "v6"):
        seen = []
        for page in (1, 2, 3):
            job, rows, _ = export(sim, token, module_query("Accounts", page=page), version)
            assert "next_page_token" not in job["result"] and job["result"]["page"] == page
            assert job["result"]["more_records"] is (page < 3)
            seen += [r["id"] for r in rows]
        assert seen == sim.record_ids("Accounts")
        assert create(sim, token, module_query("Accounts", page=4), version).json["code"] == "PAGE_RANGE_EXCEEDED"


def test_page_token_expiry_and_other_user() -> None:
    with start_simulator(job_seconds=0.1, per_page_csv=100, page_token_ttl=1.0,
                         extra_user=["1000.second.refresh"]) as sim:
        mine, theirs = access_token(sim), access_token(sim, "1000.second.refresh")
        job_id = create_ok(sim, mine, module_query("Leads"))
        page_token = wait_state(sim, mine, job_id)["result"]["next_page_token"]
        other = create(sim, theirs, module_query("Leads", page_token=page_token))
        assert (other.status, other.json["code"]) == (400, "AUTHORIZATION_FAILED")
        expired = sim.wait_for(lambda: (a := create(sim, mine, module_query("Leads", page_token=page_token)))
                               .status == 400 and a, timeout=10)
        assert expired.json["code"] == "PAGE_RANGE_EXCEEDED" and expired.json["details"]["reason"] == "expired"
        bogus = create(sim, mine, module_query("Leads", page_token="nope"))
        assert bogus.json["details"]["reason"] == "invalid"


def test_ics_export(sim, token) -> None:
    sim.set_faults(per_page_ics=250)
    job_id = create_ok(sim, token, module_query("Events"), file_type="ics")
    job = wait_state(sim, token, job_id)
    assert job["file_type"] == "ics" and job["result"]["count"] == 250 and job["result"]["more_records"] is True
    answer = download(sim, token, job_id)
    with zipfile.ZipFile(io.BytesIO(answer.body)) as zf:
        assert zf.namelist() == [f"{job_id}.ics"]
        calendar = icalendar.Calendar.from_ical(zf.read(f"{job_id}.ics"))
    assert str(calendar["VERSION"]) == "2.0" and "PRODID" in calendar
    events = calendar.walk("VEVENT")
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    overrides = [e for e in events if "RECURRENCE-ID" in e]
    assert len(masters) == 250 == len({str(e["UID"]) for e in events})
    assert overrides and any("RRULE" in e for e in masters)
    series = {str(e["UID"]): e for e in masters if "RRULE" in e}
    for occurrence in overrides:
        master = series[str(occurrence["UID"])]
        assert occurrence["RECURRENCE-ID"].dt > master["DTSTART"].dt
    assert all(k in masters[0] for k in ("UID", "DTSTART", "DTEND", "DTSTAMP", "SUMMARY"))


def test_callback_receives_job_details(sim, token) -> None:
    received: list[bytes] = []
    done = threading.Event()

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()
            done.set()

    with serving(Handler) as base_url:
        job_id = create_ok(sim, token, module_query("Leads"), callback={"url": f"{base_url}/cb", "method": "post"})
        assert done.wait(15), "no callback arrived"
    body = json.loads(received[0])
    assert body["data"][0]["id"] == job_id and body["data"][0]["state"] == "COMPLETED"


def test_fields_metadata_matches_data(sim, token) -> None:
    answer = http(f"{sim.url}/crm/v8/settings/fields?module=Leads", token=token)
    assert answer.status == 200
    fields = answer.json["fields"]
    assert [f["api_name"] for f in fields] == [f.api_name for f in MODULES["Leads"].fields]
    types = {f["api_name"]: f["data_type"] for f in fields}
    assert types["Owner"] == "ownerlookup" and types["Modified_Time"] == "datetime" and types["Email"] == "email"
    assert {"text", "email", "phone", "picklist", "datetime", "date", "bigint", "currency", "double", "integer",
            "boolean", "lookup", "ownerlookup", "textarea"} <= set(types.values())
    picklist = next(f for f in fields if f["api_name"] == "Lead_Source")
    _, rows, _ = export(sim, token, module_query("Leads", fields=["Lead_Source"]))
    allowed = {p["actual_value"] for p in picklist["pick_list_values"]} | {""}
    assert {r["Lead_Source"] for r in rows} <= allowed
    missing = http(f"{sim.url}/crm/v8/settings/fields", token=token)
    assert missing.status == 400 and missing.json["code"] == "REQUIRED_PARAM_MISSING"
