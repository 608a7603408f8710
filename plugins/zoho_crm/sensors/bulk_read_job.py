"""ZohoBulkReadJobSensor: wait for a Bulk Read job (poke, reschedule or deferrable) and return its result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSensorTimeout

from zoho_crm.api.errors import ZohoError, valid_job_id
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.operators.bulk_read import (
    DEFAULT_TIMEOUT_SECONDS,
    defer_until_job_done,
    job_result_from_event,
    task_error,
)
from zoho_crm.triggers.bulk_read_job import job_failure, job_result

__all__ = ["ZohoBulkReadJobSensor", "job_result_from_event"]


class ZohoBulkReadJobSensor(BaseSensorOperator):
    """Wait until a Bulk Read job is COMPLETED; return ``{"job_id", "module", "file_type", "page", "count",
    "per_page", "more_records", "next_page_token", "download_url"}``.

    FAILURE fails the task with Zoho's code and message; an unknown job fails at once; a timeout fails with how
    long it waited and the last state seen. Deferrable mode waits in the triggerer (no worker slot held).
    In ``mode="reschedule"`` keep ``poll_interval`` well above the scheduler's loop latency (>= 15 s): Airflow can
    fail a reschedule sensor on a late executor event (apache/airflow#71172).
    """

    template_fields: Sequence[str] = ("job_id",)
    ui_color = "#e42527"

    def __init__(
        self,
        *,
        job_id: str,
        zoho_conn_id: str = ZohoCRMHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5,
        max_poll_interval: float = 60,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("exponential_backoff", True)
        kwargs.setdefault("max_wait", max_poll_interval)
        super().__init__(poke_interval=poll_interval, timeout=timeout, **kwargs)
        self.job_id = job_id
        self.zoho_conn_id = zoho_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self._last_state: str | None = None

    def execute(self, context: Context) -> Any:
        try:  # the id goes into Zoho URLs and, downstream, into paths: digits only
            self.job_id = valid_job_id(self.job_id, f"job_id of task {self.task_id}")
        except ZohoError as err:
            raise task_error(err) from err
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout:
                raise AirflowSensorTimeout(
                    f"Zoho bulk read job {self.job_id} did not finish within {self.timeout:.0f}s; "
                    f"last state seen: {self._last_state}. Raise timeout or check the job in Zoho."
                ) from None
        first = self.poke(context)  # a job that is already done needs no deferral
        if first.is_done:
            return first.xcom_value
        defer_until_job_done(
            self,
            self.job_id,
            zoho_conn_id=self.zoho_conn_id,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            timeout=self.timeout,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            # One attempt per poke: the sensor's own poke loop is the retry (like the trigger's polling).
            details = ZohoCRMHook(self.zoho_conn_id, retry_attempts=1).get_bulk_read_job(str(self.job_id))
        except ZohoError as err:
            if not err.fails_fast:  # transient, or Zoho's token throttle: like the trigger, try again later
                self.log.warning("Could not read job %s this time, will poke again: %s", self.job_id, err)
                return PokeReturnValue(is_done=False)
            raise task_error(err) from err
        self._last_state = details.get("state")
        if self._last_state == "COMPLETED":
            return PokeReturnValue(is_done=True, xcom_value=job_result(details))
        if self._last_state == "FAILURE":
            code, message = job_failure(details)
            # Raises: the same failure (with what to do) as when the trigger sees the FAILURE.
            job_result_from_event({"status": "failed", "job_id": self.job_id, "code": code, "message": message})
        self.log.info("Zoho bulk read job %s is %s", self.job_id, self._last_state)
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the job result or fail with Zoho's reason."""
        return job_result_from_event(event)
