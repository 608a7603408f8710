"""The shared OAuth token cache: one token request per lifetime across processes, recovery after rejection.

Bound proven here: per cache dir and credentials, at most one token request per token lifetime, plus one per
INVALID_TOKEN/AUTHENTICATION_FAILURE rejection of the current token (compare-and-invalidate).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import time
import urllib.request
from pathlib import Path

import pytest
from airflow.sdk._shared.secrets_masker import redact

from tests.hooks.token_worker import run_workers
from tests.hooks.zoho_conn import CLIENT_SECRET, REFRESH_TOKEN, assert_no_secret
from tests.local_http import QuietHandler, serving
from tests.simulator_fixtures import start_simulator
from zoho_crm.api.errors import ZohoError
from zoho_crm.api.query import build_bulk_read_body
from zoho_crm.hooks.token_cache import AccessToken, FileTokenStore, TokenCache, _Memory
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

FAST = {"retry_attempts": 2, "retry_min_wait": 0.01, "retry_max_wait": 0.05}
UNKNOWN_JOB = "5725767000009999999"


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)
    return value


def token_requests(sim) -> int:
    return len(sim.requests("token"))


def new_job(sim, monkeypatch, tmp_path: Path) -> str:
    """Create a job with a separate cache dir (its token request is counted separately)."""
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "setup-cache"))
    return ZohoCRMHook().create_bulk_read_job(build_bulk_read_body("Leads"))["id"]


def test_eight_processes_three_calls_each_make_one_token_request(sim, monkeypatch, tmp_path):
    job_id = new_job(sim, monkeypatch, tmp_path)
    before = token_requests(sim)
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "shared-cache"))
    results = run_workers(job_id, 8, 3)
    assert [r.get("error") for r in results] == [None] * 8
    assert len({r["pid"] for r in results}) == 8 and all(len(r["states"]) == 3 for r in results)
    assert token_requests(sim) - before == 1
    assert len(sim.requests("details")) == 24


def test_rejected_token_is_refreshed_once_for_all_processes(sim, monkeypatch, tmp_path):
    job_id = new_job(sim, monkeypatch, tmp_path)
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "shared-cache"))
    before = token_requests(sim)
    results = run_workers(job_id, 4, 1, token_first=True, before_go=sim.revoke_tokens)
    assert [r.get("error") for r in results] == [None] * 4
    assert token_requests(sim) - before == 2, "one token for the start, one after the revocation"
    rejected = [r for r in sim.requests("details") if r["status"] == 401]
    assert 1 <= len(rejected) <= 4 and len(sim.requests("details")) == 4 + len(rejected)


def test_threads_in_one_process_share_one_token(zoho_conn):
    async def many() -> set[str]:
        return set(await asyncio.gather(*(ZohoCRMHook().aget_access_token() for _ in range(10))))

    sync_tokens = {ZohoCRMHook().get_access_token() for _ in range(3)}
    assert sync_tokens | asyncio.run(many()) == sync_tokens
    assert token_requests(zoho_conn) == 1


def test_async_refresh_from_a_cold_cache_is_single(sim, monkeypatch, tmp_path):
    monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache"))

    async def cold() -> set[str]:
        cache_dir = tmp_path / "cache"
        hooks = [ZohoCRMHook() for _ in range(6)]
        tokens = await asyncio.gather(*(h.aget_access_token() for h in hooks))
        assert cache_dir.is_dir()
        return set(tokens)

    assert len(asyncio.run(cold())) == 1
    assert token_requests(sim) == 1


def test_expired_token_is_refreshed_before_use(monkeypatch, tmp_path):
    with start_simulator(token_lifetime=2) as sim:
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache"))
        hook = ZohoCRMHook()
        job_id = hook.create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
        first = hook.get_access_token()
        cached = TokenCache(FileTokenStore(tmp_path / "cache"), accounts_url=sim.url,
                            client_id="1000.SIMULATOR", client_secret=CLIENT_SECRET,
                            refresh_token=REFRESH_TOKEN)._read()
        assert cached is not None and cached.expires_at - cached.issued_at == pytest.approx(2)
        wait_for(lambda: not cached.is_fresh(), what="token past its reuse margin")
        assert hook.get_bulk_read_job(job_id)["id"] == job_id
        assert hook.get_access_token() != first
        assert token_requests(sim) == 2
        assert all(r["status"] != 401 for r in sim.requests()), "a token is refreshed before it expires"


def test_unknown_token_in_cache_gets_invalid_token_then_recovers(zoho_conn, tmp_path):
    cache = TokenCache(FileTokenStore(tmp_path / "token-cache"), accounts_url=zoho_conn.url,
                       client_id="1000.SIMULATOR", client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
    now = time.time()
    cache.get(lambda: AccessToken("1000.forged.token", now, now + 3600, zoho_conn.url))
    hook = ZohoCRMHook()
    job = hook.create_bulk_read_job(build_bulk_read_body("Leads"))
    assert job["state"] == "ADDED"
    statuses = [r["status"] for r in zoho_conn.requests("create")]
    assert statuses == [401, 201]
    assert token_requests(zoho_conn) == 1
    assert hook.get_access_token() != "1000.forged.token"


def test_revoked_token_recovery_async(zoho_conn):
    hook = ZohoCRMHook()
    job_id = hook.create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
    zoho_conn.revoke_tokens()
    details = asyncio.run(ZohoCRMHook().aget_bulk_read_job(job_id))
    assert details["id"] == job_id
    assert [r["status"] for r in zoho_conn.requests("details")] == [401, 200]
    assert token_requests(zoho_conn) == 2


def test_second_rejection_is_not_retried_again(zoho_conn):
    """Refresh once, retry once: a token rejected twice in one call fails instead of looping."""
    hook = ZohoCRMHook()
    job_id = hook.create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
    zoho_conn.set_faults(token_lifetime=0)  # every new token is already expired
    zoho_conn.revoke_tokens()
    from zoho_crm.api.errors import ZohoAuthError

    with pytest.raises(ZohoAuthError) as caught:
        hook.get_bulk_read_job(job_id)
    assert caught.value.is_token_rejected
    assert [r["status"] for r in zoho_conn.requests("details")] == [401, 401]
    assert_no_secret(str(caught.value), zoho_conn)


def test_cache_file_is_encrypted_private_and_compare_and_invalidate(zoho_conn, tmp_path):
    token = ZohoCRMHook().get_access_token()
    files = list((tmp_path / "token-cache").glob("*.token"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    text = files[0].read_text()
    assert_no_secret(text, zoho_conn)
    assert zoho_conn.url not in text and "expires_at" not in text, "the whole entry is sealed, metadata included"
    assert not list((tmp_path / "token-cache").glob(".*.tmp")), "no temporary files left behind"
    cache = TokenCache(FileTokenStore(tmp_path / "token-cache"), accounts_url=zoho_conn.url,
                       client_id="1000.SIMULATOR", client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
    cache.invalidate("some-older-token")
    assert cache._read().token == token, "another token's rejection must not drop the current one"
    cache.invalidate(token)
    assert cache._read() is None
    other = TokenCache(FileTokenStore(tmp_path / "token-cache"), accounts_url=zoho_conn.url,
                       client_id="1000.SIMULATOR", client_secret="another-secret", refresh_token=REFRESH_TOKEN)
    now = time.time()
    cache.get(lambda: AccessToken("tok-1", now, now + 3600))
    assert other._read() is None, "a file written under other credentials cannot be decrypted"


def test_token_is_registered_with_the_secret_masker(zoho_conn):
    token = ZohoCRMHook().get_access_token()
    assert token not in str(redact(f"Authorization: Zoho-oauthtoken {token}"))
    assert CLIENT_SECRET not in str(redact(f"secret={CLIENT_SECRET}"))


def test_reuse_margin_and_old_expires_in_form():
    assert AccessToken("t", 0, 5).valid_until == pytest.approx(4.5)
    assert AccessToken("t", 0, 3600).valid_until == pytest.approx(3540)
    old = ZohoCRMHook()._access_token_from(
        200, {"access_token": "t", "expires_in": 3600000, "expires_in_sec": 3600, "api_domain": "https://www.zohoapis.eu"},
        100.0,
    )
    assert (old.expires_at, old.api_domain) == (3700.0, "https://www.zohoapis.eu")
    new = ZohoCRMHook()._access_token_from(200, {"access_token": "t", "expires_in": 3600}, 100.0)
    assert (new.expires_at, new.api_domain) == (3700.0, None)


class _LosingAccountsHost(QuietHandler):
    """An accounts host in front of the simulator that is slow and loses every answer: the simulator issues the
    token (and counts it), the client gets HTTP 502 -- the case where retries multiply Zoho's token count."""

    target = ""
    delay = 0.2

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay)
        request = urllib.request.Request(self.target + self.path, data=body, method="POST")
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b"Bad Gateway")


def assert_one_failed_refresh_for_all(sim, results: list[dict], before: int) -> None:
    """Every worker failed with a transient error on the failure marker, naming no secret, after one retried
    refresh sequence in all (3 token requests since ``before``) and no job call.

    :param sim: the simulator.
    :param results: the workers' results (:func:`~tests.hooks.token_worker.run_workers`).
    :param before: the simulator's token request count before the workers ran.
    """
    errors = [r.get("error") or "" for r in results]
    assert all("ZohoTransientError" in e for e in errors), errors
    assert all("no process asks again" in e for e in errors), "every process ended on the failure marker"
    assert token_requests(sim) - before == 3
    assert not sim.requests("details")
    for text in errors:
        assert_no_secret(text, sim)


def test_waiters_do_not_repeat_a_failed_retried_refresh(sim, monkeypatch, tmp_path):
    """Four processes behind a slow, failing accounts host: one retried refresh sequence in all (3 requests), not
    one per process and per outer retry (4 x 3 x 3); every process fails with a transient error naming no secret."""
    job_id = new_job(sim, monkeypatch, tmp_path)
    before = token_requests(sim)
    _LosingAccountsHost.target = sim.url
    with serving(_LosingAccountsHost) as accounts:
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "shared-cache",
                                        accounts_url=accounts))
        results = run_workers(job_id, 4, 1, hook_kwargs={"retry_attempts": 3, "retry_max_wait": 0.2})
    assert_one_failed_refresh_for_all(sim, results, before)


class _TokenCatcher(QuietHandler):
    """A host an attacker would like the next ``Authorization: Zoho-oauthtoken`` header to go to."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        type(self).seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET  # noqa: N815 - http.server naming


def forge(path: Path, api_domain: str) -> None:
    """What someone who can write the cache volume (but has no secret) can do: keep the sealed token, set the host.

    Old entries kept the token sealed and the rest in clear JSON; sealed whole entries give no token to lift.
    """
    text = path.read_text()
    try:
        sealed_token = json.loads(text)["token"]
    except ValueError:
        sealed_token = text
    now = time.time()
    path.write_text(json.dumps({"token": sealed_token, "issued_at": now, "expires_at": now + 3600,
                                "api_domain": api_domain}))


def forget_memory() -> None:
    """What a fresh process sees: no in-process copy of the token, only the shared file."""
    with _Memory.lock:
        _Memory.tokens.clear()


def test_a_tampered_cache_entry_is_ignored_and_never_redirects_the_token(sim, monkeypatch, tmp_path, caplog):
    _TokenCatcher.seen = []
    with serving(_TokenCatcher) as attacker, caplog.at_level("WARNING"):
        # Production without an api_domain override: a cached api_domain would pick the host.
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache"))
        ZohoCRMHook(**FAST).get_access_token()
        [entry] = (tmp_path / "cache").glob("*.token")
        forge(entry, attacker)
        forget_memory()
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache", api_domain=None))
        with pytest.raises(ZohoError):
            ZohoCRMHook(**FAST).get_bulk_read_job(UNKNOWN_JOB)  # refreshes; the simulator's host is not Zoho's
        assert _TokenCatcher.seen == [], "the access token went to the host written into the cache"
        assert token_requests(sim) == 2, "the tampered entry was treated as absent"
        # With the override (the simulator): the tampered entry is refreshed and the calls go through.
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache-2"))
        ZohoCRMHook(**FAST).get_access_token()
        [entry] = (tmp_path / "cache-2").glob("*.token")
        forge(entry, attacker)
        forget_memory()
        job_id = ZohoCRMHook(**FAST).create_bulk_read_job(build_bulk_read_body("Leads"))["id"]
        assert ZohoCRMHook(**FAST).get_bulk_read_job(job_id)["id"] == job_id
        assert _TokenCatcher.seen == [] and token_requests(sim) == 4, "refreshed instead of trusting the entry"
    warnings = [r.getMessage() for r in caplog.records if "does not authenticate" in r.getMessage()]
    assert len(warnings) == 2, "a warning says each tampered entry was refused"
    for text in warnings:
        assert_no_secret(text, sim)
