"""The Airflow connection a simulator hands out (``SimulatorProcess.airflow_connection`` / ``.env_var``): the README's
shape with the two host overrides, the credentials that simulator accepts, and the changes callers ask for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.simulator_fixtures import start_simulator
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

README_EXTRAS = {"refresh_token", "data_center", "environment"}
"""The extras of the README's connection (section "The connection: type Zoho CRM")."""


def test_the_readme_connection_with_both_hosts_at_the_simulator(sim: SimulatorProcess) -> None:
    connection = sim.airflow_connection()
    assert connection == {
        "conn_type": "zoho_crm", "login": "1000.SIMULATOR", "password": "simulator-secret",
        "extra": {"refresh_token": "1000.simulator.refresh", "data_center": "us", "environment": "production",
                  "api_domain": sim.url, "accounts_url": sim.url},
    }
    assert set(connection["extra"]) - README_EXTRAS == {"api_domain", "accounts_url"}, "only the host overrides"
    assert sim.airflow_connection("http")["conn_type"] == "http"


def test_changes_window_and_token_cache(sim: SimulatorProcess, tmp_path: Path) -> None:
    connection = sim.airflow_connection(
        "http", window_seconds=10, token_cache_dir=tmp_path, password="wrong", api_domain="http://127.0.0.1:9",
        data_center="eu", refresh_token=None,
    )
    assert (connection["login"], connection["password"]) == ("1000.SIMULATOR", "wrong"), "credentials top level"
    assert connection["extra"] == {
        "data_center": "eu", "environment": "production", "api_domain": "http://127.0.0.1:9",
        "accounts_url": sim.url, "download_limit": 10, "download_window_seconds": 10, "token_cache_dir": str(tmp_path),
    }, "None removes an extra; the others replace or add one"
    name, value = sim.env_var("zoho_other", window_seconds=10)
    assert name == "AIRFLOW_CONN_ZOHO_OTHER"
    assert json.loads(value) == sim.airflow_connection(window_seconds=10)


def test_another_conn_type_is_refused_with_the_ones_to_use(sim: SimulatorProcess) -> None:
    with pytest.raises(ValueError, match="'aws'.*use 'zoho_crm' or 'http'"):
        sim.airflow_connection("aws")


def test_a_simulator_with_other_credentials_hands_out_those(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The hook, given the env var as Airflow reads it, gets a token from that simulator over real HTTP."""
    credentials = {"client_id": "1000.OTHER", "client_secret": "other-secret", "refresh_token": "1000.other.refresh"}
    with start_simulator(**credentials) as other:
        connection = other.airflow_connection()
        assert (connection["login"], connection["password"], connection["extra"]["refresh_token"]) == (
            "1000.OTHER", "other-secret", "1000.other.refresh"
        )
        monkeypatch.setenv(*other.env_var(token_cache_dir=tmp_path / "tokens"))
        token = ZohoCRMHook().get_access_token()
        assert [(entry["access_token"], entry["refresh_token"]) for entry in other.tokens()] == [
            (token, "1000.other.refresh")
        ], "one token, issued by this simulator to its own user"
