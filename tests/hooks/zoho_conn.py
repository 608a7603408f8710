"""Test helpers: an Airflow env-var connection pointing the Zoho hook at a simulator, and secret checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from include.devtools.zoho_simulator.process import SimulatorProcess

CLIENT_ID = "1000.SIMULATOR"
CLIENT_SECRET = "simulator-secret"
REFRESH_TOKEN = "1000.simulator.refresh"
CONN_ENV = "AIRFLOW_CONN_ZOHO_CRM_DEFAULT"


def connection_json(
    sim_url: str,
    cache_dir: Path,
    *,
    login: str = CLIENT_ID,
    password: str = CLIENT_SECRET,
    refresh_token: str = REFRESH_TOKEN,
    **extra: Any,
) -> str:
    """AIRFLOW_CONN_... JSON for the simulator (both hosts overridden) with its own token cache dir."""
    return json.dumps(
        {
            "conn_type": "http",
            "login": login,
            "password": password,
            "extra": {
                "refresh_token": refresh_token,
                "api_domain": sim_url,
                "accounts_url": sim_url,
                "token_cache_dir": str(cache_dir),
                **extra,
            },
        }
    )


def use_simulator(
    monkeypatch: pytest.MonkeyPatch, sim: SimulatorProcess, cache_dir: Path, conn_id: str = "zoho_crm_default", **kw: Any
) -> None:
    """Point connection ``conn_id`` at ``sim`` for this test."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(sim.url, cache_dir, **kw))


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
    for secret in [*secrets_of(sim), *(extra or [])]:
        assert secret not in text, "a secret leaked into text meant for logs/users"


@pytest.fixture
def sim(simulator: SimulatorProcess):
    """The session simulator, reset before and after the test."""
    simulator.reset()
    yield simulator
    simulator.reset()


@pytest.fixture
def zoho_conn(sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimulatorProcess:
    """``zoho_crm_default`` pointing at the reset session simulator, with a fresh token cache dir."""
    use_simulator(monkeypatch, sim, tmp_path / "token-cache")
    return sim
