"""Typed Parquet pages: read back with pyarrow they equal the CSV values under the metadata types."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from include.devtools.zoho_simulator.data import MODULES
from tests.tables.pages import metadata, write_page
from zoho_crm.files.digest import file_sha256
from zoho_crm.tables.parquet import SCHEMA_METADATA_KEY, ParquetConversionError, write_page_parquet
from zoho_crm.tables.schema import BIGINT, BOOLEAN, DATE, NUMERIC, TIMESTAMP, TableSchema, table_schema

RECORDS = 400


def expected_value(text: str, kind: str, scale: int | None):
    """The CSV cell under its column type, converted with the standard library (independent of Arrow)."""
    if text == "":
        return None
    if kind == BIGINT:
        return int(text)
    if kind == BOOLEAN:
        return {"true": True, "false": False}[text]
    if kind == DATE:
        return date.fromisoformat(text)
    if kind == TIMESTAMP:
        return datetime.fromisoformat(text).astimezone(UTC)
    if kind == NUMERIC:
        value = Decimal(text)
        assert -value.as_tuple().exponent <= scale, f"{text} has more decimals than scale {scale}"
        return value
    return text


def csv_records(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def assert_parquet_equals_csv(parquet: Path, page: Path, schema: TableSchema) -> None:
    header, rows = csv_records(page)
    table = pq.read_table(parquet)
    assert table.schema.names == schema.names
    assert list(table.schema.types) == [c.type.arrow for c in schema.columns]
    assert table.num_rows == len(rows)
    index = {name: j for j, name in enumerate(header)}
    for column in schema.columns:
        values = table.column(column.name).to_pylist()
        expected = [expected_value(row[index[column.name]], column.type.kind, column.type.scale) for row in rows]
        assert values == expected, column.name


@pytest.mark.parametrize("module", list(MODULES))
def test_every_module_round_trips_under_its_metadata_types(tmp_path: Path, module: str):
    page = write_page(tmp_path, module, RECORDS)
    result = write_page_parquet(page, tmp_path / "page_0001" / "job.parquet", metadata(module))
    schema = table_schema(metadata(module), csv_records(page)[0])
    assert result.rows == RECORDS and not result.text_only
    assert result.sha256 == file_sha256(result.path)
    assert result.schema == schema.to_json() == json.loads(pq.read_schema(result.path).metadata[SCHEMA_METADATA_KEY])
    assert_parquet_equals_csv(result.path, page, schema)
    kinds = {c.type.kind for c in schema.columns}
    assert {BIGINT, TIMESTAMP} <= kinds


def test_without_metadata_every_column_is_text(tmp_path: Path):
    page = write_page(tmp_path, "Deals", 50)
    result = write_page_parquet(page, tmp_path / "deals.parquet", None)
    assert result.text_only and result.schema["text_only"]
    schema = table_schema(None, csv_records(page)[0])
    assert [c.type.postgres for c in schema.columns][:3] == ["bigint", "text", "text"]
    assert_parquet_equals_csv(result.path, page, schema)


def test_a_subset_of_columns_in_the_given_order(tmp_path: Path):
    page = write_page(tmp_path, "Leads", 30)
    result = write_page_parquet(page, tmp_path / "leads.parquet", metadata("Leads"),
                                columns=["Modified_Time", "id", "Annual_Revenue"])
    assert pq.read_schema(result.path).names == ["Modified_Time", "id", "Annual_Revenue"]
    assert_parquet_equals_csv(result.path, page, table_schema(metadata("Leads"), ["Modified_Time", "id", "Annual_Revenue"]))
    with pytest.raises(ParquetConversionError, match="no column Nope in the page"):
        write_page_parquet(page, tmp_path / "x.parquet", metadata("Leads"), columns=["id", "Nope"])


def test_owner_sub_fields_and_a_zoho_style_header(tmp_path: Path):
    """``Id`` (Zoho's header) is the int64 id; ``Owner.first_name`` is text; a BOM and blank end lines are fine."""
    page = tmp_path / "zoho.csv"
    page.write_bytes("\ufeffId,Owner,Owner.first_name,Modified_Time\r\n"
                     "5725767000001000001,5725767000000411001,Zoë,2026-11-03T14:05:09+05:30\r\n"
                     '5725767000001000002,,"",2026-11-03T14:05:09-08:00\r\n\r\n'.encode())
    result = write_page_parquet(page, tmp_path / "zoho.parquet", metadata("Leads"))
    assert pq.read_table(result.path).to_pylist() == [
        {"Id": 5725767000001000001, "Owner": 5725767000000411001, "Owner.first_name": "Zoë",
         "Modified_Time": datetime(2026, 11, 3, 8, 35, 9, tzinfo=UTC)},
        {"Id": 5725767000001000002, "Owner": None, "Owner.first_name": None,
         "Modified_Time": datetime(2026, 11, 3, 22, 5, 9, tzinfo=UTC)},
    ]


@pytest.mark.parametrize(("column", "value", "message"), [
    ("Owner", "someone", r"column Owner \(ownerlookup -> bigint\)"),
    ("Annual_Revenue", "12.345", r"column Annual_Revenue \(currency -> numeric\(30,2\)\).*data loss"),
])
def test_a_value_that_does_not_fit_names_page_and_column(tmp_path: Path, column: str, value: str, message: str):
    page = tmp_path / "bad.csv"
    page.write_text(f"id,{column},Modified_Time\r\n1,{value},2026-11-03T14:05:09+00:00\r\n", encoding="utf-8")
    out = tmp_path / "out" / "bad.parquet"
    with pytest.raises(ParquetConversionError, match=message) as raised:
        write_page_parquet(page, out, metadata("Leads"))
    assert str(page) in str(raised.value)
    assert list(out.parent.iterdir()) == []  # neither the file nor its temporary


def test_a_rewrite_replaces_the_file_whole(tmp_path: Path):
    out = tmp_path / "p.parquet"
    first = write_page_parquet(write_page(tmp_path, "Calls", 10), out, metadata("Calls"))
    second = write_page_parquet(write_page(tmp_path, "Calls", 20, first=10), out, metadata("Calls"))
    assert (first.rows, second.rows) == (10, 20) and pq.read_metadata(out).num_rows == 20
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == []
