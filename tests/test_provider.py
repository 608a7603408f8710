"""The installed provider: its distribution and entry point, what Airflow registers from it (`airflow providers list`,
the zoho_crm hook and connection form), its form fields against what the connection parser reads, and both
connection forms (the provider's type and the README's HTTP-type JSON) giving the same configuration."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from airflow.sdk import Connection

from include.devtools.airflow_stack import AIRFLOW_BIN, REPO_ROOT
from include.devtools.zoho_simulator.process import SimulatorProcess
from zoho_crm.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR, get_provider_info
from zoho_crm.hooks import connection as zoho_connection
from zoho_crm.hooks.connection import ZohoConnectionConfig
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

DISTRIBUTION = "airflow-provider-zoho-crm"
README = (REPO_ROOT / "README.md").read_text()


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """A throwaway AIRFLOW_HOME; no PYTHONPATH: the provider must be importable as installed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "PYTHONPATH"))}
    return {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **extra}


def airflow_json(home: Path, *args: str, **env: str) -> Any:
    result = subprocess.run([AIRFLOW_BIN, *args, "-o", "json"], env=airflow_env(home, **env), cwd=home,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout[result.stdout.index("["):])


def schema(name: str) -> dict[str, Any]:
    import airflow

    return json.loads((Path(airflow.__file__).parent / name).read_text())


def test_the_distribution_is_installed_with_its_provider_entry_point() -> None:
    dist = importlib.metadata.distribution(DISTRIBUTION)
    points = [point for point in dist.entry_points if point.group == "apache_airflow_provider"]
    assert [(point.name, point.value) for point in points] == [
        ("provider_info", "zoho_crm.get_provider_info:get_provider_info")
    ]
    info = points[0].load()()
    assert info["package-name"] == DISTRIBUTION and info["versions"][0] == dist.version
    import zoho_crm

    assert Path(zoho_crm.__file__).resolve().parent == REPO_ROOT / "plugins" / "zoho_crm", "installed editable"


def test_provider_info_is_valid_for_airflow() -> None:
    """Against the runtime schema Airflow validates with, and the stricter provider.yaml schema of the connection
    types (the conn-fields and ui-field-behaviour shapes)."""
    info = get_provider_info()
    jsonschema.validate(info, schema("provider_info.schema.json"))
    jsonschema.validate(info["connection-types"], schema("provider.yaml.schema.json")["properties"]["connection-types"])
    (conn_type,) = info["connection-types"]
    assert conn_type == {
        "connection-type": "zoho_crm", "hook-class-name": "zoho_crm.hooks.zoho_crm.ZohoCRMHook", "hook-name": "Zoho CRM",
        "conn-fields": CONN_FIELDS, "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
    }


def test_the_hook_declares_the_connection_type() -> None:
    assert (ZohoCRMHook.conn_type, ZohoCRMHook.hook_name) == ("zoho_crm", "Zoho CRM")
    assert (ZohoCRMHook.conn_name_attr, ZohoCRMHook.default_conn_name) == ("zoho_conn_id", "zoho_crm_default")
    assert callable(ZohoCRMHook.test_connection)


def test_form_fields_are_what_the_connection_reads_with_its_choices_and_defaults() -> None:
    """Every conn-field is an extra ZohoConnectionConfig reads; dropdowns offer exactly the accepted values, with the
    parser's defaults; the secrets are masked; the standard fields the hook does not use are hidden."""
    assert CONN_FIELDS["data_center"]["schema"]["enum"] == list(zoho_connection.DATA_CENTERS)
    assert CONN_FIELDS["environment"]["schema"]["enum"] == list(zoho_connection.ENVIRONMENTS)
    assert sorted(CONN_FIELDS["api_version"]["schema"]["enum"]) == sorted(zoho_connection.API_VERSIONS)
    defaults = ZohoConnectionConfig("x", "id", "secret", "refresh")
    assert CONN_FIELDS["data_center"]["schema"]["default"] == defaults.data_center
    assert CONN_FIELDS["environment"]["schema"]["default"] == defaults.environment
    assert CONN_FIELDS["api_version"]["schema"]["default"] == defaults.api_version
    assert CONN_FIELDS["download_limit"]["schema"]["default"] == defaults.download_limit == 10
    assert CONN_FIELDS["download_window_seconds"]["schema"]["default"] == defaults.download_window_seconds == 60
    assert CONN_FIELDS["refresh_token"]["schema"]["format"] == "password"
    assert set(UI_FIELD_BEHAVIOUR["hidden-fields"]) == {"host", "schema", "port", "extra"}
    assert UI_FIELD_BEHAVIOUR["relabeling"] == {"login": "Client ID", "password": "Client Secret"}
    # Each field, set to a non-default value, changes the parsed configuration: the parser reads every one.
    values = {"refresh_token": "1000.r.t", "data_center": "eu", "environment": "sandbox", "api_version": "v6",
              "download_limit": 5, "download_window_seconds": 30, "api_domain": "http://127.0.0.1:9",
              "accounts_url": "http://127.0.0.1:8", "max_download_bytes": 1000, "token_cache_dir": "/tmp/zoho-x",
              "shared_state": "redis", "redis_conn_id": "redis_x", "redis_key_prefix": "prefix-x"}
    assert values.keys() == CONN_FIELDS.keys()
    config = ZohoConnectionConfig.from_connection(
        Connection(conn_id="x", conn_type="zoho_crm", login="id", password="secret", extra=json.dumps(values))
    )
    assert (config.refresh_token, config.data_center, config.environment, config.api_version) == (
        "1000.r.t", "eu", "sandbox", "v6"
    )
    assert (config.download_limit, config.download_window_seconds, config.max_download_bytes) == (5, 30.0, 1000)
    assert (config.api_domain_override, config.accounts_url_override, config.token_cache_dir) == (
        "http://127.0.0.1:9", "http://127.0.0.1:8", "/tmp/zoho-x"
    )
    assert (config.shared_state, config.redis_conn_id, config.redis_key_prefix) == ("redis", "redis_x", "prefix-x")


def test_the_form_s_unset_optional_fields_and_airflow_2_prefixed_keys_parse() -> None:
    """The form stores an untouched optional field as null or ""; Airflow 2 stored form fields as
    extra__zoho_crm__<name>: both give the same configuration as the README's HTTP-type extras."""
    http = ZohoConnectionConfig.from_connection(Connection(
        conn_id="zoho_crm_default", conn_type="http", login="1000.ID", password="secret",
        extra=json.dumps({"refresh_token": "1000.r.t", "data_center": "eu"}),
    ))
    form = ZohoConnectionConfig.from_connection(Connection(
        conn_id="zoho_crm_default", conn_type="zoho_crm", login="1000.ID", password="secret",
        extra=json.dumps({"refresh_token": "1000.r.t", "data_center": "eu", "environment": "production",
                          "api_version": "v8", "download_limit": 10, "download_window_seconds": 60,
                          "api_domain": "", "accounts_url": None, "max_download_bytes": None, "token_cache_dir": ""}),
    ))
    prefixed = ZohoConnectionConfig.from_connection(Connection(
        conn_id="zoho_crm_default", conn_type="zoho_crm", login="1000.ID", password="secret",
        extra=json.dumps({"extra__zoho_crm__refresh_token": "1000.r.t", "extra__zoho_crm__data_center": "eu",
                          "extra__zoho_crm__download_limit": ""}),
    ))
    assert http == form == prefixed
    assert form.api_base() == "https://www.zohoapis.eu" and form.accounts_url == "https://accounts.zoho.eu"


def test_the_readme_connection_examples_parse_for_both_types() -> None:
    """The README's AIRFLOW_CONN_ZOHO_CRM_DEFAULT examples (the zoho_crm type and the HTTP-type JSON) are valid."""
    examples = re.findall(r"export AIRFLOW_CONN_ZOHO_CRM_DEFAULT='(\{.*?\})'", README, re.S)
    types = {}
    for example in examples:
        conn = Connection.from_json(example, conn_id="zoho_crm_default")
        config = ZohoConnectionConfig.from_connection(conn)
        types[conn.conn_type] = (config.client_id, config.data_center, config.environment)
    assert types.keys() == {"zoho_crm", "http"}
    assert len(set(types.values())) == 1, "both forms describe the same connection"
    assert "airflow connections add zoho_crm_default --conn-type zoho_crm" in README


def test_airflow_lists_the_provider_and_its_hook(tmp_path: Path) -> None:
    providers = airflow_json(tmp_path, "providers", "list")
    (ours,) = [provider for provider in providers if provider["package_name"] == DISTRIBUTION]
    assert ours["version"] == importlib.metadata.version(DISTRIBUTION)
    hooks = {hook["connection_type"]: hook for hook in airflow_json(tmp_path, "providers", "hooks")}
    assert hooks["zoho_crm"]["class"] == "zoho_crm.hooks.zoho_crm.ZohoCRMHook"
    assert (hooks["zoho_crm"]["hook_name"], hooks["zoho_crm"]["package_name"]) == ("Zoho CRM", DISTRIBUTION)


def test_the_providers_manager_registers_a_testable_type_with_its_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    hook = manager.hooks["zoho_crm"]
    assert hook is not None and hook.hook_class_name == "zoho_crm.hooks.zoho_crm.ZohoCRMHook"
    assert hook.connection_testable and hook.connection_type == "zoho_crm"
    widgets = {name: info for name, info in manager.connection_form_widgets.items() if info.package_name == DISTRIBUTION}
    assert set(widgets) == {f"extra__zoho_crm__{name}" for name in CONN_FIELDS}
    assert [name for name, info in widgets.items() if info.is_sensitive] == ["extra__zoho_crm__refresh_token"]
    assert widgets["extra__zoho_crm__data_center"].field["schema"]["enum"][0] == "us"
    assert manager.field_behaviours["zoho_crm"]["hidden_fields"] == UI_FIELD_BEHAVIOUR["hidden-fields"]


def test_airflow_connections_test_uses_the_hook(tmp_path: Path, simulator: SimulatorProcess) -> None:
    """`airflow connections test` (the CLI twin of the UI's Test button) on a zoho_crm-type connection: one fresh
    token and one field-metadata read for the simulator's credentials; the hook's message for a wrong secret."""

    def cli_test(password: str) -> subprocess.CompletedProcess:
        connection = dict([simulator.env_var("zoho_cli_check", password=password)])
        return subprocess.run(
            [AIRFLOW_BIN, "connections", "test", "zoho_cli_check"], cwd=tmp_path, capture_output=True, text=True,
            timeout=300, env=airflow_env(tmp_path, **connection, AIRFLOW__CORE__TEST_CONNECTION="Enabled"),
        )

    before = len(simulator.requests())
    result = cli_test("simulator-secret")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Connection success!" in result.stdout
    assert [entry["path"] for entry in simulator.requests()[before:]] == ["/oauth/v2/token", "/crm/v8/settings/fields"]
    result = cli_test("a-wrong-secret")
    assert result.returncode == 1 and "Connection failed!" in result.stdout
    assert "invalid_client" in result.stdout and "Client Secret" in result.stdout
    assert "a-wrong-secret" not in result.stdout + result.stderr
    assert not (tmp_path / "zoho_crm_token_cache").exists(), "the test wrote no token cache"


def test_exactly_one_copy_of_the_distribution_is_on_the_path() -> None:
    """setuptools' editable build leaves plugins/<name>.egg-info behind; plugins/ is on sys.path, so `make` removes
    it, else Airflow would see the provider and its plugin twice."""
    copies = [dist for dist in importlib.metadata.distributions() if dist.metadata["Name"] == DISTRIBUTION]
    assert len(copies) == 1, [str(getattr(dist, "_path", dist)) for dist in copies]
    assert not list((REPO_ROOT / "plugins").glob("*.egg-info"))


def test_the_api_server_loads_the_connection_test_middleware(tmp_path: Path) -> None:
    script = ("from airflow import plugins_manager as pm\n"
              "print([m['middleware'].__module__ + '.' + m['middleware'].__name__ for m in pm.get_fastapi_plugins()[1]])")
    result = subprocess.run([str(Path(AIRFLOW_BIN).parent / "python"), "-c", script], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env=airflow_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "['zoho_crm.airflow_compat.ConnectionTestPortFix']"
    assert "already registered" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("body", "expected_port"),
    [
        ({"connection_id": "c", "conn_type": "zoho_crm", "port": 0, "password": "***"}, None),
        ({"connection_id": "c", "conn_type": "http", "port": 8080, "password": "***"}, 8080),
        ({"connection_id": "c", "conn_type": "http", "port": None}, None),
        ({"connection_id": "c", "conn_type": "http", "port": False}, False),
    ],
)
def test_the_middleware_reads_port_0_as_no_port_on_the_test_route_only(body: dict, expected_port: Any) -> None:
    """Airflow 3.3.2's UI sends port 0 (Number(null)) for a connection without a port; the api-server then refuses
    to test it with the stored (masked) credentials. apache/airflow#73298 fixes that in the API the same way."""
    import asyncio

    from zoho_crm.airflow_compat import ConnectionTestPortFix

    def call(path: str, payload: bytes) -> tuple[bytes, dict[bytes, bytes]]:
        seen: dict[str, Any] = {}

        async def app(scope, receive, send):
            message = await receive()
            seen["body"], seen["headers"] = message["body"], dict(scope["headers"])

        async def receive():
            return {"type": "http.request", "body": payload, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": path,
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]}
        asyncio.run(ConnectionTestPortFix(app)(scope, receive, None))
        return seen["body"], seen["headers"]

    payload = json.dumps(body).encode()
    sent, headers = call("/api/v2/connections/test", payload)
    assert json.loads(sent) == {**body, "port": expected_port}
    assert headers[b"content-length"] == str(len(sent)).encode()
    assert call("/api/v2/connections", payload)[0] == payload, "other routes are untouched"
    assert call("/api/v2/connections/test", b"not json")[0] == b"not json"


def test_the_default_install_enables_the_test_button(tmp_path: Path) -> None:
    from include.devtools.local_setup import DEFAULT_INSTALL_SETTINGS, default_install_env

    env = default_install_env(tmp_path, "postgresql://x", tmp_path / "out")
    assert env["AIRFLOW__CORE__TEST_CONNECTION"] == DEFAULT_INSTALL_SETTINGS["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
