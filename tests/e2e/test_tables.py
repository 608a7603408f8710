"""Tables end to end under real Airflow (LocalExecutor, compressed clock) and real PostgreSQL: the exports of the
DAGs with a warehouse merged into ``zoho_crm.<module>`` of the deployment's warehouse database, compared with the
simulator's records (``sim.records``, their latest values) column by column.

- three consecutive scheduled intervals after the automatic first full load, records changed in between (one
  only visible through the look-back), then a backfill of the first interval that changes nothing newer;
- a column added in the simulator's field metadata appears in the table; that run's load, killed while it waits
  for the table (an advisory lock the test holds), leaves the table as it was, and its retry completes it;
- a field-subset DAG and the all-fields DAG on one module: columns outside the subset keep their values;
- two concurrent runs of one module (both blocked on the table at once): both succeed, the table is consistent.

Modules Accounts and Deals: the other tests of the deployment export Leads, Contacts and Events.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psutil
import psycopg
import pytest

from include.devtools.airflow_stack import AirflowStack
from include.devtools.polling import wait_until
from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.deployments import LOCAL, Deployment
from tests.e2e import tables_support
from tests.e2e.tables_support import (
    at,
    columns,
    expected,
    loaded,
    manifest_of,
    runs_of,
    scheduled_days,
    table,
    waiting_loads,
)
from tests.e2e.test_export_dag import assert_run_ok
from zoho_crm.export.load import DEFAULT_LOAD_LOOKBACK

pytestmark = [*LOCAL, pytest.mark.timeout(1500)]

MAIN_DAG = "zoho_crm_bulk_read"
DAILY_DAG = "zoho_test_tables_accounts"
SUBSET_DAG = "zoho_test_tables_deals_subset"
NEW_FIELD = "Zz_Loyalty_Score"

deployment, warehouse = tables_support.standing_deployment("local_deployment"), tables_support.warehouse


def assert_table_is_the_simulator(deployment: Deployment, conn: psycopg.Connection, module: str) -> None:
    actual, wanted = table(conn, module), expected(deployment, conn, module)
    assert set(actual) == set(wanted), f"ids only in the table {sorted(set(actual) - set(wanted))[:5]}, only in " \
                                       f"the simulator {sorted(set(wanted) - set(actual))[:5]}"
    differing = {i: {c: (v, wanted[i][c]) for c, v in row.items() if v != wanted[i][c]}
                 for i, row in actual.items() if row != wanted[i]}
    assert not differing, f"{len(differing)} rows differ from the simulator's, e.g. {list(differing.items())[:3]}"


def sync_state(conn: psycopg.Connection, module: str, target: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT last_interval_end, full_load_done_at, last_run_key FROM zoho_crm._sync_state "
                       "WHERE module = %s AND target = %s", [module, target]).fetchone()
    return dict(zip(("last_interval_end", "full_load_done_at", "last_run_key"), row, strict=True)) if row else None


@contextmanager
def table_locked(deployment: Deployment, module: str) -> Iterator[psycopg.Connection]:
    """Hold the advisory lock every load of the module's table takes first: loads wait inside their transaction."""
    with psycopg.connect(deployment.warehouse_uri, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"zoho_crm.{module.lower()}"])
        yield holder
        holder.execute("SELECT pg_advisory_unlock_all()")


def process_of_client(port: int) -> psutil.Process:
    """The local process whose TCP connection to the database has ``port``: the load task's process."""
    owners = [c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port and c.pid]
    assert len(owners) == 1, f"one process owns client port {port}: {owners}"
    process = psutil.Process(owners[0])
    assert "airflow" in " ".join(process.cmdline()), process.cmdline()
    return process


def main_and_subset_dags(deployment: Deployment) -> tuple[AirflowStack, SimulatorProcess]:
    """The deployment's stack and simulator, once the all-fields DAG and the field-subset DAG are parsed."""
    stack = deployment.stack
    stack.wait_for_dag(MAIN_DAG)
    stack.wait_for_dag(SUBSET_DAG)
    return stack, deployment.sim


def test_scheduled_intervals_after_the_first_full_load_then_a_backfill_that_changes_nothing_newer(
    deployment: Deployment, warehouse: psycopg.Connection
) -> None:
    stack, sim = deployment.stack, deployment.sim
    today, first, second, third = scheduled_days()
    ids = sim.record_ids("Accounts")
    twice, in_second, late, in_third = (ids[i] for i in (0, 1, 2, 3))
    with table_locked(deployment, "Accounts"):
        stack.wait_for_dag(DAILY_DAG)  # unpaused: the scheduler starts the first of three interval runs
        waiting_loads(warehouse, 1)  # its export is done (as of before the changes below), its load waits
        sim.change_record("Accounts", twice, at(first + timedelta(hours=2)))
        sim.change_record("Accounts", twice, at(third + timedelta(hours=2)))
        sim.change_record("Accounts", in_second, at(second + timedelta(hours=2)))
        # In the first interval but only a few minutes before the second: only the second's look-back sees it.
        sim.change_record("Accounts", late, at(second - DEFAULT_LOAD_LOOKBACK / 2))
        sim.change_record("Accounts", in_third, at(third + timedelta(hours=5)))
    runs = runs_of(stack, DAILY_DAG, "scheduled", 3)
    for run in runs:
        assert_run_ok(stack, DAILY_DAG, run["dag_run_id"])
    assert [run["data_interval_start"][:10] for run in runs] == [d.date().isoformat() for d in (first, second, third)]
    manifests = [manifest_of(stack, DAILY_DAG, run["dag_run_id"]) for run in runs]
    loads = [loaded(stack, DAILY_DAG, run["dag_run_id"]) for run in runs]
    # The first run exported everything (as of before the changes), the next ones their interval and look-back.
    assert manifests[0]["full_load"] is True and manifests[0]["time_range"] is None
    assert loads[0]["full_load"] and loads[0]["inserted"] == manifests[0]["record_count"] == len(ids)
    for manifest, start, end in ((manifests[1], second, third), (manifests[2], third, today)):
        assert manifest["full_load"] is False
        assert manifest["time_range"] == [at(start - DEFAULT_LOAD_LOOKBACK), at(end)]
    assert (loads[1]["inserted"], loads[1]["updated"]) == (0, 2), "the second interval's change and the late one"
    assert (loads[2]["inserted"], loads[2]["updated"]) == (0, 2)
    assert_table_is_the_simulator(deployment, warehouse, "Accounts")
    state = sync_state(warehouse, "Accounts", DAILY_DAG)
    assert state["full_load_done_at"] is not None and state["last_interval_end"] == today

    # The first interval again, with Zoho as it was at its end: older versions than the table's, never applied.
    before = table(warehouse, "Accounts")
    synced = warehouse.execute("SELECT max(_zoho_synced_at) FROM zoho_crm.accounts").fetchone()[0]
    now = sim.clock()["now"]
    sim.set_clock(now=at(second))
    try:
        stack.create_backfill(DAILY_DAG, first.date().isoformat(), first.date().isoformat(),
                              reprocess_behavior="completed")
        backfill = runs_of(stack, DAILY_DAG, "backfill", 1)[0]
        assert_run_ok(stack, DAILY_DAG, backfill["dag_run_id"])
    finally:
        sim.set_clock(now=now)
    manifest = manifest_of(stack, DAILY_DAG, backfill["dag_run_id"])
    assert manifest["time_range"] == [at(first - DEFAULT_LOAD_LOOKBACK), at(second)]
    load = loaded(stack, DAILY_DAG, backfill["dag_run_id"])
    assert load["records"] >= 2 and (load["inserted"], load["updated"]) == (0, 0)
    assert load["skipped"] == load["staged"], "every exported version is older than or equal to the table's"
    assert table(warehouse, "Accounts") == before
    assert warehouse.execute("SELECT max(_zoho_synced_at) FROM zoho_crm.accounts").fetchone()[0] == synced
    assert_table_is_the_simulator(deployment, warehouse, "Accounts")


def test_an_added_column_appears_and_a_load_killed_midway_leaves_the_table_as_it_was(
    deployment: Deployment, warehouse: psycopg.Connection
) -> None:
    stack, sim = deployment.stack, deployment.sim
    now = datetime.fromisoformat(sim.clock()["now"])
    sim.add_field("Accounts", NEW_FIELD, "integer", at(now - timedelta(minutes=2)))
    changed = sim.record_ids("Accounts")[10]
    sim.change_record("Accounts", changed, at(now - timedelta(minutes=1)))
    before = table(warehouse, "Accounts")
    assert before and NEW_FIELD not in columns(warehouse, "Accounts")
    with table_locked(deployment, "Accounts"):
        run_id = stack.trigger(DAILY_DAG, conf={})  # a manual run: every record, every field
        (backend, port), = waiting_loads(warehouse, 1)
        process = process_of_client(port)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    # The killed load's server session ends once it gets the lock it waited for: its transaction rolls back.
    wait_until(lambda: not warehouse.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]).fetchone(),
               timeout=120, interval=0.5, what="the killed load's session to end")
    assert NEW_FIELD not in columns(warehouse, "Accounts") and table(warehouse, "Accounts") == before
    assert_run_ok(stack, DAILY_DAG, run_id)  # the load's retry
    tries = stack.api("GET", f"/dags/{DAILY_DAG}/dagRuns/{run_id}/taskInstances/load_table/tries")["task_instances"]
    assert len(tries) == 2 and tries[-1]["state"] == "success"
    assert columns(warehouse, "Accounts")[NEW_FIELD] == "bigint"
    after = table(warehouse, "Accounts")
    assert after[int(changed)][NEW_FIELD] is not None and after[int(changed)] != before[int(changed)]
    assert_table_is_the_simulator(deployment, warehouse, "Accounts")
    drift = manifest_of(stack, DAILY_DAG, run_id)["schema_drift"]
    assert [c["name"] for c in drift["added"]] == [NEW_FIELD] and not drift["removed"] and not drift["changed"]
    load = loaded(stack, DAILY_DAG, run_id)
    assert load["added_columns"] == [NEW_FIELD] and load["full_load"] is True


def test_a_field_subset_load_keeps_the_columns_outside_the_subset(
    deployment: Deployment, warehouse: psycopg.Connection
) -> None:
    stack, sim = main_and_subset_dags(deployment)
    full = stack.trigger(MAIN_DAG, conf={"module": "Deals"})
    assert_run_ok(stack, MAIN_DAG, full)
    assert_table_is_the_simulator(deployment, warehouse, "Deals")
    before = table(warehouse, "Deals")
    changed = sim.record_ids("Deals")[5]
    sim.change_record("Deals", changed, at(datetime.fromisoformat(sim.clock()["now"]) - timedelta(seconds=30)))
    subset_run = stack.trigger(SUBSET_DAG, conf={})
    assert_run_ok(stack, SUBSET_DAG, subset_run)
    subset = manifest_of(stack, SUBSET_DAG, subset_run)["fields"]
    assert subset and "Modified_Time" in subset
    assert loaded(stack, SUBSET_DAG, subset_run)["updated"] == 1
    after, latest = table(warehouse, "Deals"), expected(deployment, warehouse, "Deals")
    row, old, new = after[int(changed)], before[int(changed)], latest[int(changed)]
    outside = [c for c in row if c not in (*subset, "id")]
    assert outside, "the table has columns the subset does not export"
    assert {c: row[c] for c in subset} == {c: new[c] for c in subset}, "the subset's columns are updated"
    assert {c: row[c] for c in outside} == {c: old[c] for c in outside}, "the others keep their values"
    assert any(old[c] != new[c] for c in outside), "the change touched columns outside the subset too"
    assert {i: r for i, r in after.items() if i != int(changed)} == {i: r for i, r in before.items()
                                                                     if i != int(changed)}


def test_two_concurrent_runs_of_one_module_both_succeed_and_the_table_is_consistent(
    deployment: Deployment, warehouse: psycopg.Connection
) -> None:
    stack, sim = main_and_subset_dags(deployment)
    now = datetime.fromisoformat(sim.clock()["now"])
    for index in (7, 8, 9):
        sim.change_record("Deals", sim.record_ids("Deals")[index], at(now - timedelta(seconds=10)))
    with table_locked(deployment, "Deals"):
        runs = [(MAIN_DAG, stack.trigger(MAIN_DAG, conf={"module": "Deals"})),
                (SUBSET_DAG, stack.trigger(SUBSET_DAG, conf={}))]
        waiting_loads(warehouse, 2)  # both loads are in their transaction at once, waiting for the table
    for dag_id, run_id in runs:
        assert_run_ok(stack, dag_id, run_id)
    assert sum(loaded(stack, dag_id, run_id)["updated"] for dag_id, run_id in runs) >= 3
    assert_table_is_the_simulator(deployment, warehouse, "Deals")
