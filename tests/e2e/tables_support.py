"""What the table tests share: the compressed-clock deployment with its clock standing still, its warehouse, the
tables read back and compared with the simulator's records, and the runs, manifests and loads of a DAG."""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from include.devtools.airflow_stack import AirflowStack
from include.devtools.polling import wait_until
from tests.deployments import Deployment
from zoho_crm.export.records import zoho_datetime

BOOKKEEPING_PREFIX = "_"
"""Bookkeeping columns (``_zoho_synced_at``, ``_zoho_run_key``, ...): Zoho field API names never start with it."""


def standing_deployment(base: str) -> Any:
    """The module-scoped fixture ``deployment``: the compressed-clock deployment ``base`` (``local_deployment`` or
    ``celery_deployment``), its simulator's clock standing still at the present (restored after).

    :param base: the session fixture of the deployment.
    """

    @pytest.fixture(scope="module", name="deployment")
    def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
        started: Deployment = request.getfixturevalue(base)
        before = started.sim.clock()
        started.sim.set_clock(now=zoho_datetime(datetime.now(UTC)), rate=0)
        try:
            yield started
        finally:
            started.sim.set_clock(now=before["now"], rate=before["rate"])

    return deployment


@pytest.fixture(scope="module")
def warehouse(deployment: Deployment) -> Iterator[psycopg.Connection]:
    with psycopg.connect(deployment.warehouse_uri, autocommit=True) as conn:
        yield conn


def columns(conn: psycopg.Connection, module: str) -> dict[str, str]:
    """The table's columns and their types (empty without a table)."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = "
        "to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", [f"zoho_crm.{module.lower()}"]
    ).fetchall()
    return dict(rows)


def table(conn: psycopg.Connection, module: str) -> dict[int, dict[str, Any]]:
    """Every row of the module's table by id, without the bookkeeping columns."""
    names = [n for n in columns(conn, module) if not n.startswith(BOOKKEEPING_PREFIX)]
    if not names:
        return {}
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(map(sql.Identifier, names)),
                                                sql.Identifier("zoho_crm", module.lower()))
    rows = [dict(zip(names, row, strict=True)) for row in conn.execute(query)]
    assert len({row["id"] for row in rows}) == len(rows), "one row per record"
    return {row["id"]: row for row in rows}


def typed(value: str, pg_type: str) -> Any:
    """A CSV value of the simulator as the table holds it."""
    if value == "":
        return None
    if pg_type == "bigint":
        return int(value)
    if pg_type.startswith("numeric"):
        return Decimal(value)
    if pg_type == "boolean":
        return {"true": True, "false": False}[value]
    if pg_type == "date":
        return date.fromisoformat(value)
    if pg_type == "timestamp with time zone":
        return datetime.fromisoformat(value)
    return value


def expected(deployment: Deployment, conn: psycopg.Connection, module: str, at: str | None = None) -> dict:
    """The simulator's live records (at ``at``, default now) in the table's columns and types."""
    types = {n: t for n, t in columns(conn, module).items() if not n.startswith(BOOKKEEPING_PREFIX)}
    try:
        rows = deployment.sim.records(module, [n for n in types if n != "id"], at=at)
    except urllib.error.HTTPError as err:
        raise AssertionError(f"the simulator refused GET records/{module}: {err.read()[:1000]!r}") from None
    return {int(row["id"]): {n: typed(row[n], t) for n, t in types.items()} for row in rows}


def waiting_loads(conn: psycopg.Connection, count: int) -> list[tuple[int, int]]:
    """Wait until ``count`` loads wait for the table's lock; their (backend pid, client port)."""
    def waiting() -> list[tuple[int, int]] | None:
        found = conn.execute(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database() AND "
            "wait_event_type = 'Lock' AND wait_event = 'advisory' AND pid <> pg_backend_pid()").fetchall()
        return found if len(found) >= count else None

    return wait_until(waiting, timeout=300, interval=0.5, what=f"{count} load(s) waiting for the table")


def runs_of(stack: AirflowStack, dag_id: str, run_type: str, count: int) -> list[dict]:
    def found() -> list[dict] | None:
        runs = sorted((r for r in stack.dag_runs(dag_id) if r["run_type"] == run_type),
                      key=lambda r: r["data_interval_start"])
        return runs if len(runs) >= count else None

    return wait_until(found, timeout=600, interval=1, what=f"{count} {run_type} run(s) of {dag_id}")


def manifest_of(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, Any]:
    return json.loads(Path(stack.return_value(dag_id, run_id, "manifest")["manifest"]).read_text())


def loaded(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, Any]:
    return stack.return_value(dag_id, run_id, "load_table")


def at(moment: datetime) -> str:
    return zoho_datetime(moment)


def scheduled_days() -> tuple[datetime, datetime, datetime, datetime]:
    """Today (midnight UTC) and the starts of the three daily intervals before it: the scheduled runs of
    :func:`tests.e2e.daily_dags.three_scheduled_days`."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first, second, third = (today - timedelta(days=days) for days in (3, 2, 1))
    return today, first, second, third
