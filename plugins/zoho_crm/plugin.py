"""The provider's Airflow plugin (entry point ``airflow.plugins`` in pyproject.toml): makes the UI's Test button
work on Airflow 3.3.2 with :class:`~zoho_crm.airflow_compat.ConnectionTestPortFix` (apache/airflow#73298)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from zoho_crm.airflow_compat import ConnectionTestPortFix


class ZohoCRMPlugin(AirflowPlugin):
    """Loaded by every Airflow component from the distribution's entry point; only the api-server uses it."""

    name = "zoho_crm"
    fastapi_root_middlewares = [
        {"middleware": ConnectionTestPortFix, "args": [], "kwargs": {}, "name": "Connection test: port 0 is no port"}
    ]
