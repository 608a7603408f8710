"""Test DAG of the deletions scenarios (tests/e2e/test_deletions.py), loading into the deployment's
zoho_crm_warehouse: ``zoho_test_deletions_vendors``, Vendors every day since three days ago, with catchup and one run
at a time, so unpausing it makes three consecutive scheduled runs (the first one the automatic full load); deleted
records are marked (the default ``deletion_mode``). (The words Airflow and DAG in this file let Airflow's
safe mode parse it.)
"""

from tests.e2e.daily_dags import three_scheduled_days

zoho_test_deletions_vendors = three_scheduled_days("zoho_test_deletions_vendors", "Vendors")
