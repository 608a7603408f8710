"""ZohoCRMHook.test_connection (the UI's Test button) against the simulator: success, a wrong secret, a wrong refresh
token, an unreachable host and an incomplete connection, each with a message naming the problem and no secret; the
token it gets lives in memory only, so the deployment's token cache is neither needed nor changed.

The api-server runs the test as ``airflow.models.Connection.test_connection`` under a temporary connection id
exported as ``AIRFLOW_CONN_<ID>`` in URI form; one test goes that exact way for the provider's ``zoho_crm`` type.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from include.devtools.airflow_stack import free_port
from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.hooks.zoho_conn import CLIENT_ID, CLIENT_SECRET, assert_no_secret
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

CONN_ID = "zoho_crm_ui_test"
WRONG_SECRET = "not-the-simulator-secret-42"
WRONG_REFRESH = "1000.0123456789abcdef0123.fedcba9876543210fedc"
FORM_DEFAULTS = {"window_seconds": 60, "api_version": "v8"}
"""With the README's fields, what the provider's form stores in the extra: API version, download limit and window."""


@pytest.fixture
def homes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """AIRFLOW_HOME in tmp_path and no ZOHO_CRM_TOKEN_CACHE_DIR: the default token cache is tmp_path/home/..."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ZOHO_CRM_TOKEN_CACHE_DIR", raising=False)
    return tmp_path


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def token_requests(sim: SimulatorProcess) -> int:
    return len([entry for entry in sim.requests() if entry.get("path") == "/oauth/v2/token"])


def test_simulator_credentials_pass_with_a_fresh_token_and_no_cache_file(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, homes: Path
) -> None:
    monkeypatch.setenv(*sim.env_var(CONN_ID, **FORM_DEFAULTS))
    ok, message = ZohoCRMHook(CONN_ID).test_connection()
    assert ok, message
    assert "Connected to Zoho CRM" in message and "fields of Leads" in message and CLIENT_ID in message
    assert sim.url in message
    assert token_requests(sim) == 1, "one token request, no retry"
    assert [entry["path"] for entry in sim.requests() if entry.get("path") != "/oauth/v2/token"] == [
        "/crm/v8/settings/fields"
    ], "one cheap read call"
    assert files_under(homes) == [], "no token cache (nor anything else) written"
    assert_no_secret(message, sim)


def test_the_deployment_token_cache_is_neither_used_nor_changed(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, homes: Path
) -> None:
    monkeypatch.setenv(*sim.env_var(CONN_ID, **FORM_DEFAULTS))
    ZohoCRMHook(CONN_ID).get_field_metadata("Leads")  # a task: fills the shared cache
    cache = homes / "home" / "zoho_crm_token_cache"
    before = {path: path.read_bytes() for path in files_under(cache)}
    assert any(path.suffix == ".token" for path in before)
    assert token_requests(sim) == 1

    ok, message = ZohoCRMHook(CONN_ID).test_connection()
    assert ok, message
    assert token_requests(sim) == 2, "the test gets its own token instead of the cached one"
    assert {path: path.read_bytes() for path in files_under(cache)} == before, "the cache is unchanged"
    ZohoCRMHook(CONN_ID).get_field_metadata("Leads")
    assert token_requests(sim) == 2, "tasks still use the cached token"


def test_a_wrong_secret_names_client_and_data_centre_without_the_secret(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, homes: Path
) -> None:
    monkeypatch.setenv(*sim.env_var(CONN_ID, **FORM_DEFAULTS, password=WRONG_SECRET))
    ok, message = ZohoCRMHook(CONN_ID).test_connection()
    assert not ok
    assert "invalid_client" in message
    for named in ("Client ID", "Client Secret", "data centre", "Data centre"):
        assert named in message, named
    assert_no_secret(message, sim, extra=[WRONG_SECRET])
    assert token_requests(sim) == 1, "one token request: a wrong secret is not retried"
    assert files_under(homes) == [], "no failure marker written either"


def test_a_wrong_data_centre_is_named_as_a_cause_of_invalid_client(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, homes: Path
) -> None:
    """Zoho answers invalid_client to a client asked for in another data centre: the message says where it asked."""
    monkeypatch.setenv(*sim.env_var(CONN_ID, **FORM_DEFAULTS, password=WRONG_SECRET, data_center="eu"))
    ok, message = ZohoCRMHook(CONN_ID).test_connection()
    assert not ok and "invalid_client" in message
    assert "another data centre" in message and sim.url in message


def test_a_wrong_refresh_token_is_named(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, homes: Path
) -> None:
    monkeypatch.setenv(*sim.env_var(CONN_ID, **FORM_DEFAULTS, refresh_token=WRONG_REFRESH))
    ok, message = ZohoCRMHook(CONN_ID).test_connection()
    assert not ok
    assert "invalid_code" in message and "Refresh token" in message
    assert_no_secret(message, sim, extra=[WRONG_REFRESH])
    assert files_under(homes) == []


def test_an_unreachable_accounts_host_fails_fast_and_says_so(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, homes: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv(*sim.env_var(CONN_ID, **FORM_DEFAULTS, api_domain=closed, accounts_url=closed))
    ok, message = ZohoCRMHook(CONN_ID).test_connection()
    assert not ok
    assert "Could not reach" in message and closed in message
    assert_no_secret(message)
    assert files_under(homes) == []


def test_an_incomplete_connection_names_the_missing_field_without_a_request(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, homes: Path
) -> None:
    monkeypatch.setenv(*sim.env_var(CONN_ID, **FORM_DEFAULTS, refresh_token=""))
    ok, message = ZohoCRMHook(CONN_ID).test_connection()
    assert not ok
    assert message == "The connection is incomplete: extra refresh_token is missing."
    assert sim.requests() == []


def test_the_api_server_path_with_a_temporary_connection_id(
    sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, homes: Path
) -> None:
    """What POST /api/v2/connections/test does: a Connection exported as a URI under a random id, then
    Connection.test_connection() -> ProvidersManager's hook for conn type zoho_crm -> ZohoCRMHook.test_connection."""
    from airflow.models.connection import Connection

    def run(password: str) -> tuple[bool, str]:
        form = sim.airflow_connection(**FORM_DEFAULTS, password=password)
        # The form stores its empty optional fields as nulls.
        extra = {**form["extra"], "max_download_bytes": None, "token_cache_dir": None}
        conn = Connection(conn_id="tmpx8k2zq", conn_type=form["conn_type"], login=form["login"],
                          password=form["password"], extra=json.dumps(extra))
        monkeypatch.setenv("AIRFLOW_CONN_TMPX8K2ZQ", conn.get_uri())
        try:
            return conn.test_connection()
        finally:
            os.environ.pop("AIRFLOW_CONN_TMPX8K2ZQ", None)

    ok, message = run(CLIENT_SECRET)
    assert ok, message
    ok, message = run(WRONG_SECRET)
    assert not ok and "invalid_client" in message
    assert_no_secret(message, sim, extra=[WRONG_SECRET])
    assert files_under(homes) == []
