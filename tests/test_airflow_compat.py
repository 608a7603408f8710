"""The Airflow workarounds of ``zoho_crm.airflow_compat``: the cheap ones reproduced on the installed Airflow, and
every one gated on the Airflow version it was checked on.

When the pinned Airflow moves past a workaround's ``checked_on``, the gate fails: read the issue, try the
reproduction, then remove the workaround or record the new version it was checked on.
"""

from __future__ import annotations

import asyncio
import inspect
import json

import lazy_object_proxy
import pytest
from airflow import __version__ as airflow_version
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.execution_time import task_runner
from packaging.version import Version

from zoho_crm import airflow_compat
from zoho_crm.airflow_compat import (
    WORKAROUNDS,
    BaseUrlHttpHook,
    ConnectionTestPortFix,
    asset_update_task_kwargs,
    unwrap_lazy_context_value,
)


@pytest.mark.parametrize("workaround", WORKAROUNDS, ids=lambda workaround: workaround.name)
def test_each_workaround_was_checked_on_the_installed_airflow(workaround: airflow_compat.Workaround) -> None:
    assert hasattr(airflow_compat, workaround.name), "each listed workaround is a named helper of the module"
    assert Version(airflow_version) <= Version(workaround.checked_on), (
        f"Airflow {airflow_version} is newer than {workaround.checked_on}, where {workaround.name} was checked "
        f"({workaround.issue}: {workaround.summary}). Check whether it is still needed: remove it, or set "
        "checked_on to this version."
    )


def test_trigger_success_xcoms_are_encoded_twice() -> None:
    """What ``push_result_before_trigger_success`` avoids: a TaskSuccessEvent's XComs go through
    ``TaskInstance.xcom_push`` -> ``XComModel.set(serialize=True)``, which JSON-encodes the value into a string,
    and the JSON column encodes that string again: the reader decodes once and gets a string."""
    value = {"job_id": "1", "path": "/x.zip"}
    assert "serialize=" not in inspect.getsource(TaskInstance.xcom_push), "xcom_push uses set()'s default"
    assert inspect.signature(XComModel.set).parameters["serialize"].default is True
    stored = json.dumps(XComModel.serialize_value(value))  # what the JSON column holds
    assert json.loads(stored) == json.dumps(value), "read back: a JSON string, not the dict"


def test_lazy_context_values_are_proxies_and_unwrap_to_their_value() -> None:
    source = inspect.getsource(task_runner)
    assert '"prev_data_interval_end_success": lazy_object_proxy.Proxy(' in source
    proxy = lazy_object_proxy.Proxy(lambda: None)
    assert proxy is not None, "the trap: a proxy of None is not None"
    assert unwrap_lazy_context_value(proxy) is None
    assert unwrap_lazy_context_value("plain") == "plain"


def test_the_http_hook_internals_the_bound_hook_relies_on_are_there() -> None:
    hook = BaseUrlHttpHook("https://www.zohoapis.com", "GET", "zoho_crm_default")
    assert "_base_url_initialized" in inspect.getsource(HttpHook), "HttpHook reads the connection's host otherwise"
    assert callable(getattr(HttpHook, "_configure_session_from_mount_adapters", None))
    session = hook.get_conn(headers={"Authorization": "Zoho-oauthtoken t"})  # no connection lookup
    assert hook.base_url == "https://www.zohoapis.com"
    assert session.auth is None, "never the connection's login and password"
    assert session.headers["Authorization"] == "Zoho-oauthtoken t"


def test_asset_updates_declare_every_asset_and_run_one_at_a_time() -> None:
    alias = AssetAlias("zoho-crm-exports/dag")
    kwargs = asset_update_task_kwargs(alias, ["zoho-crm://Leads", "zoho-crm://Deals"])
    assert kwargs["outlets"] == [alias]
    assert kwargs["inlets"] == [Asset("zoho-crm://Leads"), Asset("zoho-crm://Deals")]
    assert kwargs["max_active_tis_per_dag"] == 1


def test_the_connection_test_port_fix_rewrites_port_zero_only() -> None:
    seen: list[bytes] = []

    async def app(scope, receive, send) -> None:
        seen.append((await receive())["body"])

    def run(path: str, body: bytes) -> bytes:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return messages.pop(0)

        asyncio.run(ConnectionTestPortFix(app)({"type": "http", "method": "POST", "path": path, "headers": []},
                                               receive, None))
        return seen.pop()

    assert json.loads(run("/api/v2/connections/test", b'{"port": 0, "host": "h"}')) == {"port": None, "host": "h"}
    assert run("/api/v2/connections/test", b'{"port": 443}') == b'{"port": 443}'
    assert run("/api/v2/connections", b'{"port": 0}') == b'{"port": 0}'
