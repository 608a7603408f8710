"""Fault injection and the downloads' limit: 500 rate, dropped bodies, stuck and failed jobs, 429 lockout."""

from __future__ import annotations

import hashlib
import http.client
import io
import time
import zipfile

import pytest

from tests.devtools.simulator.sim_client import (
    access_token,
    create_ok,
    details,
    download,
    module_query,
    token_answer,
    wait_state,
)
from tests.simulator_fixtures import start_simulator


def completed_job(sim, token, module: str = "Leads") -> str:
    job_id = create_ok(sim, token, module_query(module))
    wait_state(sim, token, job_id, ("COMPLETED",))
    return job_id


def test_error_rate_applies_to_api_calls_only(sim, token) -> None:
    job_id = completed_job(sim, token)
    sim.set_faults(error_rate=0.5)
    statuses = [details(sim, token, job_id).status for _ in range(40)]
    assert {200, 500} == set(statuses)
    assert all(token_answer(sim).status == 200 for _ in range(3)), "the token endpoint is never fault-injected"
    sim.set_faults(error_rate=1.0)
    assert sim.health()["status"] == "ok", "control calls are never fault-injected"
    assert details(sim, token, job_id).json["code"] == "INTERNAL_ERROR"


def test_dropped_download_then_intact_one(sim, token) -> None:
    job_id = completed_job(sim, token)
    sim.set_faults(drop_downloads=1)
    with pytest.raises(http.client.IncompleteRead):
        download(sim, token, job_id)
    answer = download(sim, token, job_id)
    assert answer.status == 200
    first, second = sim.downloads()
    assert first["dropped"] and not first["complete"] and second["complete"]
    assert hashlib.sha256(answer.body).hexdigest() == second["zip_sha256"]
    with zipfile.ZipFile(io.BytesIO(answer.body)) as zf:
        assert hashlib.sha256(zf.read(f"{job_id}.csv")).hexdigest() == second["member_sha256"]
    logged = sim.requests("download")
    assert logged[0]["bytes"] < logged[1]["bytes"] == second["bytes"]


def test_stuck_jobs_stay_in_progress(sim, token) -> None:
    sim.set_faults(stuck_jobs=True)
    job_id = create_ok(sim, token, module_query("Leads"))
    wait_state(sim, token, job_id, ("IN PROGRESS",))
    until = time.monotonic() + 1.0  # five times job_seconds: a normal job would have completed
    while time.monotonic() < until:
        assert details(sim, token, job_id).json["data"][0]["state"] == "IN PROGRESS"
    sim.set_faults(stuck_jobs=False)
    assert wait_state(sim, token, create_ok(sim, token, module_query("Leads")))["state"] == "COMPLETED"


def test_failed_jobs(sim, token) -> None:
    sim.set_faults(fail_jobs=1)
    failed = wait_state(sim, token, create_ok(sim, token, module_query("Leads")))
    assert failed["state"] == "FAILURE"
    assert failed["result"] == {"error_message": {"status": "error", "code": "INTERNAL_SERVER_ERROR",
                                                  "message": "Internal server error occurred.", "details": {}}}
    assert wait_state(sim, token, create_ok(sim, token, module_query("Leads")))["state"] == "COMPLETED"


def test_download_limit_and_lockout() -> None:
    window = 1.0
    with start_simulator(download_limit=3, download_window=window, job_seconds=0.1,
                         content_type="application/x-download", disposition="extended") as sim:
        token = access_token(sim)
        job_id = completed_job(sim, token, "Vendors")
        first = download(sim, token, job_id)
        assert first.headers["Content-Type"] == "application/x-download"
        assert first.headers["Content-Disposition"] == f"attachment; filename*=UTF-8''{job_id}.zip"
        assert [download(sim, token, job_id).status for _ in range(2)] == [200, 200]
        refused = download(sim, token, job_id)
        assert refused.status == 429 and refused.json["code"] == "TOO_MANY_REQUESTS"
        assert "Retry-After" not in refused.headers
        answer = sim.wait_for(lambda: (a := download(sim, token, job_id)).status == 200 and a, timeout=10,
                              interval=0.05)
        assert answer.status == 200
        log = sim.requests("download")
        accepted = [e for e in log if e["status"] == 200]
        assert len(accepted) == 4 and any(e["status"] == 429 for e in log)
        assert accepted[3]["t"] - accepted[2]["t"] >= window, "lockout lasts a full window after the last download"
        # 429s do not extend the lockout: the first success comes within a window after the last accepted one
        assert accepted[3]["t"] - accepted[2]["t"] < window + 1.0


def test_foreign_downloads_use_the_allowance() -> None:
    with start_simulator(download_limit=4, download_window=30, job_seconds=0.1) as sim:
        token = access_token(sim)
        job_id = completed_job(sim, token)
        assert sim.foreign_downloads(3)["statuses"] == [200, 200, 200]
        assert download(sim, token, job_id).status == 200
        assert download(sim, token, job_id).status == 429
        kinds = [e["kind"] for e in sim.requests() if e["kind"] in ("download", "foreign_download")]
        assert kinds == ["foreign_download"] * 3 + ["download"] * 2


def test_foreign_downloads_armed_before_our_next_request() -> None:
    with start_simulator(download_limit=4, download_window=30, job_seconds=0.1) as sim:
        token = access_token(sim)
        job_id = completed_job(sim, token)
        assert download(sim, token, job_id).status == 200
        assert sim.foreign_downloads(4, before_next=True) == {"armed": 4}
        assert sim.requests("foreign_download") == [], "armed downloads must wait for our next request"
        refused = download(sim, token, job_id)
        assert refused.status == 429 and refused.json["code"] == "TOO_MANY_REQUESTS"
        foreign = [e["status"] for e in sim.requests("foreign_download")]
        assert foreign == [200, 200, 200, 429], "the other client used what was left of the allowance"
        assert download(sim, token, job_id).status == 429, "armed once: the lockout, not new foreign downloads"
        assert len(sim.requests("foreign_download")) == 4
