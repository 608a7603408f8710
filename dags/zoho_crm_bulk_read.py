"""Airflow DAG: Zoho CRM Bulk Read export, the manual / UI entry point (trigger it with the Params form).

Scheduled per-module exports are built from include/config/zoho_crm_exports.json by zoho_crm_scheduled_exports.py.
"""

from pathlib import Path

from zoho_crm.export.config import load_export_config
from zoho_crm.export.dag import build_export_dag

_config = load_export_config(Path(__file__).resolve().parent.parent / "include" / "config" / "zoho_crm_exports.json")

dag = build_export_dag(
    "zoho_crm_bulk_read",
    module="Leads",
    schedule=None,
    pool=_config["pool"],
    zoho_conn_id=_config["zoho_conn_id"],
    custom_modules=_config["custom_modules"],
    warehouse_conn_id=_config["warehouse_conn_id"],
    load_lookback=_config["load_lookback"],
    deletion_mode=_config["deletion_mode"],
    tags=["manual"],
)
