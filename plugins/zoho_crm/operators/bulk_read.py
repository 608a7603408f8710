"""ZohoBulkReadOperator: check the inputs, create a Bulk Read job, optionally wait for it (deferred)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context, conf

from zoho_crm.api.errors import ZohoError, valid_job_id
from zoho_crm.api.query import InvalidBulkReadQuery, build_bulk_read_body
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.job_waiting import (
    DEFAULT_TIMEOUT_SECONDS,
    JobWaiting,
    PollingPolicy,
    defer_until_job_done,
    fail_fast,
    job_result_from_event,
    task_error,
    wait_in_process,
)


class ZohoBulkReadOperator(JobWaiting, BaseOperator):
    """Create a Zoho CRM Bulk Read job; return ``{"job_id", "module", "file_type", "query", "page", ...}``.

    Inputs are checked before any Zoho call (see :func:`zoho_crm.api.query.build_bulk_read_body`); a bad
    input fails the task at once with what to change. ``module`` accepts API names and the seed's lowercase names.
    With ``wait_for_completion`` the task also waits for the job (deferred when ``deferrable``) and returns the
    job result, like :class:`~zoho_crm.sensors.bulk_read_job.ZohoBulkReadJobSensor`.

    :param module: the module to export (API name, or the seed's lowercase name); templated.
    :param fields: field API names to export (default: every field; none with ``file_type="ics"``); templated.
    :param criteria: Zoho's criteria object (a condition or a group of them); templated.
    :param cvid: a custom view id of the module; templated.
    :param file_type: ``csv``, or ``ics`` for Events; templated.
    :param page: the page to export (1 = the first; API v2-v6 page numbers); templated.
    :param page_token: the ``next_page_token`` of the previous page (API v7+; not with ``page``); templated.
    :param callback_url: an https URL Zoho calls when the job ends; templated.
    :param callback_method: the callback's HTTP method (Zoho accepts only ``post``).
    :param zoho_conn_id: the Zoho CRM connection.
    :param wait_for_completion: also wait for the job and return its result instead of the created job.
    :param deferrable: wait in the triggerer (no worker slot held); default ``[operators] default_deferrable``.
    :param poll_interval: the first pause between two looks at the job, in seconds (> 0).
    :param max_poll_interval: the longest pause between two looks; pauses grow x1.5 up to it.
    :param timeout: how long to wait for the job, in seconds; then the task fails saying the last state seen.
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
        PollingPolicy(poll_interval, max_poll_interval, timeout)  # a bad value fails at DAG parse, not at the wait

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
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
            return wait_in_process(hook, job["job_id"], self.polling)
        defer_until_job_done(self, job["job_id"], zoho_conn_id=self.zoho_conn_id, policy=self.polling)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the job result or fail with Zoho's reason.

        :param context: the task's context.
        :param event: the trigger's event.
        """
        return job_result_from_event(event)
