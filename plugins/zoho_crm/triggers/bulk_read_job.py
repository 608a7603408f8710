"""ZohoBulkReadJobTrigger: wait for a Bulk Read job in the triggerer without blocking its event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from zoho_crm.airflow_compat import MIN_DEFERRAL_SECONDS
from zoho_crm.hooks.job import WaitOutcome
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.job_waiting import DEFAULT_TIMEOUT_SECONDS, JobWatch, PollingPolicy, aread_job


class ZohoBulkReadJobTrigger(BaseTrigger):
    """Poll a job's details with aiohttp at the pace of :class:`~zoho_crm.job_waiting.PollingPolicy` (x1.5 from
    ``poll_interval`` up to ``max_poll_interval``); :class:`~zoho_crm.job_waiting.JobWatch` decides every step.

    Yields exactly one event, :meth:`zoho_crm.hooks.job.WaitOutcome.to_event`: ``{"status":
    completed|failed|timeout|error, "job_id", "state", "result", "message", "code", "waited_seconds"}``. Transient
    errors (429, 5xx, connection, timeout) and Zoho's token throttle (``Access Denied``) are polled again until
    ``deadline``; other Zoho errors end the wait at once with status ``error``, and so does anything unexpected.

    :param job_id: the job's id (digits).
    :param zoho_conn_id: the Zoho CRM connection.
    :param poll_interval: the first pause between two polls, in seconds.
    :param max_poll_interval: the longest pause between two polls, in seconds.
    :param deadline: when to stop waiting (epoch seconds); default ``started_at`` + 6 hours.
    :param started_at: when the wait began (epoch seconds); default now. Kept when the triggerer restarts.
    :param resume_after: the first poll comes no sooner than this after ``started_at``
        (``MIN_DEFERRAL_SECONDS`` by default, see :mod:`zoho_crm.airflow_compat`).
    """

    def __init__(
        self,
        job_id: str,
        zoho_conn_id: str = ZohoCRMHook.default_conn_name,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        deadline: float | None = None,
        started_at: float | None = None,
        resume_after: float = MIN_DEFERRAL_SECONDS,
    ) -> None:
        super().__init__()
        self.job_id = str(job_id)
        self.zoho_conn_id = zoho_conn_id
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max(max_poll_interval, poll_interval))
        self.started_at = float(started_at if started_at is not None else time.time())
        self.deadline = float(deadline if deadline is not None else self.started_at + DEFAULT_TIMEOUT_SECONDS)
        self.resume_after = float(resume_after)
        self.policy = PollingPolicy(self.poll_interval, self.max_poll_interval, max(0.0, self.deadline - self.started_at))
        """Pace and deadline of this trigger's polling (a bad interval fails the deferring task, not the wait)."""

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "zoho_conn_id": self.zoho_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "deadline": self.deadline,
                "started_at": self.started_at,
                "resume_after": self.resume_after,
            },
        )

    @cached_property
    def hook(self) -> ZohoCRMHook:
        """One attempt per poll: the polling itself is the retry."""
        return ZohoCRMHook(self.zoho_conn_id, retry_attempts=1)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = JobWatch(self.job_id, self.policy, started_at=self.started_at, logger=self.log)
        try:
            # The task checked the job just before deferring: wait before polling again, and never resume it
            # sooner than resume_after seconds (apache/airflow#72716, see zoho_crm.airflow_compat).
            first_poll = self.started_at + max(self.poll_interval, self.resume_after)
            await asyncio.sleep(max(0.0, first_poll - time.time()))
            while True:
                step = watch.after(await aread_job(self.hook, self.job_id))
                if isinstance(step, WaitOutcome):
                    yield TriggerEvent(step.to_event())
                    return
                await asyncio.sleep(step)
        except Exception as err:  # any other failure still ends the wait with exactly one event
            yield TriggerEvent(watch.error(f"{type(err).__name__}: {err}", "TRIGGER_ERROR").to_event())
