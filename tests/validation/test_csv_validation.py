"""validate_csv: header, shape, encoding, ids, value formats and count, each with its position."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.validation.builders import FIELDS, HEADER, csv_text, good_csv, good_row, write_file
from zoho_crm.validation import Problem, ValidationReport, validate_csv

REQUESTED = [f["api_name"] for f in FIELDS]

INTEGER_EXPECTED = "an integer of at most 64 bits (digits, an optional minus sign)"


def validate(tmp_path, data: bytes, **kwargs) -> ValidationReport:
    return validate_csv(write_file(tmp_path, "page.csv", data), **kwargs)


def errors(report: ValidationReport) -> list[str]:
    return [str(problem) for problem in report.errors]


def warnings(report: ValidationReport) -> list[str]:
    return [str(problem) for problem in report.warnings]


def rows_csv(rows: list[list[str]], newline: str = "\r\n") -> bytes:
    return csv_text([HEADER, *rows], newline).encode()


def test_clean_page_with_metadata_is_valid(tmp_path):
    data = good_csv(10)
    report = validate(tmp_path, data, fields=REQUESTED, field_metadata=FIELDS, expected_count=10)
    assert report.valid, report.summary()
    assert (report.records, report.id_column, report.columns) == (10, "Id", HEADER)
    assert report.sha256 == hashlib.sha256(data).hexdigest()
    assert report.warnings == [] and report.checks_skipped == []
    assert "scan" in report.timings


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_crlf_and_lf_with_embedded_line_breaks_and_doubled_quotes(tmp_path, newline):
    rows = [good_row(1), good_row(2)]
    rows[0][8] = 'He said ""hi"", then left\r\nsecond line, with comma'
    report = validate(tmp_path, rows_csv(rows, newline), field_metadata=FIELDS, expected_count=2)
    assert report.valid, report.summary()
    assert report.records == 2


def test_lowercase_id_column_is_reported(tmp_path):
    data = csv_text([["Last_Name", "id"], ["Smith", "1"], ["Jones", "2"]]).encode()
    report = validate(tmp_path, data, fields=["Last_Name"])
    assert report.valid and report.id_column == "id"


def test_without_metadata_only_shape_and_id_are_checked(tmp_path):
    rows = [good_row(1)]
    rows[0][3] = "yesterday"
    report = validate(tmp_path, rows_csv(rows))
    assert report.valid
    assert report.checks_skipped == ["value types: no field metadata given, only the id and the shape were checked"]


def test_ragged_rows_name_line_and_record(tmp_path):
    rows = [good_row(n) for n in range(1, 6)]
    rows[1] = rows[1][:5]  # record 2 starts on line 4: header line 1, record 1 spans lines 2-3
    rows[3] = rows[3] + ["extra"]
    report = validate(tmp_path, rows_csv(rows), expected_count=5)
    assert errors(report) == [
        "line 4 (record 2): 5 columns, the header has 9",
        "line 7 (record 4): 10 columns, the header has 9",
    ]
    assert report.records == 5


def test_many_ragged_rows_are_capped_with_a_total(tmp_path):
    rows = [good_row(n)[:2] for n in range(1, 31)]
    report = validate(tmp_path, rows_csv(rows))
    assert len(report.errors) == 21
    assert errors(report)[0] == "line 2 (record 1): 2 columns, the header has 9"
    assert errors(report)[-1] == "rows: 30 in total: another column count than the header"


def test_duplicate_and_empty_column_names(tmp_path):
    data = csv_text([["Id", "Email", "", "Email"], ["1", "a@b.c", "x", "d@e.f"]]).encode()
    report = validate(tmp_path, data)
    assert errors(report) == [
        "column 3: empty column name in the header",
        "column Email: duplicate column name (2 times in the header)",
    ]


def test_missing_id_column(tmp_path):
    data = csv_text([["Last_Name", "Email"], ["Smith", "s@example.com"]]).encode()
    report = validate(tmp_path, data)
    assert errors(report) == ["line 1 (header): record id column missing (expected 'id' or 'Id')"]
    assert report.id_column is None


def test_duplicate_and_empty_ids(tmp_path):
    rows = [good_row(n) for n in range(1, 6)]
    rows[2][0] = rows[0][0]
    rows[4][0] = ""
    report = validate(tmp_path, rows_csv(rows))
    assert errors(report) == [
        "line 10 (record 5), column Id: empty record id",
        f"line 6 (record 3), column Id: duplicate record id {rows[0][0]}",
    ]


def test_duplicate_text_ids(tmp_path):
    data = csv_text([["id", "Name"], ["a-1", "x"], ["b-2", "y"], ["a-1", "z"]]).encode()
    report = validate(tmp_path, data)
    assert errors(report) == ["line 4 (record 3), column id: duplicate record id a-1"]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (3, "2026-11-01 10:15:00", "an ISO 8601 datetime with offset (YYYY-MM-DDTHH:MM:SS+HH:MM)"),
        (3, "2026-11-01T10:15:00", "an ISO 8601 datetime with offset (YYYY-MM-DDTHH:MM:SS+HH:MM)"),
        (3, "2026-13-01T10:15:00+00:00", "an ISO 8601 datetime with offset (YYYY-MM-DDTHH:MM:SS+HH:MM)"),
        (4, "01/02/1980", "a date YYYY-MM-DD"),
        (5, "1,234.50", "a number"),
        (6, "forty-two", INTEGER_EXPECTED),
        (6, "42.0", INTEGER_EXPECTED),
        (6, "4.2e1", INTEGER_EXPECTED),
        (6, "+42", INTEGER_EXPECTED),
        (6, "9223372036854775808", INTEGER_EXPECTED),
        (0, "5725767000001000002.5", INTEGER_EXPECTED),
        (7, "yes", "a boolean (true or false)"),
    ],
    ids=["datetime-space", "datetime-no-offset", "datetime-month-13", "date", "currency", "integer",
         "integer-decimal", "integer-exponent", "integer-plus", "integer-over-int64", "id-decimal", "boolean"],
)
def test_bad_values_per_data_type(tmp_path, column, value, expected):
    rows = [good_row(1), good_row(2)]
    rows[1][column] = value
    report = validate(tmp_path, rows_csv(rows), field_metadata=FIELDS)
    assert errors(report) == [f"line 4 (record 2), column {HEADER[column]}: not {expected}: {value!r}"]


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ({"api_name": "Owner", "data_type": "ownerlookup"}, "5725767000000411001", True),
        ({"api_name": "Owner", "data_type": "ownerlookup"}, "5725767000000411001.0", False),
        ({"api_name": "Account_Name", "data_type": "lookup"}, "1e18", False),
        ({"api_name": "Big", "data_type": "bigint"}, "-9223372036854775808", True),
        ({"api_name": "Big", "data_type": "bigint"}, "-9223372036854775809", False),
        ({"api_name": "Case_Number", "data_type": "autonumber", "auto_number": {"prefix": "", "suffix": ""}}, "17", True),
        ({"api_name": "Case_Number", "data_type": "autonumber", "auto_number": {"prefix": "", "suffix": ""}}, "1.5",
         False),
        ({"api_name": "Name", "data_type": "autonumber", "auto_number": {"prefix": "SHP-"}}, "SHP-17", True),
    ],
    ids=["owner", "owner-decimal", "lookup-exponent", "bigint-min", "bigint-below-min", "autonumber",
         "autonumber-decimal", "autonumber-prefix-is-text"],
)
def test_integer_columns_take_only_64_bit_integers(tmp_path, field, value, valid):
    data = csv_text([["Id", field["api_name"]], ["5725767000001000001", value]]).encode()
    report = validate(tmp_path, data, field_metadata=[field])
    assert report.valid is valid, report.summary()
    if not valid:
        assert errors(report) == [f"line 2 (record 1), column {field['api_name']}: not {INTEGER_EXPECTED}: {value!r}"]


def test_good_values_of_every_type_and_empty_values(tmp_path):
    rows = [good_row(1), good_row(2), good_row(3)]
    rows[0][3:8] = ["2026-11-01T10:15:00Z", "2000-01-31", "-12.5e3", "0", "false"]
    rows[1][3:8] = ["", "", "", "", ""]
    report = validate(tmp_path, rows_csv(rows), field_metadata=FIELDS)
    assert report.valid, report.summary()


def test_many_bad_values_keep_five_examples_and_a_total(tmp_path):
    rows = [good_row(n) for n in range(1, 13)]
    for row in rows:
        row[7] = "TRUE"
    report = validate(tmp_path, rows_csv(rows), field_metadata=FIELDS)
    assert len(report.errors) == 6
    assert errors(report)[-1] == "column Email_Opt_Out: 12 in total: not a boolean (true or false)"


def test_bom_is_tolerated_and_reported(tmp_path):
    report = validate(tmp_path, b"\xef\xbb\xbf" + good_csv(2), field_metadata=FIELDS, expected_count=2)
    assert report.valid, report.summary()
    assert report.id_column == "Id"
    assert warnings(report) == ["line 1: file starts with a UTF-8 byte order mark (tolerated)"]


def test_invalid_utf8_names_line_record_and_column(tmp_path):
    data = good_csv(3).replace("Müller 2".encode(), b"M\xfcller 2")
    report = validate(tmp_path, data)
    assert errors(report) == ["line 4 (record 2), column Last_Name: invalid UTF-8"]
    assert report.records == 3


def test_count_mismatch(tmp_path):
    report = validate(tmp_path, good_csv(3), expected_count=4)
    assert errors(report) == ["file: 3 records, but the job reported count 4"]


def test_all_empty_column_is_a_warning(tmp_path):
    rows = [good_row(n) for n in range(1, 4)]
    for row in rows:
        row[8] = ""
    report = validate(tmp_path, rows_csv(rows), field_metadata=FIELDS)
    assert report.valid
    assert warnings(report) == [
        "column Description: empty on every row (Zoho empties restricted fields over the API)"
    ]


def test_requested_fields_in_another_order(tmp_path):
    swapped = REQUESTED[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    report = validate(tmp_path, good_csv(1), fields=swapped)
    assert errors(report) == [
        "line 1 (header): columns not in the requested order: field 1 (not counting the id) is 'Last_Name', "
        "expected 'Email'"
    ]


def test_requested_fields_missing_and_unexpected(tmp_path):
    report = validate(tmp_path, good_csv(1), fields=[*REQUESTED[:-1], "Phone"])
    assert errors(report) == [
        "column Phone: requested field missing from the file",
        "column Description: column not among the requested fields",
    ]


def test_id_may_stand_anywhere_among_requested_fields(tmp_path):
    data = csv_text([["Last_Name", "Email", "Id"], ["Smith", "s@example.com", "7"]]).encode()
    assert validate(tmp_path, data, fields=["Last_Name", "Email"]).valid


def test_all_fields_checked_against_metadata(tmp_path):
    metadata = {"fields": [*FIELDS[:-1], {"api_name": "Phone", "data_type": "phone"}]}
    report = validate(tmp_path, good_csv(2), field_metadata=metadata)
    assert errors(report) == ["column Description: unknown column: not a field of the module in settings/fields"]
    assert warnings(report) == [
        "column Phone: field in settings/fields but not in the file (Zoho leaves out fields it cannot export, "
        "e.g. restricted or non-exportable types)"
    ]


def test_empty_file_and_header_only(tmp_path):
    assert errors(validate(tmp_path, b"")) == ["line 1 (header): file is empty: no header row"]
    report = validate(tmp_path, csv_text([HEADER]).encode(), expected_count=0)
    assert report.valid and report.records == 0


def test_file_without_final_newline(tmp_path):
    report = validate(tmp_path, good_csv(3).rstrip(b"\r\n"), expected_count=3)
    assert report.valid and report.records == 3


def test_problems_in_later_pieces_keep_exact_positions(tmp_path, monkeypatch):
    from zoho_crm.validation import csv_pieces

    monkeypatch.setattr(csv_pieces, "PIECE_BYTES", 4096)
    rows = [good_row(n) for n in range(1, 301)]
    rows[250][7] = "maybe"
    rows[260] = rows[260][:3]
    rows[290][0] = rows[10][0]
    path = write_file(tmp_path, "page.csv", rows_csv(rows))
    assert len(list(csv_pieces.iter_pieces(csv_pieces.file_chunks(path), 2))) > 10
    report = validate_csv(path, field_metadata=FIELDS, expected_count=300)
    line_of_251 = 2 + 250 * 2
    assert errors(report) == [
        f"line {line_of_251} (record 251), column Email_Opt_Out: not a boolean (true or false): 'maybe'",
        f"line {line_of_251 + 20} (record 261): 3 columns, the header has 9",
        f"line {line_of_251 + 79} (record 291), column Id: duplicate record id {rows[10][0]}",
    ]


def test_report_dict_summary_and_json(tmp_path):
    rows = [good_row(n) for n in range(1, 9)]
    for row in rows:
        row[0] = ""
    report = validate(tmp_path, rows_csv(rows))
    data = report.to_dict()
    assert data["valid"] is False and data["file_type"] == "csv"
    assert data["errors"][0] == {"position": "line 2 (record 1), column Id", "reason": "empty record id"}
    summary = report.summary(n=2).splitlines()
    assert summary == [
        f"{report.file}: 6 validation error(s)",
        "  line 2 (record 1), column Id: empty record id",
        "  line 4 (record 2), column Id: empty record id",
        "  ... and 4 more (see the JSON report)",
    ]
    written = report.write_json(tmp_path / "report.json")
    assert json.loads(written.read_text()) == data
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert Problem("column X", "why") in [Problem("column X", "why")]


@pytest.mark.parametrize(
    "tail",
    [b'2,"never closed\r\n3,x\r\n', b'2,ab"c\r\n3,x\r\n'],
    ids=["unclosed-quote", "quote-inside-unquoted-value"],
)
def test_unbalanced_quotes_stop_the_scan_with_a_position(tmp_path, tail):
    data = b"id,Name\r\n1,ok\r\n" + tail
    report = validate(tmp_path, data, expected_count=3)
    assert errors(report)[0] == (
        "line 3: unbalanced quotes from here on (a quoted value is not closed, or a quote stands inside an "
        "unquoted value); these records were not checked"
    )
    assert "parts of the file that are not parsable CSV were not checked" in report.checks_skipped


def test_bare_cr_line_endings_are_refused(tmp_path):
    report = validate(tmp_path, b"id,Name\r1,x\r")
    assert errors(report) == [
        "line 1 (header): header row unreadable (new-line character seen in unquoted field - do you need to "
        "open the file in universal-newline mode?); lines must end in LF or CRLF"
    ]


@pytest.mark.parametrize("tail", [b"\r\n", b"\r\n\r\n", b"\n"])
def test_empty_lines_at_the_end_are_not_records(tmp_path, tail):
    report = validate(tmp_path, good_csv(3) + tail, field_metadata=FIELDS, expected_count=3)
    assert report.valid, report.summary()
    assert report.records == 3
    blank = tail.count(b"\n")
    assert warnings(report) == [f"line 8: {blank} empty line(s) at the end of the file: not records, ignored"]
    header_only = validate(tmp_path, csv_text([HEADER]).encode() + tail, expected_count=0)
    assert header_only.valid and header_only.records == 0


def test_empty_line_in_the_middle_is_still_an_error(tmp_path):
    data = good_csv(3).replace(b"two 1\"\r\n", b"two 1\"\r\n\r\n")
    report = validate(tmp_path, data, expected_count=3)
    assert errors(report) == [
        "line 4 (record 2), column Id: empty record id",
        "file: 4 records, but the job reported count 3",
    ]


def test_empty_lines_at_the_end_in_their_own_pieces(tmp_path, monkeypatch):
    from zoho_crm.validation import csv_pieces

    monkeypatch.setattr(csv_pieces, "PIECE_BYTES", 4096)
    rows = [good_row(n) for n in range(1, 301)]
    path = write_file(tmp_path, "page.csv", rows_csv(rows) + b"\r\n" * 5000)
    report = validate_csv(path, field_metadata=FIELDS, expected_count=300)
    assert report.valid, report.summary()
    assert warnings(report) == [f"line {2 + 300 * 2}: 5000 empty line(s) at the end of the file: not records, ignored"]
