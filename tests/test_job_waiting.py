"""The one polling policy and the one defer/raise policy (zoho_crm.job_waiting) every waiting task shares.

The decisions are fed real answers: job details read from the simulator, and the errors the hook raises for Zoho's
real error answers (built by ``error_from_response``, as the hook does). Time is a clock the test moves, so the
deadline decisions are exact without sleeping.
"""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from zoho_crm.api.errors import ZohoError, error_from_response
from zoho_crm.api.query import build_bulk_read_body
from zoho_crm.hooks.job import BulkReadJob, WaitOutcome, WaitStatus
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.job_waiting import (
    BACKOFF_FACTOR,
    DEFERRAL_TIMEOUT_MARGIN_SECONDS,
    THROTTLED_POLL_SECONDS,
    JobWatch,
    PollingPolicy,
    defer_until_job_done,
    job_result_from_event,
    raise_for_outcome,
    read_job,
    task_error,
    wait_in_process,
)
from zoho_crm.operators.bulk_read import ZohoBulkReadOperator
from zoho_crm.triggers.bulk_read_job import ZohoBulkReadJobTrigger

TRANSIENT = error_from_response(500, {"code": "INTERNAL_ERROR", "message": "Internal error", "status": "error"})
THROTTLE = error_from_response(400, {"error": "Access Denied", "error_description": "too many requests",
                                     "status": "failure"})
UNKNOWN_JOB = error_from_response(404, {"code": "RESOURCE_NOT_FOUND", "message": "no such job", "status": "error"})


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def watch(policy: PollingPolicy, clock: Clock, job_id: str = "1") -> JobWatch:
    return JobWatch(job_id, policy, clock=clock)


def test_pauses_grow_by_half_up_to_the_cap():
    policy = PollingPolicy(poll_interval=2, max_poll_interval=10, timeout=100)
    assert [policy.pause(n) for n in range(1, 7)] == [2, 3, 4.5, 6.75, 10, 10]
    assert BACKOFF_FACTOR == 1.5
    assert policy.pause(10**6) == 10, "no overflow after a long wait"


def test_a_cap_below_the_first_pause_is_a_constant_pause():
    policy = PollingPolicy(poll_interval=5, max_poll_interval=1, timeout=60)
    assert policy.max_poll_interval == 5 and [policy.pause(n) for n in (1, 2, 9)] == [5, 5, 5]


def test_the_token_throttle_pauses_a_minute():
    policy = PollingPolicy(poll_interval=2, max_poll_interval=10, timeout=600)
    assert policy.pause(1, throttled=True) == THROTTLED_POLL_SECONDS == 60
    assert PollingPolicy(90, 120, 600).pause(1, throttled=True) == 90, "never shorter than the normal pause"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"poll_interval": 0}, "poll_interval must be more than 0 seconds"),
        ({"poll_interval": -1}, "poll_interval must be more than 0 seconds"),
        ({"timeout": -5}, "timeout must be 0 seconds or more"),
        ({"max_poll_interval": "60"}, "max_poll_interval must be a number of seconds, got '60'"),
        ({"poll_interval": float("nan")}, "poll_interval must be a number of seconds"),
        ({"timeout": True}, "timeout must be a number of seconds"),
    ],
)
def test_bad_values_are_refused_saying_what_to_give(kwargs, says):
    with pytest.raises(ValueError, match=says):
        PollingPolicy(**kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ZohoBulkReadOperator(task_id="t", module="Leads", poll_interval=0),
        lambda: ZohoBulkReadJobTrigger("1", poll_interval=0),
    ],
)
def test_tasks_and_triggers_refuse_bad_values_when_built(make):
    with pytest.raises(ValueError, match="poll_interval must be more than 0"):
        make()


def test_polls_within_follows_the_pauses():
    """A rescheduled sensor resumes the pace from the time waited: the poll count matches the pauses' sums."""
    policy = PollingPolicy(poll_interval=2, max_poll_interval=10, timeout=3600)
    starts, t = [], 0.0
    for n in range(1, 12):
        starts.append(t)
        t += policy.pause(n)
    for n, start in enumerate(starts, 1):
        assert policy.polls_within(start) == n
        assert policy.polls_within(start + 0.01) == n
    assert policy.polls_within(0) == 1
    assert policy.polls_within(6 * 3600) == 11 + int((6 * 3600 - starts[-1]) // 10)


def test_a_running_job_is_polled_again_and_a_finished_one_ends_the_wait(zoho_conn):
    zoho_conn.set_faults(job_seconds=0.6)
    hook = ZohoCRMHook()
    job_id = hook.create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
    clock = Clock()
    waiting = watch(PollingPolicy(0.1, 1, 60), clock, job_id)
    running = read_job(hook, job_id)
    assert isinstance(running, BulkReadJob) and not running.is_terminal
    assert waiting.after(running) == 0.1 and waiting.last == running
    zoho_conn.wait_for(lambda: zoho_conn.jobs()[-1]["state"] == "COMPLETED")
    clock.now += 7
    outcome = waiting.after(read_job(hook, job_id))
    assert isinstance(outcome, WaitOutcome) and outcome.status == WaitStatus.COMPLETED
    assert outcome.waited_seconds == 7 and raise_for_outcome(outcome)["count"] == 300


def test_an_error_retrying_cannot_help_ends_the_wait_at_once(zoho_conn):
    answer = read_job(ZohoCRMHook(retry_attempts=1), "5725767000009999999")
    assert isinstance(answer, ZohoError) and answer.code == "RESOURCE_NOT_FOUND"
    outcome = watch(PollingPolicy(1, 1, 60), Clock()).after(answer)
    assert (outcome.status, outcome.code, outcome.cause) == (WaitStatus.ERROR, "RESOURCE_NOT_FOUND", answer)
    with pytest.raises(AirflowFailException, match="Waiting for Zoho bulk read job 1 failed: .*RESOURCE_NOT_FOUND") as err:
        raise_for_outcome(outcome)
    assert err.value.__cause__ is answer, "the worker's failure keeps Zoho's error as its cause"


def test_transient_errors_and_the_throttle_are_polled_again_until_the_deadline():
    clock = Clock()
    waiting = watch(PollingPolicy(poll_interval=2, max_poll_interval=10, timeout=100), clock)
    assert waiting.after(TRANSIENT) == 2
    clock.now += 2
    assert waiting.after(BulkReadJob("1", "QUEUED")) == 3
    clock.now += 3
    assert waiting.after(THROTTLE) == 60, "Access Denied: a minute, as Zoho's window needs"
    clock.now += 60
    assert waiting.after(THROTTLE) == 100 - 65, "never past the deadline"
    clock.now += 35
    outcome = waiting.after(TRANSIENT)
    assert (outcome.status, outcome.code, outcome.job.state) == (WaitStatus.TIMEOUT, "TIMEOUT", "QUEUED")
    assert outcome.message == (f"Job 1 not finished after waiting 100s; last state seen: QUEUED; "
                               f"last problem: {TRANSIENT}")
    assert outcome.waited_seconds == 100


def test_a_finished_job_wins_over_a_passed_deadline():
    clock = Clock()
    waiting = watch(PollingPolicy(1, 1, 10), clock)
    clock.now += 50
    assert waiting.after(BulkReadJob("1", "FAILURE", failure_code="X", failure_message="y")).status == WaitStatus.FAILED


@pytest.mark.parametrize(
    ("outcome", "says"),
    [
        (WaitOutcome(WaitStatus.FAILED, BulkReadJob("7", "FAILURE", failure_code="INTERNAL_SERVER_ERROR",
                                                     failure_message="boom"), "boom", "INTERNAL_SERVER_ERROR"),
         "Zoho bulk read job 7 ended in FAILURE: INTERNAL_SERVER_ERROR: boom. Run the export again; if it keeps "
         "failing, narrow the query."),
        (WaitOutcome(WaitStatus.TIMEOUT, BulkReadJob("7", "QUEUED"), "More.", "TIMEOUT", 61),
         "Zoho bulk read job 7 did not finish: waited 61s, last state seen QUEUED. More. Raise timeout or check "
         "the job in Zoho."),
        (WaitOutcome(WaitStatus.ERROR, BulkReadJob("7"), "unknown job", "RESOURCE_NOT_FOUND"),
         "Waiting for Zoho bulk read job 7 failed: unknown job"),
    ],
)
def test_one_message_per_end_from_a_job_or_from_its_event(outcome, says):
    """A failure seen in the worker and the same failure seen by the trigger fail the task alike."""
    for raising in (lambda: raise_for_outcome(outcome), lambda: job_result_from_event(outcome.to_event())):
        with pytest.raises(AirflowFailException) as err:
            raising()
        assert str(err.value) == says


def test_task_error_fails_fast_only_when_retrying_cannot_help():
    assert isinstance(task_error(UNKNOWN_JOB), AirflowFailException)
    assert task_error(TRANSIENT) is TRANSIENT and task_error(THROTTLE) is THROTTLE


def test_wait_in_process_is_the_same_watch(zoho_conn):
    zoho_conn.set_faults(job_seconds=0.4, fail_jobs=1)
    hook = ZohoCRMHook()
    job_id = hook.create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # the real pause, recorded
        pauses.append(seconds)
        time.sleep(seconds)

    with pytest.raises(AirflowFailException, match=f"job {job_id} ended in FAILURE: INTERNAL_SERVER_ERROR"):
        wait_in_process(hook, job_id, PollingPolicy(0.05, 0.1, 30), sleep=pause)
    assert pauses[:3] == pytest.approx([0.05, 0.075, 0.1]) and set(pauses[2:]) == {0.1}


def test_defer_until_job_done_hands_the_policy_to_the_trigger():
    task = ZohoBulkReadOperator(task_id="t", module="Leads")
    with pytest.raises(TaskDeferred) as deferred:
        defer_until_job_done(task, "123", zoho_conn_id="conn", policy=PollingPolicy(2, 30, 600), kwargs={"a": 1})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ZohoBulkReadJobTrigger)
    assert (trigger.job_id, trigger.zoho_conn_id, trigger.poll_interval, trigger.max_poll_interval) == (
        "123", "conn", 2, 30)
    assert trigger.policy.timeout == pytest.approx(600, abs=1)
    assert deferred.value.kwargs == {"a": 1} and deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() == 600 + DEFERRAL_TIMEOUT_MARGIN_SECONDS


@pytest.mark.parametrize("job_id", ["../1", "None", ""])
def test_a_job_id_that_is_not_digits_is_not_deferred(job_id):
    with pytest.raises(AirflowFailException, match="job_id of task t is not a Zoho bulk read job id"):
        defer_until_job_done(ZohoBulkReadOperator(task_id="t", module="Leads"), job_id, zoho_conn_id="c",
                             policy=PollingPolicy())
