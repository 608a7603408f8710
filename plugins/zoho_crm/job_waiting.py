"""Waiting for a Bulk Read job: the one polling policy and the one defer/raise policy of every task that waits.

Three loops wait for a job: :class:`~zoho_crm.triggers.bulk_read_job.ZohoBulkReadJobTrigger` (async, in the
triggerer), :func:`wait_in_process` (a non-deferrable operator) and
:class:`~zoho_crm.sensors.bulk_read_job.ZohoBulkReadJobSensor` (a poke per look). Each feeds what it read to a
:class:`JobWatch`, which alone decides: the job finished, the wait must stop (an error retrying cannot help, or the
deadline passed), or poll again after how long (:class:`PollingPolicy`: x1.5 growth up to a cap, 60 s while Zoho
throttles tokens). Every way a wait ends, in the triggerer or in a worker, fails a task through
:func:`raise_for_outcome`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from zoho_crm.api.errors import ZohoError, valid_job_id
from zoho_crm.hooks.job import BulkReadJob, WaitOutcome, WaitStatus
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

BACKOFF_FACTOR = 1.5
"""Each pause between two polls is this much longer than the one before, up to the policy's cap."""

THROTTLED_POLL_SECONDS = 60.0
"""The shortest pause while Zoho refuses new access tokens (``Access Denied`` lasts up to 10 minutes)."""

DEFAULT_TIMEOUT_SECONDS = 6 * 3600
"""How long a task waits for one job unless told otherwise."""

DEFERRAL_TIMEOUT_MARGIN_SECONDS = 120
"""A deferred task's own timeout exceeds its trigger's deadline by this much: the trigger reports the timeout."""

log = logging.getLogger(__name__)


def fail_fast(message: str) -> AirflowFailException:
    """An exception that fails the task at once, without burning Airflow retries.

    :param message: what went wrong and what to do.
    """
    return AirflowFailException(message)


def task_error(err: ZohoError) -> Exception:
    """What a task raises for ``err``: fail at once when retrying cannot help, else the error (Airflow retries).

    :param err: the Zoho error the task met.
    """
    return fail_fast(str(err)) if err.fails_fast else err


@dataclass(frozen=True)
class PollingPolicy:
    """How often to look at a job, and for how long.

    :param poll_interval: the first pause between two polls, in seconds (> 0).
    :param max_poll_interval: the longest pause; pauses grow x1.5 up to it (a value below ``poll_interval`` is
        read as ``poll_interval``: a constant pause).
    :param timeout: how long the whole wait may last, in seconds.
    """

    poll_interval: float = 5.0
    max_poll_interval: float = 60.0
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        for name in ("poll_interval", "max_poll_interval", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number of seconds, got {value!r}: give e.g. 5, 60 or 21600.")
        if self.poll_interval <= 0:
            raise ValueError(f"poll_interval must be more than 0 seconds, got {self.poll_interval!r}: give e.g. 5.")
        if self.timeout < 0:
            raise ValueError(f"timeout must be 0 seconds or more, got {self.timeout!r}: give e.g. 21600 (6 hours).")
        object.__setattr__(self, "poll_interval", float(self.poll_interval))
        object.__setattr__(self, "max_poll_interval", float(max(self.max_poll_interval, self.poll_interval)))
        object.__setattr__(self, "timeout", float(self.timeout))

    def pause(self, polls: int, *, throttled: bool = False) -> float:
        """The pause after the ``polls``-th poll (1 for the first), before any deadline is applied.

        :param polls: how many polls were made so far.
        :param throttled: whether the last poll met Zoho's token throttle (``Access Denied``).
        """
        steps_to_cap = math.ceil(math.log(self.max_poll_interval / self.poll_interval, BACKOFF_FACTOR))
        growth = BACKOFF_FACTOR ** min(max(polls - 1, 0), steps_to_cap)
        pause = min(self.poll_interval * growth, self.max_poll_interval)
        return max(pause, THROTTLED_POLL_SECONDS) if throttled else pause

    def polls_within(self, waited: float) -> int:
        """How many polls a wait of ``waited`` seconds has made at this policy's pace (at least 1): a
        ``mode="reschedule"`` sensor starts every poke in a new process and resumes its pace from this.

        :param waited: seconds since the wait began.
        """
        polls, spent = 1, 0.0
        while self.pause(polls) < self.max_poll_interval and spent + self.pause(polls) <= waited:
            spent += self.pause(polls)
            polls += 1
        if self.pause(polls) >= self.max_poll_interval and waited > spent:
            polls += int((waited - spent) // self.max_poll_interval)
        return polls


class JobWaiting:
    """What every task that waits for a job has alike: its hook and its polling policy.

    Mixed into an operator or sensor that sets ``zoho_conn_id``, ``poll_interval``, ``max_poll_interval`` and
    the wait's deadline (``timeout``, or another attribute named by :attr:`wait_timeout`).
    """

    zoho_conn_id: str
    poll_interval: float
    max_poll_interval: float
    timeout: Any
    hook_kwargs: ClassVar[dict[str, Any]] = {}
    """Keyword arguments of the task's :class:`~zoho_crm.hooks.zoho_crm.ZohoCRMHook` besides the connection."""

    @property
    def wait_timeout(self) -> float:
        """How long one wait may last, in seconds (the task's ``timeout``)."""
        return self.timeout

    @cached_property
    def hook(self) -> ZohoCRMHook:
        """The task's hook, one per task instance."""
        return ZohoCRMHook(self.zoho_conn_id, **self.hook_kwargs)

    @property
    def polling(self) -> PollingPolicy:
        """Pace and deadline of the task's waits (and of its trigger when deferred)."""
        return PollingPolicy(self.poll_interval, self.max_poll_interval, self.wait_timeout)


class JobWatch:
    """One wait for one job: :meth:`after` takes each poll's answer and says how the wait ended, or how long to
    pause before the next poll.

    Decisions: a COMPLETED or FAILURE job ends the wait; an error retrying cannot help (unknown job, refused
    credentials or scopes, a malformed answer) ends it with status ``error``; a transient error (429, 5xx,
    connection, timeout) or Zoho's token throttle (``Access Denied``: Airflow would retry it, and the job is not
    lost to a retry that creates a new one) is polled again, the throttle no sooner than 60 s; once the deadline
    passed the wait ends with status ``timeout``, naming the last state seen and the last problem met.

    :param job_id: the job's id.
    :param policy: pace and deadline.
    :param started_at: when the wait began (epoch seconds; a trigger resumed after a triggerer restart keeps it).
    :param polls: polls already made (a rescheduled sensor's estimate, see :meth:`PollingPolicy.polls_within`).
    :param logger: where to say what each poll found (the task's or trigger's log).
    :param clock: the time in epoch seconds.
    """

    def __init__(
        self,
        job_id: str,
        policy: PollingPolicy,
        *,
        started_at: float | None = None,
        polls: int = 0,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.started_at = clock() if started_at is None else float(started_at)
        self.polls = polls
        self.log = logger or log
        self.last = BulkReadJob(str(job_id))
        """The job as last seen (``state`` None until a poll read it)."""
        self.problem = ""
        """The last error a poll met and the wait outlived."""

    @property
    def waited(self) -> float:
        """Seconds since the wait began."""
        return max(0.0, self.clock() - self.started_at)

    @property
    def deadline(self) -> float:
        """When the wait ends at the latest (epoch seconds)."""
        return self.started_at + self.policy.timeout

    def after(self, answer: BulkReadJob | ZohoError) -> WaitOutcome | float:
        """Record one poll's answer; return how the wait ended, or the seconds to pause before the next poll.

        :param answer: the job read from Zoho, or the error the read raised.
        """
        self.polls += 1
        throttled = False
        if isinstance(answer, ZohoError):
            if answer.fails_fast:
                return self.error(str(answer), answer.code, cause=answer)
            # Retryable (transient) or not retryable yet not fatal: Zoho's token throttle.
            throttled = not answer.retryable
            self.problem = str(answer)
            self.log.warning("Could not read Zoho bulk read job %s this time, will poll again: %s",
                             self.last.job_id, answer)
        else:
            self.last = answer
            if answer.is_terminal:
                return WaitOutcome.finished(answer, self.waited)
            self.log.info("Zoho bulk read job %s is %s", answer.job_id, answer.state)
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            return self.timed_out()
        return min(self.policy.pause(self.polls, throttled=throttled), remaining)

    def timed_out(self) -> WaitOutcome:
        """The outcome of a wait whose deadline passed: how long it waited, the last state and problem seen."""
        message = (f"Job {self.last.job_id} not finished after waiting {self.waited:.0f}s; "
                   f"last state seen: {self.last.state}")
        if self.problem:
            message += f"; last problem: {self.problem}"
        return WaitOutcome(WaitStatus.TIMEOUT, self.last, message, "TIMEOUT", self.waited)

    def error(self, message: str, code: str, *, cause: BaseException | None = None) -> WaitOutcome:
        """The outcome of a wait that cannot go on.

        :param message: what went wrong (never a secret).
        :param code: Zoho's error code, or one of ours (``TRIGGER_ERROR``).
        :param cause: the exception behind it, chained to the task's failure when raised in a worker.
        """
        return WaitOutcome(WaitStatus.ERROR, self.last, message, code, self.waited, cause=cause)


def read_job(hook: ZohoCRMHook, job_id: str) -> BulkReadJob | ZohoError:
    """One look at the job: what Zoho says of it, or the error the look met (for :meth:`JobWatch.after`).

    :param hook: the task's hook.
    :param job_id: the job's id.
    """
    try:
        return BulkReadJob.from_details(hook.get_bulk_read_job(job_id))
    except ZohoError as err:
        return err


async def aread_job(hook: ZohoCRMHook, job_id: str) -> BulkReadJob | ZohoError:
    """:func:`read_job` without blocking the event loop (the triggerer's).

    :param hook: the trigger's hook.
    :param job_id: the job's id.
    """
    try:
        return BulkReadJob.from_details(await hook.aget_bulk_read_job(job_id))
    except ZohoError as err:
        return err


def raise_for_outcome(outcome: WaitOutcome) -> dict[str, Any]:
    """The job result of a completed wait; for any other end, fail the task at once saying why and what to do.

    :param outcome: how the wait ended (from a :class:`JobWatch`, or a trigger's event).
    """
    job = outcome.job
    if outcome.status == WaitStatus.COMPLETED:
        return job.result()
    if outcome.status == WaitStatus.FAILED:
        error = fail_fast(
            f"Zoho bulk read job {job.job_id} ended in FAILURE: {job.failure_code}: {job.failure_message}. "
            "Run the export again; if it keeps failing, narrow the query."
        )
    elif outcome.status == WaitStatus.TIMEOUT:
        error = fail_fast(
            f"Zoho bulk read job {job.job_id} did not finish: waited {outcome.waited_seconds:.0f}s, "
            f"last state seen {job.state}. {outcome.message} Raise timeout or check the job in Zoho."
        )
    else:
        error = fail_fast(f"Waiting for Zoho bulk read job {job.job_id} failed: {outcome.message}")
    raise error from outcome.cause


def job_result_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """The job result of a ZohoBulkReadJobTrigger event; fail the task for failed/timeout/error events.

    :param event: the event ``execute_complete`` received.
    """
    return raise_for_outcome(WaitOutcome.from_event(event))


def wait_in_process(
    hook: ZohoCRMHook, job_id: str, policy: PollingPolicy, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Poll a job in the worker until it finishes (non-deferrable waiting); the trigger's outcomes, raised.

    :param hook: the task's hook.
    :param job_id: the job's id.
    :param policy: pace and deadline.
    :param sleep: how to pause between polls.
    """
    watch = JobWatch(job_id, policy, logger=hook.log)
    while True:
        step = watch.after(read_job(hook, job_id))
        if isinstance(step, WaitOutcome):
            return raise_for_outcome(step)
        sleep(step)


def defer_until_job_done(
    task: BaseOperator,
    job_id: str,
    *,
    zoho_conn_id: str,
    policy: PollingPolicy,
    kwargs: dict[str, Any] | None = None,
) -> NoReturn:
    """Defer ``task`` on a ZohoBulkReadJobTrigger for ``job_id``; it resumes in ``execute_complete(event, **kwargs)``.

    A job id that is not digits fails the task at once (it would go into Zoho URLs and staging paths).

    :param task: the deferring task.
    :param job_id: the job's id.
    :param zoho_conn_id: the connection the trigger polls with.
    :param policy: pace and deadline of the trigger's polling.
    :param kwargs: passed on to ``execute_complete``.
    """
    # Imported here: the trigger's module imports this one for the polling policy.
    from zoho_crm.triggers.bulk_read_job import ZohoBulkReadJobTrigger

    try:
        job_id = valid_job_id(job_id, f"job_id of task {task.task_id}")
    except ZohoError as err:
        raise task_error(err) from err
    task.defer(
        trigger=ZohoBulkReadJobTrigger(
            job_id=job_id,
            zoho_conn_id=zoho_conn_id,
            poll_interval=policy.poll_interval,
            max_poll_interval=policy.max_poll_interval,
            deadline=time.time() + policy.timeout,
        ),
        method_name="execute_complete",
        kwargs=kwargs,
        timeout=timedelta(seconds=policy.timeout + DEFERRAL_TIMEOUT_MARGIN_SECONDS),
    )
