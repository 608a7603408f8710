"""ZohoBulkReadJobTrigger: wait for a Bulk Read job in the triggerer without blocking its event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from zoho_crm.airflow_compat import MIN_DEFERRAL_SECONDS
from zoho_crm.api.errors import ZohoError
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

BACKOFF_FACTOR = 1.5
THROTTLED_POLL_SECONDS = 60.0
"""Poll interval while Zoho refuses new access tokens (Access Denied lasts up to 10 minutes)."""


def job_result(details: dict[str, Any]) -> dict[str, Any]:
    """The downstream view of a COMPLETED job's details (no secrets; next_page_token is not one)."""
    result = details.get("result") or {}
    query = details.get("query") or {}
    return {
        "job_id": str(details.get("id")),
        "module": (query.get("module") or {}).get("api_name"),
        "file_type": details.get("file_type") or "csv",
        "page": result.get("page", query.get("page")),
        "count": result.get("count"),
        "per_page": result.get("per_page"),
        "more_records": bool(result.get("more_records")),
        "next_page_token": result.get("next_page_token"),
        "download_url": result.get("download_url"),
    }


def job_failure(details: dict[str, Any]) -> tuple[str, str]:
    """Zoho's (code, message) of a FAILURE job."""
    error = (details.get("result") or {}).get("error_message") or {}
    if not isinstance(error, dict):
        return "JOB_FAILED", str(error)
    return str(error.get("code") or "JOB_FAILED"), str(error.get("message") or "the job failed")


class ZohoBulkReadJobTrigger(BaseTrigger):
    """Poll a job's details with aiohttp, interval growing x1.5 from ``poll_interval`` up to ``max_poll_interval``.

    Yields exactly one event: ``{"status": completed|failed|timeout|error, "job_id", "state", "result",
    "message", "code", "waited_seconds"}``. Transient errors (429, 5xx, connection, timeout) are retried until
    ``deadline`` (epoch seconds), and so is Zoho's token throttle (``Access Denied``, which a worker leaves to
    Airflow's retries; the shared token cache keeps the waits from adding token requests); other Zoho errors
    (those that fail a task at once) end the wait at once with status ``error``.
    """

    def __init__(
        self,
        job_id: str,
        zoho_conn_id: str = "zoho_crm_default",
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
        self.deadline = float(deadline if deadline is not None else self.started_at + 6 * 3600)
        self.resume_after = float(resume_after)

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

    def _event(self, status: str, *, state: str | None, result=None, message: str = "", code: str = "") -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "job_id": self.job_id,
                "state": state,
                "result": result,
                "message": message,
                "code": code,
                "waited_seconds": round(time.time() - self.started_at, 1),
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = ZohoCRMHook(self.zoho_conn_id, retry_attempts=1)
        interval = self.poll_interval
        state: str | None = None
        last_problem = ""
        try:
            # The task checked the job just before deferring: wait before polling again, and never resume it
            # sooner than resume_after seconds (MIN_DEFERRAL_SECONDS by default, see zoho_crm.airflow_compat).
            await asyncio.sleep(max(0.0, self.started_at + max(interval, self.resume_after) - time.time()))
            while True:
                try:
                    details = await hook.aget_bulk_read_job(self.job_id)
                    state = details.get("state")
                    if state == "COMPLETED":
                        yield self._event("completed", state=state, result=job_result(details), message="done")
                        return
                    if state == "FAILURE":
                        code, message = job_failure(details)
                        yield self._event("failed", state=state, message=message, code=code)
                        return
                    self.log.info("Zoho bulk read job %s is %s", self.job_id, state)
                except ZohoError as err:
                    if err.fails_fast:
                        yield self._event("error", state=state, message=str(err), code=err.code)
                        return
                    # Transient errors and Zoho's token throttle (Access Denied): poll again, as a worker retries.
                    last_problem = str(err)
                    self.log.warning("Polling job %s failed, will retry: %s", self.job_id, err)
                    throttled = not err.retryable
                else:
                    throttled = False
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    waited = time.time() - self.started_at
                    message = f"Job {self.job_id} not finished after waiting {waited:.0f}s; last state seen: {state}"
                    if last_problem:
                        message += f"; last problem: {last_problem}"
                    yield self._event("timeout", state=state, message=message, code="TIMEOUT")
                    return
                await asyncio.sleep(min(max(interval, THROTTLED_POLL_SECONDS) if throttled else interval, remaining))
                interval = min(interval * BACKOFF_FACTOR, self.max_poll_interval)
        except Exception as err:  # any other failure still ends the wait with exactly one event
            yield self._event("error", state=state, message=f"{type(err).__name__}: {err}", code="TRIGGER_ERROR")
