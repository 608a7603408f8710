"""ZohoCRMHook against a hostile server (a small real HTTP server in a thread): answers no simulator of Zoho gives.

Error answers that echo the request must not carry a secret into an error message; a redirect must not become a
second download request; a huge error body must not be read whole; a token endpoint that is not Zoho's must say so.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hooks.zoho_conn import CLIENT_SECRET, REFRESH_TOKEN, assert_no_secret, connection_json
from tests.local_http import QuietHandler, serving
from zoho_crm.errors import ZohoAuthError, ZohoRequestError, ZohoTransientError
from zoho_crm.hooks.zoho_crm import ERROR_BODY_BYTES, ZohoCRMHook

ACCESS_TOKEN = "1000." + "a" * 32 + "." + "b" * 32
HUGE_BYTES = 20 * ERROR_BODY_BYTES


class _Hostile(QuietHandler):
    token_mode = "ok"
    seen: Counter[str] = Counter()

    def _answer(self, status: int, content_type: str, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        form = self.rfile.read(int(self.headers["Content-Length"]))
        mode = type(self).token_mode
        if mode == "ok":
            body = {"access_token": ACCESS_TOKEN, "expires_in": 3600, "api_domain": "ignored"}
            self._answer(200, "application/json", json.dumps(body).encode())
        elif mode == "login_page":
            self._answer(200, "text/html", b"<html><form>Sign in</form></html>")
        elif mode == "echo":
            self._answer(400, "text/plain", b"bad request: " + form)
        elif mode == "broken_json":
            self._answer(200, "application/json", f'{{"access_token": "{ACCESS_TOKEN}", "expires_in'.encode())
        elif mode == "bad_lifetime":
            self._answer(200, "application/json", json.dumps({"access_token": ACCESS_TOKEN, "expires_in": "soon"}).encode())

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        type(self).seen[self.path] += 1
        kind = self.path.split("/")[-2]
        if kind == "redirect":
            self._answer(302, "text/html", b"", Location=self.path)
        elif kind == "echo":
            self._answer(401, "text/html", f"<html>denied: {self.headers['Authorization']}</html>".encode())
        elif kind == "huge":
            self._answer(500, "application/json", b'{"code": "INTERNAL_ERROR", "pad": "' + b"x" * HUGE_BYTES + b'"}')


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(_Hostile) as url:
        yield url


@pytest.fixture
def hook(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ZohoCRMHook]:
    monkeypatch.setenv("AIRFLOW_CONN_ZOHO_CRM_DEFAULT", connection_json(server, tmp_path / "tokens"))
    _Hostile.token_mode = "ok"
    _Hostile.seen.clear()
    yield ZohoCRMHook(retry_attempts=1)


def test_a_redirected_download_is_refused_after_one_request(hook: ZohoCRMHook) -> None:
    with pytest.raises(ZohoRequestError, match="redirect") as error:
        with hook.open_download("redirect"):
            pass
    assert error.value.code == "UNEXPECTED_REDIRECT" and "api_domain" in str(error.value)
    assert _Hostile.seen == {"/crm/bulk/v8/read/redirect/result": 1}, "a redirect became a second request"


def test_an_error_page_echoing_the_token_leaks_no_secret(hook: ZohoCRMHook) -> None:
    with pytest.raises(ZohoAuthError) as error:
        with hook.open_download("echo"):
            pass
    assert "denied: Zoho-oauthtoken ***" in str(error.value)
    assert_no_secret(str(error.value), extra=[ACCESS_TOKEN])


def test_a_huge_error_body_is_not_read_whole(hook: ZohoCRMHook) -> None:
    with pytest.raises(ZohoTransientError) as error:
        with hook.open_download("huge"):
            pass
    assert len(str(error.value)) < 2 * ERROR_BODY_BYTES


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("login_page", "not Zoho's JSON"),
        ("broken_json", "not Zoho's JSON"),
        ("bad_lifetime", "unusable lifetime"),
        ("echo", "bad request"),
    ],
)
def test_a_token_endpoint_that_is_not_zohos_fails_clearly_without_leaks(
    hook: ZohoCRMHook, mode: str, expected: str
) -> None:
    _Hostile.token_mode = mode
    with pytest.raises(ZohoRequestError, match=expected) as error:
        hook.get_access_token()
    text = f"{error.value} {error.value.resolution}"
    assert_no_secret(text, extra=[ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN])
    if mode != "echo":
        assert "accounts" in text
