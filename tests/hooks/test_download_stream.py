"""The hook's streaming transport (zoho_crm.hooks.download) on its own: file names, Content-Type and Content-Length checks, temp file + rename.

Answers the simulator cannot produce (a 200 HTML page, a body longer than announced) come from a small real HTTP
server in a thread.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from airflow.sdk import Connection

from tests.local_http import QuietHandler, serving
from zoho_crm.api.errors import ZohoConfigError, ZohoRequestError
from zoho_crm.hooks.connection import DEFAULT_MAX_DOWNLOAD_BYTES, ZohoConnectionConfig
from zoho_crm.hooks.download import (
    DownloadTooLargeError,
    IncompleteDownloadError,
    file_name_from_disposition,
    stream_to_file,
)


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("1.csv", "id\n1\n" * 1000)
    return buffer.getvalue()


ZIP = _zip_bytes()
ANSWERS: dict[str, tuple[str, bytes, str]] = {  # path -> (content type, body, Content-Length header)
    "/zip": ("application/zip", ZIP, str(len(ZIP))),
    "/html": ("text/html; charset=utf-8", b"<html>login</html>", "18"),
    "/longer": ("application/zip", ZIP, str(len(ZIP) - 10)),
    "/not-a-zip": ("application/zip", b"x" * 100, "100"),
}


GZIPPED = gzip.compress(ZIP)
DRIP_SECONDS = 0.2
"""The /drip answer sends one byte this often: a peer that passes every read timeout and never finishes."""


class _Handler(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path in ("/gzip", "/drip"):
            self._odd_answer()
            return
        if self.path == "/no-length":  # HTTP/1.0: the body ends when the server closes the connection
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(64):
                    self.wfile.write(ZIP)
            return
        content_type, body, length = ANSWERS[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", length)
        self.send_header("Content-Disposition", 'attachment; filename="42.zip"')
        self.end_headers()
        self.wfile.write(body)

    def _odd_answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        if self.path == "/gzip":  # compressed although the client asked for the body as is
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(GZIPPED)))
            self.end_headers()
            self.wfile.write(GZIPPED)
            return
        self.send_header("Content-Length", str(len(ZIP)))
        self.end_headers()
        with contextlib.suppress(OSError):
            for byte in ZIP:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(DRIP_SECONDS)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="5725767000000859031.zip"', "5725767000000859031.zip"),
        ("attachment; filename*=UTF-8''5725767000000859031.zip", "5725767000000859031.zip"),
        ("attachment; filename*=UTF-8''caf%C3%A9.zip", "café.zip"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="..\\\\evil.zip"', "evil.zip"),
        ('attachment; filename=".."', "fallback.zip"),
        ("attachment; filename=\"old.zip\"; filename*=UTF-8''new.zip", "new.zip"),
        ("attachment; filename*=UTF-8'en'a%20b.zip", "a b.zip"),
        ("attachment; filename*=UTF-8''evil%E2%80%AEpiz.exe", "evilpiz.exe"),
        (f'attachment; filename="{"x" * 300}.zip"', "fallback.zip"),
        ("attachment", "fallback.zip"),
        (None, "fallback.zip"),
    ],
)
def test_file_name_from_both_disposition_forms_as_a_safe_basename(header: str | None, expected: str) -> None:
    assert file_name_from_disposition(header, "fallback.zip") == expected


def test_streams_to_a_renamed_file_with_its_sha256(server: str, tmp_path: Path) -> None:
    with requests.get(f"{server}/zip", stream=True, timeout=10) as response:
        downloaded = stream_to_file(response, tmp_path, "fallback.zip", chunk_bytes=1024)
    assert downloaded.path == str(tmp_path / "42.zip")
    assert downloaded.sha256 == hashlib.sha256(ZIP).hexdigest()
    assert downloaded.size == len(ZIP)
    assert [p.name for p in tmp_path.iterdir()] == ["42.zip"]


def test_a_body_that_is_not_a_file_is_refused_before_anything_is_written(server: str, tmp_path: Path) -> None:
    with requests.get(f"{server}/html", stream=True, timeout=10) as response:
        with pytest.raises(ZohoRequestError, match="unexpected Content-Type 'text/html'"):
            stream_to_file(response, tmp_path / "out", "fallback.zip")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("path", ["/longer", "/not-a-zip"])
def test_a_body_that_does_not_match_content_length_or_is_not_a_zip_leaves_no_file(
    server: str, tmp_path: Path, path: str
) -> None:
    with requests.get(f"{server}{path}", stream=True, timeout=10) as response:
        with pytest.raises(IncompleteDownloadError) as error:
            stream_to_file(response, tmp_path, "fallback.zip")
    assert error.value.retryable
    assert list(tmp_path.iterdir()) == []


def test_a_body_compressed_against_our_request_is_saved_as_the_zip(server: str, tmp_path: Path) -> None:
    """Content-Length counts the compressed bytes on the wire; the file is the decoded zip."""
    with requests.get(f"{server}/gzip", stream=True, timeout=10) as response:
        downloaded = stream_to_file(response, tmp_path, "fallback.zip")
    assert Path(downloaded.path).read_bytes() == ZIP and downloaded.sha256 == hashlib.sha256(ZIP).hexdigest()


def test_a_drip_fed_body_is_cut_off_as_a_stall(server: str, tmp_path: Path) -> None:
    """One byte every 0.2 s passes any read timeout; without a chunk for stall_seconds the download ends."""
    started = time.monotonic()
    with requests.get(f"{server}/drip", stream=True, timeout=10) as response:
        with pytest.raises(IncompleteDownloadError, match="stalled") as error:
            stream_to_file(response, tmp_path, "fallback.zip", chunk_bytes=1024, stall_seconds=1)
    assert error.value.retryable and error.value.code == "INCOMPLETE_DOWNLOAD"
    assert time.monotonic() - started < 10, "the stall was not cut off"
    assert list(tmp_path.iterdir()) == []


def test_a_body_announced_larger_than_the_cap_is_refused_before_anything_is_written(
    server: str, tmp_path: Path
) -> None:
    with requests.get(f"{server}/zip", stream=True, timeout=10) as response:
        with pytest.raises(DownloadTooLargeError, match=f"Content-Length is {len(ZIP)} bytes, more than the cap of "
                           f"{len(ZIP) - 1} bytes .*max_download_bytes") as error:
            stream_to_file(response, tmp_path / "out", "fallback.zip", max_bytes=len(ZIP) - 1)
    assert not error.value.retryable and error.value.code == "DOWNLOAD_TOO_LARGE"
    assert not (tmp_path / "out").exists()


def test_a_body_without_content_length_is_cut_off_at_the_cap_and_removed(server: str, tmp_path: Path) -> None:
    """A server that never says how long the body is: the bytes actually received are counted."""
    cap = 3 * len(ZIP)
    with requests.get(f"{server}/no-length", stream=True, timeout=10) as response:
        assert "Content-Length" not in response.headers
        with pytest.raises(DownloadTooLargeError, match=f"the body passed [0-9]+ bytes, more than the cap of {cap}"):
            stream_to_file(response, tmp_path, "fallback.zip", chunk_bytes=1024, max_bytes=cap)
    assert list(tmp_path.iterdir()) == []


def test_the_download_cap_is_a_connection_extra_with_a_generous_default() -> None:
    def config(**extra: object) -> ZohoConnectionConfig:
        conn = Connection(conn_id="zoho_cap", conn_type="http", login="1000.X", password="secret",
                          extra=json.dumps({"refresh_token": "1000.r.t", **extra}))
        return ZohoConnectionConfig.from_connection(conn)

    assert config().max_download_bytes == DEFAULT_MAX_DOWNLOAD_BYTES == 2 * 2**30
    assert config(max_download_bytes="5000000000").max_download_bytes == 5_000_000_000
    with pytest.raises(ZohoConfigError, match="extra max_download_bytes must be a positive number, not 'lots'"):
        config(max_download_bytes="lots")
