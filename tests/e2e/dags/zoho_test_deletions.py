"""Test DAG of the deletions scenarios (tests/e2e/test_deletions.py), loading into the deployment's
zoho_crm_warehouse: ``zoho_test_deletions_vendors``, Vendors every day since three days ago, with catchup and one run
at a time, so unpausing it makes three consecutive scheduled runs (the first one the automatic full load); deleted
records are marked (the default ``deletion_mode``). (The words Airflow and DAG in this file let Airflow's
safe mode parse it.)
"""

import pendulum

from include.devtools.local_setup import WAREHOUSE_CONN_ID
from zoho_crm.export.dag import build_export_dag

zoho_test_deletions_vendors = build_export_dag(
    "zoho_test_deletions_vendors",
    module="Vendors",
    schedule="@daily",
    start_date=pendulum.today("UTC").subtract(days=3),
    catchup=True,
    warehouse_conn_id=WAREHOUSE_CONN_ID,
    tags=["test"],
)
zoho_test_deletions_vendors.max_active_runs = 1  # in order: the first run's full load before the incremental ones
