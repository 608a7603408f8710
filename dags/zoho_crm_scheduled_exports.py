"""Airflow DAGs: one scheduled, incremental export DAG per entry of include/config/zoho_crm_exports.json (zoho_crm_<module>_<type>)."""

from pathlib import Path

from zoho_crm.export.config import load_export_config
from zoho_crm.export.dag import build_export_dag

_config = load_export_config(Path(__file__).resolve().parent.parent / "include" / "config" / "zoho_crm_exports.json")

for _entry in _config["exports"]:
    _dag_id = f"zoho_crm_{_entry['module'].lower()}_{_entry['file_type']}"
    globals()[_dag_id] = build_export_dag(
        _dag_id,
        module=_entry["module"],
        fields=_entry.get("fields") or [],
        file_type=_entry["file_type"],
        schedule=_entry["schedule"],
        catchup=_entry.get("catchup", False),
        pool=_config["pool"],
        zoho_conn_id=_config["zoho_conn_id"],
        custom_modules=_config["custom_modules"],
        warehouse_conn_id=_config["warehouse_conn_id"],
        load_lookback=_config["load_lookback"],
        deletion_mode=_config["deletion_mode"],
        tags=["scheduled"],
    )
