"""The default install, as `make demo`, `make airflow` and the tests' default-install deployment run it.

- the simulator at Zoho's real limits (10 downloads per 60 s, 10 tokens per 10 minutes), with small pages;
- the Airflow connection exactly as the README documents it (client id, secret, refresh token, data centre,
  environment), plus only the two host overrides that reach the simulator;
- Airflow's metadata database on the embedded PostgreSQL server (``include/devtools/metadata_db.py``) in
  ``$AIRFLOW_HOME/postgres``, LocalExecutor, the shipped ``dags/`` and ``include/config/pools.json``;
- the warehouse the shipped DAGs load their tables into: database ``zoho_crm_warehouse`` of its own on the same
  server, as connection ``zoho_crm_warehouse`` (``AIRFLOW_CONN_ZOHO_CRM_WAREHOUSE``, a ``postgres://`` URI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.devtools.airflow_stack import AIRFLOW_BIN, REPO_ROOT
from include.devtools.metadata_db import EmbeddedPostgres
from include.devtools.zoho_simulator.process import SimulatorProcess

METADATA_DATABASE = "airflow"
WAREHOUSE_DATABASE = "zoho_crm_warehouse"
WAREHOUSE_CONN_ID = "zoho_crm_warehouse"
"""The shipped DAGs' ``warehouse_conn_id`` (``include/config/zoho_crm_exports.json``)."""
WAREHOUSE_CONN_ENV = f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"
DEMO_SIMULATOR_OPTIONS: dict[str, Any] = {
    "records": {"Leads": 2500, "Events": 150},
    "per_page_csv": 1000,
    "job_seconds": 3,
}
"""Leads: 2,500 records at 1,000 a page = 3 pages; Events: one ICS page. Rate limits: the simulator's defaults,
which are Zoho's."""
DEFAULT_INSTALL_SETTINGS: dict[str, str] = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
"""Airflow settings of the default install beyond the harness's: the connection form's Test button (Airflow 3.3
keeps it disabled unless ``[core] test_connection`` is ``Enabled``). The tests' default install uses them too."""


def airflow_home() -> Path:
    """``$AIRFLOW_HOME``, or the project's git-ignored ``.airflow``."""
    return Path(os.environ.get("AIRFLOW_HOME") or REPO_ROOT / ".airflow").resolve()


def metadata_server(home: Path) -> EmbeddedPostgres:
    """The default install's embedded PostgreSQL server (data in ``home/postgres``)."""
    return EmbeddedPostgres(home / "postgres")


def default_install_env(
    home: Path, database_url: str, export_dir: Path, warehouse_uri: str | None = None
) -> dict[str, str]:
    """Airflow settings of the default install (what `make airflow` and `make demo` run with).

    :param home: ``AIRFLOW_HOME``.
    :param database_url: the metadata database's SQLAlchemy URL.
    :param export_dir: ``ZOHO_EXPORT_DIR``.
    :param warehouse_uri: the warehouse connection's ``postgres://`` URI (:data:`WAREHOUSE_CONN_ENV`); the shipped
        DAGs' load tasks fail without it.
    """
    warehouse = {WAREHOUSE_CONN_ENV: warehouse_uri} if warehouse_uri else {}
    return {
        "AIRFLOW_HOME": str(home),
        # standalone starts its components as `airflow ...` found on PATH: the project's virtualenv first.
        "PATH": os.pathsep.join([str(Path(AIRFLOW_BIN).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "ZOHO_EXPORT_DIR": str(export_dir),
        **warehouse,
        **DEFAULT_INSTALL_SETTINGS,
    }


@dataclass(frozen=True)
class DefaultInstall:
    """The running database server and simulator of the default install, and Airflow's settings for them."""

    home: Path
    export_dir: Path
    database: EmbeddedPostgres
    database_url: str
    warehouse_uri: str
    sim: SimulatorProcess
    env: dict[str, str]


@contextmanager
def default_install() -> Iterator[DefaultInstall]:
    """Start the default install's PostgreSQL server (its ``airflow`` and ``zoho_crm_warehouse`` databases created
    once) and the simulator in ``$AIRFLOW_HOME`` (default ``.airflow``), exports under ``$ZOHO_EXPORT_DIR`` (default
    ``output``); stop both on exit."""
    home = airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    export_dir = Path(os.environ.get("ZOHO_EXPORT_DIR") or REPO_ROOT / "output").resolve()
    with metadata_server(home) as database, SimulatorProcess(**DEMO_SIMULATOR_OPTIONS) as sim:
        database.ensure_database(METADATA_DATABASE)
        database.ensure_database(WAREHOUSE_DATABASE)
        url = database.sqlalchemy_url(METADATA_DATABASE)
        warehouse = database.postgres_uri(WAREHOUSE_DATABASE)
        env = default_install_env(home, url, export_dir, warehouse)
        env.update([sim.env_var(conn_type="http")])  # the README's HTTP-type connection
        yield DefaultInstall(home, export_dir, database, url, warehouse, sim, env)
