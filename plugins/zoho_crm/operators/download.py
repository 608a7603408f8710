"""Download a completed Bulk Read job's zip, rate limited across every DAG run and worker sharing a pool.

Rate limit (Zoho: 10 download requests per minute per org): run the task in a pool whose slots equal the limit,
with ``include_deferred``. Each pool occupancy makes at most ONE download request, then keeps its slot deferred on
a ``DateTimeTrigger`` (:class:`~zoho_crm.triggers.slot_hold.SlotHoldTrigger`) until ``anchor + window + margin``
(``anchor``: wall-clock time the request ended, always at or after the moment Zoho saw it). Only then does the task
finish (a success ends in the triggerer), fail or make its next attempt. So every request owns a slot for at least
a full window after it started, and ``limit`` slots admit at most ``limit`` request starts in any sliding window
-- retries, 429s and failures included. Before each request the task also reserves a place in the shared
:class:`~zoho_crm.rate_limit.ledger.DownloadLedger`, which keeps the connection's ``download_limit`` where the pool
alone would not (a pool wider than the limit, a worker killed mid-request).

``SlotHoldTrigger`` stays importable from this module on purpose: a task deferred by an earlier version of this
package stored the trigger's classpath as ``zoho_crm.operators.download.SlotHoldTrigger``, and the triggerer
imports that path to resume it. Import it from :mod:`zoho_crm.triggers.slot_hold` in new code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any, NoReturn

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from zoho_crm.airflow_compat import MIN_DEFERRAL_SECONDS, push_result_before_trigger_success
from zoho_crm.api.errors import ZohoAuthError, ZohoError, ZohoRateLimitError, valid_job_id
from zoho_crm.export.storage import LocalExportStore, open_store
from zoho_crm.hooks.download import DownloadedFile
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.rate_limit.ledger import DownloadLedger
from zoho_crm.rate_limit.window import (
    DEFAULT_DOWNLOAD_WINDOW_SECONDS,
    DEFAULT_POOL,
    HOLD_MARGIN_SECONDS,
    hold_until,
)
from zoho_crm.triggers.slot_hold import SlotHoldTrigger

__all__ = ["MIN_RETRY_DELAY", "AttemptOutcome", "OutcomeKind", "SlotHoldTrigger", "ZohoBulkReadDownloadOperator"]

_log = logging.getLogger(__name__)
JOB_FIELDS = ("module", "file_type", "page", "count", "per_page", "more_records", "next_page_token")
"""The job sensor's fields passed on into the download's result."""
FILE_FIELDS = ("file_name", "size", "sha256", "content_type")
"""The :class:`~zoho_crm.hooks.download.DownloadedFile` fields in the download's result (besides ``key`` and, on a
local store, ``path``)."""


class OutcomeKind(StrEnum):
    """What one attempt came to, and so what happens when its hold ends."""

    SUCCESS = "success"
    """The file is in place: the task ends in the triggerer."""
    LEDGER_FULL = "ledger_full"
    """No request was made (the ledger was full): the same attempt is made again."""
    RATE_LIMITED = "rate_limited"
    """Zoho answered 429: the next attempt follows."""
    TOKEN_REJECTED = "token_rejected"
    """Zoho rejected the access token (already invalidated): the next attempt refreshes it."""
    TRANSIENT = "transient"
    """A retryable error (5xx, dropped or stalled body): the next attempt follows."""
    FATAL = "fatal"
    """A non-retryable error: the task fails without retry."""
    UNEXPECTED = "unexpected"
    """Not a Zoho error (a bug, a local disk problem): the task fails, and Airflow's retries apply."""


@dataclass(frozen=True)
class AttemptOutcome:
    """An attempt's outcome, carried through the deferral to the end of the slot hold.

    It travels in the deferral kwargs as :meth:`to_dict` (JSON: ``{"kind": ..., "message": ...}``, the message
    left out when there is none), the form tasks deferred by earlier versions carry too. A success's result is
    not in it: it is pushed as the task's XCom before the hold.

    :param kind: what the attempt came to.
    :param message: the error, for every kind but success and ledger_full.
    """

    kind: OutcomeKind
    message: str | None = None

    def to_dict(self) -> dict[str, str]:
        """The JSON-serialisable form for the deferral kwargs."""
        data = {"kind": self.kind.value}
        if self.message is not None:
            data["message"] = self.message
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttemptOutcome:
        """The outcome :meth:`to_dict` gave.

        :param data: the deferral kwargs' ``outcome``.
        """
        return cls(OutcomeKind(data["kind"]), data.get("message"))

    @classmethod
    def of_error(cls, err: ZohoError) -> AttemptOutcome:
        """The outcome of an attempt that raised ``err``.

        :param err: the Zoho error of the download.
        """
        if isinstance(err, ZohoRateLimitError):
            kind = OutcomeKind.RATE_LIMITED
        elif isinstance(err, ZohoAuthError) and err.is_token_rejected:
            kind = OutcomeKind.TOKEN_REJECTED
        elif err.retryable:
            kind = OutcomeKind.TRANSIENT
        else:
            kind = OutcomeKind.FATAL
        return cls(kind, str(err))


MIN_RETRY_DELAY = timedelta(seconds=DEFAULT_DOWNLOAD_WINDOW_SECONDS + 5)
"""The shortest retry delay of a download task: Zoho's 60 s window plus a margin for clocks and scheduling."""


def _safe_retry_delays(task_id: str, delays: Mapping[str, timedelta | float | None]) -> dict[str, timedelta]:
    """The given ``retry_delay`` / ``max_retry_delay`` raised to :data:`MIN_RETRY_DELAY` (one log line each);
    None (no ``max_retry_delay``) is left out."""
    safe = {}
    for name, value in delays.items():
        if value is None:
            continue
        delay = value if isinstance(value, timedelta) else timedelta(seconds=float(value))
        if delay < MIN_RETRY_DELAY:
            _log.info(
                "%s of %s raised from %.0f s to %.0f s: a retry must not start inside the rate-limit window of "
                "the previous download request", name, task_id, delay.total_seconds(), MIN_RETRY_DELAY.total_seconds(),
            )
            delay = MIN_RETRY_DELAY
        safe[name] = delay
    return safe


class ZohoBulkReadDownloadOperator(BaseOperator):
    """Download the zip of a completed Bulk Read job, holding a rate-limit pool slot for a window per request.

    :param job: the job sensor's result (dict with at least ``job_id``; its ``module``, ``file_type``, ``page``,
        ``count``... are passed on), or a job id. Templated; usually an XComArg (``.expand(job=sensor.output)``).
    :param output_dir: where the zips go (templated): a local directory or an export store location such as
        ``s3://conn_id@bucket/prefix/...`` (:func:`~zoho_crm.export.storage.open_store`). The zip lands at key
        ``{job_id}/{file name}`` under it: on disk written as ``.<name>.part-*`` then renamed; on object storage
        downloaded into a local scratch folder, then uploaded (sha256 checked) and the scratch removed. The result
        carries ``key`` (that key, relative to ``output_dir``) and ``sha256``; ``path`` (the local file) only when
        ``output_dir`` is local, for readers on the same host.
    :param zoho_conn_id: connection; its extras ``download_limit`` / ``download_window_seconds`` (10 / 60) set
        the window held after each request. The pool's slots must equal ``download_limit``.
    :param pool: the download pool (default ``zoho_crm_downloads``; one per Zoho org), include_deferred=true.
    :param max_attempts: download requests this task try may make (429, 5xx, dropped body, expired token).
    :param hold_margin_seconds: extra hold past the window, covering clock differences between hosts.
    :param kwargs: ``BaseOperator`` arguments. ``retry_delay`` (and ``max_retry_delay``) are raised to at least
        Zoho's window + 5 s (:data:`MIN_RETRY_DELAY`) where the task is defined, for ``partial()`` too, whatever
        the DAG's ``default_args`` say: the scheduler schedules a retry from the serialized task, so a retry after
        a killed worker can never start a request inside the window of the killed one.
    """

    template_fields = ("job", "output_dir")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        job: Mapping[str, Any] | str,
        output_dir: str,
        zoho_conn_id: str = "zoho_crm_default",
        pool: str = DEFAULT_POOL,
        max_attempts: int = 6,
        hold_margin_seconds: float = HOLD_MARGIN_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool=pool, **kwargs)
        delays = {"retry_delay": self.retry_delay, "max_retry_delay": self.max_retry_delay}
        for name, delay in _safe_retry_delays(self.task_id, delays).items():
            setattr(self, name, delay)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.job = job
        self.output_dir = output_dir
        self.zoho_conn_id = zoho_conn_id
        self.max_attempts = max_attempts
        self.hold_margin_seconds = hold_margin_seconds

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial`` with the retry delays raised as in ``__init__``: a mapped task is retried
        by the scheduler from these partial kwargs, never from an instance built on a worker."""
        operator_partial = super().partial(**kwargs)
        given = operator_partial.kwargs
        delays = {"retry_delay": given["retry_delay"], "max_retry_delay": given.get("max_retry_delay")}
        given.update(_safe_retry_delays(kwargs["task_id"], delays))
        return operator_partial

    @cached_property
    def hook(self) -> ZohoCRMHook:
        """The hook of this task instance (its connection read once)."""
        return ZohoCRMHook(zoho_conn_id=self.zoho_conn_id)

    # -- Airflow entry points ----------------------------------------------------------------------------

    def execute(self, context: Context) -> NoReturn:
        window = self._window_seconds()
        if self.retries and self.retry_delay.total_seconds() < window:
            raise AirflowFailException(
                f"retry_delay ({self.retry_delay.total_seconds():.0f} s) of {self.task_id} is shorter than the "
                f"download window ({window:.0f} s, connection {self.zoho_conn_id!r} extra "
                "download_window_seconds): a retry after a crash could break Zoho's download limit. "
                f"Set retry_delay >= {window:.0f} s."
            )
        self.log.info(
            "Downloading job %s in pool %s: one request per slot, slot held %.1f s after each request",
            self._job()["job_id"], self.pool, max(window + self.hold_margin_seconds, MIN_DEFERRAL_SECONDS),
        )
        self._attempt(context, attempt=1)

    def resume_after_hold(
        self, context: Context, attempt: int, outcome: Mapping[str, Any], event: Any = None
    ) -> NoReturn:
        """Runs once the slot's window has passed after a failed attempt: fail, or make the next attempt.

        :param context: the task's context.
        :param attempt: the number of the attempt whose hold ended.
        :param outcome: its :meth:`AttemptOutcome.to_dict`.
        :param event: the trigger's event (its moment), unused.
        """
        held = AttemptOutcome.from_dict(outcome)
        if held.kind is OutcomeKind.LEDGER_FULL:
            self._attempt(context, attempt=attempt)
        if held.kind is OutcomeKind.FATAL:
            raise AirflowFailException(held.message)
        if held.kind is OutcomeKind.UNEXPECTED:
            raise RuntimeError(held.message)
        if attempt >= self.max_attempts:
            raise AirflowFailException(
                f"Download of Bulk Read job {self._job()['job_id']} failed {attempt} times in a row "
                f"(max_attempts={self.max_attempts}, each after a full rate-limit window); last error: "
                f"{held.message}. If this is TOO_MANY_REQUESTS, another client of the same Zoho org is "
                "using the download allowance: find it or run later. Otherwise check Zoho's status, then clear "
                "this task to try again."
            )
        self.log.warning("Attempt %d of %d failed (%s); trying again", attempt, self.max_attempts, held.message)
        self._attempt(context, attempt=attempt + 1)

    # -- one attempt: at most one request, then hold the slot ------------------------------------------

    def _attempt(self, context: Context, attempt: int) -> NoReturn:
        hook = self.hook
        job = self._job()
        # Token problems surface here, before any download request: they need no hold. The request sends this very
        # token: no refresh (retried, maybe slow) between the ledger reservation and the request it counts.
        token = hook.get_token()
        ledger = hook.download_ledger(self.hold_margin_seconds)
        request_id = self._reserve(ledger, attempt)
        result = None
        anchor = None
        try:
            store = open_store(self.output_dir)
            folder = str(job["job_id"])  # one folder per job: names cannot collide
            # A local folder whose file lands under the key when the block succeeds (on disk: the folder itself).
            with store.write_local(folder) as target:
                downloaded = hook.download_to_file(job["job_id"], target, token=token, log=self.log.info)
                anchor = downloaded.answered_at
            key = f"{folder}/{downloaded.file_name}"
            path = downloaded.path if isinstance(store, LocalExportStore) else None
            result = self._result(job, downloaded, attempt, key=key, path=path)
            outcome = AttemptOutcome(OutcomeKind.SUCCESS)
        except ZohoError as err:
            anchor = time.time()
            outcome = AttemptOutcome.of_error(err)
            if outcome.kind is OutcomeKind.TOKEN_REJECTED:
                hook.invalidate_token(token.token)
        except Exception as err:  # a bug, a disk or upload problem: still hold before failing (Airflow retries).
            anchor = anchor or time.time()  # an upload failing after the answer: the request ended at the answer
            outcome = AttemptOutcome(OutcomeKind.UNEXPECTED, f"{type(err).__name__}: {err}")
        ledger.finish(request_id, anchor)  # a process dying before this leaves the entry counting longer
        until = max(
            hold_until(anchor, self._window_seconds(), self.hold_margin_seconds),
            datetime.now(UTC) + timedelta(seconds=MIN_DEFERRAL_SECONDS),
        )
        succeeded = outcome.kind is OutcomeKind.SUCCESS
        if succeeded and self.do_xcom_push:
            # A success ends in the triggerer when the hold ends (no second pass through a worker, so the slot is
            # free at once): its result is pushed now.
            push_result_before_trigger_success(context, result)
        self.log.info(
            "Attempt %d: %s; holding the pool slot until %s%s", attempt, outcome.kind.value, until.isoformat(),
            ", then the task ends in the triggerer" if succeeded else "",
        )
        self.defer(
            trigger=SlotHoldTrigger(until, end_from_trigger=succeeded),
            method_name="resume_after_hold",
            kwargs={"attempt": attempt, "outcome": outcome.to_dict()},
        )

    def _reserve(self, ledger: DownloadLedger, attempt: int) -> str:
        """A place in the ledger for this attempt's request; waits (short) or defers (long) while it is full."""
        while (reservation := ledger.reserve()).request_id is None:
            wait = reservation.wait_seconds
            self.log.info(
                "%d download requests with this connection started in the last window (limit %d): waiting %.1f s",
                reservation.in_window, ledger.limit, wait,
            )
            if wait > MIN_DEFERRAL_SECONDS:
                self.defer(
                    trigger=SlotHoldTrigger(datetime.now(UTC) + timedelta(seconds=wait)),
                    method_name="resume_after_hold",
                    kwargs={"attempt": attempt, "outcome": AttemptOutcome(OutcomeKind.LEDGER_FULL).to_dict()},
                )
            time.sleep(wait)
        return reservation.request_id

    def _job(self) -> dict[str, Any]:
        job = self.job
        if isinstance(job, str):
            job = {"job_id": job}
        if not isinstance(job, Mapping) or not job.get("job_id"):
            raise AirflowFailException(
                f"job must be the job sensor's result (a dict with job_id) or a job id, got {str(job)[:200]!r}"
            )
        try:  # the id goes into the download URL and the output path: digits only
            job_id = valid_job_id(job["job_id"], f"job_id of task {self.task_id}")
        except ZohoError as err:
            raise AirflowFailException(str(err)) from None
        return {**job, "job_id": job_id}

    def _window_seconds(self) -> float:
        return float(self.hook.config.download_window_seconds)

    @staticmethod
    def _result(
        job: Mapping[str, Any], downloaded: DownloadedFile, attempts: int, *, key: str, path: str | None
    ) -> dict[str, Any]:
        result = {name: job.get(name) for name in JOB_FIELDS if name in job}
        result.update({name: getattr(downloaded, name) for name in FILE_FIELDS})
        result.update(key=key, job_id=str(job["job_id"]), attempts=attempts)
        if path is not None:
            result["path"] = path
        return result
