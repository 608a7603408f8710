"""ZohoBulkReadOperator: check the inputs, create a Bulk Read job, optionally wait for it (deferred)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NoReturn

from airflow.sdk import BaseOperator, Context, conf
from airflow.sdk.exceptions import AirflowFailException

from zoho_crm.api.errors import ZohoError, valid_job_id
from zoho_crm.api.query import InvalidBulkReadQuery, build_bulk_read_body
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.triggers.bulk_read_job import (
    THROTTLED_POLL_SECONDS,
    ZohoBulkReadJobTrigger,
    job_failure,
    job_result,
)

DEFAULT_TIMEOUT_SECONDS = 6 * 3600


def fail_fast(message: str) -> AirflowFailException:
    """An exception that fails the task at once, without burning Airflow retries."""
    return AirflowFailException(message)


def task_error(err: ZohoError) -> Exception:
    """What a task raises for ``err``: fail at once when retrying cannot help, else the error (Airflow retries)."""
    return fail_fast(str(err)) if err.fails_fast else err


def job_result_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """The job result of a ZohoBulkReadJobTrigger event; fail the task for failed/timeout/error events."""
    status = event.get("status")
    if status == "completed":
        return event["result"]
    job_id = event.get("job_id")
    if status == "failed":
        raise fail_fast(
            f"Zoho bulk read job {job_id} ended in FAILURE: {event.get('code')}: {event.get('message')}. "
            "Run the export again; if it keeps failing, narrow the query."
        )
    if status == "timeout":
        raise fail_fast(
            f"Zoho bulk read job {job_id} did not finish: waited {event.get('waited_seconds')}s, "
            f"last state seen {event.get('state')}. {event.get('message')} Raise timeout or check the job in Zoho."
        )
    raise fail_fast(f"Waiting for Zoho bulk read job {job_id} failed: {event.get('message')}")


def defer_until_job_done(
    task: BaseOperator,
    job_id: str,
    *,
    zoho_conn_id: str,
    poll_interval: float,
    max_poll_interval: float,
    timeout: float,
    kwargs: dict[str, Any] | None = None,
) -> NoReturn:
    """Defer ``task`` on a ZohoBulkReadJobTrigger for ``job_id``; it resumes in ``execute_complete(event, **kwargs)``.

    A job id that is not digits fails the task at once (it would go into Zoho URLs and staging paths)."""
    try:
        job_id = valid_job_id(job_id, f"job_id of task {task.task_id}")
    except ZohoError as err:
        raise task_error(err) from err
    task.defer(
        trigger=ZohoBulkReadJobTrigger(
            job_id=job_id,
            zoho_conn_id=zoho_conn_id,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            deadline=time.time() + timeout,
        ),
        method_name="execute_complete",
        kwargs=kwargs,
        timeout=timedelta(seconds=timeout + 120),
    )


def wait_in_process(
    hook: ZohoCRMHook, job_id: str, *, poll_interval: float, max_poll_interval: float, timeout: float
) -> dict[str, Any]:
    """Poll a job in the worker until COMPLETED (non-deferrable waiting); same outcomes as the trigger."""
    started = time.monotonic()
    interval = poll_interval
    state = None
    problem = ""
    while True:
        throttled = False
        try:
            details = hook.get_bulk_read_job(job_id)
        except ZohoError as err:
            if err.retryable or err.fails_fast:
                raise task_error(err) from err
            # Zoho's token throttle (Access Denied): waited out like the trigger does, the job is not lost.
            throttled, problem = True, str(err)
            hook.log.warning("Could not read job %s this time, will poll again: %s", job_id, err)
        else:
            state = details.get("state")
            if state == "COMPLETED":
                return job_result(details)
            if state == "FAILURE":
                code, message = job_failure(details)
                return job_result_from_event({"status": "failed", "job_id": job_id, "code": code, "message": message})
        waited = time.monotonic() - started
        if waited >= timeout:
            message = f"Last problem: {problem}." if problem else ""
            return job_result_from_event(
                {"status": "timeout", "job_id": job_id, "state": state, "waited_seconds": round(waited),
                 "message": message}
            )
        time.sleep(min(max(interval, THROTTLED_POLL_SECONDS) if throttled else interval, timeout - waited))
        interval = min(interval * 1.5, max_poll_interval)


class ZohoBulkReadOperator(BaseOperator):
    """Create a Zoho CRM Bulk Read job; return ``{"job_id", "module", "file_type", "query", "page", ...}``.

    Inputs are checked before any Zoho call (see :func:`zoho_crm.api.query.build_bulk_read_body`); a bad
    input fails the task at once with what to change. ``module`` accepts API names and the seed's lowercase names.
    With ``wait_for_completion`` the task also waits for the job (deferred when ``deferrable``) and returns the
    job result, like :class:`~zoho_crm.sensors.bulk_read_job.ZohoBulkReadJobSensor`.
    """

    template_fields: Sequence[str] = (
        "module",
        "fields",
        "criteria",
        "cvid",
        "file_type",
        "page",
        "page_token",
        "callback_url",
    )
    ui_color = "#e42527"

    def __init__(
        self,
        *,
        module: str,
        fields: list[str] | None = None,
        criteria: dict | None = None,
        cvid: str | None = None,
        file_type: str = "csv",
        page: int | None = None,
        page_token: str | None = None,
        callback_url: str | None = None,
        callback_method: str = "post",
        zoho_conn_id: str = ZohoCRMHook.default_conn_name,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5,
        max_poll_interval: float = 60,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.module = module
        self.fields = fields
        self.criteria = criteria
        self.cvid = cvid
        self.file_type = file_type
        self.page = page
        self.page_token = page_token
        self.callback_url = callback_url
        self.callback_method = callback_method
        self.zoho_conn_id = zoho_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout

    def execute(self, context: Context) -> dict[str, Any]:
        hook = ZohoCRMHook(self.zoho_conn_id)
        try:
            api_version = hook.config.api_version
            body = build_bulk_read_body(
                self.module,
                fields=self.fields,
                criteria=self.criteria,
                cvid=self.cvid,
                file_type=self.file_type,
                page=self.page,
                page_token=self.page_token,
                callback_url=self.callback_url,
                callback_method=self.callback_method,
                api_version=api_version,
            )
        except InvalidBulkReadQuery as err:
            raise fail_fast(f"Bulk read inputs rejected before calling Zoho: {err}") from None
        except ZohoError as err:
            raise task_error(err) from err
        try:
            details = hook.create_bulk_read_job(body)
            job_id = valid_job_id(details.get("id"), "the job id of Zoho's create answer")
        except ZohoError as err:
            raise task_error(err) from err
        query = body["query"]
        job = {
            "job_id": job_id,
            "module": query["module"]["api_name"],
            "file_type": body["file_type"],
            "query": query,
            "page": query.get("page"),
            "page_token": query.get("page_token"),
            "state": details.get("state"),
            "created_time": details.get("created_time"),
        }
        self.log.info("Created bulk read job %s (%s, %s)", job["job_id"], job["module"], job["file_type"])
        if not self.wait_for_completion:
            return job
        if not self.deferrable:
            return wait_in_process(
                hook,
                job["job_id"],
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
                timeout=self.timeout,
            )
        defer_until_job_done(
            self,
            job["job_id"],
            zoho_conn_id=self.zoho_conn_id,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            timeout=self.timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the job result or fail with Zoho's reason."""
        return job_result_from_event(event)
