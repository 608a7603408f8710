"""Session-wide Airflow deployments against a simulator, shared by every test that needs the real scheduler.

Starting Airflow costs tens of seconds, so each test session starts each deployment once, on first use:

- ``default_install`` / ``default_install_celery``: exactly what a user runs. The shipped ``dags/`` folder
  untouched, the connection as the README documents it (plus the two host overrides that reach the simulator),
  the simulator at Zoho's real limits (10 downloads per 60 s), the default token cache. On the embedded
  PostgreSQL server with LocalExecutor (what `make airflow` runs), and on CeleryExecutor with two workers, the
  system PostgreSQL and Redis (skipped with a reason where those services are missing; under CI=true that is a
  failure). Its only small setting is the simulator's page size (200 records), which changes nothing the client
  does and gives many pages from few records.
- ``local_deployment`` / ``celery_deployment``: a compressed clock for the long scenarios, in addition: the
  rate-limit window of the simulator and of the connection is :data:`WINDOW` s instead of 60, and the test DAGs
  of ``tests/dags/`` run beside the repository's.

Every deployment has a warehouse database of its own (a fresh one on its PostgreSQL server: the embedded one or the
system one; see :func:`tests.stack_support.airflow_stack`), as the connection ``zoho_crm_warehouse`` the shipped
DAGs load into (:attr:`Deployment.warehouse_uri`).
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

from include.devtools.airflow_stack import REPO_ROOT, AirflowStack
from include.devtools.local_setup import DEFAULT_INSTALL_SETTINGS, DEMO_SIMULATOR_OPTIONS, WAREHOUSE_CONN_ENV
from include.devtools.metadata_db import MetadataDatabases
from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.stack_support import airflow_stack

E2E_DAGS = REPO_ROOT / "tests" / "e2e" / "dags"
"""DAGs of the end-to-end tests (e.g. the tables scenarios), beside ``tests/dags`` in compressed-clock deployments."""
WINDOW = 10
"""Compressed download window (s) of the simulator and the connection; >= zoho_crm.airflow_compat.MIN_DEFERRAL_SECONDS."""

SIMULATOR_OPTIONS: dict[str, Any] = {**DEMO_SIMULATOR_OPTIONS, "job_seconds": 1, "download_window": WINDOW}
"""The demo's data (Leads: 3 pages of CSV, Events: one ICS page) with faster jobs, on the compressed clock."""
DEFAULT_INSTALL_RECORDS = {"Leads": 1400, "Contacts": 1000, "Deals": 600, "Events": 150}
DEFAULT_INSTALL_SIMULATOR: dict[str, Any] = {"records": DEFAULT_INSTALL_RECORDS, "per_page_csv": 200}
"""Zoho's real limits (the simulator's defaults); small pages: a full Leads export is 7 pages, Contacts 5."""
EMBEDDED_GROUP = "airflow_embedded"
"""pytest-xdist group of every test that runs Airflow on the embedded PostgreSQL server (the deployments, the
reliability stack, `make airflow`): they run one after another in one worker."""
CELERY_GROUP = "airflow_celery"
"""pytest-xdist group of the CeleryExecutor tests, in the other worker: at most two deployments work at once on
2 cores, and the tests without Airflow fill the gaps."""
LOCAL = [pytest.mark.stack, pytest.mark.xdist_group(EMBEDDED_GROUP)]
CELERY = [pytest.mark.stack, pytest.mark.celery, pytest.mark.xdist_group(CELERY_GROUP)]


@dataclass
class Deployment:
    """A running Airflow deployment, its simulator and where it writes."""

    executor: str
    sim: SimulatorProcess
    stack: AirflowStack
    root: Path
    token_cache_dir: Path
    warehouse_uri: str
    """The deployment's warehouse database (``postgres://...``, also a libpq URI for ``psycopg.connect``)."""

    @property
    def export_dir(self) -> Path:
        return self.root / "output"

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
    """The repository's DAGs plus the test DAGs (``tests/dags``, ``tests/e2e/dags``), in one folder."""
    folder = root / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    test_dags = [*sorted((REPO_ROOT / "tests" / "dags").glob("*.py")), *sorted(E2E_DAGS.glob("*.py"))]
    for dag_file in [*sorted((REPO_ROOT / "dags").glob("*.py")), *test_dags]:
        shutil.copy(dag_file, folder / dag_file.name)
    return folder


@contextmanager
def start_deployment(executor: str, root: Path, databases: MetadataDatabases) -> Iterator[Deployment]:
    """A compressed-clock deployment (:data:`WINDOW`) running the repository's and the test DAGs."""
    with SimulatorProcess(**SIMULATOR_OPTIONS) as sim:
        env = {
            **dict([sim.env_var(conn_type="http", window_seconds=WINDOW)]),
            "ZOHO_EXPORT_DIR": str(root / "output"),
            "ZOHO_CRM_TOKEN_CACHE_DIR": str(root / "token-cache"),
        }
        with airflow_stack(root / "airflow", dags_folder=dags_folder(root), env=env, executor=executor,
                           databases=databases) as stack:
            yield Deployment(executor, sim, stack, root, root / "token-cache", stack.env[WAREHOUSE_CONN_ENV])


@contextmanager
def start_default_install(executor: str, root: Path, databases: MetadataDatabases) -> Iterator[Deployment]:
    """What a user runs: the shipped dags/ untouched, the README's connection, Zoho's real limits."""
    with SimulatorProcess(**DEFAULT_INSTALL_SIMULATOR) as sim:
        env = {**dict([sim.env_var(conn_type="http")]), **DEFAULT_INSTALL_SETTINGS,
               "ZOHO_EXPORT_DIR": str(root / "output")}
        with airflow_stack(root / "airflow", dags_folder=REPO_ROOT / "dags", env=env, executor=executor,
                           databases=databases) as stack:
            # The README's default token cache: $AIRFLOW_HOME/zoho_crm_token_cache.
            yield Deployment(executor, sim, stack, root, stack.home / "zoho_crm_token_cache",
                             stack.env[WAREHOUSE_CONN_ENV])


@pytest.fixture(scope="session")
def local_deployment(
    tmp_path_factory: pytest.TempPathFactory, embedded_databases: MetadataDatabases
) -> Iterator[Deployment]:
    with start_deployment("local", tmp_path_factory.mktemp("local-deployment"), embedded_databases) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def celery_deployment(
    tmp_path_factory: pytest.TempPathFactory, system_databases: MetadataDatabases
) -> Iterator[Deployment]:
    with start_deployment("celery", tmp_path_factory.mktemp("celery-deployment"), system_databases) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def default_install(
    tmp_path_factory: pytest.TempPathFactory, embedded_databases: MetadataDatabases
) -> Iterator[Deployment]:
    with start_default_install("local", tmp_path_factory.mktemp("default-install"), embedded_databases) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def default_install_celery(
    tmp_path_factory: pytest.TempPathFactory, system_databases: MetadataDatabases
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("default-install-celery")
    with start_default_install("celery", root, system_databases) as deployment:
        yield deployment
