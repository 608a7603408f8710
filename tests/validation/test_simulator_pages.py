"""Pages exported by the simulator over real HTTP validate clean: every module as CSV, Events also as ICS."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.devtools.zoho_simulator.data import MODULES
from tests.simulator_fixtures import start_simulator
from zoho_crm.validation import validate_page

RECORDS = 120
EXPORTS = [(module, "csv") for module in MODULES] + [("Events", "ics")]


@pytest.fixture(scope="module")
def sim() -> Iterator:
    with start_simulator(default_records=RECORDS, job_seconds=0.2, download_limit=100) as process:
        yield process


def call(url: str, *, token: str | None = None, body: dict | None = None, form: dict | None = None):
    headers = {"Authorization": f"Zoho-oauthtoken {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=60) as answer:
        payload = answer.read()
        return json.loads(payload) if answer.headers.get_content_type() == "application/json" else payload


@pytest.fixture(scope="module")
def token(sim) -> str:
    answer = call(f"{sim.url}/oauth/v2/token", form={
        "grant_type": "refresh_token", "client_id": "1000.SIMULATOR", "client_secret": "simulator-secret",
        "refresh_token": "1000.simulator.refresh"})
    return answer["access_token"]


@pytest.fixture(scope="module")
def completed_jobs(sim, token) -> dict[tuple[str, str], dict]:
    """Create every export first, then poll them together until COMPLETED (deadline, no fixed sleeps)."""
    job_ids = {}
    for module, file_type in EXPORTS:
        created = call(f"{sim.url}/crm/bulk/v8/read", token=token,
                       body={"query": {"module": {"api_name": module}}, "file_type": file_type})
        job_ids[(module, file_type)] = created["data"][0]["details"]["id"]
    details: dict[tuple[str, str], dict] = {}
    deadline = time.monotonic() + 120
    while len(details) < len(job_ids):
        assert time.monotonic() < deadline, f"jobs not COMPLETED in time: {set(job_ids) - set(details)}"
        for key, job_id in job_ids.items():
            if key not in details:
                job = call(f"{sim.url}/crm/bulk/v8/read/{job_id}", token=token)["data"][0]
                assert job["state"] != "FAILURE", job
                if job["state"] == "COMPLETED":
                    details[key] = job
        time.sleep(0.05)  # polling interval of the deadline loop above
    return details


@pytest.mark.parametrize(("module", "file_type"), EXPORTS, ids=[f"{m}-{t}" for m, t in EXPORTS])
def test_simulator_page_validates_clean(sim, token, completed_jobs, tmp_path: Path, module, file_type):
    job = completed_jobs[(module, file_type)]
    zip_path = tmp_path / f"{job['id']}.zip"
    zip_path.write_bytes(call(f"{sim.url}{job['result']['download_url']}", token=token))
    metadata = call(f"{sim.url}/crm/v8/settings/fields?module={module}", token=token)
    report = validate_page(zip_path, tmp_path / "page", job_id=job["id"], file_type=file_type,
                           field_metadata=metadata if file_type == "csv" else None,
                           expected_count=job["result"]["count"])
    assert report.valid, report.summary(n=20)
    assert report.records == job["result"]["count"] > 0
    assert [w for w in report.warnings if "byte order mark" in w.reason or w.position == "archive"] == []
    if file_type == "csv":
        assert report.id_column in ("id", "Id") and report.checks_skipped == []
