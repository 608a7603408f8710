"""ZohoBulkReadOperator: input checks before any call, job creation, error handling, waiting (in-process, deferred)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from tests.hooks.zoho_conn import assert_no_secret
from zoho_crm.api.errors import ZohoTransientError
from zoho_crm.job_waiting import PollingPolicy, wait_in_process
from zoho_crm.operators.bulk_read import ZohoBulkReadOperator
from zoho_crm.triggers.bulk_read_job import ZohoBulkReadJobTrigger


@pytest.fixture
def sim(zoho_conn):
    """The reset session simulator, ``zoho_crm_default`` pointing at it."""
    return zoho_conn


def operator(**kwargs) -> ZohoBulkReadOperator:
    return ZohoBulkReadOperator(task_id="create", **{"module": "Leads", **kwargs})


def test_templated_fields():
    assert {"module", "fields", "criteria", "cvid", "file_type", "page", "page_token"} <= set(
        ZohoBulkReadOperator.template_fields
    )


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"module": "Notes"}, "cannot be exported"),
        ({"module": "Attachments"}, "cannot be exported"),
        ({"module": "emails"}, "cannot be exported"),
        ({"module": "Leads", "file_type": "ics"}, "only for module Events"),
        ({"module": "Events", "file_type": "ics", "fields": ["Subject"]}, "fields are not allowed"),
        ({"criteria": {"field": {"api_name": "A"}, "comparator": "equal", "value": 1, "group": []}}, "mixes"),
        ({"criteria": {"group_operator": "and", "group": []}}, "non-empty list"),
        ({"page": 2, "page_token": "abc"}, "not both"),
        ({"page": 0}, ">= 1"),
    ],
)
def test_bad_inputs_fail_before_any_call(sim, kwargs, says):
    with pytest.raises(AirflowFailException) as caught:
        operator(**kwargs).execute({})
    assert says in str(caught.value) and "before calling Zoho" in str(caught.value)
    assert sim.requests() == [], "no token request, no API call"


def test_page_token_needs_v7(sim, monkeypatch, tmp_path):
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache", api_version="v6"))
    with pytest.raises(AirflowFailException, match="needs api_version v7"):
        operator(page_token="abc").execute({})
    assert sim.requests() == []


def test_creates_the_job_and_returns_no_secret(sim):
    job = operator(module="price_books", fields=["Price_Book_Name"]).execute({})
    assert set(job) == {"job_id", "module", "file_type", "query", "page", "page_token", "state", "created_time"}
    assert (job["module"], job["file_type"], job["page"], job["state"]) == ("Price_Books", "csv", 1, "ADDED")
    assert job["query"]["fields"] == ["Price_Book_Name"]
    assert_no_secret(json.dumps(job), sim)
    assert [(j["id"], j["module"]) for j in sim.jobs()] == [(job["job_id"], "Price_Books")]


def test_zoho_refusal_fails_without_retries(sim):
    sim.set_faults(no_permission_modules=["Leads"])
    with pytest.raises(AirflowFailException, match="NO_PERMISSION"):
        operator().execute({})
    assert len(sim.requests("create")) == 1


def test_transient_failure_is_left_to_airflow_retries(sim):
    sim.set_faults(error_rate=1.0)
    with pytest.raises(ZohoTransientError):
        operator().execute({})
    assert len(sim.requests("create")) == 5, "the hook retried with backoff"


def test_wait_in_process(sim):
    sim.set_faults(job_seconds=0.5)
    result = operator(wait_for_completion=True, deferrable=False, poll_interval=0.1).execute({})
    assert (result["count"], result["more_records"], result["module"]) == (300, False, "Leads")


def test_wait_in_process_failure(sim):
    sim.set_faults(job_seconds=0.3, fail_jobs=1)
    with pytest.raises(AirflowFailException, match="FAILURE: INTERNAL_SERVER_ERROR"):
        operator(wait_for_completion=True, deferrable=False, poll_interval=0.1).execute({})


def test_wait_deferred_then_resumed(sim):
    sim.set_faults(job_seconds=0.5)
    op = operator(wait_for_completion=True, deferrable=True, poll_interval=0.2, timeout=120)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ZohoBulkReadJobTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.deadline == pytest.approx(time.time() + 120, abs=5)

    async def first_event() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    result = op.execute_complete({}, asyncio.run(first_event()))
    assert result["job_id"] == trigger.job_id and result["count"] == 300


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"status": "failed", "job_id": "1", "code": "INTERNAL_SERVER_ERROR", "message": "boom"},
         "FAILURE: INTERNAL_SERVER_ERROR: boom"),
        ({"status": "timeout", "job_id": "1", "state": "QUEUED", "waited_seconds": 61, "message": ""},
         "waited 61s, last state seen QUEUED"),
        ({"status": "error", "job_id": "1", "code": "RESOURCE_NOT_FOUND", "message": "unknown job"}, "unknown job"),
    ],
)
def test_failed_events_fail_the_task(event, says):
    with pytest.raises(AirflowFailException, match=says):
        operator().execute_complete({}, event)


def test_token_throttle_while_waiting_in_process_is_waited_out_like_the_trigger(sim, monkeypatch, tmp_path):
    """Access Denied while polling in the worker: keep waiting (the job is not lost to a task retry that would create
    a new one), polling no faster than the trigger; here the wait times out, naming the throttle."""
    from zoho_crm.hooks.zoho_crm import ZohoCRMHook

    job_id = operator().execute({})["job_id"]
    sim.set_faults(token_limit=1)
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "waiting-cache"))
    with pytest.raises(AirflowFailException, match=r"did not finish: waited 1s.*Access Denied"):
        wait_in_process(ZohoCRMHook(), job_id, PollingPolicy(poll_interval=0.1, max_poll_interval=0.2, timeout=1))
    assert [r["status"] for r in sim.requests("token")] == [200, 400]
