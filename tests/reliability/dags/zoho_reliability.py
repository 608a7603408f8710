"""Airflow test DAG for the reliability suite: the export DAG from the same factory, for one scenario.

tests/reliability copies this file once per scenario as ``zoho_rel_<name>.py`` (one small DAG per file, so a
task parses only its own). ``$ZOHO_RELIABILITY_DAGS`` (JSON, set for the stack) maps each scenario name to extra
``build_export_dag`` options (e.g. ``{"sensor_timeout": 20}``). DAG ``zoho_rel_<name>`` uses the connection
``zoho_rel_<name>``, so every scenario talks to its own simulator with its own faults, and all run at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from zoho_crm.export.dag import build_export_dag

_DAG_ID = Path(__file__).stem
_OPTIONS = json.loads(os.environ.get("ZOHO_RELIABILITY_DAGS", "{}")).get(_DAG_ID.removeprefix("zoho_rel_"))

if _DAG_ID.startswith("zoho_rel_") and _OPTIONS is not None:
    dag = build_export_dag(_DAG_ID, schedule=None, zoho_conn_id=_DAG_ID, tags=["reliability"], **_OPTIONS)
