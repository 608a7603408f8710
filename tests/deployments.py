"""Session-wide Airflow deployments against a simulator, shared by every test that needs the real scheduler.

Starting Airflow costs tens of seconds, so each test session starts at most two deployments, on first use:

- ``local_deployment``: LocalExecutor on the embedded SQLite database;
- ``celery_deployment``: CeleryExecutor with two workers on a throw-away PostgreSQL database and Redis
  (skipped with a reason where those services are missing; under CI=true that is a failure).

Both run the repository's DAGs plus the test DAGs of ``tests/dags/``, the download pool of
``include/pools.json`` and a simulator whose rate-limit window (:data:`WINDOW` s) matches the connection's.
Tests that change the simulator's settings use :meth:`Deployment.simulator_settings`, which restores them.
Test modules using a deployment carry ``pytest.mark.xdist_group`` (see :data:`LOCAL`, :data:`CELERY`) so that,
with ``pytest -n``, every deployment lives in the same worker process.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from include.airflow_stack import REPO_ROOT, AirflowStack
from include.local_setup import DEMO_SIMULATOR_OPTIONS, DOWNLOAD_WINDOW_SECONDS, simulator_connection
from include.zoho_simulator.process import SimulatorProcess
from tests.stack_support import airflow_stack

WINDOW = DOWNLOAD_WINDOW_SECONDS
"""Compressed download window (s) of the simulator and the connection; >= zoho_crm.deferral.MIN_DEFERRAL_SECONDS."""

SIMULATOR_OPTIONS: dict[str, Any] = {**DEMO_SIMULATOR_OPTIONS, "job_seconds": 1}
"""The demo's data (Leads: 3 pages of CSV, Events: one ICS page) with faster jobs."""
SQLITE_GROUP = "airflow_sqlite"
"""pytest-xdist group of every test that runs Airflow on SQLite (the local deployment, the reliability stack,
`make airflow`): they run one after another in one worker."""
CELERY_GROUP = "airflow_celery"
"""pytest-xdist group of the CeleryExecutor tests, in the other worker: at most two deployments work at once on
2 cores, and the tests without Airflow fill the gaps."""
LOCAL = [pytest.mark.stack, pytest.mark.xdist_group(SQLITE_GROUP)]
CELERY = [pytest.mark.stack, pytest.mark.celery, pytest.mark.xdist_group(CELERY_GROUP)]


@dataclass
class Deployment:
    """A running Airflow deployment, its simulator and where it writes."""

    executor: str
    sim: SimulatorProcess
    stack: AirflowStack
    root: Path

    @property
    def export_dir(self) -> Path:
        return self.root / "output"

    @property
    def token_cache_dir(self) -> Path:
        return self.root / "token-cache"

    @contextmanager
    def simulator_settings(self, **settings: Any) -> Iterator[SimulatorProcess]:
        """Change simulator settings (``POST /__sim__/faults``) for a block; restore the previous values after."""
        before = self.sim.set_faults()
        self.sim.set_faults(**settings)
        try:
            yield self.sim
        finally:
            self.sim.set_faults(**{key: before[key] for key in settings})


def dags_folder(root: Path) -> Path:
    """The repository's DAGs plus the test DAGs, in one folder."""
    folder = root / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    for dag_file in [*sorted((REPO_ROOT / "dags").glob("*.py")), *sorted((REPO_ROOT / "tests" / "dags").glob("*.py"))]:
        shutil.copy(dag_file, folder / dag_file.name)
    return folder


@contextmanager
def start_deployment(executor: str, root: Path) -> Iterator[Deployment]:
    with SimulatorProcess(**SIMULATOR_OPTIONS) as sim:
        env = {
            **simulator_connection(sim, WINDOW),
            "ZOHO_EXPORT_DIR": str(root / "output"),
            "ZOHO_CRM_TOKEN_CACHE_DIR": str(root / "token-cache"),
        }
        with airflow_stack(root / "airflow", dags_folder=dags_folder(root), env=env, executor=executor) as stack:
            yield Deployment(executor, sim, stack, root)


@pytest.fixture(scope="session")
def local_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with start_deployment("local", tmp_path_factory.mktemp("local-deployment")) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def celery_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with start_deployment("celery", tmp_path_factory.mktemp("celery-deployment")) as deployment:
        yield deployment
