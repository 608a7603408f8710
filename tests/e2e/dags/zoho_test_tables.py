"""Test DAGs of the tables scenarios (tests/e2e/test_tables.py), loading into the deployment's zoho_crm_warehouse.

- ``zoho_test_tables_accounts``: Accounts every day since three days ago, with catchup and one run at a time, so
  unpausing it makes three consecutive scheduled runs (the first one the automatic full load);
- ``zoho_test_tables_deals_subset``: Deals with the field subset of the shipped scheduled Deals export, manual only.
"""

import pendulum

from include.devtools.airflow_stack import REPO_ROOT
from include.devtools.local_setup import WAREHOUSE_CONN_ID
from zoho_crm.export.config import load_export_config
from zoho_crm.export.dag import build_export_dag

_config = load_export_config(REPO_ROOT / "include" / "config" / "zoho_crm_exports.json")
_DEALS_FIELDS = next(entry["fields"] for entry in _config["exports"] if entry["module"] == "Deals")

zoho_test_tables_accounts = build_export_dag(
    "zoho_test_tables_accounts",
    module="Accounts",
    schedule="@daily",
    start_date=pendulum.today("UTC").subtract(days=3),
    catchup=True,
    warehouse_conn_id=WAREHOUSE_CONN_ID,
    tags=["test"],
)
zoho_test_tables_accounts.max_active_runs = 1  # in order: the first run's full load before the incremental ones

zoho_test_tables_deals_subset = build_export_dag(
    "zoho_test_tables_deals_subset",
    module="Deals",
    fields=_DEALS_FIELDS,
    schedule=None,
    warehouse_conn_id=WAREHOUSE_CONN_ID,
    tags=["test"],
)
