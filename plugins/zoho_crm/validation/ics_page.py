"""Validation of one Bulk Read ICS page (Events module): calendar, events, recurrences and count."""

from __future__ import annotations

import time
import warnings
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import icalendar

from zoho_crm.digest import file_sha256
from zoho_crm.validation.report import ValidationReport

MAX_LISTED = 50


def validate_ics(
    path: str | Path, *, expected_count: int | None = None, max_events: int = 20000, sha256: str | None = None
) -> ValidationReport:
    """Validate an ICS page; series count once, RECURRENCE-ID overrides are not counted."""
    # Imported here so that CSV-only processes stay lighter (peak memory is a bench target).
    import icalendar

    started = time.perf_counter()
    path = Path(path)
    report = ValidationReport(file=str(path), file_type="ics")
    report.sha256 = sha256 or file_sha256(path)
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        report.error(f"line {line}", f"invalid UTF-8 at byte {exc.start}")
        return report
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except ValueError as exc:
        report.error("file", f"not a parsable iCalendar file: {exc}")
        return report
    if len(calendars) != 1:
        report.error("file", f"expected one VCALENDAR, found {len(calendars)}")
        return report
    calendar = calendars[0]
    for name in ("VERSION", "PRODID"):
        if name not in calendar:
            report.error("VCALENDAR", f"{name} missing")
    events = calendar.walk("VEVENT")
    if len(events) > max_events:
        report.error("file", f"{len(events)} events, more than the {max_events} a page may hold")
    series = {str(e["UID"]) for e in events if "UID" in e and "RRULE" in e}
    for number, event in enumerate(events, start=1):
        _check_event(report, event, f"VEVENT {number}" + (f" (UID {event['UID']})" if "UID" in event else ""),
                     series)
    if len(report.errors) > MAX_LISTED:
        hidden = len(report.errors) - MAX_LISTED
        report.errors[MAX_LISTED:] = []
        report.error("file", f"{hidden} more event problems not listed")
    report.records = sum(1 for e in events if "RECURRENCE-ID" not in e)
    report.columns = sorted({name for e in events for name in e})
    if expected_count is not None and report.records != expected_count:
        report.error("file", f"{report.records} events (series counted once), but the job reported count "
                             f"{expected_count}")
    report.timings["validate"] = time.perf_counter() - started
    return report


def _check_event(report: ValidationReport, event: icalendar.Event, where: str, series: set[str]) -> None:
    for name, problem in event.errors:
        report.error(where, f"{name} unreadable: {problem}")
    broken = {name for name, _ in event.errors}
    for name in ("UID", "DTSTART", "DTSTAMP"):
        if name not in event:
            report.error(where, f"{name} missing")
    if "DTEND" not in event and "DURATION" not in event:
        report.error(where, "neither DTEND nor DURATION")
    start = _decoded(event, "DTSTART", broken)
    end = _decoded(event, "DTEND", broken)
    duration = _decoded(event, "DURATION", broken)
    if end is None and isinstance(start, date) and isinstance(duration, timedelta):
        end = start + duration
    if start is not None and end is not None and _before(end, start):
        report.error(where, f"ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    if "RRULE" in event and "RRULE" not in broken:
        problem = _rrule_problem(event["RRULE"].to_ical().decode(), start)
        if problem:
            report.error(where, f"RRULE does not parse: {problem}")
    if "RECURRENCE-ID" in event and str(event.get("UID")) not in series:
        report.error(where, "RECURRENCE-ID without a recurring series (VEVENT with RRULE) of the same UID in the file")


def _rrule_problem(rule: str, start: date | None) -> str | None:
    from dateutil import rrule  # see validate_ics: kept out of CSV-only processes

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dateutil warns (instead of failing) on rules RFC 5545 forbids
        try:
            rrule.rrulestr(rule, dtstart=start if isinstance(start, datetime) else None)
        except (ValueError, TypeError, Warning) as exc:
            return str(exc)
    return None


def _decoded(event: icalendar.Event, name: str, broken: set[str]):
    if name not in event or name in broken:
        return None
    value = event.decoded(name)
    return value if isinstance(value, date | timedelta) else None


def _before(end: date, start: date) -> bool:
    """end < start, comparing dates with datetimes and floating with zoned times sensibly."""
    end_dt, start_dt = (_as_datetime(v) for v in (end, start))
    if (end_dt.tzinfo is None) != (start_dt.tzinfo is None):
        end_dt, start_dt = end_dt.replace(tzinfo=None), start_dt.replace(tzinfo=None)
    return end_dt < start_dt


def _as_datetime(value: date) -> datetime:
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
