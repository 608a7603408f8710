"""Airflow test DAGs for the reliability suite: the export DAG from the same factory, once per scenario.

``$ZOHO_RELIABILITY_DAGS`` (JSON, set by tests/reliability for its stack) maps a scenario name to extra
``build_export_dag`` options (e.g. ``{"sensor_timeout": 20}``). DAG ``zoho_rel_<name>`` uses the connection
``zoho_rel_<name>``, so every scenario talks to its own simulator with its own faults, and all run at once.
"""

from __future__ import annotations

import json
import os

from zoho_crm.export_dag import build_export_dag

for _name, _options in json.loads(os.environ.get("ZOHO_RELIABILITY_DAGS", "{}")).items():
    _dag_id = f"zoho_rel_{_name}"
    globals()[_dag_id] = build_export_dag(
        _dag_id, schedule=None, zoho_conn_id=_dag_id, tags=["reliability"], **_options
    )
