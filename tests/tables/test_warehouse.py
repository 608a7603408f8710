"""The merge of exports into zoho_crm.<module> on a real PostgreSQL database: types, order-safety, reruns,
field subsets, schema evolution, failures and concurrent loads."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import psycopg2
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from include.devtools.zoho_simulator.data import MODULES
from tests.tables.pages import NEWER, metadata, write_page
from zoho_crm.tables.names import BOOKKEEPING
from zoho_crm.tables.parquet import write_page_parquet
from zoho_crm.tables.warehouse import SchemaChangeError, WarehouseLoadError, load_export, read_sync_state

TARGET = "test_dag"


def load(conn, pages, module="Leads", *, meta=None, run_key="run", subset=False, **kwargs):
    return load_export(conn, [pages] if isinstance(pages, Path) else pages,
                       metadata(module) if meta is None else meta, module=module, run_key=run_key, target=TARGET,
                       field_subset=subset, **kwargs)


def rows(conn, module="Leads", columns="*") -> list[tuple]:
    with conn.transaction():
        return conn.execute(sql.SQL("SELECT {} FROM {} ORDER BY id").format(
            sql.SQL(columns), sql.Identifier("zoho_crm", module.lower()))).fetchall()


def column_types(conn, module="Leads") -> dict[str, str]:
    with conn.transaction():
        return dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", [f"zoho_crm.{module.lower()}"]).fetchall())


def values_without_bookkeeping(conn, module="Leads") -> list[tuple]:
    names = [n for n in column_types(conn, module) if not n.startswith("_zoho_")]
    return rows(conn, module, ", ".join(f'"{n}"' for n in names))


@pytest.mark.parametrize("module", list(MODULES))
def test_every_module_loads_with_the_values_of_its_typed_parquet(conn, tmp_path: Path, module: str):
    page = write_page(tmp_path, module, 150)
    result = load(conn, page, module)
    assert (result.table, result.records, result.inserted, result.updated, result.skipped) == (
        f"zoho_crm.{module.lower()}", 150, 150, 0, 0)
    parquet = pq.read_table(write_page_parquet(page, tmp_path / "p.parquet", metadata(module)).path).sort_by("id")
    types = column_types(conn, module)
    assert list(types)[-2:] == ["_zoho_synced_at", "_zoho_run_key"]
    assert [types[n] for n in parquet.schema.names][:2] == ["bigint", "bigint"]
    table = values_without_bookkeeping(conn, module)
    assert [tuple(r.values()) for r in parquet.to_pylist()] == table


def test_older_versions_never_replace_newer_ones(conn, tmp_path: Path):
    old, new = write_page(tmp_path, "Leads", 200), write_page(tmp_path, "Leads", 200, start=NEWER)
    assert load(conn, new, run_key="new").inserted == 200
    newest = rows(conn)
    backfill = load(conn, old, run_key="backfill")
    assert (backfill.inserted, backfill.updated, backfill.skipped) == (0, 0, 200)
    assert rows(conn) == newest
    # and the other way round: the newer version replaces every row
    conn.execute("DROP SCHEMA zoho_crm CASCADE")
    conn.commit()
    load(conn, old, run_key="old")
    forward = load(conn, new, run_key="new")
    assert (forward.inserted, forward.updated, forward.skipped) == (0, 200, 0)
    assert values_without_bookkeeping(conn) == [r[:-len(BOOKKEEPING)] for r in newest]


def test_overlapping_intervals_merge_without_duplicates(conn, tmp_path: Path):
    first = load(conn, write_page(tmp_path, "Deals", 100), "Deals")
    second = load(conn, [write_page(tmp_path, "Deals", 100, first=50, start=NEWER),
                         write_page(tmp_path, "Deals", 60, first=120, start=NEWER)], "Deals")
    assert (first.inserted, second.records, second.staged, second.inserted, second.updated) == (100, 160, 130, 80, 50)
    assert len(rows(conn, "Deals")) == 180


def test_a_first_load_with_an_id_on_two_pages_keeps_its_newest_version(conn, tmp_path: Path):
    """The straight COPY into a new table is undone when pages repeat an id; the staged merge keeps the newest."""
    older, newer = write_page(tmp_path, "Deals", 60), write_page(tmp_path, "Deals", 40, first=30, start=NEWER)
    result = load(conn, [older, newer], "Deals")
    assert (result.records, result.staged, result.inserted, result.updated, result.skipped) == (100, 70, 70, 0, 0)
    newest = pq.read_table(write_page_parquet(newer, tmp_path / "n.parquet", metadata("Deals")).path).to_pylist()
    table = {r[0]: r for r in values_without_bookkeeping(conn, "Deals")}
    assert len(table) == 70 and all(table[r["id"]] == tuple(r.values()) for r in newest)


def test_a_failed_first_load_leaves_no_table_and_no_state(conn, tmp_path: Path):
    lines = write_page(tmp_path, "Leads", 20).read_bytes().split(b"\r\n", 2)
    bad = tmp_path / "page_0001.csv"
    bad.write_bytes(b"\r\n".join([lines[0], lines[1].replace(lines[1].split(b",")[1], b"nobody", 1), lines[2]]))
    with pytest.raises(WarehouseLoadError) as raised:
        load(conn, bad, full_load=True)
    message = str(raised.value)
    assert "copying the page into the table" in message and "column Owner" in message and f"page {bad}" in message
    with conn.transaction():
        assert conn.execute("SELECT to_regclass('zoho_crm.leads')").fetchone() == (None,)
    assert read_sync_state(conn, "Leads", TARGET) is None


def test_counts_are_exact_without_table_statistics(conn, tmp_path: Path):
    """With ``track_counts`` off there are no statistics to read the inserts from: they are counted first."""
    load(conn, write_page(tmp_path, "Leads", 50))
    conn.execute("SET track_counts = off")  # a superuser setting: the test runs as postgres
    conn.commit()
    result = load(conn, [write_page(tmp_path, "Leads", 30, first=40, start=NEWER)])
    assert (result.inserted, result.updated, result.skipped) == (20, 10, 0)
    assert len(rows(conn)) == 70


def test_a_rerun_leaves_the_same_table(conn, tmp_path: Path):
    page = write_page(tmp_path, "Contacts", 120)
    load(conn, page, "Contacts", run_key="first")
    before = rows(conn, "Contacts")
    again = load(conn, page, "Contacts", run_key="rerun")
    assert (again.inserted, again.updated, again.skipped) == (0, 0, 120)
    assert rows(conn, "Contacts") == before  # bookkeeping included: unchanged rows are not rewritten
    assert {r[-1] for r in before} == {"first"}


def test_a_field_subset_updates_only_its_columns(conn, tmp_path: Path):
    load(conn, write_page(tmp_path, "Deals", 80), "Deals", run_key="all")
    before = {r["id"]: r for r in map(dict_row(conn, "Deals"), rows(conn, "Deals"))}
    subset = ["Deal_Name", "Stage", "Amount", "Closing_Date", "Owner", "Modified_Time"]
    result = load(conn, write_page(tmp_path, "Deals", 80, start=NEWER, columns=subset), "Deals", subset=True,
                  run_key="subset")
    assert result.updated == 80 and result.nulled_columns == ()
    newer = {r["id"]: r for r in map(dict_row(conn, "Deals"), rows(conn, "Deals"))}
    full_newer = pq.read_table(write_page_parquet(write_page(tmp_path, "Deals", 80, start=NEWER),
                                                  tmp_path / "n.parquet", metadata("Deals")).path).to_pylist()
    for record in full_newer:
        row, old = newer[record["id"]], before[record["id"]]
        assert {c: row[c] for c in subset} == {c: record[c] for c in subset}
        untouched = set(row) - set(subset) - {"id", "_zoho_synced_at", "_zoho_run_key"}
        assert untouched and {c: row[c] for c in untouched} == {c: old[c] for c in untouched}
        assert row["_zoho_run_key"] == "subset"


def dict_row(conn, module):
    names = list(column_types(conn, module))
    return lambda row: dict(zip(names, row, strict=True))


def test_a_new_field_becomes_a_column(conn, tmp_path: Path):
    without = [f.api_name for f in MODULES["Leads"].fields if f.api_name != "Lead_Score"]
    meta = copy.deepcopy(metadata("Leads"))
    meta["fields"] = [f for f in meta["fields"] if f["api_name"] != "Lead_Score"]
    load(conn, write_page(tmp_path, "Leads", 50, columns=without), meta=meta)
    assert "Lead_Score" not in column_types(conn)
    result = load(conn, write_page(tmp_path, "Leads", 50))
    assert result.added_columns == ("Lead_Score",) and result.updated == 50
    assert column_types(conn)["Lead_Score"] == "bigint"
    assert None not in [r[0] for r in rows(conn, columns='"Lead_Score"')]


def test_a_removed_field_stays_and_is_null_in_rows_written_by_an_all_fields_export(conn, tmp_path: Path):
    load(conn, write_page(tmp_path, "Accounts", 40), "Accounts")
    without = [f.api_name for f in MODULES["Accounts"].fields if f.api_name != "Employees"]
    meta = copy.deepcopy(metadata("Accounts"))
    meta["fields"] = [f for f in meta["fields"] if f["api_name"] != "Employees"]
    result = load(conn, write_page(tmp_path, "Accounts", 20, start=NEWER, columns=without), "Accounts", meta=meta)
    assert result.nulled_columns == ("Employees",) and result.updated == 20
    employees = [r[0] for r in rows(conn, "Accounts", '"Employees"')]
    assert employees[:20] == [None] * 20 and None not in employees[20:]


def test_a_safe_widening_is_applied_and_keeps_the_values(conn, tmp_path: Path):
    page = write_page(tmp_path, "Leads", 30)
    load(conn, page)
    scores = rows(conn, columns='"Lead_Score"')
    meta = copy.deepcopy(metadata("Leads"))
    next(f for f in meta["fields"] if f["api_name"] == "Lead_Score").update(data_type="currency", decimal_place=2)
    result = load(conn, page, meta=meta)
    assert result.widened_columns == (("Lead_Score", "bigint", "numeric(30,2)"),)
    assert column_types(conn)["Lead_Score"] == "numeric(30,2)"
    assert rows(conn, columns='"Lead_Score"') == scores  # Decimal equals int numerically
    # without metadata the table keeps its types (a text-only schema says nothing about types)
    load(conn, page, meta=None)
    assert column_types(conn)["Annual_Revenue"] == "numeric(30,2)"


def test_an_unsafe_type_change_fails_naming_the_column_and_leaves_the_table(conn, tmp_path: Path):
    page = write_page(tmp_path, "Leads", 30)
    load(conn, page)
    before, types = rows(conn), column_types(conn)
    meta = copy.deepcopy(metadata("Leads"))
    next(f for f in meta["fields"] if f["api_name"] == "No_of_Employees")["data_type"] = "boolean"
    with pytest.raises(SchemaChangeError, match=r"column No_of_Employees of zoho_crm.leads is bigint, but the field "
                                                r"metadata now makes it boolean.*ALTER TABLE zoho_crm.leads"):
        load(conn, write_page(tmp_path, "Leads", 30, start=NEWER), meta=meta)
    assert rows(conn) == before and column_types(conn) == types


def test_a_failure_in_the_second_page_leaves_the_table_and_its_state_as_before(conn, tmp_path: Path):
    load(conn, write_page(tmp_path, "Leads", 100), run_key="good", interval_end=datetime(2026, 11, 2, tzinfo=UTC))
    before, state = rows(conn), read_sync_state(conn, "Leads", TARGET)
    good = write_page(tmp_path, "Leads", 100, start=NEWER)
    lines = write_page(tmp_path, "Leads", 100, first=100, start=NEWER).read_bytes().split(b"\r\n", 2)
    owner = lines[1].split(b",")[1]
    bad = tmp_path / "page_0002.csv"
    bad.write_bytes(b"\r\n".join([lines[0], lines[1].replace(owner, b"nobody", 1), lines[2]]))
    with pytest.raises(WarehouseLoadError) as raised:
        load(conn, [good, bad], run_key="bad", interval_end=datetime(2026, 11, 3, tzinfo=UTC))
    message = str(raised.value)
    assert "invalid input syntax for type bigint" in message and "column Owner" in message
    assert f"page {bad}" in message and "the table is unchanged" in message
    assert rows(conn) == before and read_sync_state(conn, "Leads", TARGET) == state


def test_two_concurrent_loads_of_one_module_both_succeed(warehouse_dsn: str, conn, tmp_path: Path):
    old, new = write_page(tmp_path, "Leads", 300), write_page(tmp_path, "Leads", 300, start=NEWER)
    results, errors = {}, []
    start = threading.Barrier(2)

    def run(name: str, page: Path) -> None:
        try:
            with psycopg.connect(warehouse_dsn) as own:
                start.wait()
                results[name] = load(own, page, run_key=name)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=args) for args in (("old", old), ("new", new))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and set(results) == {"old", "new"}
    assert sum(r.inserted for r in results.values()) == 300  # one of them created every row
    assert len(rows(conn)) == 300 and {r[-1] for r in rows(conn)} == {"new"}
    load(conn, new, run_key="check")
    assert values_without_bookkeeping(conn) == [tuple(r.values()) for r in pq.read_table(
        write_page_parquet(new, tmp_path / "new.parquet", metadata("Leads")).path).sort_by("id").to_pylist()]


def test_sync_state_per_module_and_target(conn, tmp_path: Path):
    assert read_sync_state(conn, "Leads", TARGET) is None  # no schema yet
    page = write_page(tmp_path, "Leads", 10)
    load(conn, page, run_key="full", full_load=True, interval_end=datetime(2026, 11, 5, tzinfo=UTC))
    state = read_sync_state(conn, "Leads", TARGET)
    assert (state.module, state.target, state.last_run_key) == ("Leads", TARGET, "full")
    assert state.last_interval_end == datetime(2026, 11, 5, tzinfo=UTC) and state.full_load_done_at is not None
    load(conn, page, run_key="backfill", interval_end=datetime(2026, 11, 1, tzinfo=UTC))
    later = read_sync_state(conn, "Leads", TARGET)
    assert later.last_interval_end == datetime(2026, 11, 5, tzinfo=UTC)  # a backfill never moves it back
    assert later.full_load_done_at == state.full_load_done_at and later.last_run_key == "backfill"
    assert read_sync_state(conn, "Leads", "another_dag") is None and read_sync_state(conn, "Deals", TARGET) is None


def test_bad_input_is_refused_before_the_database(conn, tmp_path: Path):
    page = write_page(tmp_path, "Leads", 5)
    with pytest.raises(ValueError, match="not a Zoho module API name"):
        load_export(conn, [page], None, module='Leads"; DROP TABLE x; --', run_key="r", target=TARGET,
                    field_subset=False)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('id,"Bad""Name",Modified_Time\r\n1,x,2026-11-03T14:05:09+00:00\r\n', encoding="utf-8")
    with pytest.raises(ValueError, match="not a Zoho field API name"):
        load(conn, quoted)
    no_time = write_page(tmp_path, "Leads", 5, columns=["Last_Name"])
    with pytest.raises(ValueError, match="no Modified_Time column"):
        load(conn, no_time, subset=True)
    with pytest.raises(ValueError, match="header differs"):
        load(conn, [page, no_time])
    with pytest.raises(TypeError, match="expected a psycopg 3 connection"):
        with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres") as old_driver:
            load(old_driver, page)
    conn.execute("SELECT 1")
    with pytest.raises(ValueError, match="transaction in progress"):
        load(conn, page)
    conn.rollback()


def test_a_connection_of_the_postgres_hook_works(warehouse_dsn: str, conn, tmp_path: Path, monkeypatch):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    database = dict(part.split("=") for part in warehouse_dsn.split())["dbname"]
    monkeypatch.setenv("AIRFLOW_CONN_ZOHO_CRM_WAREHOUSE", f"postgresql://postgres@127.0.0.1:5432/{database}")
    hook_conn = PostgresHook(postgres_conn_id="zoho_crm_warehouse").get_conn()
    try:
        assert load(hook_conn, write_page(tmp_path, "Calls", 20), "Calls").inserted == 20
    finally:
        hook_conn.close()
    assert len(rows(conn, "Calls")) == 20
