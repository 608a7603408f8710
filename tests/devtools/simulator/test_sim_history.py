"""Records over simulated time: the clock, edits (random and scheduled), added fields; exports stay consistent."""

from __future__ import annotations

import csv
import io
import urllib.error
import zipfile
from datetime import datetime

import pytest

from tests.devtools.simulator.sim_client import create, create_ok, download, http, module_query, wait_state

END = "2026-11-29T00:00:00+00:00"  # --time-start + --time-days of the default options


def interval(start: str, end: str) -> dict:
    return {"group_operator": "and", "group": [
        {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": start},
        {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": end}]}


def export(sim, token, module: str, **query) -> tuple[dict, list[dict[str, str]]]:
    job_id = create_ok(sim, token, module_query(module, **query))
    job = wait_state(sim, token, job_id)
    with zipfile.ZipFile(io.BytesIO(download(sim, token, job_id).body)) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read(f"{job_id}.csv").decode(), newline="")))
    assert job["result"]["count"] == len(rows)
    return job, rows


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_default_clock_is_the_end_of_the_span_and_data_is_unchanged(sim, token) -> None:
    clock = sim.clock()
    assert (clock["now"], clock["end"], clock["rate"]) == (END, END, 0.0)
    _, rows = export(sim, token, "Leads")
    assert len(rows) == 300 and max(epoch(r["Modified_Time"]) for r in rows) < epoch(END)


def test_a_scheduled_edit_appears_from_its_moment_in_exports_criteria_and_counts(sim, token) -> None:
    before = {r["id"]: r for r in export(sim, token, "Leads")[1]}
    target = next(iter(before))
    sim.change_record("Leads", target, "2026-11-30T12:00:00+00:00")
    day = interval("2026-11-30T00:00:00+00:00", "2026-12-01T00:00:00+00:00")
    job, rows = export(sim, token, "Leads", criteria=day)
    assert (job["result"]["count"], rows) == (0, []), "the clock has not reached the edit yet"
    assert sim.set_clock("2026-12-01T00:00:00+00:00")["now"] == "2026-12-01T00:00:00+00:00"
    job, rows = export(sim, token, "Leads", criteria=day)
    assert [r["id"] for r in rows] == [target] == sim.record_ids("Leads", day)
    edited = rows[0]
    assert epoch(edited["Modified_Time"]) == epoch("2026-11-30T12:00:00+00:00")
    assert edited["Created_Time"] == before[target]["Created_Time"] and edited["id"] == target
    changed = {k for k in edited if edited[k] != before[target][k]} - {"Modified_Time"}
    assert len(changed) >= 5, changed
    assert sim.records("Leads", ["Email"], criteria=day) == [{"id": target, "Email": edited["Email"]}]


def test_random_edits_give_a_later_interval_a_newer_version(sim, token) -> None:
    sim.set_faults(changes_per_day=0.2)
    sim.set_clock("2026-11-10T00:00:00+00:00")
    first = interval("2026-11-09T00:00:00+00:00", "2026-11-10T00:00:00+00:00")
    _, early = export(sim, token, "Leads", criteria=first)
    _, everything_then = export(sim, token, "Leads")
    assert 0 < len(everything_then) < 300, "records created after the clock do not exist yet"
    assert all(epoch(r["Modified_Time"]) <= epoch("2026-11-10T00:00:00+00:00") for r in everything_then)
    sim.set_clock("2026-11-20T00:00:00+00:00")
    _, later = export(sim, token, "Leads", criteria=interval("2026-11-10T00:00:00+00:00",
                                                             "2026-11-20T00:00:00+00:00"))
    newer = {r["id"] for r in later} & {r["id"] for r in early}
    assert newer, "some records of the first interval were edited later"
    assert sim.records("Leads", ["Modified_Time", "Last_Name", "Email"], criteria=first,
                       at="2026-11-10T00:00:00+00:00") == [
        {k: r[k] for k in ("id", "Modified_Time", "Last_Name", "Email")} for r in early], "deterministic"
    again = export(sim, token, "Leads", criteria=first)[1]
    assert {r["id"] for r in again} == {r["id"] for r in early} - newer


def test_an_added_field_appears_in_metadata_and_csv_from_its_moment(sim, token) -> None:
    added = sim.add_field("Leads", "Region", "picklist", "2026-11-30T00:00:00+00:00", values=["North", "South"])
    assert added["field"]["data_type"] == "picklist" and added["field"]["api_name"] == "Region"

    def metadata() -> list[str]:
        return [f["api_name"] for f in http(f"{sim.url}/crm/v8/settings/fields?module=Leads", token=token).json["fields"]]

    assert "Region" not in metadata()
    refused = create(sim, token, module_query("Leads", fields=["Region"]))
    assert refused.status == 400 and refused.json["code"] == "FIELD_NOT_AVAILABLE"
    target = sim.record_ids("Leads")[7]
    sim.change_record("Leads", target, "2026-11-30T06:00:00+00:00")
    sim.set_clock("2026-12-01T00:00:00+00:00")
    assert metadata()[-1] == "Region" and len(metadata()) == 41
    _, rows = export(sim, token, "Leads")
    assert list(rows[0])[-1] == "Region" and len(rows) == 300
    assert {r["id"]: r["Region"] for r in rows if r["Region"]} .keys() == {target}
    assert {r["Region"] for r in rows if r["id"] == target} <= {"North", "South"}
    criteria = {"field": {"api_name": "Region"}, "comparator": "in", "value": ["North", "South"]}
    assert [r["id"] for r in export(sim, token, "Leads", criteria=criteria, fields=["Region"])[1]] == [target]


def test_clock_rate_runs_and_reset_restores(sim) -> None:
    start = sim.set_clock("2026-11-30T00:00:00+00:00", rate=86400)["epoch"]
    sim.wait_for(lambda: sim.clock()["epoch"] >= start + 3600)
    sim.add_field("Leads", "Region", "text")
    sim.reset()
    assert (sim.clock()["now"], sim.clock()["rate"]) == (END, 0.0)
    assert sim.control("GET", "fields") == {}


@pytest.mark.parametrize("body", [
    {"module": "Leads", "id": "1", "at": END},
    {"module": "Nope", "id": "1", "at": END},
    {"module": "Leads", "id": "5725767010001000000", "at": "2026-11-30"},
    {"module": "Leads", "id": "5725767010001000000", "at": "2020-01-01T00:00:00+00:00"},
])
def test_bad_scheduled_edits_name_the_problem(sim, body) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        sim.control("POST", "changes", body)
    assert caught.value.code == 400
    message = caught.value.read().decode()
    assert any(word in message for word in ("no record", "unknown module", "ISO 8601", "is created at")), message
