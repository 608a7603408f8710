"""Test DAGs of the tables scenarios (tests/e2e/test_tables.py), loading into the deployment's zoho_crm_warehouse.

- ``zoho_test_tables_accounts``: Accounts every day since three days ago, with catchup and one run at a time, so
  unpausing it makes three consecutive scheduled runs (the first one the automatic full load);
- ``zoho_test_tables_deals_subset``: Deals with the field subset of the shipped scheduled Deals export, manual only.
"""

from include.devtools.airflow_stack import REPO_ROOT
from include.devtools.local_setup import WAREHOUSE_CONN_ID
from tests.e2e.daily_dags import three_scheduled_days
from zoho_crm.export.config import load_export_config
from zoho_crm.export.dag import build_export_dag

_config = load_export_config(REPO_ROOT / "include" / "config" / "zoho_crm_exports.json")
_DEALS_FIELDS = next(entry["fields"] for entry in _config["exports"] if entry["module"] == "Deals")

zoho_test_tables_accounts = three_scheduled_days("zoho_test_tables_accounts", "Accounts")

zoho_test_tables_deals_subset = build_export_dag(
    "zoho_test_tables_deals_subset",
    module="Deals",
    fields=_DEALS_FIELDS,
    schedule=None,
    warehouse_conn_id=WAREHOUSE_CONN_ID,
    tags=["test"],
)
