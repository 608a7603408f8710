"""ZohoBulkReadJobTrigger driven directly with asyncio against the simulator."""

from __future__ import annotations

import asyncio
import time

from tests.hooks.bulk_read_jobs import completed_leads_result, new_job
from tests.hooks.zoho_conn import assert_no_secret
from tests.simulator_fixtures import start_simulator
from zoho_crm.airflow_compat import MIN_DEFERRAL_SECONDS
from zoho_crm.triggers.bulk_read_job import ZohoBulkReadJobTrigger

EVENT_KEYS = {"status", "job_id", "state", "result", "message", "code", "waited_seconds"}


def run_trigger(trigger: ZohoBulkReadJobTrigger) -> tuple[list[dict], float]:
    """All events the trigger yields (must be exactly one) and the longest event-loop stall seen meanwhile."""

    async def main() -> tuple[list[dict], float]:
        stalls = [0.0]
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                stalls[0] = max(stalls[0], now - last)
                last = now

        tick = asyncio.create_task(ticker())
        events = [event.payload async for event in trigger.run()]
        done.set()
        await tick
        return events, stalls[0]

    return asyncio.run(main())


def test_serialize_round_trip():
    trigger = ZohoBulkReadJobTrigger("123", "conn", 2, 30, deadline=1000.0, started_at=900.0)
    path, kwargs = trigger.serialize()
    assert path == "zoho_crm.triggers.bulk_read_job.ZohoBulkReadJobTrigger"
    assert ZohoBulkReadJobTrigger(**kwargs).serialize() == (path, kwargs)
    assert kwargs == {
        "job_id": "123",
        "zoho_conn_id": "conn",
        "poll_interval": 2.0,
        "max_poll_interval": 30.0,
        "deadline": 1000.0,
        "started_at": 900.0,
        "resume_after": MIN_DEFERRAL_SECONDS,
    }


def test_first_poll_waits_the_minimum_deferral(zoho_conn):
    """The task checked the job before deferring; the trigger never resumes it sooner (apache/airflow#72716)."""
    job_id = new_job(fields=["Last_Name"])
    started = time.time()
    trigger = ZohoBulkReadJobTrigger(job_id, poll_interval=0.2, deadline=started + 60, started_at=started)
    [event], _ = run_trigger(trigger)
    assert event["status"] == "completed"
    first_poll = min(r["wall"] for r in zoho_conn.requests("details"))
    assert first_poll >= started + MIN_DEFERRAL_SECONDS


def test_completed(zoho_conn):
    job_id = new_job(fields=["Last_Name"])
    events, stall = run_trigger(
        ZohoBulkReadJobTrigger(
            job_id, resume_after=0, poll_interval=0.2, max_poll_interval=1, deadline=time.time() + 60
        )
    )
    assert len(events) == 1 and set(events[0]) == EVENT_KEYS
    event = events[0]
    assert (event["status"], event["state"], event["job_id"]) == ("completed", "COMPLETED", job_id)
    assert event["result"] == completed_leads_result(job_id)
    assert stall < 2.0, f"the event loop stalled for {stall:.2f}s"
    assert_no_secret(repr(events), zoho_conn)


def test_poll_interval_grows_to_its_cap(zoho_conn):
    zoho_conn.set_faults(job_seconds=4.0)
    job_id = new_job()
    run_trigger(
        ZohoBulkReadJobTrigger(
            job_id, resume_after=0, poll_interval=0.2, max_poll_interval=0.6, deadline=time.time() + 60
        )
    )
    times = [r["t"] for r in zoho_conn.requests("details")]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) >= 4
    assert gaps[1] > gaps[0] * 1.3, "the interval grows"
    assert max(gaps) < 0.6 + 0.5, "and is capped"


def test_failed_job(zoho_conn):
    zoho_conn.set_faults(fail_jobs=1, job_seconds=0.5)
    job_id = new_job()
    [event], _ = run_trigger(
        ZohoBulkReadJobTrigger(job_id, resume_after=0, poll_interval=0.2, deadline=time.time() + 60)
    )
    assert (event["status"], event["state"]) == ("failed", "FAILURE")
    assert event["code"] == "INTERNAL_SERVER_ERROR" and event["message"]


def test_timeout_reports_wait_and_last_state(zoho_conn):
    zoho_conn.set_faults(stuck_jobs=True, job_seconds=0.2)
    job_id = new_job()
    [event], _ = run_trigger(
        ZohoBulkReadJobTrigger(job_id, resume_after=0, poll_interval=0.3, deadline=time.time() + 1.5)
    )
    assert (event["status"], event["code"]) == ("timeout", "TIMEOUT")
    assert event["state"] == "IN PROGRESS" and "last state seen: IN PROGRESS" in event["message"]
    assert 1.2 <= event["waited_seconds"] < 10


def test_unknown_job_ends_at_once(zoho_conn):
    [event], _ = run_trigger(
        ZohoBulkReadJobTrigger(
            "5725767000009999999", resume_after=0, poll_interval=0.2, deadline=time.time() + 60
        )
    )
    assert (event["status"], event["code"]) == ("error", "RESOURCE_NOT_FOUND")
    assert len(zoho_conn.requests("details")) == 1


def test_transient_errors_are_retried_until_the_job_completes(zoho_conn):
    job_id = new_job()
    zoho_conn.set_faults(error_rate=1.0)
    trigger = ZohoBulkReadJobTrigger(
        job_id, resume_after=0, poll_interval=0.2, max_poll_interval=0.3, deadline=time.time() + 60
    )

    async def heal_later() -> list[dict]:
        async def heal() -> None:
            while sum(r["status"] == 500 for r in zoho_conn.requests("details")) < 3:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(zoho_conn.set_faults, error_rate=0.0)

        healer = asyncio.create_task(heal())
        events = [e.payload async for e in trigger.run()]
        await healer
        return events

    [event] = asyncio.run(heal_later())
    assert event["status"] == "completed"
    assert sum(r["status"] == 500 for r in zoho_conn.requests("details")) >= 3


def test_connection_error_until_the_deadline(monkeypatch, tmp_path):
    with start_simulator() as sim:
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache"))
        job_id = new_job()
    [event], stall = run_trigger(
        ZohoBulkReadJobTrigger(job_id, resume_after=0, poll_interval=0.2, deadline=time.time() + 1.5)
    )
    assert event["status"] == "timeout"
    assert "CONNECTION" in event["message"] and "last state seen: None" in event["message"]
    assert stall < 2.0


def test_token_throttle_is_waited_out_like_a_worker_retry_not_failed_at_once(sim, monkeypatch, tmp_path):
    """Access Denied (Zoho's token throttle) makes a worker task retry later; the trigger keeps waiting likewise,
    and the shared cache's failure marker keeps its polls from asking for more tokens."""
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "setup-cache"))
    job_id = new_job()
    sim.set_faults(token_limit=1)  # the token just issued was the last one of Zoho's 10-minute allowance
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "trigger-cache"))
    [event], _ = run_trigger(
        ZohoBulkReadJobTrigger(job_id, resume_after=0, poll_interval=0.2, max_poll_interval=0.3,
                               deadline=time.time() + 2)
    )
    assert (event["status"], event["code"]) == ("timeout", "TIMEOUT"), event
    assert "Access Denied" in event["message"] and event["waited_seconds"] >= 1.8
    assert [r["status"] for r in sim.requests("token")] == [200, 400], "one refused token request, not one a poll"
    assert_no_secret(event["message"], sim)
