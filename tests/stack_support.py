"""Real Airflow deployments for the tests: LocalExecutor + SQLite, or CeleryExecutor + PostgreSQL + Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from include.airflow_stack import AirflowStack, postgres_database, service_reachable


def require_celery_services() -> None:
    """Skip when PostgreSQL or Redis is not reachable on localhost; under CI=true that is a failure."""
    missing = [name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not service_reachable("127.0.0.1", port)]
    if missing:
        reason = f"{' and '.join(missing)} not reachable on 127.0.0.1 (needed for the CeleryExecutor stack)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": mandatory under CI=true")
        pytest.skip(reason)


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
    home: Path, *, dags_folder: Path, env: Mapping[str, str], executor: str = "local"
) -> Iterator[AirflowStack]:
    """``local``: LocalExecutor on SQLite. ``celery``: CeleryExecutor, 2 workers, a fresh PostgreSQL DB, Redis."""
    if executor == "local":
        with AirflowStack(home, dags_folder=dags_folder, env=env) as stack:
            yield stack
        return
    require_celery_services()
    with postgres_database() as database_url, redis_database() as broker_url:
        with AirflowStack(
            home,
            dags_folder=dags_folder,
            env=env,
            executor="CeleryExecutor",
            database_url=database_url,
            broker_url=broker_url,
            celery_workers=2,
        ) as stack:
            yield stack
