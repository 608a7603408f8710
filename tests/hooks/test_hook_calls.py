"""ZohoCRMHook against the simulator over real HTTP: calls, download, and each error code's behaviour."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
import zipfile

import pytest

from tests.hooks.zoho_conn import assert_no_secret
from tests.simulator_fixtures import start_simulator
from zoho_crm.api.errors import (
    ZohoAuthError,
    ZohoConfigError,
    ZohoError,
    ZohoNotFoundError,
    ZohoPermissionError,
    ZohoRateLimitError,
    ZohoRequestError,
    ZohoScopeError,
    ZohoTransientError,
)
from zoho_crm.api.query import build_bulk_read_body
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

FAST = {"retry_attempts": 3, "retry_min_wait": 0.01, "retry_max_wait": 0.05}
UNKNOWN_JOB = "5725767000009999999"


def completed_job(sim, hook: ZohoCRMHook, module: str = "Leads") -> str:
    job_id = hook.create_bulk_read_job(build_bulk_read_body(module))["id"]
    sim.wait_for(lambda: hook.get_bulk_read_job(job_id)["state"] == "COMPLETED", timeout=30, interval=0.1)
    return job_id


def test_create_details_fields_download(zoho_conn):
    hook = ZohoCRMHook()
    details = hook.create_bulk_read_job(build_bulk_read_body("contacts", fields=["Last_Name", "Email"]))
    assert details["state"] == "ADDED" and len(details["id"]) == 19
    job_id = completed_job(zoho_conn, hook)
    job = hook.get_bulk_read_job(job_id)
    assert job["result"]["download_url"].endswith(f"/{job_id}/result")
    assert any(f["api_name"] == "Last_Name" for f in hook.get_field_metadata("Leads"))
    with hook.open_download(job_id) as response:
        assert "Authorization" not in response.request.headers
        archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == [f"{job_id}.csv"]
    assert len(zoho_conn.requests("download")) == 1
    assert len(zoho_conn.requests("token")) == 1


def test_token_answer_api_domain_outside_zoho_is_refused(sim, monkeypatch, tmp_path):
    """Without an api_domain override the token answer's api_domain picks the host: only a Zoho API host is taken
    (the simulator's own URL is not one), so the token is never sent to a host the answer made up."""
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache", api_domain=None))
    hook = ZohoCRMHook(**FAST)
    assert hook.config.api_domain_override is None
    for call in (lambda: hook.create_bulk_read_job(build_bulk_read_body("Deals")),
                 lambda: asyncio.run(ZohoCRMHook(**FAST).aget_bulk_read_job(UNKNOWN_JOB))):
        with pytest.raises(ZohoConfigError) as caught:
            call()
        err = caught.value
        assert err.code == "UNTRUSTED_API_DOMAIN" and err.fails_fast
        assert sim.url in str(err) and "api_domain" in str(err)
        assert_no_secret(str(err), sim)
    assert [r["kind"] for r in sim.requests()] == ["token"], "no API call, one token request (not repeated)"
    answer = {"access_token": "t", "expires_in": 3600, "api_domain": "https://www.zohoapis.com.au"}
    assert hook._access_token_from(200, answer, 0.0).api_domain == "https://www.zohoapis.com.au"


def test_download_is_one_request_without_retries_on_429(zoho_conn):
    hook = ZohoCRMHook(**FAST)
    job_id = completed_job(zoho_conn, hook)
    zoho_conn.foreign_downloads(10)
    with pytest.raises(ZohoRateLimitError) as caught, hook.open_download(job_id):
        pass
    assert caught.value.retryable and caught.value.code == "TOO_MANY_REQUESTS"
    assert [r["status"] for r in zoho_conn.requests("download")] == [429]
    assert_no_secret(str(caught.value), zoho_conn)


def test_download_to_file_is_one_request_streamed_into_place(zoho_conn, tmp_path):
    hook = ZohoCRMHook(**FAST)
    job_id = completed_job(zoho_conn, hook)
    progress: list[str] = []
    downloaded = hook.download_to_file(job_id, tmp_path / "out", token=hook.get_token(), log=progress.append)
    [request] = zoho_conn.requests("download")
    served = {d["job_id"]: d for d in zoho_conn.downloads()}[job_id]
    data = (tmp_path / "out" / f"{job_id}.zip").read_bytes()
    assert (downloaded.path, downloaded.file_name) == (str(tmp_path / "out" / f"{job_id}.zip"), f"{job_id}.zip")
    assert hashlib.sha256(data).hexdigest() == downloaded.sha256 == served["zip_sha256"]
    assert downloaded.size == len(data) == served["bytes"]
    assert request["status"] == 200 and request["wall"] <= downloaded.answered_at <= time.time()
    assert progress[-1].startswith(f"downloaded {len(data)} of {len(data)} bytes") and progress[-1].endswith("(done)")
    assert os.listdir(tmp_path / "out") == [f"{job_id}.zip"]


def test_download_to_file_on_429_raises_after_one_request_and_keeps_nothing(zoho_conn, tmp_path):
    hook = ZohoCRMHook(**FAST)
    job_id = completed_job(zoho_conn, hook)
    zoho_conn.foreign_downloads(10)
    with pytest.raises(ZohoRateLimitError, match="TOO_MANY_REQUESTS"):
        hook.download_to_file(job_id, tmp_path / "out", token=hook.get_token())
    assert [r["status"] for r in zoho_conn.requests("download")] == [429]
    assert not (tmp_path / "out").exists()


def test_download_of_unfinished_job_raises_the_json_error(zoho_conn):
    zoho_conn.set_faults(stuck_jobs=True)
    hook = ZohoCRMHook(**FAST)
    job_id = hook.create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
    with pytest.raises(ZohoRequestError) as caught, hook.open_download(job_id):
        pass
    assert caught.value.http_status == 400 and caught.value.fails_fast
    assert len(zoho_conn.requests("download")) == 1


def test_download_token_rejection_is_not_retried(zoho_conn):
    hook = ZohoCRMHook(**FAST)
    job_id = completed_job(zoho_conn, hook)
    zoho_conn.revoke_tokens()
    with pytest.raises(ZohoAuthError) as caught, hook.open_download(job_id):
        pass
    assert caught.value.is_token_rejected
    assert len(zoho_conn.requests("download")) == 1, "the caller decides: invalidate_token + a later attempt"


@pytest.mark.parametrize(
    ("change", "call", "family", "code", "text"),
    [
        ({"scopes": ["ZohoCRM.bulk.read"]}, "create", ZohoScopeError, "OAUTH_SCOPE_MISMATCH",
         "ZohoCRM.modules.leads.READ"),
        ({"scopes": ["ZohoCRM.modules.ALL"]}, "create", ZohoScopeError, "OAUTH_SCOPE_MISMATCH", "ZohoCRM.bulk.read"),
        ({"scopes": ["ZohoCRM.bulk.read", "ZohoCRM.modules.ALL"]}, "fields", ZohoScopeError,
         "OAUTH_SCOPE_MISMATCH", "ZohoCRM.settings.fields.READ"),
        ({"no_permission_modules": ["Leads"]}, "create", ZohoPermissionError, "NO_PERMISSION", "Do not retry"),
        ({"unauthorized_modules": ["Leads"]}, "create", ZohoPermissionError, "AUTHORIZATION_FAILED", "privilege"),
        ({}, "unknown_job", ZohoNotFoundError, "RESOURCE_NOT_FOUND", "job id"),
        ({}, "bad_url", ZohoConfigError, "INVALID_URL_PATTERN", "api_version"),
        ({}, "wrong_method", ZohoRequestError, "INVALID_REQUEST_METHOD", "client bug"),
    ],
)
def test_config_and_permission_errors_fail_at_once(zoho_conn, monkeypatch, tmp_path, change, call, family, code, text):
    if change:
        zoho_conn.set_faults(**change)
    if call == "bad_url":
        monkeypatch.setenv(*zoho_conn.env_var(conn_type="http", token_cache_dir=tmp_path / "c2", api_domain=zoho_conn.url + "/zoho"))
    hook = ZohoCRMHook(**FAST)
    calls = {
        "create": lambda: hook.create_bulk_read_job(build_bulk_read_body("Leads")),
        "fields": lambda: hook.get_field_metadata("Leads"),
        "unknown_job": lambda: hook.get_bulk_read_job(UNKNOWN_JOB),
        "bad_url": lambda: hook.get_bulk_read_job(UNKNOWN_JOB),
        "wrong_method": lambda: hook._call("DELETE", hook.config.bulk_read_path()),
    }
    with pytest.raises(family) as caught:
        calls[call]()
    err = caught.value
    assert (err.code, err.retryable, err.fails_fast) == (code, False, True)
    assert text in str(err)
    api_calls = [r for r in zoho_conn.requests() if r["kind"] != "token"]
    assert len(api_calls) == 1, "not retried"
    assert_no_secret(str(err), zoho_conn)


@pytest.mark.parametrize(
    ("query_change", "code"),
    [
        ({"criteria": {"group_operator": "and", "group": []}}, "INVALID_CRITERIA"),
        ({"criteria": {"field": {"api_name": "Last_Name"}, "comparator": "equal", "value": "x",
                       "group_operator": "and", "group": []}}, "AMBIGUOUS_CRITERIA"),
        ({"criteria": {"group_operator": "xor", "group": [
            {"field": {"api_name": "Last_Name"}, "comparator": "equal", "value": "x"}]}},
         "GROUP_OPERATOR_NOT_SUPPORTED"),
        ({"criteria": {"field": {"api_name": "Last_Name"}, "comparator": "greater_than", "value": "x"}},
         "FIELD_COMPARATOR_IN_CRITERIA_NOT_SUPPORTED"),
        ({"module": {"api_name": "Notes"}}, "MODULE_NOT_SUPPORTED"),
        ({"cvid": "123"}, "CVID_NOT_SUPPORTED"),
        ({"page": 99}, "PAGE_RANGE_EXCEEDED"),
    ],
)
def test_request_body_errors_fail_at_once(zoho_conn, query_change, code):
    body = build_bulk_read_body("Leads")
    body["query"].update(query_change)
    with pytest.raises(ZohoRequestError) as caught:
        ZohoCRMHook(**FAST).create_bulk_read_job(body)
    assert caught.value.code == code and caught.value.fails_fast and caught.value.resolution
    assert len(zoho_conn.requests("create")) == 1


@pytest.mark.parametrize(
    ("body_change", "code"),
    [
        ({"callback": {"url": "not a url", "method": "post"}}, "INVALID_CALLBACK_URL"),
        ({"callback": {"url": "https://example.com/cb", "method": "get"}}, "INVALID_CALLBACK_METHOD"),
        ({"file_type": "ics", "query": {"module": {"api_name": "Events"}, "fields": ["Subject"]}},
         "REQUEST_BODY_NOT_SUPPORTED"),
    ],
)
def test_callback_and_body_errors(zoho_conn, body_change, code):
    body = {**build_bulk_read_body("Leads"), **body_change}
    with pytest.raises(ZohoRequestError) as caught:
        ZohoCRMHook(**FAST).create_bulk_read_job(body)
    assert caught.value.code == code
    assert len(zoho_conn.requests("create")) == 1


def test_server_errors_are_retried_with_backoff_then_raised(zoho_conn):
    hook = ZohoCRMHook(**FAST)
    job_id = hook.create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
    zoho_conn.set_faults(error_rate=1.0)
    with pytest.raises(ZohoTransientError) as caught:
        hook.get_bulk_read_job(job_id)
    assert caught.value.code == "INTERNAL_ERROR" and caught.value.retryable
    assert [r["status"] for r in zoho_conn.requests("details")] == [500, 500, 500]
    zoho_conn.set_faults(error_rate=0.0)
    assert hook.get_bulk_read_job(job_id)["id"] == job_id


def test_async_server_errors_are_retried(zoho_conn):
    job_id = ZohoCRMHook().create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
    zoho_conn.set_faults(error_rate=1.0)
    with pytest.raises(ZohoTransientError):
        asyncio.run(ZohoCRMHook(**FAST).aget_bulk_read_job(job_id))
    assert [r["status"] for r in zoho_conn.requests("details")] == [500, 500, 500]


def test_connection_errors_are_transient(monkeypatch, tmp_path):
    with start_simulator() as sim:
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache"))
        hook = ZohoCRMHook(**FAST)
        job_id = completed_job(sim, hook)
    calls = (
        lambda: hook.get_bulk_read_job(job_id),
        lambda: hook.open_download(job_id).__enter__(),
        lambda: asyncio.run(ZohoCRMHook(**FAST).aget_bulk_read_job(job_id)),
    )
    for call in calls:
        with pytest.raises(ZohoTransientError) as caught:
            call()
        assert caught.value.code == "CONNECTION" and caught.value.retryable
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cold-cache"))
    with pytest.raises(ZohoTransientError) as caught:
        ZohoCRMHook(**FAST).get_access_token()
    assert sim.url + "/oauth/v2/token" in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"password": "wrong-secret"}, "invalid_client"), ({"refresh_token": "1000.wrong.refresh"}, "invalid_code")],
)
def test_bad_credentials_fail_at_once_without_secrets(sim, monkeypatch, tmp_path, overrides, code):
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache", **overrides))
    with pytest.raises(ZohoAuthError) as caught:
        ZohoCRMHook(**FAST).create_bulk_read_job(build_bulk_read_body("Leads"))
    assert caught.value.code == code and caught.value.fails_fast
    assert len(sim.requests("token")) == 1 and not sim.requests("create")
    assert_no_secret(str(caught.value), sim, extra=list(overrides.values()))


def test_token_throttle_is_not_hammered(sim, monkeypatch, tmp_path):
    sim.set_faults(token_limit=2)
    for n in range(2):
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / f"cache-{n}"))
        ZohoCRMHook(**FAST).get_access_token()
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache-3"))
    with pytest.raises(ZohoAuthError) as caught:
        ZohoCRMHook(**FAST).get_access_token()
    err = caught.value
    assert err.code == "Access Denied" and not err.retryable and not err.fails_fast
    assert "token_cache_dir" in str(err)
    assert [r["status"] for r in sim.requests("token")] == [200, 200, 400]


def test_every_error_text_is_free_of_secrets(zoho_conn):
    hook = ZohoCRMHook(**FAST)
    token = hook.get_access_token()
    errors: list[ZohoError] = []
    for call in (lambda: hook.get_bulk_read_job(UNKNOWN_JOB), lambda: hook._call("PUT", "/crm/bulk/v8/read")):
        with pytest.raises(ZohoError) as caught:
            call()
        errors.append(caught.value)
    for err in errors:
        assert_no_secret(f"{err} {err!r} {err.details}", zoho_conn, extra=[token])


@pytest.mark.parametrize(("environment", "host"), [("sandbox", "sandbox.zohoapis.eu"),
                                                   ("developer", "developer.zohoapis.eu")])
def test_sandbox_and_developer_never_call_the_token_answers_production_host(monkeypatch, tmp_path, environment, host):
    """A real token answer naming the production host (as Zoho's does): a sandbox connection still calls sandbox.

    This machine cannot reach Zoho: the connection error names the host the hook really tried.
    """
    with start_simulator(api_domain="https://www.zohoapis.eu") as sim:
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache", api_domain=None, data_center="eu",
                      environment=environment))
        hook = ZohoCRMHook(retry_attempts=1, timeout=10)
        with pytest.raises(ZohoTransientError) as caught:
            hook.get_bulk_read_job(UNKNOWN_JOB)
        assert [r["status"] for r in sim.requests("token")] == [200]
        assert caught.value.code == "CONNECTION"
        assert f"https://{host}/crm/bulk/v8/read/{UNKNOWN_JOB}" in str(caught.value)
        assert "www.zohoapis.eu" not in str(caught.value)
        with pytest.raises(ZohoTransientError) as caught:
            asyncio.run(ZohoCRMHook(retry_attempts=1, timeout=10).aget_bulk_read_job(UNKNOWN_JOB))
        assert f"https://{host}/crm/bulk/v8/read/{UNKNOWN_JOB}" in str(caught.value)
