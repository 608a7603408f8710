"""Streaming a download answer to a file: temp name then rename, sha256 on the way, a stall watchdog, size caps.

The transport under :meth:`zoho_crm.hooks.zoho_crm.ZohoCRMHook.download_to_file`: memory stays at one chunk
whatever the file size, and a failed download never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path

import requests
import urllib3

from zoho_crm.api.errors import ZohoRequestError, ZohoTransientError
from zoho_crm.files.atomic import create_temp
from zoho_crm.hooks.connection import DEFAULT_MAX_DOWNLOAD_BYTES

CHUNK_BYTES = 64 * 1024
STALL_SECONDS = 60.0
MAX_NAME_BYTES = 200
PROGRESS_SECONDS = 5.0
PROGRESS_BYTES = 25 * 1024 * 1024
FILE_CONTENT_TYPES = frozenset({"application/zip", "application/x-download", "application/octet-stream"})


class IncompleteDownloadError(ZohoTransientError):
    """The body ended short of Content-Length, or the zip is unreadable: retry the download."""


class DownloadTooLargeError(ZohoRequestError):
    """The body is larger than the download cap: not a Bulk Read page, or the cap is too low. Not retryable."""


@dataclass(frozen=True)
class DownloadedFile:
    """A downloaded file, renamed into place: its path, its name (from Content-Disposition), size in bytes,
    sha256 (hex), the answer's Content-Type, and ``answered_at``: the wall-clock time (epoch seconds) its
    streaming began, the answer's headers in hand -- the end of the request, for the rate limit."""

    path: str
    file_name: str
    size: int
    sha256: str
    content_type: str
    answered_at: float


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

    :param response: a streamed (``stream=True``) answer whose status was already checked.
    :param output_dir: the directory the file is written to (created if missing).
    :param fallback_name: the file name when Content-Disposition gives no safe one.
    :param log: called with a progress line every ``PROGRESS_SECONDS`` or ``PROGRESS_BYTES``, and at the end.
    :param chunk_bytes: the read size.
    :param stall_seconds: the longest wait for a chunk before the connection is shut down.
    :param max_bytes: the largest body kept (the connection extra ``max_download_bytes``).
    """
    answered_at = time.time()
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
    return DownloadedFile(str(final), file_name, size, digest.hexdigest(), content_type, answered_at)


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
