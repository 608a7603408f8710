"""Column types from field metadata, schema drift, and the checked SQL names."""

from __future__ import annotations

import pyarrow as pa
import pytest

from include.devtools.zoho_simulator.data import MODULES
from tests.tables.pages import metadata
from zoho_crm.tables.names import column_name, table_name
from zoho_crm.tables.schema import (
    BIGINT,
    BOOLEAN,
    DATE,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    Column,
    ColumnType,
    TableSchema,
    column_type,
    schema_drift,
    table_schema,
)

EXPECTED_KIND = {
    "bigint": BIGINT, "lookup": BIGINT, "ownerlookup": BIGINT, "integer": BIGINT, "boolean": BOOLEAN, "date": DATE,
    "datetime": TIMESTAMP, "currency": NUMERIC, "double": NUMERIC, "text": TEXT, "textarea": TEXT, "email": TEXT,
    "phone": TEXT, "picklist": TEXT, "percent": NUMERIC, "multiselectpicklist": TEXT,
}


def expected_kind(field: dict) -> str:
    if field["data_type"] == "autonumber":
        plain = not (field["auto_number"]["prefix"] or field["auto_number"]["suffix"])
        return BIGINT if plain else TEXT
    return EXPECTED_KIND[field["data_type"]]


def test_every_data_type_of_the_simulator_has_its_type():
    seen = set()
    for module in MODULES:
        schema = table_schema(metadata(module))
        assert not schema.text_only
        for field, column in zip(metadata(module)["fields"], schema.columns, strict=True):
            assert column.name == field["api_name"] and column.data_type == field["data_type"]
            assert column.type.kind == expected_kind(field), (module, field["api_name"])
            if column.type.kind == NUMERIC:
                assert column.type.scale == field["decimal_place"]
            seen.add((field["data_type"], column.type.kind))
    assert {data_type for data_type, _ in seen} == {*EXPECTED_KIND, "autonumber"}
    assert {("autonumber", BIGINT), ("autonumber", TEXT)} <= seen


def test_arrow_and_postgres_types():
    assert [(ColumnType(k).arrow, ColumnType(k).postgres) for k in (BIGINT, BOOLEAN, DATE, TIMESTAMP, TEXT)] == [
        (pa.int64(), "bigint"), (pa.bool_(), "boolean"), (pa.date32(), "date"),
        (pa.timestamp("us", "UTC"), "timestamp with time zone"), (pa.string(), "text")]
    assert ColumnType(NUMERIC, 2).arrow == pa.decimal128(30, 2)
    assert ColumnType(NUMERIC, 2).postgres == "numeric(30,2)"
    for column_type_ in (ColumnType(BIGINT), ColumnType(NUMERIC, 4), ColumnType(TEXT), ColumnType(TIMESTAMP)):
        assert ColumnType.from_postgres(column_type_.postgres) == column_type_
    assert ColumnType.from_postgres("character varying(20)") is None
    assert ColumnType.from_postgres("numeric(12,2)") is None


@pytest.mark.parametrize(("field", "expected"), [
    ({"data_type": "currency", "decimal_place": 2}, "numeric(30,2)"),
    ({"data_type": "currency", "decimal_place": 0}, "numeric(28,0)"),
    ({"data_type": "currency"}, "numeric(30,2)"),
    ({"data_type": "double", "decimal_place": 3}, "numeric(31,3)"),
    ({"data_type": "double"}, "numeric(37,9)"),
    ({"data_type": "percent", "decimal_place": None}, "numeric(37,9)"),
    ({"data_type": "double", "decimal_place": 10}, "numeric(38,10)"),
    ({"data_type": "currency", "decimal_place": 14}, "numeric(38,10)"),
    ({"data_type": "autonumber", "auto_number": {"prefix": "", "suffix": "", "start_number": 1}}, "bigint"),
    ({"data_type": "autonumber", "auto_number": {"prefix": "INV-", "suffix": ""}}, "text"),
    ({"data_type": "autonumber", "auto_number": {"prefix": "", "suffix": "/A"}}, "text"),
    ({"data_type": "autonumber"}, "text"),
    ({"data_type": "multiselectpicklist"}, "text"),
    ({"data_type": "website"}, "text"),
    ({"data_type": "bigint"}, "bigint"),
    ({"api_name": "Id", "data_type": "text"}, "bigint"),
])
def test_column_type_of_a_field(field, expected):
    assert column_type({"api_name": "X", **field}).postgres == expected


def test_without_metadata_every_column_is_text_except_the_id():
    schema = table_schema(None, ["Id", "Owner", "Modified_Time"])
    assert schema.text_only
    assert [c.type.postgres for c in schema.columns] == ["bigint", "text", "text"]
    assert table_schema({"fields": []}, ["id", "Amount"]).text_only


def test_columns_follow_the_header_and_unknown_ones_are_text():
    schema = table_schema(metadata("Leads"), ["id", "Owner.first_name", "Annual_Revenue", "Not_A_Field"])
    assert schema.names == ["id", "Owner.first_name", "Annual_Revenue", "Not_A_Field"]
    assert [c.type.postgres for c in schema.columns] == ["bigint", "text", "numeric(30,2)", "text"]
    assert not schema.text_only


def test_schema_json_round_trip():
    schema = table_schema(metadata("Deals"))
    assert TableSchema.from_json(schema.to_json()) == schema
    with pytest.raises(ValueError, match="column 'A': unknown type 'money'"):
        TableSchema.from_json({"columns": [{"name": "A", "type": "money"}]})


def _schema(**types: ColumnType) -> TableSchema:
    return TableSchema(tuple(Column(name, "", t) for name, t in types.items()))


def test_drift_added_removed_and_changed():
    old = _schema(id=ColumnType(BIGINT), A=ColumnType(BIGINT), B=ColumnType(TEXT), C=ColumnType(NUMERIC, 2),
                  D=ColumnType(DATE), E=ColumnType(NUMERIC, 4))
    new = _schema(id=ColumnType(BIGINT), A=ColumnType(NUMERIC, 2), B=ColumnType(BIGINT), C=ColumnType(TEXT),
                  D=ColumnType(TIMESTAMP), E=ColumnType(NUMERIC, 2), F=ColumnType(BOOLEAN))
    drift = schema_drift(old, new)
    assert [c.name for c in drift.added] == ["F"] and drift.removed == ()
    assert {c.name: c.safe for c in drift.changed} == {"A": True, "B": False, "C": True, "D": False, "E": False}
    assert [c.name for c in drift.unsafe] == ["B", "D", "E"]
    assert drift.to_json()["changed"][0] == {"name": "A", "old": "bigint", "new": "numeric(30,2)", "safe": True}
    assert "B text -> bigint (NOT safe)" in drift.describe()
    back = schema_drift(new, old)
    assert [c.name for c in back.removed] == ["F"]
    assert schema_drift(old, old).empty and schema_drift(old, old).describe() == "no schema change"


def test_drift_against_a_text_only_schema_reports_no_type_change():
    typed = table_schema(metadata("Deals"), ["id", "Amount", "Stage"])
    text_only = table_schema(None, ["id", "Amount", "Probability"])
    drift = schema_drift(typed, text_only)
    assert drift.changed == ()
    assert [c.name for c in drift.added] == ["Probability"] and [c.name for c in drift.removed] == ["Stage"]


def test_widening_rules():
    assert ColumnType(BIGINT).widens_to(ColumnType(NUMERIC, 0))
    assert ColumnType(NUMERIC, 2).widens_to(ColumnType(NUMERIC, 3))
    assert not ColumnType(NUMERIC, 3).widens_to(ColumnType(NUMERIC, 2))
    assert all(ColumnType(k).widens_to(ColumnType(TEXT)) for k in (BIGINT, BOOLEAN, DATE, TIMESTAMP))
    assert not ColumnType(TEXT).widens_to(ColumnType(BIGINT))
    assert not ColumnType(NUMERIC, 0).widens_to(ColumnType(BIGINT))
    assert not ColumnType(DATE).widens_to(ColumnType(TIMESTAMP))
    assert not ColumnType(BOOLEAN).widens_to(ColumnType(BIGINT))


def test_table_names():
    assert table_name("Leads") == "leads" and table_name("Sales_Orders") == "sales_orders"
    for bad in ["", "Leads; DROP TABLE x", 'Le"ads', "_sync_state", "1Leads", "Leads ", "x" * 64, None]:
        with pytest.raises(ValueError, match="not a Zoho module API name"):
            table_name(bad)


def test_column_names():
    assert column_name("Id") == "id" and column_name("id") == "id"
    assert column_name("Owner.first_name") == "Owner.first_name" and column_name("Modified_Time") == "Modified_Time"
    for bad in ["", 'A"B', "A B", "_zoho_run_key", "a.b.c", "x" * 64, "Ä"]:
        with pytest.raises(ValueError, match="not a Zoho field API name"):
            column_name(bad)
