"""ZohoCRMHook against a hostile server (a small real HTTP server in a thread): answers no simulator of Zoho gives.

Error answers that echo the request must not carry a secret into an error message; a redirect must not become a
second download request; a huge error body must not be read whole; a token endpoint that is not Zoho's must say so.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.hooks.zoho_conn import CLIENT_SECRET, REFRESH_TOKEN, assert_no_secret
from tests.local_http import QuietHandler, serving
from zoho_crm.api.errors import ZohoAuthError, ZohoError, ZohoRequestError, ZohoTransientError
from zoho_crm.api.query import build_bulk_read_body
from zoho_crm.hooks.zoho_crm import ERROR_BODY_BYTES, ZohoCRMHook
from zoho_crm.operators.bulk_read import ZohoBulkReadOperator
from zoho_crm.triggers.bulk_read_job import ZohoBulkReadJobTrigger

ACCESS_TOKEN = "1000." + "a" * 32 + "." + "b" * 32
HUGE_BYTES = 20 * ERROR_BODY_BYTES
JOBS = {"redirect": "1001", "echo": "1002", "huge": "1003", "escaping_id": "1004", "no_id": "1005"}
"""The hostile server's answer per job id (job ids are digits, like Zoho's)."""


class _Hostile(QuietHandler):
    token_mode = "ok"
    seen: Counter[str] = Counter()

    def _answer(self, status: int, content_type: str, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        form = self.rfile.read(int(self.headers["Content-Length"]))
        mode = type(self).token_mode
        if self.path.startswith("/crm/bulk/"):  # create a job: the answer's id would escape a staging folder
            details = {"id": "../../x", "operation": "read", "state": "ADDED"}
            body = {"data": [{"status": "success", "code": "ADDED_SUCCESSFULLY", "details": details}]}
            self._answer(201, "application/json", json.dumps(body).encode())
        elif mode == "ok":
            body = {"access_token": ACCESS_TOKEN, "expires_in": 3600, "api_domain": "ignored"}
            self._answer(200, "application/json", json.dumps(body).encode())
        elif mode == "login_page":
            self._answer(200, "text/html", b"<html><form>Sign in</form></html>")
        elif mode == "echo":
            self._answer(400, "text/plain", b"bad request: " + form)
        elif mode == "broken_json":
            self._answer(200, "application/json", f'{{"access_token": "{ACCESS_TOKEN}", "expires_in'.encode())
        elif mode == "bad_lifetime":
            self._answer(200, "application/json", json.dumps({"access_token": ACCESS_TOKEN, "expires_in": "soon"}).encode())

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        type(self).seen[self.path] += 1
        jobs = {job: name for name, job in JOBS.items()}
        details = jobs.get(self.path.split("/")[-1])
        if details in ("escaping_id", "no_id"):  # job details whose id is a path, or missing
            job = {"state": "COMPLETED", "result": {"page": 1, "count": 1, "more_records": False}}
            job.update({"id": "../../x" * 20} if details == "escaping_id" else {})
            self._answer(200, "application/json", json.dumps({"data": [job]}).encode())
            return
        kind = jobs.get(self.path.split("/")[-2])
        if kind == "redirect":
            self._answer(302, "text/html", b"", Location=self.path)
        elif kind == "echo":
            self._answer(401, "text/html", f"<html>denied: {self.headers['Authorization']}</html>".encode())
        elif kind == "huge":
            self._answer(500, "application/json", b'{"code": "INTERNAL_ERROR", "pad": "' + b"x" * HUGE_BYTES + b'"}')


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(_Hostile) as url:
        yield url


@pytest.fixture
def hook(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ZohoCRMHook]:
    monkeypatch.setenv(*SimulatorProcess().env_var(
        conn_type="http", token_cache_dir=tmp_path / "tokens", api_domain=server, accounts_url=server
    ))
    _Hostile.token_mode = "ok"
    _Hostile.seen.clear()
    yield ZohoCRMHook(retry_attempts=1)


def test_a_redirected_download_is_refused_after_one_request(hook: ZohoCRMHook) -> None:
    with pytest.raises(ZohoRequestError, match="redirect") as error:
        with hook.open_download(JOBS["redirect"]):
            pass
    assert error.value.code == "UNEXPECTED_REDIRECT" and "api_domain" in str(error.value)
    assert _Hostile.seen == {f"/crm/bulk/v8/read/{JOBS['redirect']}/result": 1}, "a redirect became a second request"


def test_an_error_page_echoing_the_token_leaks_no_secret(hook: ZohoCRMHook) -> None:
    with pytest.raises(ZohoAuthError) as error:
        with hook.open_download(JOBS["echo"]):
            pass
    assert "denied: Zoho-oauthtoken ***" in str(error.value)
    assert_no_secret(str(error.value), extra=[ACCESS_TOKEN])


def test_a_huge_error_body_is_not_read_whole(hook: ZohoCRMHook) -> None:
    with pytest.raises(ZohoTransientError) as error:
        with hook.open_download(JOBS["huge"]):
            pass
    assert len(str(error.value)) < 2 * ERROR_BODY_BYTES


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("login_page", "not Zoho's JSON"),
        ("broken_json", "not Zoho's JSON"),
        ("bad_lifetime", "unusable lifetime"),
        ("echo", "bad request"),
    ],
)
def test_a_token_endpoint_that_is_not_zohos_fails_clearly_without_leaks(
    hook: ZohoCRMHook, mode: str, expected: str
) -> None:
    _Hostile.token_mode = mode
    with pytest.raises(ZohoRequestError, match=expected) as error:
        hook.get_access_token()
    text = f"{error.value} {error.value.resolution}"
    assert_no_secret(text, extra=[ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN])
    if mode != "echo":
        assert "accounts" in text


@pytest.mark.parametrize(("job", "shown"), [("escaping_id", "'../../x../../x"), ("no_id", "missing")])
def test_a_job_id_in_zohos_details_answer_that_is_not_digits_is_refused(
    hook: ZohoCRMHook, job: str, shown: str
) -> None:
    for call in (hook.get_bulk_read_job, lambda job_id: asyncio.run(ZohoCRMHook(retry_attempts=1).aget_bulk_read_job(
            job_id))):
        with pytest.raises(ZohoError) as error:
            call(JOBS[job])
        text = str(error.value)
        assert type(error.value).__name__ == "ZohoJobIdError" and error.value.code == "INVALID_JOB_ID"
        assert "data[0].id" in text and shown in text and not error.value.retryable
        assert len(text) < 400, "the bad value is shown truncated"
    trigger = ZohoBulkReadJobTrigger(JOBS[job], resume_after=0, poll_interval=0.1, deadline=time.time() + 30)

    async def events() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    [event] = asyncio.run(events())
    assert (event["status"], event["code"]) == ("error", "INVALID_JOB_ID")


def test_a_job_id_in_zohos_create_answer_that_is_not_digits_is_refused(hook: ZohoCRMHook) -> None:
    with pytest.raises(ZohoError, match=r"details\.id\) is not a Zoho bulk read job id .*'\.\./\.\./x'"):
        hook.create_bulk_read_job(build_bulk_read_body("Leads"))
    operator = ZohoBulkReadOperator(task_id="create", module="Leads")
    with pytest.raises(AirflowFailException, match="not a Zoho bulk read job id"):
        operator.execute({})
