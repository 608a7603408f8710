"""Real Airflow deployments for the tests: LocalExecutor on the embedded PostgreSQL server (the default install),
or CeleryExecutor on the system PostgreSQL + Redis (production-shaped).

Every deployment's metadata database is a copy of one migrated template per server and session
(:class:`~include.devtools.metadata_db.MetadataDatabases`), so a deployment starts without migrating; its warehouse
database (where the shipped DAGs load their tables, connection ``zoho_crm_warehouse``) is a fresh, empty one on the
same server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import pytest
import redis

from include.devtools.airflow_stack import AirflowStack, service_reachable
from include.devtools.local_setup import WAREHOUSE_CONN_ENV
from include.devtools.metadata_db import EmbeddedPostgres, MetadataDatabases

SYSTEM_POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def require_celery_services() -> None:
    """Skip when PostgreSQL or Redis is not reachable on localhost; under CI=true that is a failure."""
    missing = [name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not service_reachable("127.0.0.1", port)]
    if missing:
        reason = f"{' and '.join(missing)} not reachable on 127.0.0.1 (needed for the CeleryExecutor stack)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": mandatory under CI=true")
        pytest.skip(reason)


def postmasters(data_dir: Path) -> list[psutil.Process]:
    """Running postgres server processes of ``data_dir`` (the postmaster: ``postgres -D <data_dir> ...``)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if len(cmdline) > 2 and cmdline[0].endswith("/postgres") and cmdline[1:3] == ["-D", str(data_dir)]:
            if alive(proc):
                found.append(proc)
    return found


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (an exited process its parent has yet to reap)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="session")
def embedded_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetadataDatabases]:
    """Metadata databases on an embedded PostgreSQL server of this session (what ``make airflow`` runs on)."""
    root = tmp_path_factory.mktemp("embedded-postgres")
    with EmbeddedPostgres(root / "pgdata") as server, MetadataDatabases(server.admin_dsn(), root / "home") as dbs:
        yield dbs


@pytest.fixture(scope="session")
def system_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetadataDatabases]:
    """Metadata databases on the machine's PostgreSQL service (skipped without it, failed under CI=true)."""
    require_celery_services()
    with MetadataDatabases(SYSTEM_POSTGRES_DSN, tmp_path_factory.mktemp("system-postgres-home")) as dbs:
        yield dbs


@contextmanager
def redis_database() -> Iterator[str]:
    """A Redis broker URL on a database index no other test stack uses at the same time, emptied after use."""
    client = redis.Redis(host="127.0.0.1", port=6379)
    for index in range(1, 16):
        if client.set(f"zoho-airflow-tests:db{index}", "busy", nx=True, ex=3600):
            break
    else:
        raise RuntimeError("no free Redis database index (1-15) for a Celery broker")
    db = redis.Redis(host="127.0.0.1", port=6379, db=index)
    db.flushdb()
    try:
        yield f"redis://127.0.0.1:6379/{index}"
    finally:
        db.flushdb()
        client.delete(f"zoho-airflow-tests:db{index}")


@contextmanager
def airflow_stack(
    home: Path,
    *,
    dags_folder: Path,
    env: Mapping[str, str],
    databases: MetadataDatabases,
    executor: str = "local",
    **options: object,
) -> Iterator[AirflowStack]:
    """``local``: LocalExecutor. ``celery``: CeleryExecutor with 2 workers and a Redis broker.

    The metadata database is a fresh copy of ``databases``' template, the warehouse a fresh database on the same
    server (``stack.env[WAREHOUSE_CONN_ENV]``) unless ``env`` names one; ``options`` go to :class:`AirflowStack`.
    """
    with databases.database() as database_url, ExitStack() as warehouse:
        if WAREHOUSE_CONN_ENV not in env:
            env = {**env, WAREHOUSE_CONN_ENV: warehouse.enter_context(databases.warehouse())}
        if executor == "local":
            with AirflowStack(home, dags_folder=dags_folder, env=env, database_url=database_url, migrate=False,
                              **options) as stack:
                yield stack
            return
        require_celery_services()
        with redis_database() as broker_url, AirflowStack(
            home,
            dags_folder=dags_folder,
            env=env,
            database_url=database_url,
            migrate=False,
            executor="CeleryExecutor",
            broker_url=broker_url,
            celery_workers=2,
            **options,
        ) as stack:
            yield stack
