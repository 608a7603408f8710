"""Deletions end to end under real Airflow (CeleryExecutor with two workers and Redis, compressed clock) and real
PostgreSQL: the simulator's deleted records applied to ``zoho_crm.vendors`` by the loads of
``zoho_test_deletions_vendors`` (tests/e2e/dags/zoho_test_deletions.py). (The table tests run on LocalExecutor;
this one on Celery also keeps the two xdist workers' deployments about equally busy.)

- three scheduled intervals (the first the automatic full load), records deleted, changed and restored while each
  run is in flight (after its export and its deletions pass, its load held on the table's lock): after each run the
  table's live rows are exactly the simulator's live records as that run saw them, the deleted ones marked with
  Zoho's deletion time and user, a restored record live again; one deletions pass per sync in the simulator's log,
  two pages where 206 deletions are listed;
- deletions older than the watermark (expired from the recycle bin into permanent, listed with their old time so no
  incremental pass sees them): a filtered export (criteria) marks none, the unfiltered full export marks exactly
  those rows (reconcile); its counts are in the XCom and in ``load.json`` beside the export's pointer.

Module Vendors: the other tests of the deployment export Leads, Contacts and Events.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from include.devtools.polling import wait_until
from tests.deployments import CELERY, Deployment
from tests.e2e import tables_support
from tests.e2e.tables_support import (
    at,
    expected,
    loaded,
    manifest_of,
    runs_of,
    scheduled_days,
    table,
    waiting_loads,
)
from tests.e2e.test_export_dag import assert_run_ok
from zoho_crm.export.load import DELETIONS_OVERLAP, LOAD_SUMMARY_NAME

pytestmark = [*CELERY, pytest.mark.timeout(1200)]

DAG_ID = "zoho_test_deletions_vendors"
MODULE = "Vendors"
LOCK_KEY = f"zoho_crm.{MODULE.lower()}"
FILTER = {"field": {"api_name": "GL_Account"}, "comparator": "equal", "value": "Sales-Software"}

deployment, warehouse = tables_support.standing_deployment("celery_deployment"), tables_support.warehouse


def marks(conn: psycopg.Connection) -> dict[int, tuple[datetime | None, int | None]]:
    """Every row's (``_zoho_deleted_at``, ``_zoho_deleted_by``) by id."""
    rows = conn.execute(f"SELECT id, _zoho_deleted_at, _zoho_deleted_by FROM {LOCK_KEY}").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def live(conn: psycopg.Connection) -> set[int]:
    return {i for i, (deleted_at, _) in marks(conn).items() if deleted_at is None}


def deleted_entries(deployment: Deployment) -> dict[int, dict[str, Any]]:
    """The simulator's deletions of the module now (every one, unpaged), by id."""
    return {int(e["id"]): e for e in deployment.sim.deleted_records(MODULE)}


def deletion_passes(deployment: Deployment, after_seq: int) -> list[dict[str, Any]]:
    """The Deleted Records calls of the module logged after ``after_seq``."""
    return [e for e in deployment.sim.requests("deleted")
            if e["seq"] > after_seq and e["path"].endswith(f"/{MODULE}/deleted")]


def last_seq(deployment: Deployment) -> int:
    entries = deployment.sim.requests()
    return entries[-1]["seq"] if entries else 0


def wait_for_load(deployment: Deployment, run_id: str) -> None:
    """Wait until the run's load_table task succeeded (its transaction committed)."""
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/load_table"

    def done() -> bool:
        state = deployment.stack.api("GET", path)["state"]
        assert state not in ("failed", "upstream_failed", "up_for_retry"), f"load_table of {run_id}: {state}"
        return state == "success"

    wait_until(done, timeout=300, interval=0.5, what=f"the load of {run_id} to commit")


def assert_deletions_applied(conn: psycopg.Connection, live_ids: set[int], deleted: dict[int, dict]) -> None:
    """The table's live rows are ``live_ids``; every other row is marked with its Zoho deletion time and user."""
    rows = marks(conn)
    assert live(conn) == live_ids, (f"live only in the table {sorted(live(conn) - live_ids)[:5]}, only in the "
                                    f"simulator {sorted(live_ids - live(conn))[:5]}")
    for record_id, (deleted_at, deleted_by) in rows.items():
        if record_id in live_ids:
            continue
        entry = deleted[record_id]
        assert deleted_at == datetime.fromisoformat(entry["deleted_time"]), (record_id, deleted_at, entry)
        assert deleted_by == int(entry["deleted_by"]["id"]), (record_id, deleted_by, entry)


def test_scheduled_runs_apply_deletions_restores_and_a_full_export_reconciles(
    deployment: Deployment, warehouse: psycopg.Connection
) -> None:
    stack, sim = deployment.stack, deployment.sim
    today, first, second, third = scheduled_days()
    ids = sim.record_ids(MODULE)
    assert len(ids) >= 230, "enough records for a deletions list of two pages"
    many, restored, changed = ids[:205], ids[205], ids[206]
    later = ids[207:210]
    # While each run's load waits for the table: what Zoho does during that run (its next run sees it).
    events = {
        1: lambda: ([sim.delete_record(MODULE, r, at(second + timedelta(minutes=1 + i))) for i, r in enumerate(many)],
                    sim.delete_record(MODULE, restored, at(second + timedelta(hours=20)))),
        2: lambda: (sim.restore_record(MODULE, restored, at(third + timedelta(hours=2))),
                    sim.change_record(MODULE, changed, at(third + timedelta(hours=1))),
                    [sim.delete_record(MODULE, r, at(third + timedelta(hours=3 + i)), kind=kind)
                     for i, (r, kind) in enumerate(zip(later, ("recycle", "permanent", "recycle"), strict=True))]),
        3: lambda: None,
    }
    passes = []
    with psycopg.connect(deployment.warehouse_uri, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [LOCK_KEY])
        stack.wait_for_dag(DAG_ID)  # unpaused: the scheduler starts the first of three interval runs
        seq = last_seq(deployment)
        for number in (1, 2, 3):
            waiting_loads(warehouse, 1)  # run `number` exported and listed the deletions; its load waits
            live_ids, deleted = {int(i) for i in sim.record_ids(MODULE)}, deleted_entries(deployment)
            passes.append(deletion_passes(deployment, seq))
            seq = last_seq(deployment)
            events[number]()
            run = runs_of(stack, DAG_ID, "scheduled", number)[number - 1]
            holder.execute("SELECT pg_advisory_unlock_all()")
            wait_for_load(deployment, run["dag_run_id"])
            if number < 3:  # before the next run's load: its export takes longer than this
                holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [LOCK_KEY])
            assert_deletions_applied(warehouse, live_ids, deleted)
    runs = runs_of(stack, DAG_ID, "scheduled", 3)
    for run in runs:
        assert_run_ok(stack, DAG_ID, run["dag_run_id"])
    loads = [loaded(stack, DAG_ID, run["dag_run_id"]) for run in runs]
    # One pass per sync: run 1 found nothing (204), run 2 read 206 deletions in two pages, run 3 the newer three.
    assert [len(p) for p in passes] == [1, 2, 1], passes
    assert all(e["status"] in (200, 204) for p in passes for e in p)
    assert passes[0][0]["status"] == 204
    assert [load["deletions_listed"] for load in loads] == [0, len(many) + 1, len(later)]
    assert [(load["marked_deleted"], load["restored"]) for load in loads] == [(0, 0), (len(many) + 1, 0),
                                                                             (len(later), 1)]
    assert loads[0]["deletions_since"] is None and loads[1]["deletions_since"] is None
    assert datetime.fromisoformat(loads[2]["deletions_since"]) == second + timedelta(hours=20) - DELETIONS_OVERLAP
    assert loads[0]["reconciled"] is True and not any(load["reconciled"] for load in loads[1:])
    assert int(restored) in live(warehouse)
    # Every live row holds the simulator's latest values.
    wanted, rows = expected(deployment, warehouse, MODULE), table(warehouse, MODULE)
    assert set(wanted) == live(warehouse)
    assert {i: rows[i] for i in wanted} == wanted

    # Deletions older than the watermark, past the recycle bin's retention (permanent now): no pass lists them.
    watermark = warehouse.execute("SELECT deleted_since FROM zoho_crm._sync_state WHERE module = %s AND target = %s",
                                  [MODULE, DAG_ID]).fetchone()[0]
    assert watermark == third + timedelta(hours=5)
    stale = [int(i) for i in sorted(live(warehouse))[:4]]
    with deployment.simulator_settings(recycle_retention_days=1):
        for offset, record_id in enumerate(stale):
            sim.delete_record(MODULE, str(record_id), at(first + timedelta(hours=1, minutes=offset)))
        entries = deleted_entries(deployment)
        for record_id in stale:
            assert entries[record_id]["type"] == "permanent", entries[record_id]
            assert datetime.fromisoformat(entries[record_id]["deleted_time"]) < watermark - DELETIONS_OVERLAP
        before = marks(warehouse)
        seq = last_seq(deployment)
        filtered = stack.trigger(DAG_ID, conf={"criteria": FILTER})
        assert_run_ok(stack, DAG_ID, filtered)
        load = loaded(stack, DAG_ID, filtered)
        # The pass starts DELETIONS_OVERLAP before the watermark: the latest deletion again (a no-op), no stale one.
        overlapping = [i for i, e in entries.items()
                       if datetime.fromisoformat(e["deleted_time"]) > watermark - DELETIONS_OVERLAP]
        assert overlapping == [int(later[-1])]
        assert (load["reconciled"], load["marked_deleted"], load["deletions_listed"]) == (False, 0, 1)
        assert marks(warehouse) == before, "a filtered export marks no row"
        full = stack.trigger(DAG_ID, conf={})
        assert_run_ok(stack, DAG_ID, full)
        assert len(deletion_passes(deployment, seq)) == 2, "one pass per sync"
    load = loaded(stack, DAG_ID, full)
    assert (load["reconciled"], load["marked_deleted"], load["restored"]) == (True, len(stale), 0)
    after = marks(warehouse)
    newly = {i for i, (deleted_at, _) in after.items() if deleted_at is not None and before[i][0] is None}
    assert newly == set(stale), "the reconcile marks exactly the rows whose deletion no pass listed"
    assert all(after[i][1] is None for i in stale), "who deleted them is unknown"
    assert {i: v for i, v in after.items() if i not in stale} == {i: v for i, v in before.items() if i not in stale}
    assert live(warehouse) == {int(i) for i in sim.record_ids(MODULE)}
    summary = Path(stack.return_value(DAG_ID, full, "manifest")["manifest"]).parent / LOAD_SUMMARY_NAME
    published = json.loads(summary.read_text())
    assert published["version"] == manifest_of(stack, DAG_ID, full)["version"] and published["run_id"] == full
    assert {k: published[k] for k in ("inserted", "updated", "marked_deleted", "restored", "removed")} == \
        {k: load[k] for k in ("inserted", "updated", "marked_deleted", "restored", "removed")}
