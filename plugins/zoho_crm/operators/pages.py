"""Follow a completed first page through every further page of a Bulk Read export."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from zoho_crm.api.errors import ZohoError
from zoho_crm.api.query import InvalidBulkReadQuery
from zoho_crm.export.records import ExportQuery
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.job_waiting import (
    DEFAULT_TIMEOUT_SECONDS,
    JobWaiting,
    PollingPolicy,
    defer_until_job_done,
    fail_fast,
    job_result_from_event,
    task_error,
)


class ZohoBulkReadPagesOperator(JobWaiting, BaseOperator):
    """Create and wait for the jobs of pages 2..n after ``first_page``; return every page's result, in order.

    The next page's job uses ``next_page_token`` on API v7+ and the next ``page`` number on v2-v6, until a page
    reports ``more_records: false``. Each wait is deferred (no worker slot is held). The returned list is what
    the download task maps over: one mapped task instance per page.

    :param first_page: the sensor's result for page 1 (an XComArg in DAGs); templated.
    :param query: the export query (module, fields, file_type, criteria, cvid); templated.
    :param zoho_conn_id: the Zoho CRM connection.
    :param poll_interval: the first pause between two looks at a page's job, in seconds (> 0).
    :param max_poll_interval: the longest pause between two looks; pauses grow x1.5 up to it.
    :param page_timeout: how long to wait for each page's job, in seconds.
    :param max_pages: a safety bound; an export needing more pages fails with a clear message.
    """

    template_fields: Sequence[str] = ("first_page", "query")

    def __init__(
        self,
        *,
        first_page: Any,
        query: Any,
        zoho_conn_id: str = ZohoCRMHook.default_conn_name,
        poll_interval: float = 5,
        max_poll_interval: float = 60,
        page_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_pages: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.first_page = first_page
        self.query = query
        self.zoho_conn_id = zoho_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.page_timeout = page_timeout
        self.max_pages = max_pages
        PollingPolicy(poll_interval, max_poll_interval, page_timeout)  # a bad value fails at DAG parse

    @property
    def wait_timeout(self) -> float:
        """How long each page's wait may last, in seconds (``page_timeout``)."""
        return self.page_timeout

    def execute(self, context: Context) -> list[dict[str, Any]]:
        return self._continue([dict(self.first_page)])

    def execute_complete(self, context: Context, event: dict[str, Any], pages: list[dict[str, Any]]) -> Any:
        """Resume after a page's job finished: record it and go on with the next page.

        :param context: the task's context.
        :param event: the trigger's event for the last page's job.
        :param pages: the results of the pages before it.
        """
        return self._continue([*pages, job_result_from_event(event)])

    def _continue(self, pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        last = pages[-1]
        if not last.get("more_records"):
            self.log.info("Export complete: %d page(s), %d record(s).", len(pages), sum(p["count"] for p in pages))
            return pages
        if len(pages) >= self.max_pages:
            raise fail_fast(f"the export has more than {self.max_pages} pages: narrow the query or raise max_pages.")
        hook = self.hook
        try:  # the next page's body: by next_page_token on API v7+, by page number before
            body = ExportQuery.from_xcom(self.query).next_page(last, hook.config.api_version)
        except InvalidBulkReadQuery as err:
            raise fail_fast(str(err)) from None
        try:
            job = hook.create_bulk_read_job(body)
        except ZohoError as err:
            raise task_error(err) from err
        self.log.info("Created bulk read job %s for page %d.", job["id"], int(last["page"]) + 1)
        defer_until_job_done(
            self, job["id"], zoho_conn_id=self.zoho_conn_id, policy=self.polling, kwargs={"pages": pages}
        )
