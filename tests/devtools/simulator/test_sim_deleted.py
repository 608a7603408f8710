"""GET /crm/{version}/{module}/deleted: pages, types, If-Modified-Since, 204, errors; deletions leave exports."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime

import pytest

from tests.devtools.simulator.sim_client import (
    Answer,
    access_token,
    create_ok,
    http,
    module_query,
    wait_state,
)

DEC1 = "2026-12-01T00:00:00+00:00"


def deleted(sim, token: str | None, module: str = "Leads", version: str = "v8", since: str | None = None,
            **params: object) -> Answer:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    headers = {"Authorization": f"Zoho-oauthtoken {token}"} if token else {}
    if since:
        headers["If-Modified-Since"] = since
    request = urllib.request.Request(f"{sim.url}/crm/{version}/{module}/deleted?{query}", headers=headers)
    return http_request(request)


def http_request(request: urllib.request.Request) -> Answer:
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            answer = Answer(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        answer = Answer(err.code, dict(err.headers), err.read())
    if answer.body and answer.headers.get("Content-Type", "").startswith("application/json"):
        answer.json = json.loads(answer.body)
    return answer


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_nothing_deleted_is_204_with_an_empty_body_and_logged(sim, token) -> None:
    answer = deleted(sim, token)
    assert (answer.status, answer.body) == (204, b"")
    logged = sim.requests("deleted")
    assert [(e["path"], e["status"]) for e in logged] == [("/crm/v8/Leads/deleted", 204)]


def test_scheduled_deletions_restore_and_expiry(sim, token) -> None:
    ids = sim.record_ids("Leads")
    recycled, gone, back = ids[3], ids[4], ids[5]
    sim.delete_record("Leads", recycled, "2026-11-30T10:00:00+00:00")
    sim.delete_record("Leads", gone, "2026-11-30T11:00:00+00:00", kind="permanent")
    sim.delete_record("Leads", back, "2026-11-30T09:00:00+00:00")
    sim.restore_record("Leads", back, "2026-11-30T15:00:00+00:00")
    assert deleted(sim, token).status == 204, "the clock has not reached the deletions"
    sim.set_clock("2026-11-30T12:00:00+00:00")
    answer = deleted(sim, token)
    assert answer.status == 200
    assert [(e["id"], e["type"]) for e in answer.json["data"]] == [
        (gone, "permanent"), (recycled, "recycle"), (back, "recycle")], "newest first"
    assert answer.json["info"] == {"page": 1, "per_page": 200, "count": 3, "more_records": False}
    entry = answer.json["data"][1]
    assert epoch(entry["deleted_time"]) == epoch("2026-11-30T10:00:00+00:00")
    assert entry["display_name"] and entry["deleted_by"]["id"].isdigit() and entry["created_by"]["name"]
    assert [e["id"] for e in deleted(sim, token, type="permanent").json["data"]] == [gone]
    assert [e["id"] for e in deleted(sim, token, type="recycle").json["data"]] == [recycled, back]
    since = deleted(sim, token, since="2026-11-30T09:30:00+00:00").json["data"]
    assert [e["id"] for e in since] == [gone, recycled]
    live = set(sim.record_ids("Leads"))
    assert len(live) == 297 and not live & {recycled, gone, back}
    job = wait_state(sim, token, create_ok(sim, token, module_query("Leads")))
    assert job["result"]["count"] == 297

    sim.set_clock(DEC1)
    assert [e["id"] for e in deleted(sim, token).json["data"]] == [gone, recycled]
    restored = sim.records("Leads", ["Modified_Time"], criteria={
        "field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": "2026-11-30T00:00:00+00:00"})
    assert [r["id"] for r in restored] == [back]
    assert epoch(restored[0]["Modified_Time"]) == epoch("2026-11-30T15:00:00+00:00")

    sim.set_faults(recycle_retention_days=1)
    sim.set_clock("2026-12-02T00:00:00+00:00")
    assert [(e["id"], e["type"]) for e in deleted(sim, token).json["data"]] == [
        (gone, "permanent"), (recycled, "permanent")], "the recycle bin's retention ran out"
    with pytest.raises(urllib.error.HTTPError) as refused:
        sim.restore_record("Leads", recycled)
    assert refused.value.code == 400 and "not in the recycle bin" in refused.value.read().decode()


def test_random_deletions_page_at_200_and_match_the_exports(sim, token) -> None:
    sim.set_faults(records={"Leads": 2000}, deletions_per_day=0.05, restore_share=0.5)
    sim.set_clock("2026-12-20T00:00:00+00:00")
    truth = sim.deleted_records("Leads")
    assert len(truth) > 400 and {e["type"] for e in truth} == {"recycle", "permanent"}
    pages, page = [], 1
    while (answer := deleted(sim, token, page=page, per_page=200)).status == 200:
        pages.append(answer.json)
        page += 1
    assert [p["info"]["more_records"] for p in pages] == [True] * (len(pages) - 1) + [False]
    assert all(p["info"]["count"] == 200 for p in pages[:-1])
    assert [e for p in pages for e in p["data"]] == truth
    live = set(sim.record_ids("Leads"))
    assert not live & {e["id"] for e in truth} and len(live) + len(truth) == 2000
    job = wait_state(sim, token, create_ok(sim, token, module_query("Leads")))
    assert job["result"]["count"] == len(live)
    assert deleted(sim, token, page=page).status == 204
    recycle = [e["id"] for e in deleted(sim, token, type="recycle").json["data"]]
    assert recycle == [e["id"] for e in truth if e["type"] == "recycle"][:200]
    sim.set_clock("2026-11-25T00:00:00+00:00")
    assert len(sim.deleted_records("Leads")) < len(truth), "deletions happen over time"


@pytest.mark.parametrize(("params", "code"), [
    ({"type": "bogus"}, "INVALID_DATA"), ({"per_page": 201}, "INVALID_DATA"), ({"page": 0}, "INVALID_DATA")])
def test_bad_parameters(sim, token, params, code) -> None:
    answer = deleted(sim, token, **params)
    assert (answer.status, answer.json["code"]) == (400, code)


def test_auth_scope_and_module_errors(sim, token) -> None:
    assert deleted(sim, None).json["code"] == "AUTHENTICATION_FAILURE"
    assert deleted(sim, "1000.nope").json["code"] == "INVALID_TOKEN"
    assert (deleted(sim, token, module="Nope").status, deleted(sim, token, module="Nope").json["code"]) == (
        400, "INVALID_MODULE")
    assert deleted(sim, token, since="yesterday").json["code"] == "INVALID_DATA"
    assert deleted(sim, token, version="v2").status == 204
    sim.set_faults(scopes=["ZohoCRM.bulk.read", "ZohoCRM.modules.contacts.READ"])
    denied = deleted(sim, token)
    assert (denied.status, denied.json["code"]) == (401, "OAUTH_SCOPE_MISMATCH")
    assert deleted(sim, token, module="Contacts").status == 204
    sim.set_faults(no_permission_modules=["Contacts"])
    assert deleted(sim, token, module="Contacts").status == 403
    assert http(f"{sim.url}/crm/v8/Leads/deleted", "POST", {}, access_token(sim)).json["code"] == (
        "INVALID_REQUEST_METHOD")
