"""A Bulk Read job as one typed value, and how waiting for one ended (the trigger's single event).

:class:`BulkReadJob` is read from Zoho's job details answer (``GET /crm/bulk/{v}/read/{job_id}``, ``data[0]``)
and gives downstream tasks the same ``result()`` dict they get through XCom. :class:`WaitOutcome` is how a wait
for a job ended (completed, failed, timeout, error); ``to_event()`` / ``from_event()`` are the
``ZohoBulkReadJobTrigger`` event, whose keys stay fixed so deferred tasks of running deployments still resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """A Bulk Read job's ``state`` as Zoho spells it."""

    ADDED = "ADDED"
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    FAILURE = "FAILURE"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILURE})
"""States a job never leaves."""

UNKNOWN_FAILURE_CODE = "JOB_FAILED"
"""The code of a FAILURE whose answer names none."""


class WaitStatus(StrEnum):
    """How a wait for a job ended: the ``status`` of the trigger's event."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"


RESULT_KEYS = ("job_id", "module", "file_type", "page", "count", "per_page", "more_records", "next_page_token",
               "download_url")
"""The keys of :meth:`BulkReadJob.result`, what downstream tasks read (the download operator, the DAG)."""

EVENT_KEYS = ("status", "job_id", "state", "result", "message", "code", "waited_seconds")
"""The keys of the trigger's event (fixed: a deferred task of a running deployment resumes with one)."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class BulkReadJob:
    """One Bulk Read job as Zoho last described it.

    :param job_id: Zoho's job id (digits).
    :param state: Zoho's state (a :class:`JobState` value; None when the job was never read).
    :param module: the module's API name.
    :param file_type: ``csv`` or ``ics``.
    :param page: the page this job exports.
    :param count: records in the page (COMPLETED only).
    :param per_page: Zoho's page size (COMPLETED only).
    :param more_records: whether a further page exists (COMPLETED only).
    :param next_page_token: the next page's token on API v7+ (COMPLETED only; not a secret).
    :param download_url: the page's download path (COMPLETED only).
    :param failure_code: Zoho's error code of a FAILURE job.
    :param failure_message: Zoho's error message of a FAILURE job.
    """

    job_id: str
    state: str | None = None
    module: str | None = None
    file_type: str = "csv"
    page: int | None = None
    count: int | None = None
    per_page: int | None = None
    more_records: bool = False
    next_page_token: str | None = None
    download_url: str | None = None
    failure_code: str = ""
    failure_message: str = ""

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> BulkReadJob:
        """The job of Zoho's job details answer (``data[0]`` of ``GET /crm/bulk/{v}/read/{job_id}``).

        :param details: the answer's job object (``id``, ``state``, ``query``, ``file_type``, ``result``).
        """
        result = _mapping(details.get("result"))
        query = _mapping(details.get("query"))
        state = details.get("state")
        code, message = "", ""
        if state == JobState.FAILURE:
            error = result.get("error_message") or {}
            if isinstance(error, Mapping):
                code = str(error.get("code") or UNKNOWN_FAILURE_CODE)
                message = str(error.get("message") or "the job failed")
            else:
                code, message = UNKNOWN_FAILURE_CODE, str(error)
        return cls(
            job_id=str(details.get("id")),
            state=None if state is None else str(state),
            module=_mapping(query.get("module")).get("api_name"),
            file_type=details.get("file_type") or "csv",
            page=result.get("page", query.get("page")),
            count=result.get("count"),
            per_page=result.get("per_page"),
            more_records=bool(result.get("more_records")),
            next_page_token=result.get("next_page_token"),
            download_url=result.get("download_url"),
            failure_code=code,
            failure_message=message,
        )

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> BulkReadJob:
        """The COMPLETED job behind a :meth:`result` dict (an XCom value, or a completed event's ``result``).

        :param result: a dict with the keys of :data:`RESULT_KEYS`.
        """
        return cls(
            job_id=str(result.get("job_id")),
            state=JobState.COMPLETED.value,
            module=result.get("module"),
            file_type=result.get("file_type") or "csv",
            page=result.get("page"),
            count=result.get("count"),
            per_page=result.get("per_page"),
            more_records=bool(result.get("more_records")),
            next_page_token=result.get("next_page_token"),
            download_url=result.get("download_url"),
        )

    @property
    def is_terminal(self) -> bool:
        """True once the job is COMPLETED or FAILURE: polling it again cannot change anything."""
        return self.state in TERMINAL_STATES

    @property
    def completed(self) -> bool:
        """True when the job is COMPLETED: its page can be downloaded."""
        return self.state == JobState.COMPLETED

    @property
    def failed(self) -> bool:
        """True when Zoho failed the job (state FAILURE; see ``failure_code`` and ``failure_message``)."""
        return self.state == JobState.FAILURE

    def result(self) -> dict[str, Any]:
        """What downstream tasks get through XCom for a COMPLETED job (no secrets: the page token is not one)."""
        if not self.completed:
            raise ValueError(f"job {self.job_id} is {self.state}, not COMPLETED: it has no result to download yet")
        return {key: getattr(self, key) for key in RESULT_KEYS}


@dataclass(frozen=True)
class WaitOutcome:
    """How waiting for a job ended.

    :param status: completed, failed (Zoho failed the job), timeout (the deadline passed) or error (the wait
        could not go on: an unknown job, refused credentials, a broken answer).
    :param job: the job as last seen (``state`` None when it was never read).
    :param message: what happened, for people (never a secret).
    :param code: Zoho's error code, ``TIMEOUT`` or ``TRIGGER_ERROR``; empty for a completed job.
    :param waited_seconds: how long the wait lasted.
    :param cause: the exception that ended the wait, if any (kept in the worker, not in the event).
    """

    status: WaitStatus
    job: BulkReadJob
    message: str = ""
    code: str = ""
    waited_seconds: float = 0.0
    cause: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def finished(cls, job: BulkReadJob, waited_seconds: float = 0.0) -> WaitOutcome:
        """The outcome of seeing ``job`` COMPLETED or FAILURE.

        :param job: a terminal job.
        :param waited_seconds: how long the wait lasted.
        """
        if job.completed:
            return cls(WaitStatus.COMPLETED, job, "done", "", waited_seconds)
        if job.failed:
            return cls(WaitStatus.FAILED, job, job.failure_message, job.failure_code, waited_seconds)
        raise ValueError(f"job {job.job_id} is {job.state}: it has not finished")

    def to_event(self) -> dict[str, Any]:
        """The trigger's event payload (JSON-serialisable, the keys of :data:`EVENT_KEYS`)."""
        return {
            "status": self.status.value,
            "job_id": self.job.job_id,
            "state": None if self.job.state is None else str(self.job.state),
            "result": self.job.result() if self.status == WaitStatus.COMPLETED else None,
            "message": self.message,
            "code": self.code,
            "waited_seconds": round(self.waited_seconds, 1),
        }

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> WaitOutcome:
        """The outcome a trigger event describes (this version's events and those of earlier releases).

        :param event: the payload ``execute_complete`` receives.
        """
        status = WaitStatus(event.get("status") if event.get("status") in tuple(WaitStatus) else "error")
        job_id = str(event.get("job_id"))
        message, code = str(event.get("message") or ""), str(event.get("code") or "")
        if status == WaitStatus.COMPLETED:
            job = BulkReadJob.from_result({"job_id": job_id, **_mapping(event.get("result"))})
        elif status == WaitStatus.FAILED:
            job = BulkReadJob(job_id, JobState.FAILURE.value, failure_code=code, failure_message=message)
        else:
            job = BulkReadJob(job_id, event.get("state"))
        return cls(status, job, message, code, float(event.get("waited_seconds") or 0.0))
