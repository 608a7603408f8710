"""ZohoBulkReadJobSensor in poke, reschedule and deferrable modes against the simulator."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred

from zoho_crm.airflow_compat import RESCHEDULE_MIN_POKE_SECONDS
from zoho_crm.api.query import build_bulk_read_body
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.job_waiting import THROTTLED_POLL_SECONDS
from zoho_crm.sensors.bulk_read_job import ZohoBulkReadJobSensor
from zoho_crm.triggers.bulk_read_job import ZohoBulkReadJobTrigger


def new_job(module: str = "Leads") -> str:
    return ZohoCRMHook().create_bulk_read_job(build_bulk_read_body(module))["id"]


def sensor(job_id: str, **kwargs) -> ZohoBulkReadJobSensor:
    return ZohoBulkReadJobSensor(task_id="wait", job_id=job_id, **{"poll_interval": 0.1, "deferrable": False,
                                                                 **kwargs})


def test_poke_mode_returns_the_result(zoho_conn):
    zoho_conn.set_faults(job_seconds=0.5)
    job_id = new_job("Events")
    result = sensor(job_id, max_poll_interval=0.2).execute({})
    assert result["job_id"] == job_id and result["module"] == "Events"
    assert set(result) == {"job_id", "module", "file_type", "page", "count", "per_page", "more_records",
                           "next_page_token", "download_url"}
    assert len(zoho_conn.requests("details")) >= 2


def test_poke_mode_failure_names_zoho_code(zoho_conn):
    zoho_conn.set_faults(job_seconds=0.3, fail_jobs=1)
    with pytest.raises(AirflowFailException, match="FAILURE: INTERNAL_SERVER_ERROR: Internal server error"):
        sensor(new_job()).execute({})


def test_unknown_job_fails_at_once(zoho_conn):
    with pytest.raises(AirflowFailException, match="RESOURCE_NOT_FOUND"):
        sensor("5725767000009999999").execute({})
    assert len(zoho_conn.requests("details")) == 1


def test_poke_mode_timeout_says_how_long_and_last_state(zoho_conn):
    zoho_conn.set_faults(stuck_jobs=True, job_seconds=0.1)
    job_id = new_job()
    with pytest.raises(AirflowSensorTimeout, match=r"within 1s; last state seen: IN PROGRESS"):
        sensor(job_id, timeout=1, max_poll_interval=0.2).execute({})


def test_transient_errors_keep_poking(zoho_conn):
    job_id = new_job()
    zoho_conn.set_faults(error_rate=1.0)
    assert sensor(job_id).poke({}).is_done is False
    assert [r["status"] for r in zoho_conn.requests("details")] == [500], "one attempt per poke"
    zoho_conn.set_faults(error_rate=0.0)
    assert sensor(job_id, max_poll_interval=0.2).execute({})["job_id"] == job_id


def test_reschedule_mode_pokes_without_holding(zoho_conn):
    zoho_conn.set_faults(stuck_jobs=True)
    with pytest.warns(UserWarning, match=r"pokes every 0.1s.*apache/airflow#71172.*poll_interval to 15 or more"):
        rescheduling = sensor(new_job(), mode="reschedule")
    assert rescheduling.reschedule
    assert rescheduling.poke({}).is_done is False


@pytest.mark.parametrize("kwargs", [{"mode": "reschedule", "poll_interval": RESCHEDULE_MIN_POKE_SECONDS},
                                    {"mode": "reschedule", "deferrable": True}, {"mode": "poke"}])
def test_no_warning_at_a_safe_reschedule_interval(recwarn, kwargs):
    sensor("1", **kwargs)
    assert not [w for w in recwarn if "71172" in str(w.message)]


@pytest.mark.parametrize("name", ["exponential_backoff", "max_wait"])
def test_airflows_own_backoff_is_refused_naming_the_arguments_to_use(name):
    with pytest.raises(ValueError, match=f"does not take {name}.*set those instead"):
        sensor("1", **{name: True if name == "exponential_backoff" else 30})


def test_pokes_pause_as_the_shared_policy_says_with_one_hook(zoho_conn):
    zoho_conn.set_faults(stuck_jobs=True)
    waiting = sensor(new_job(), poll_interval=0.2, max_poll_interval=0.4, timeout=60)
    hook = waiting.hook
    pauses = []
    for _ in range(4):
        assert waiting.poke({}).is_done is False
        pauses.append(waiting.poke_interval)
    assert pauses == pytest.approx([0.2, 0.3, 0.4, 0.4]), "x1.5 up to max_poll_interval, like the trigger"
    assert waiting.hook is hook, "one hook per task instance, not one per poke"
    zoho_conn.set_faults(token_limit=0)
    zoho_conn.revoke_tokens()
    assert waiting.poke({}).is_done is False
    assert waiting.poke_interval == pytest.approx(THROTTLED_POLL_SECONDS, abs=1), "Access Denied: a minute"


def test_deferrable_mode_defers_to_the_trigger_and_resumes(zoho_conn):
    zoho_conn.set_faults(job_seconds=0.5)
    job_id = new_job()
    waiting = sensor(job_id, deferrable=True, poll_interval=0.2, max_poll_interval=1, timeout=300)
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ZohoBulkReadJobTrigger)
    assert (trigger.job_id, trigger.poll_interval, trigger.max_poll_interval) == (job_id, 0.2, 1.0)
    assert len(zoho_conn.requests("details")) == 1, "the worker checks the job once, then defers"

    async def only_event() -> dict:
        return [event.payload async for event in trigger.run()][0]

    assert waiting.execute_complete({}, asyncio.run(only_event()))["count"] == 300


def test_deferrable_mode_returns_at_once_when_the_job_is_already_done(zoho_conn):
    zoho_conn.set_faults(job_seconds=0)
    job_id = new_job()
    zoho_conn.wait_for(lambda: zoho_conn.jobs() and zoho_conn.jobs()[-1].get("state") == "COMPLETED")
    result = sensor(job_id, deferrable=True, poll_interval=0.2, timeout=300).execute({})
    assert result["job_id"] == job_id and result["count"] == 300


def test_deferrable_default_follows_airflow_config():
    from airflow.sdk import conf

    assert ZohoBulkReadJobSensor(task_id="x", job_id="1").deferrable is conf.getboolean(
        "operators", "default_deferrable", fallback=False)


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("job_id", ["../5725767000009999999", "None", ""])
def test_a_job_id_that_is_not_digits_fails_before_any_request(zoho_conn, job_id, deferrable):
    with pytest.raises(AirflowFailException, match=r"job_id of task wait is not a Zoho bulk read job id \(digits"):
        sensor(job_id, deferrable=deferrable).execute({})
    assert zoho_conn.requests() == []


def test_token_throttle_is_poked_again_like_the_trigger_waits(sim, monkeypatch, tmp_path):
    """Access Denied while poking: the sensor pokes again (as the trigger does), it does not fail the task."""
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "setup-cache"))
    job_id = new_job()
    sim.set_faults(token_limit=1)
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "sensor-cache"))
    with pytest.raises(AirflowSensorTimeout, match="last state seen: None"):
        sensor(job_id, timeout=1, max_poll_interval=0.2).execute({})
    assert [r["status"] for r in sim.requests("token")] == [200, 400]
