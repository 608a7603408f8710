"""Settings shared by `make demo`, `make airflow` and the end-to-end tests: a simulator on a compressed clock
and the Airflow connection that points at it."""

from __future__ import annotations

import json
from typing import Any

from include.zoho_simulator.process import SimulatorProcess

DOWNLOAD_WINDOW_SECONDS = 10
"""The compressed rate-limit window (Zoho's is 60 s); the simulator and the connection use the same value."""

DEMO_SIMULATOR_OPTIONS: dict[str, Any] = {
    "records": {"Leads": 2500, "Events": 150},
    "per_page_csv": 1000,
    "job_seconds": 3,
    "download_window": DOWNLOAD_WINDOW_SECONDS,
}
"""Leads: 2,500 records at 1,000 a page = 3 pages; Events: one ICS page."""


def simulator_connection(sim: SimulatorProcess, window_seconds: float = DOWNLOAD_WINDOW_SECONDS) -> dict[str, str]:
    """Environment holding ``AIRFLOW_CONN_ZOHO_CRM_DEFAULT`` (JSON form) for the simulator's default client."""
    connection = {
        "conn_type": "http",
        "login": "1000.SIMULATOR",
        "password": "simulator-secret",
        "extra": {
            "refresh_token": "1000.simulator.refresh",
            "data_center": "us",
            "api_domain": sim.url,
            "accounts_url": sim.url,
            "download_limit": 10,
            "download_window_seconds": window_seconds,
        },
    }
    return {"AIRFLOW_CONN_ZOHO_CRM_DEFAULT": json.dumps(connection)}
