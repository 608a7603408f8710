"""ZohoBulkReadJobSensor: wait for a Bulk Read job (poke, reschedule or deferrable) and return its result."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSensorTimeout

from zoho_crm.airflow_compat import RESCHEDULE_MIN_POKE_SECONDS
from zoho_crm.api.errors import ZohoError, valid_job_id
from zoho_crm.hooks.job import WaitOutcome, WaitStatus
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.job_waiting import (
    DEFAULT_TIMEOUT_SECONDS,
    JobWaiting,
    JobWatch,
    PollingPolicy,
    defer_until_job_done,
    job_result_from_event,
    raise_for_outcome,
    read_job,
    task_error,
)


class ZohoBulkReadJobSensor(JobWaiting, BaseSensorOperator):
    """Wait until a Bulk Read job is COMPLETED; return ``{"job_id", "module", "file_type", "page", "count",
    "per_page", "more_records", "next_page_token", "download_url"}``.

    FAILURE fails the task with Zoho's code and message; an unknown job fails at once; a timeout fails with how
    long it waited and the last state seen. Deferrable mode waits in the triggerer (no worker slot held). Pokes
    follow :class:`~zoho_crm.job_waiting.PollingPolicy`, like the trigger: x1.5 from ``poll_interval`` up to
    ``max_poll_interval``, 60 s while Zoho throttles tokens (so the sensor does not take Airflow's
    ``exponential_backoff`` / ``max_wait``).

    In ``mode="reschedule"`` keep ``poll_interval`` at ``RESCHEDULE_MIN_POKE_SECONDS`` (15 s) or more: Airflow can
    fail a reschedule sensor on a late executor event when it pokes faster (apache/airflow#71172, see
    :mod:`zoho_crm.airflow_compat`); a shorter interval warns.

    :param job_id: the job to wait for (digits); templated.
    :param zoho_conn_id: the Zoho CRM connection.
    :param deferrable: wait in the triggerer (no worker slot held); default ``[operators] default_deferrable``.
    :param poll_interval: the first pause between two pokes, in seconds (> 0).
    :param max_poll_interval: the longest pause between two pokes; pauses grow x1.5 up to it.
    :param timeout: how long to wait, in seconds; then the task fails saying the last state seen.
    :param kwargs: the other arguments of ``BaseSensorOperator`` (``mode``, ``soft_fail``, ...).
    """

    template_fields: Sequence[str] = ("job_id",)
    ui_color = "#e42527"
    hook_kwargs: ClassVar[dict[str, Any]] = {"retry_attempts": 1}
    """One attempt per poke: the pokes themselves are the retry."""

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
        for name in ("exponential_backoff", "max_wait"):
            if name in kwargs:
                raise ValueError(
                    f"ZohoBulkReadJobSensor does not take {name}: its pokes already grow x1.5 from poll_interval "
                    "up to max_poll_interval; set those instead."
                )
        PollingPolicy(poll_interval, max_poll_interval, timeout)  # a bad value fails at DAG parse
        super().__init__(poke_interval=poll_interval, timeout=timeout, **kwargs)
        self.job_id = job_id
        self.zoho_conn_id = zoho_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self._watch: JobWatch | None = None
        if self.mode == "reschedule" and not deferrable and poll_interval < RESCHEDULE_MIN_POKE_SECONDS:
            warnings.warn(
                f"ZohoBulkReadJobSensor {self.task_id!r} in mode='reschedule' pokes every {poll_interval}s: "
                f"Airflow can fail a reschedule sensor poking faster than every {RESCHEDULE_MIN_POKE_SECONDS:.0f}s "
                "on a late executor event (apache/airflow#71172). Set poll_interval to "
                f"{RESCHEDULE_MIN_POKE_SECONDS:.0f} or more, or use deferrable=True.",
                UserWarning,
                stacklevel=2,
            )

    def execute(self, context: Context) -> Any:
        try:  # the id goes into Zoho URLs and, downstream, into paths: digits only
            self.job_id = valid_job_id(self.job_id, f"job_id of task {self.task_id}")
        except ZohoError as err:
            raise task_error(err) from err
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout:  # Airflow's own check of the timeout, between two pokes
                raise self._timed_out() from None
        first = self.poke(context)  # a job that is already done needs no deferral
        if first.is_done:
            return first.xcom_value
        defer_until_job_done(self, self.job_id, zoho_conn_id=self.zoho_conn_id, policy=self.polling)

    def poke(self, context: Context) -> PokeReturnValue:
        """Look at the job once; return its result when COMPLETED, else set the pause before the next poke.

        :param context: the task's context.
        """
        watch = self._watch_of(context)
        step = watch.after(read_job(self.hook, str(self.job_id)))
        if isinstance(step, WaitOutcome):
            if step.status == WaitStatus.TIMEOUT:
                raise self._timed_out()
            return PokeReturnValue(is_done=True, xcom_value=raise_for_outcome(step))
        # Airflow pauses poke_interval seconds before the next poke (no exponential_backoff): the policy's pause.
        self.poke_interval = step
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the job result or fail with Zoho's reason.

        :param context: the task's context.
        :param event: the trigger's event.
        """
        return job_result_from_event(event)

    def _watch_of(self, context: Context) -> JobWatch:
        """This wait's watch: one per task instance in poke mode; in reschedule mode every poke is a new task
        instance, so the watch resumes from the first poke's time and the pace reached since."""
        if self._watch is None:
            started_at, polls = time.time(), 0
            ti = context.get("ti") if self.reschedule else None
            first = ti.get_first_reschedule_date(context) if ti is not None else None
            if first is not None:
                started_at = first.timestamp()
                polls = self.polling.polls_within(time.time() - started_at)
            self._watch = JobWatch(self.job_id, self.polling, started_at=started_at, polls=polls, logger=self.log)
        return self._watch

    def _timed_out(self) -> AirflowSensorTimeout:
        state = self._watch.last.state if self._watch is not None else None
        return AirflowSensorTimeout(
            f"Zoho bulk read job {self.job_id} did not finish within {self.timeout:.0f}s; "
            f"last state seen: {state}. Raise timeout or check the job in Zoho."
        )
