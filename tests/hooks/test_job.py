"""BulkReadJob and WaitOutcome from the simulator's real job details answers, and the trigger event round trip."""

from __future__ import annotations

import json

import pytest

from tests.hooks.bulk_read_jobs import completed_leads_result, new_job
from tests.hooks.zoho_conn import assert_no_secret
from zoho_crm.hooks.job import (
    EVENT_KEYS,
    RESULT_KEYS,
    BulkReadJob,
    JobState,
    WaitOutcome,
    WaitStatus,
)
from zoho_crm.hooks.zoho_crm import ZohoCRMHook


def states_until_done(sim, job_id: str) -> dict[str, BulkReadJob]:
    """Read the job's details until it is terminal; the job as first seen in each state."""
    seen: dict[str, BulkReadJob] = {}
    hook = ZohoCRMHook()

    def terminal() -> bool:
        job = BulkReadJob.from_details(hook.get_bulk_read_job(job_id))
        seen.setdefault(job.state, job)
        return job.is_terminal

    sim.wait_for(terminal, timeout=30, interval=0.02)
    return seen


def test_every_state_of_a_job_that_completes(zoho_conn):
    zoho_conn.set_faults(job_seconds=1.2)
    job_id = new_job(fields=["Last_Name"])
    seen = states_until_done(zoho_conn, job_id)
    assert list(seen) == ["ADDED", "QUEUED", "IN PROGRESS", "COMPLETED"]
    assert set(seen) == {state.value for state in JobState} - {"FAILURE"}
    for state in ("ADDED", "QUEUED", "IN PROGRESS"):
        job = seen[state]
        assert not job.is_terminal and not job.failed and not job.completed
        assert (job.job_id, job.module, job.file_type, job.page) == (job_id, "Leads", "csv", 1)
        assert (job.count, job.download_url) == (None, None), "no result before COMPLETED"
        with pytest.raises(ValueError, match=f"job {job_id} is {state}, not COMPLETED"):
            job.result()
    done = seen["COMPLETED"]
    assert done.is_terminal and done.completed and not done.failed
    assert done.result() == completed_leads_result(job_id)
    assert tuple(done.result()) == RESULT_KEYS
    assert_no_secret(json.dumps(done.result()), zoho_conn)


def test_a_failed_job_carries_zohos_code_and_message(zoho_conn):
    zoho_conn.set_faults(job_seconds=0.3, fail_jobs=1)
    job_id = new_job()
    job = states_until_done(zoho_conn, job_id)["FAILURE"]
    assert job.is_terminal and job.failed and not job.completed
    assert (job.failure_code, job.failure_message) == ("INTERNAL_SERVER_ERROR", "Internal server error occurred.")
    with pytest.raises(ValueError, match="not COMPLETED"):
        job.result()


def test_an_ics_page_with_more_records_and_a_page_token(zoho_conn):
    zoho_conn.set_faults(job_seconds=0, per_page_ics=100)
    result = states_until_done(zoho_conn, new_job("Events", file_type="ics"))["COMPLETED"].result()
    assert (result["module"], result["file_type"], result["more_records"]) == ("Events", "ics", True)
    assert result["next_page_token"] and result["count"] == result["per_page"]


def test_a_wrong_failure_shape_still_names_a_code():
    details = {"id": "1", "state": "FAILURE", "result": {"error_message": "disk full"}}
    job = BulkReadJob.from_details(details)
    assert (job.failure_code, job.failure_message) == ("JOB_FAILED", "disk full")
    assert BulkReadJob.from_details({"id": "1", "state": "FAILURE"}).failure_code == "JOB_FAILED"


def test_the_job_is_frozen():
    with pytest.raises(AttributeError):
        BulkReadJob("1").state = "COMPLETED"  # type: ignore[misc]


def test_an_unknown_state_is_kept_and_not_terminal():
    job = BulkReadJob.from_details({"id": "1", "state": "PAUSED"})
    assert (job.state, job.is_terminal) == ("PAUSED", False)


def test_from_result_is_the_inverse_of_result(zoho_conn):
    zoho_conn.set_faults(job_seconds=0)
    job = states_until_done(zoho_conn, new_job())["COMPLETED"]
    assert BulkReadJob.from_result(job.result()) == job


@pytest.mark.parametrize("status", list(WaitStatus))
def test_events_are_json_and_round_trip(zoho_conn, status):
    zoho_conn.set_faults(job_seconds=0)
    job = states_until_done(zoho_conn, new_job())["COMPLETED"]
    if status == WaitStatus.COMPLETED:
        outcome = WaitOutcome.finished(job, 12.5)
    elif status == WaitStatus.FAILED:
        outcome = WaitOutcome.finished(
            BulkReadJob(job.job_id, "FAILURE", failure_code="INTERNAL_SERVER_ERROR", failure_message="boom"), 3.0)
    else:
        outcome = WaitOutcome(status, BulkReadJob(job.job_id, "IN PROGRESS"), "why", status.upper(), 61.0)
    event = json.loads(json.dumps(outcome.to_event()))
    assert tuple(event) == EVENT_KEYS and event["status"] == status.value
    assert WaitOutcome.from_event(event) == outcome
    assert (event["result"] is not None) is (status == WaitStatus.COMPLETED)


def test_a_completed_event_gives_the_jobs_result(zoho_conn):
    zoho_conn.set_faults(job_seconds=0)
    job = states_until_done(zoho_conn, new_job())["COMPLETED"]
    event = WaitOutcome.finished(job, 1.0).to_event()
    assert (event["state"], event["message"], event["code"], event["waited_seconds"]) == ("COMPLETED", "done", "", 1.0)
    assert WaitOutcome.from_event(event).job.result() == job.result() == event["result"]


@pytest.mark.parametrize(
    "event",
    [
        {"status": "failed", "job_id": "1", "code": "INTERNAL_SERVER_ERROR", "message": "boom"},
        {"status": "timeout", "job_id": "1", "state": "QUEUED", "waited_seconds": 61, "message": ""},
        {"status": "error", "job_id": "1", "code": "RESOURCE_NOT_FOUND", "message": "unknown job"},
        {"status": "something new", "job_id": "1", "message": "?"},
    ],
)
def test_events_of_any_shape_decode(event):
    """Events of earlier releases (and partial ones) decode: a deferred task resumed after an upgrade."""
    outcome = WaitOutcome.from_event(event)
    assert outcome.job.job_id == "1" and outcome.message == event["message"]
    if event["status"] == "failed":
        assert outcome.job.failed and outcome.job.failure_code == "INTERNAL_SERVER_ERROR"
    if event["status"] == "something new":
        assert outcome.status == WaitStatus.ERROR


def test_finished_refuses_a_running_job():
    with pytest.raises(ValueError, match="has not finished"):
        WaitOutcome.finished(BulkReadJob("1", "QUEUED"))
