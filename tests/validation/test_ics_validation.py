"""validate_ics: calendar, required event properties, times, recurrences and the series count."""

from __future__ import annotations

from tests.validation.builders import write_file
from zoho_crm.validation import ValidationReport, validate_ics


def event(uid: str | None = "ev-1", *, start: str | None = "20261101T100000Z", end: str | None = "20261101T110000Z",
          extra: str = "", stamp: bool = True) -> str:
    lines = ["BEGIN:VEVENT"]
    if uid:
        lines.append(f"UID:{uid}")
    if stamp:
        lines.append("DTSTAMP:20261101T000000Z")
    if start:
        lines.append(f"DTSTART:{start}")
    if end:
        lines.append(f"DTEND:{end}")
    lines += [line for line in extra.split("\n") if line]
    lines += ["SUMMARY:Demo, with comma", "END:VEVENT"]
    return "\r\n".join(lines)


def calendar(*events: str, header: str = "VERSION:2.0\r\nPRODID:-//Zoho Corporation//Zoho CRM//EN") -> bytes:
    return "\r\n".join(["BEGIN:VCALENDAR", header, *events, "END:VCALENDAR", ""]).encode()


def validate(tmp_path, data: bytes, **kwargs) -> ValidationReport:
    return validate_ics(write_file(tmp_path, "page.ics", data), **kwargs)


def errors(report: ValidationReport) -> list[str]:
    return [str(problem) for problem in report.errors]


SERIES = event("series-1", extra="RRULE:FREQ=WEEKLY;COUNT=5")
OVERRIDE = event("series-1", start="20261108T120000Z", end="20261108T130000Z",
                 extra="RECURRENCE-ID:20261108T100000Z")


def test_clean_calendar_counts_series_once(tmp_path):
    data = calendar(event("a"), SERIES, OVERRIDE, event("b", end=None, extra="DURATION:PT30M"))
    report = validate(tmp_path, data, expected_count=3)
    assert report.valid, report.summary()
    assert (report.records, report.file_type) == (3, "ics")
    assert report.sha256 and "validate" in report.timings


def test_all_day_event_with_dates(tmp_path):
    data = calendar(event("day", start=None, end=None,
                          extra="DTSTART;VALUE=DATE:20261101\nDTEND;VALUE=DATE:20261102"))
    assert validate(tmp_path, data).valid


def test_missing_uid_dtstart_and_dtstamp(tmp_path):
    data = calendar(event(None), event("b", start=None), event("c", stamp=False))
    assert errors(validate(tmp_path, data)) == [
        "VEVENT 1: UID missing",
        "VEVENT 2 (UID b): DTSTART missing",
        "VEVENT 3 (UID c): DTSTAMP missing",
    ]


def test_missing_end_and_duration(tmp_path):
    assert errors(validate(tmp_path, calendar(event("a", end=None)))) == [
        "VEVENT 1 (UID a): neither DTEND nor DURATION"
    ]


def test_end_before_start(tmp_path):
    report = validate(tmp_path, calendar(event("a", end="20261101T090000Z")))
    assert errors(report) == [
        "VEVENT 1 (UID a): ends (2026-11-01T09:00:00+00:00) before it starts (2026-11-01T10:00:00+00:00)"
    ]


def test_orphan_recurrence_id(tmp_path):
    report = validate(tmp_path, calendar(event("a"), OVERRIDE))
    assert errors(report) == [
        "VEVENT 2 (UID series-1): RECURRENCE-ID without a recurring series (VEVENT with RRULE) of the same UID "
        "in the file"
    ]


def test_bad_rrule(tmp_path):
    report = validate(tmp_path, calendar(event("a", extra="RRULE:FREQ=SOMETIMES;COUNT=3")))
    assert len(report.errors) == 1
    assert errors(report)[0].startswith("VEVENT 1 (UID a): RRULE unreadable:")


def test_rrule_rejected_by_dateutil(tmp_path):
    report = validate(tmp_path, calendar(event("a", extra="RRULE:FREQ=DAILY;COUNT=3;UNTIL=20261201T000000Z")))
    assert len(report.errors) == 1
    assert errors(report)[0].startswith(
        "VEVENT 1 (UID a): RRULE does not parse: Using both 'count' and 'until' is inconsistent with RFC 5545"
    )


def test_count_mismatch_and_event_cap(tmp_path):
    data = calendar(event("a"), event("b"), event("c"))
    assert errors(validate(tmp_path, data, expected_count=2)) == [
        "file: 3 events (series counted once), but the job reported count 2"
    ]
    assert errors(validate(tmp_path, data, max_events=2)) == ["file: 3 events, more than the 2 a page may hold"]


def test_calendar_needs_version_and_prodid(tmp_path):
    report = validate(tmp_path, calendar(event("a"), header="CALSCALE:GREGORIAN"))
    assert errors(report) == ["VCALENDAR: VERSION missing", "VCALENDAR: PRODID missing"]


def test_two_calendars_and_garbage(tmp_path):
    assert errors(validate(tmp_path, calendar(event("a")) * 2)) == ["file: expected one VCALENDAR, found 2"]
    garbage = validate(tmp_path, b"this is not a calendar")
    assert not garbage.valid and errors(garbage)[0].startswith("file: not a parsable iCalendar file")


def test_invalid_utf8(tmp_path):
    data = calendar(event("a")).replace(b"Demo", b"D\xe9mo")
    offset = data.index(b"\xe9")
    assert errors(validate(tmp_path, data)) == [f"line 9: invalid UTF-8 at byte {offset}"]


def test_event_problems_are_capped(tmp_path):
    report = validate(tmp_path, calendar(*(event(f"e{n}", end="20261101T090000Z") for n in range(60))))
    assert len(report.errors) == 51
    assert errors(report)[-1] == "file: 10 more event problems not listed"


def test_duplicate_uids_and_twice_overridden_occurrences_are_errors(tmp_path):
    second_override = event("series-1", start="20261108T140000Z", end="20261108T150000Z",
                            extra="RECURRENCE-ID:20261108T100000Z")
    report = validate(tmp_path, calendar(event("a"), SERIES, OVERRIDE, event("a"), second_override))
    assert errors(report) == [
        "VEVENT 4 (UID a): the UID of VEVENT 1 again: two events with one UID and no RECURRENCE-ID",
        "VEVENT 5 (UID series-1): occurrence 20261108T100000Z already overridden by VEVENT 3: two overrides of "
        "the same occurrence",
    ]
    other_occurrence = event("series-1", extra="RECURRENCE-ID:20261115T100000Z")
    assert validate(tmp_path, calendar(SERIES, OVERRIDE, other_occurrence)).valid


def test_count_may_be_series_only_or_include_the_overrides(tmp_path):
    data = calendar(event("a"), SERIES, OVERRIDE)
    series_only = validate(tmp_path, data, expected_count=2)
    every_vevent = validate(tmp_path, data, expected_count=3)
    assert series_only.valid and every_vevent.valid, (series_only.summary(), every_vevent.summary())
    assert series_only.records == every_vevent.records == 2
    assert "count 2: series counted once, the 1 override(s) not counted" in series_only.notes
    assert "count 3: every VEVENT, the 1 override(s) included" in every_vevent.notes
    assert errors(validate(tmp_path, data, expected_count=4)) == [
        "file: 2 events (series counted once; 3 with the 1 overrides), but the job reported count 4"
    ]


def test_orphan_override_of_a_page_in_a_larger_export_is_not_an_error(tmp_path):
    data = calendar(event("a"), OVERRIDE)
    as_warning = validate(tmp_path, data, orphan_overrides="warning", expected_count=1)
    assert as_warning.valid and [str(w) for w in as_warning.warnings] == [
        "file: 1 override(s) (RECURRENCE-ID) whose series (VEVENT with RRULE) is not in this file: UID series-1 "
        "RECURRENCE-ID 20261108T100000Z (part of a larger export: the series may be on another page or outside "
        "its range)"
    ]
    as_note = validate(tmp_path, data, orphan_overrides="note", expected_count=1)
    assert as_note.valid and not as_note.warnings
    assert any("resolved across the pages of the export" in note for note in as_note.notes)
