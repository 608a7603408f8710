"""Validation of one Bulk Read ICS page (Events module): calendar, events, UIDs, recurrences and count."""

from __future__ import annotations

import time
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import icalendar

from zoho_crm.files.digest import file_sha256
from zoho_crm.validation.id_index import IDS, OVERRIDES, SERIES, escape, index_path, write_sorted
from zoho_crm.validation.report import ValidationReport

MAX_LISTED = 50
ORPHANS_SHOWN = 5
OrphanPolicy = Literal["error", "warning", "note"]


def validate_ics(
    path: str | Path,
    *,
    expected_count: int | None = None,
    max_events: int = 20000,
    sha256: str | None = None,
    orphan_overrides: OrphanPolicy = "error",
    index_to: Path | None = None,
) -> ValidationReport:
    """Validate an ICS page. The job's count may count each series once (overrides not counted) or every VEVENT.

    An override (RECURRENCE-ID) whose series (same UID with RRULE) is not in the file is an error on its own;
    ``orphan_overrides="warning"`` or ``"note"`` when the file is one page of a larger or partial export (its
    series may be on another page, or outside the range). ``index_to`` (a path prefix): write the page's sorted
    UIDs, series and overrides beside it for the export check.
    """
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
    series = {str(e["UID"]) for e in events if "UID" in e and "RRULE" in e and "RECURRENCE-ID" not in e}
    first_of_uid: dict[str, int] = {}
    first_of_occurrence: dict[tuple[str, str], int] = {}
    orphans: list[str] = []
    for number, event in enumerate(events, start=1):
        where = f"VEVENT {number}" + (f" (UID {event['UID']})" if "UID" in event else "")
        _check_event(report, event, where)
        if "UID" not in event:
            continue
        uid = str(event["UID"])
        if "RECURRENCE-ID" not in event:
            if uid in first_of_uid:
                report.error(where, f"the UID of VEVENT {first_of_uid[uid]} again: two events with one UID and no "
                                    "RECURRENCE-ID")
            first_of_uid.setdefault(uid, number)
            continue
        occurrence = (uid, recurrence_key(event))
        if occurrence in first_of_occurrence:
            report.error(where, f"occurrence {occurrence[1]} already overridden by VEVENT "
                                f"{first_of_occurrence[occurrence]}: two overrides of the same occurrence")
        first_of_occurrence.setdefault(occurrence, number)
        if uid not in series:
            if orphan_overrides == "error":
                report.error(where, "RECURRENCE-ID without a recurring series (VEVENT with RRULE) of the same UID "
                                    "in the file")
            else:
                orphans.append(f"UID {uid} RECURRENCE-ID {occurrence[1]}")
    if len(report.errors) > MAX_LISTED:
        hidden = len(report.errors) - MAX_LISTED
        report.errors[MAX_LISTED:] = []
        report.error("file", f"{hidden} more event problems not listed")
    _report_orphans(report, orphans, orphan_overrides)
    overrides = sum(1 for e in events if "RECURRENCE-ID" in e)
    report.records = len(events) - overrides
    report.columns = sorted({name for e in events for name in e})
    _check_count(report, expected_count, overrides)
    if index_to is not None:
        _write_index(index_to, events)
    report.timings["validate"] = time.perf_counter() - started
    return report


def recurrence_key(event: icalendar.Event) -> str:
    """The overridden occurrence as text: UTC ``YYYYMMDDTHHMMSSZ`` for zoned times, else as written."""
    value = event.get("RECURRENCE-ID")
    moment = getattr(value, "dt", None)
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    if isinstance(moment, date):
        return moment.strftime("%Y%m%dT%H%M%S" if isinstance(moment, datetime) else "%Y%m%d")
    return value.to_ical().decode() if hasattr(value, "to_ical") else str(value)


def _report_orphans(report: ValidationReport, orphans: list[str], policy: OrphanPolicy) -> None:
    if not orphans:
        return
    shown = "; ".join(orphans[:ORPHANS_SHOWN]) + (f"; and {len(orphans) - ORPHANS_SHOWN} more"
                                                  if len(orphans) > ORPHANS_SHOWN else "")
    text = (f"{len(orphans)} override(s) (RECURRENCE-ID) whose series (VEVENT with RRULE) is not in this file: "
            f"{shown}")
    if policy == "warning":
        report.warn("file", f"{text} (part of a larger export: the series may be on another page or outside "
                            "its range)")
    else:
        report.notes.append(f"{text}; resolved across the pages of the export")


def _check_count(report: ValidationReport, expected: int | None, overrides: int) -> None:
    """The job's count may count series once (Zoho's documented rule) or every VEVENT; say which matched."""
    if expected is None:
        return
    if expected == report.records:
        if overrides:
            report.notes.append(f"count {expected}: series counted once, the {overrides} override(s) not counted")
    elif overrides and expected == report.records + overrides:
        report.notes.append(f"count {expected}: every VEVENT, the {overrides} override(s) included")
    else:
        with_overrides = f"; {report.records + overrides} with the {overrides} overrides" if overrides else ""
        report.error("file", f"{report.records} events (series counted once{with_overrides}), but the job reported "
                             f"count {expected}")


def _write_index(prefix: Path, events: list[icalendar.Event]) -> None:
    ids, series, overrides = [], [], []
    for event in events:
        if "UID" not in event:
            continue
        uid = escape(str(event["UID"]).encode())
        if "RECURRENCE-ID" in event:
            overrides.append(uid + b"\t" + escape(recurrence_key(event).encode()))
        else:
            ids.append(uid)
            if "RRULE" in event:
                series.append(uid)
    for kind, values in ((IDS, ids), (SERIES, series), (OVERRIDES, overrides)):
        write_sorted(index_path(prefix, kind), values)


def _check_event(report: ValidationReport, event: icalendar.Event, where: str) -> None:
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
