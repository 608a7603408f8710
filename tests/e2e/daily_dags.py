"""What the test DAGs of the table scenarios (tests/e2e/dags) share. The deployment's Airflow imports it from the
DAG files (the repository root is on its PYTHONPATH): it imports nothing of the test tooling."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from include.devtools.local_setup import WAREHOUSE_CONN_ID
from zoho_crm.export.dag import build_export_dag


def three_scheduled_days(dag_id: str, module: str) -> DAG:
    """An export of ``module`` into the deployment's warehouse every day since three days ago, with catchup and one
    run at a time: unpausing it makes three consecutive scheduled runs (the first one the automatic full load).

    :param dag_id: the DAG's id.
    :param module: the module it exports.
    """
    dag = build_export_dag(
        dag_id,
        module=module,
        schedule="@daily",
        start_date=pendulum.today("UTC").subtract(days=3),
        catchup=True,
        warehouse_conn_id=WAREHOUSE_CONN_ID,
        tags=["test"],
    )
    dag.max_active_runs = 1  # in order: the first run's full load before the incremental ones
    return dag
