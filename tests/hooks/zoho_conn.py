"""Test helpers: the simulator's credentials and the checks that no secret reached text meant for logs or users.

The connection to a simulator comes from ``SimulatorProcess.airflow_connection`` / ``.env_var``; the fixtures
``sim`` and ``zoho_conn`` are in ``tests/simulator_fixtures.py``.
"""

from __future__ import annotations

from include.devtools.zoho_simulator.process import SimulatorProcess

CLIENT_ID = "1000.SIMULATOR"
CLIENT_SECRET = "simulator-secret"
REFRESH_TOKEN = "1000.simulator.refresh"
CONN_ENV = "AIRFLOW_CONN_ZOHO_CRM_DEFAULT"


def secrets_of(sim: SimulatorProcess | None = None) -> list[str]:
    """Every secret that must never show up: client secret, refresh token and the access tokens issued."""
    values = [CLIENT_SECRET, REFRESH_TOKEN]
    if sim is not None:
        for entry in sim.tokens():
            token = entry.get("access_token") or entry.get("token") if isinstance(entry, dict) else entry
            if token:
                values.append(str(token))
    return values


def assert_no_secret(text: str, sim: SimulatorProcess | None = None, extra: list[str] | None = None) -> None:
    """Fail if ``text`` holds a secret of :func:`secrets_of` or one of ``extra``."""
    for secret in [*secrets_of(sim), *(extra or [])]:
        assert secret not in text, "a secret leaked into text meant for logs/users"
