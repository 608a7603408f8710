"""ICS edited occurrences placed apart from their series (``ics_overrides="apart"``): another page, or a time range
that holds the override without its series. The default keeps each override right after its series."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import icalendar

from tests.devtools.simulator.sim_client import create_ok, download, http, module_query, wait_state

APART = {"ics_overrides": "apart", "per_page_ics": 4, "records": {"Events": 8}}


def ics_events(sim, token, **query) -> tuple[dict, list[icalendar.Event]]:
    job_id = create_ok(sim, token, module_query("Events", **query), file_type="ics")
    job = wait_state(sim, token, job_id)
    with zipfile.ZipFile(io.BytesIO(download(sim, token, job_id).body)) as zf:
        return job, icalendar.Calendar.from_ical(zf.read(f"{job_id}.ics")).walk("VEVENT")


def uids(events: list[icalendar.Event], *, overrides: bool) -> list[str]:
    return [str(e["UID"]) for e in events if ("RECURRENCE-ID" in e) == overrides]


def test_default_keeps_the_override_beside_its_series(sim, token) -> None:
    sim.set_faults(per_page_ics=4, records={"Events": 8})
    _, first = ics_events(sim, token, page=1)
    _, second = ics_events(sim, token, page=2)
    series = [e for e in first if "RRULE" in e]
    assert uids(first, overrides=True) == [str(series[0]["UID"])] and uids(second, overrides=True) == []
    assert first.index(next(e for e in first if "RECURRENCE-ID" in e)) == first.index(series[0]) + 1


def test_apart_puts_the_override_on_the_next_records_page_with_its_modified_time(sim, token) -> None:
    sim.set_faults(**APART)
    job1, first = ics_events(sim, token, page=1)
    job2, second = ics_events(sim, token, page=2)
    assert job1["result"]["count"] == job2["result"]["count"] == 4  # the override is not counted
    series_uid = str(next(e for e in first if "RRULE" in e)["UID"])
    assert uids(first, overrides=True) == [] and uids(second, overrides=True) == [series_uid]
    assert series_uid not in uids(second, overrides=False)
    override, following = second[0], second[1]  # the override comes just before the next event record
    assert "RECURRENCE-ID" in override and "RECURRENCE-ID" not in following
    assert override["LAST-MODIFIED"].dt == following["LAST-MODIFIED"].dt
    assert override["DTSTAMP"].dt == following["DTSTAMP"].dt


def test_apart_time_range_holds_the_override_without_its_series(sim, token) -> None:
    sim.set_faults(**APART)
    _, second = ics_events(sim, token, page=2)
    next_record = second[1]
    moment = next_record["LAST-MODIFIED"].dt.astimezone(UTC)
    window = {"group_operator": "and", "group": [
        {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": iso(moment)},
        {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": iso(moment + timedelta(seconds=1))},
    ]}
    job, events = ics_events(sim, token, criteria=window)
    assert job["result"]["count"] == 1
    assert uids(events, overrides=False) == [str(next_record["UID"])]
    assert uids(events, overrides=True) == [str(second[0]["UID"])]
    assert not any("RRULE" in e for e in events)


def test_ics_overrides_setting_is_checked(sim) -> None:
    answer = http(f"{sim.url}/__sim__/faults", "POST", {"ics_overrides": "sideways"})
    assert answer.status == 400 and "ics_overrides must be one of with_series, apart" in str(answer.json)


def iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()
