"""Download a completed Bulk Read job's zip, rate limited across every DAG run and worker sharing a pool.

Rate limit (Zoho: 10 download requests per minute per org): run the task in a pool whose slots equal the limit,
with ``include_deferred``. Each pool occupancy makes at most ONE download request, then keeps its slot deferred on
a ``DateTimeTrigger`` (:class:`SlotHoldTrigger`) until ``anchor + window + margin`` (``anchor``: wall-clock time
the request ended, always at or after the moment Zoho saw it). Only then does the task finish (a success ends in
the triggerer), fail or make its next attempt. So every request owns a slot for at least a full window after it
started, and ``limit`` slots admit at most ``limit`` request starts in any sliding window -- retries, 429s and
failures included. Before each request the task also reserves a place in the shared
:class:`~zoho_crm.rate_limit.ledger.DownloadLedger`, which keeps the connection's ``download_limit`` where the pool
alone would not (a pool wider than the limit, a worker killed mid-request).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
import unicodedata
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path
from typing import Any, NoReturn

import requests
import urllib3
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, BaseXCom, Context
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from zoho_crm.airflow_compat import MIN_DEFERRAL_SECONDS
from zoho_crm.api.errors import (
    ZohoAuthError,
    ZohoError,
    ZohoRateLimitError,
    ZohoRequestError,
    ZohoTransientError,
    valid_job_id,
)
from zoho_crm.files.atomic import create_temp
from zoho_crm.hooks.connection import DEFAULT_MAX_DOWNLOAD_BYTES
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.rate_limit.ledger import DownloadLedger
from zoho_crm.rate_limit.window import (
    DEFAULT_DOWNLOAD_WINDOW_SECONDS,
    DEFAULT_POOL,
    HOLD_MARGIN_SECONDS,
    hold_until,
)

CHUNK_BYTES = 64 * 1024
STALL_SECONDS = 60.0
MAX_NAME_BYTES = 200
PROGRESS_SECONDS = 5.0
PROGRESS_BYTES = 25 * 1024 * 1024
FILE_CONTENT_TYPES = frozenset({"application/zip", "application/x-download", "application/octet-stream"})
_log = logging.getLogger(__name__)
JOB_FIELDS = ("module", "file_type", "page", "count", "per_page", "more_records", "next_page_token")


class IncompleteDownloadError(ZohoTransientError):
    """The body ended short of Content-Length, or the zip is unreadable: retry the download."""


class DownloadTooLargeError(ZohoRequestError):
    """The body is larger than the download cap: not a Bulk Read page, or the cap is too low. Not retryable."""


@dataclass(frozen=True)
class DownloadedFile:
    """A downloaded file, renamed into place."""

    path: str
    file_name: str
    size: int
    sha256: str
    content_type: str


def file_name_from_disposition(header: str | None, fallback: str) -> str:
    """The file name from Content-Disposition (``filename*=UTF-8''x`` preferred over ``filename="x"``), as a safe
    basename of at most ``MAX_NAME_BYTES``; else ``fallback``."""
    names: dict[str, str] = {}
    if header:
        message = Message()
        message["content-disposition"] = header
        for key, value in message.get_params([], header="content-disposition")[1:]:
            if key.lower() == "filename":
                names["extended" if isinstance(value, tuple) else "plain"] = collapse_rfc2231_value(value)
    name = names.get("extended") or names.get("plain") or ""
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # controls, bidi overrides
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", "..") or len(name.encode()) > MAX_NAME_BYTES:
        return fallback
    return name


class _StallGuard:
    """Shuts the connection down when no chunk arrives for ``seconds``: a peer sending a byte now and then passes
    every read timeout, and would otherwise hold the download (and its pool slot) for ever."""

    def __init__(self, response: requests.Response, seconds: float) -> None:
        self.response = response
        self.seconds = seconds
        self.stalled = False
        self._progress = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="zoho-download-stall-guard", daemon=True)

    def __enter__(self) -> _StallGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._progress.set()
        self._thread.join()

    def chunk(self) -> None:
        self._progress.set()

    def _watch(self) -> None:
        while self._progress.wait(self.seconds):
            if self._done.is_set():
                return
            self._progress.clear()
        self.stalled = True
        sock = _socket_of(self.response)
        if sock is None:
            self.response.close()
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read, which then fails or ends short


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response reads from: its connection's, or (once http.client took it over for a
    response that closes the connection) the one under the response's file object."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is None:
        reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def stream_to_file(
    response: requests.Response,
    output_dir: str | os.PathLike[str],
    fallback_name: str,
    log: Callable[[str], None] = lambda _msg: None,
    chunk_bytes: int = CHUNK_BYTES,
    stall_seconds: float = STALL_SECONDS,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
) -> DownloadedFile:
    """Stream a ``requests`` response body to ``output_dir`` (temp name, then rename), hashing on the way.

    Memory stays at one chunk whatever the file size. Raises ``ZohoRequestError`` for a body that is not a file,
    ``DownloadTooLargeError`` (not retryable) for one announced or received larger than ``max_bytes``, and
    ``IncompleteDownloadError`` (transient) when the body is shorter or longer than Content-Length, stalls
    (no ``chunk_bytes`` within ``stall_seconds``) or the zip is unreadable; the partial file is removed in every
    failure.
    """
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in FILE_CONTENT_TYPES:
        raise ZohoRequestError(
            f"unexpected Content-Type {content_type or '(none)'!r} for a Bulk Read download "
            f"(expected one of {', '.join(sorted(FILE_CONTENT_TYPES))}); the body was not saved",
            code="UNEXPECTED_CONTENT_TYPE",
            http_status=response.status_code,
            resolution="Check api_domain in the connection points at Zoho's API host (not a proxy or login page).",
        )
    file_name = file_name_from_disposition(response.headers.get("Content-Disposition"), fallback_name)
    expected = response.headers.get("Content-Length")
    expected_size = int(expected) if expected and expected.isdigit() else None
    if expected_size is not None and expected_size > max_bytes:
        raise _too_large(file_name, f"Content-Length is {expected_size} bytes", max_bytes)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, part = create_temp(out_dir, prefix=f".{file_name}.part-")
    digest = hashlib.sha256()
    size = 0
    started = last_time = time.monotonic()
    last_size = 0
    try:
        with os.fdopen(fd, "wb") as out, _StallGuard(response, stall_seconds) as guard:
            chunks = response.iter_content(chunk_size=chunk_bytes)
            while (chunk := _next_chunk(chunks, guard, file_name, size, stall_seconds)) is not None:
                guard.chunk()
                size += len(chunk)
                if size > max_bytes:  # no or a lying Content-Length, or a body decompressed on the way
                    raise _too_large(file_name, f"the body passed {size} bytes", max_bytes)
                out.write(chunk)  # a local disk error is not the network's: it propagates as itself
                digest.update(chunk)
                now = time.monotonic()
                if now - last_time >= PROGRESS_SECONDS or size - last_size >= PROGRESS_BYTES:
                    log(_progress(size, expected_size, now - started))
                    last_time, last_size = now, size
            if guard.stalled:
                raise _stalled(file_name, size, stall_seconds)
            out.flush()
            os.fsync(out.fileno())
        received = _wire_bytes(response, size)
        if expected_size is not None and received != expected_size:
            raise IncompleteDownloadError(
                f"download of {file_name} ended at {received} bytes but Content-Length was {expected_size}",
                code="INCOMPLETE_DOWNLOAD",
            )
        if not zipfile.is_zipfile(part):
            raise IncompleteDownloadError(f"downloaded {file_name} is not a readable zip", code="BAD_ZIP")
        final = out_dir / file_name
        os.replace(part, final)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    log(_progress(size, expected_size, time.monotonic() - started) + " (done)")
    return DownloadedFile(str(final), file_name, size, digest.hexdigest(), content_type)


def _next_chunk(
    chunks: Iterator[bytes], guard: _StallGuard, file_name: str, size: int, stall_seconds: float
) -> bytes | None:
    """The body's next chunk, None at its end; a failed read is a transient IncompleteDownloadError."""
    try:
        return next(chunks, None)
    except Exception as exc:
        if guard.stalled:
            raise _stalled(file_name, size, stall_seconds) from None
        if not isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError, OSError)):
            raise
        raise IncompleteDownloadError(
            f"connection dropped after {size} bytes of {file_name} ({type(exc).__name__})",
            code="INCOMPLETE_DOWNLOAD",
        ) from None


def _wire_bytes(response: requests.Response, saved: int) -> int:
    """Bytes received over the wire: Content-Length counts those, even when a server compressed the body anyway."""
    tell = getattr(response.raw, "tell", None)
    return int(tell()) if callable(tell) else saved


def _stalled(file_name: str, size: int, seconds: float) -> IncompleteDownloadError:
    return IncompleteDownloadError(
        f"download of {file_name} stalled: less than {CHUNK_BYTES // 1024} KiB in {seconds:.0f} s after {size} "
        "bytes; the connection was closed",
        code="INCOMPLETE_DOWNLOAD",
    )


def _too_large(file_name: str, what: str, max_bytes: int) -> DownloadTooLargeError:
    return DownloadTooLargeError(
        f"download of {file_name} refused: {what}, more than the cap of {max_bytes} bytes "
        "(connection extra max_download_bytes); nothing was kept",
        code="DOWNLOAD_TOO_LARGE",
        resolution="A Bulk Read page holds at most 200,000 records: check that api_domain points at Zoho's API "
        "host; if a page really is that large, raise the connection extra max_download_bytes. Not retried.",
    )


def _progress(size: int, expected: int | None, seconds: float) -> str:
    rate = size / 1e6 / seconds if seconds > 0 else 0.0
    total = f" of {expected}" if expected is not None else ""
    return f"downloaded {size}{total} bytes in {seconds:.1f} s ({rate:.1f} MB/s)"


class SlotHoldTrigger(DateTimeTrigger):
    """Fires at ``moment`` (the end of a download's slot hold): resumes the task, or ends it successfully.

    Unlike ``DateTimeTrigger``, which polls once a second near the end, it sleeps to the moment itself: up to a
    second of the download allowance is otherwise lost per hold. With ``end_from_trigger`` the task ends as
    success in the triggerer, freeing its slot at once instead of after one more pass through a worker.
    """

    def __init__(self, moment: datetime, end_from_trigger: bool = False) -> None:
        super().__init__(moment=moment, end_from_trigger=end_from_trigger)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"moment": self.moment, "end_from_trigger": self.end_from_trigger},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while (remaining := (self.moment - datetime.now(UTC)).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, 60.0))
        yield TaskSuccessEvent() if self.end_from_trigger else TriggerEvent(self.moment)


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
    :param output_dir: directory for the zips (templated): ``{output_dir}/{job_id}/{file name}``, written as
        ``.<name>.part-*`` then renamed.
    :param zoho_conn_id: connection; its extras ``download_limit`` / ``download_window_seconds`` (10 / 60) set
        the window held after each request. The pool's slots must equal ``download_limit``.
    :param pool: the download pool (default ``zoho_crm_downloads``; one per Zoho org), include_deferred=true.
    :param max_attempts: download requests this task try may make (429, 5xx, dropped body, expired token).
    :param hold_margin_seconds: extra hold past the window, covering clock differences between hosts.

    ``retry_delay`` (and ``max_retry_delay``) are raised to at least Zoho's window + 5 s
    (:data:`MIN_RETRY_DELAY`) where the task is defined, for ``partial()`` too, whatever the DAG's
    ``default_args`` say: the scheduler schedules a retry from the serialized task, so a retry after a killed
    worker can never start a request inside the window of the killed one.
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
        self, context: Context, attempt: int, outcome: dict[str, Any], event: Any = None
    ) -> dict[str, Any]:
        """Runs once the slot's window has passed after a failed attempt: fail, or make the next attempt."""
        kind = outcome["kind"]
        if kind == "ledger_full":
            self._attempt(context, attempt=attempt)
        if kind == "fatal":
            raise AirflowFailException(outcome["message"])
        if kind == "unexpected":
            raise RuntimeError(outcome["message"])
        if attempt >= self.max_attempts:
            raise AirflowFailException(
                f"Download of Bulk Read job {self._job()['job_id']} failed {attempt} times in a row "
                f"(max_attempts={self.max_attempts}, each after a full rate-limit window); last error: "
                f"{outcome['message']}. If this is TOO_MANY_REQUESTS, another client of the same Zoho org is "
                "using the download allowance: find it or run later. Otherwise check Zoho's status, then clear "
                "this task to try again."
            )
        self.log.warning("Attempt %d of %d failed (%s); trying again", attempt, self.max_attempts, outcome["message"])
        self._attempt(context, attempt=attempt + 1)

    # -- one attempt: at most one request, then hold the slot ------------------------------------------

    def _attempt(self, context: Context, attempt: int) -> NoReturn:
        hook = ZohoCRMHook(zoho_conn_id=self.zoho_conn_id)
        job = self._job()
        # Token problems surface here, before any download request: they need no hold. The request sends this very
        # token: no refresh (retried, maybe slow) between the ledger reservation and the request it counts.
        token = hook.get_token()
        ledger = hook.download_ledger(self.hold_margin_seconds)
        request_id = self._reserve(ledger, attempt)
        try:
            with hook.open_download(job["job_id"], token=token) as response:
                anchor = time.time()
                downloaded = stream_to_file(
                    response,
                    Path(self.output_dir) / str(job["job_id"]),  # one folder per job: names cannot collide
                    f"{job['job_id']}.zip",
                    self.log.info,
                    stall_seconds=hook.timeout,
                    max_bytes=hook.config.max_download_bytes,
                )
            outcome = {"kind": "success", "result": self._result(job, downloaded, attempt)}
        except ZohoError as err:
            anchor = time.time()
            outcome = self._classify(err)
            if outcome["kind"] == "token_rejected":
                hook.invalidate_token(token.token)
        except Exception as err:  # a bug or a local disk problem: still hold before failing (Airflow retries).
            anchor = time.time()
            outcome = {"kind": "unexpected", "message": f"{type(err).__name__}: {err}"}
        ledger.finish(request_id, anchor)  # a process dying before this leaves the entry counting longer
        # Never resume sooner than MIN_DEFERRAL_SECONDS (apache/airflow#72716); a longer hold only lowers the rate.
        until = max(
            hold_until(anchor, self._window_seconds(hook), self.hold_margin_seconds),
            datetime.now(UTC) + timedelta(seconds=MIN_DEFERRAL_SECONDS),
        )
        succeeded = outcome["kind"] == "success"
        if succeeded:
            # A successful task ends in the triggerer when the hold ends (no second pass through a worker, so the
            # slot is free at once); its result is pushed now. Not as the TaskSuccessEvent's XCom: Airflow 3.3.2
            # stores those JSON-encoded twice, and downstream tasks would get a string instead of the dict.
            result = outcome.pop("result")
            if self.do_xcom_push:
                context["ti"].xcom_push(BaseXCom.XCOM_RETURN_KEY, result)
        self.log.info(
            "Attempt %d: %s; holding the pool slot until %s%s", attempt, outcome["kind"], until.isoformat(),
            ", then the task ends in the triggerer" if succeeded else "",
        )
        self.defer(
            trigger=SlotHoldTrigger(until, end_from_trigger=succeeded),
            method_name="resume_after_hold",
            kwargs={"attempt": attempt, "outcome": outcome},
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
                    kwargs={"attempt": attempt, "outcome": {"kind": "ledger_full"}},
                )
            time.sleep(wait)
        return reservation.request_id

    @staticmethod
    def _classify(err: ZohoError) -> dict[str, Any]:
        if isinstance(err, ZohoRateLimitError):
            kind = "rate_limited"
        elif isinstance(err, ZohoAuthError) and err.is_token_rejected:
            kind = "token_rejected"
        elif err.retryable:
            kind = "transient"
        else:
            kind = "fatal"
        return {"kind": kind, "message": str(err)}

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

    def _window_seconds(self, hook: ZohoCRMHook | None = None) -> float:
        hook = hook or ZohoCRMHook(zoho_conn_id=self.zoho_conn_id)
        return float(hook.config.download_window_seconds)

    @staticmethod
    def _result(job: Mapping[str, Any], downloaded: DownloadedFile, attempts: int) -> dict[str, Any]:
        result = {key: job.get(key) for key in JOB_FIELDS if key in job}
        result.update(asdict(downloaded), job_id=str(job["job_id"]), attempts=attempts)
        return result
