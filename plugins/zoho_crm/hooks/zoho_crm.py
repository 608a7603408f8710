"""ZohoCRMHook: OAuth (shared token cache), Bulk Read jobs, field metadata and the result download.

Sync calls go through the HTTP provider's ``HttpHook`` (``airflow_compat.BaseUrlHttpHook``: bound to a Zoho host,
never sending the connection's credentials as basic auth or headers) with ``tenacity`` retries; async calls (the
trigger) use aiohttp. The download streams through :mod:`zoho_crm.hooks.download`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
import requests
import tenacity
import urllib3
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from zoho_crm.airflow_compat import BaseUrlHttpHook
from zoho_crm.api.errors import (
    ZohoAuthError,
    ZohoConfigError,
    ZohoError,
    ZohoRequestError,
    ZohoScopeError,
    ZohoTransientError,
    error_from_response,
    redact,
    valid_job_id,
)
from zoho_crm.api.modules import FIELDS_READ_SCOPE
from zoho_crm.hooks.connection import CONN_TYPE, ZOHO_API_HOSTS, ZohoConnectionConfig
from zoho_crm.hooks.download import DownloadedFile, stream_to_file
from zoho_crm.hooks.token_cache import AccessToken, TokenCache
from zoho_crm.rate_limit.ledger import DownloadLedger

T = TypeVar("T")
ERROR_BODY_BYTES = 64 * 1024
"""How much of a download's error answer is read: Zoho's are a few hundred bytes; a hostile one may be huge."""
TEST_TIMEOUT_SECONDS = 15.0
"""Timeout of each request of :meth:`ZohoCRMHook.test_connection` (one attempt each: a person waits for it)."""
TEST_MODULE = "Leads"
"""The module whose field metadata :meth:`ZohoCRMHook.test_connection` reads (every org has Leads)."""
DELETED_TYPES = ("all", "recycle", "permanent")
DELETED_PER_PAGE_MAX = 200
"""Entries per page of Zoho's Deleted Records API at most."""


def _decode(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _decode_bounded(response: requests.Response, limit: int = ERROR_BODY_BYTES) -> Any:
    """The first ``limit`` bytes of a streamed (error) answer, decoded as JSON if they parse, else as text."""
    data = response.raw.read(limit, decode_content=True)
    try:
        text = data.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset
        text = data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _is_json(content_type: str | None) -> bool:
    return "json" in (content_type or "").lower()


class ZohoCRMHook(BaseHook):
    """Talk to Zoho CRM's Bulk Read API with the ``zoho_crm_default`` connection.

    Connection: login = client id, password = client secret; extras refresh_token, data_center (us eu in au jp cn
    ca sa), environment (production sandbox developer), api_version (v8), optional api_domain / accounts_url
    overrides, download_limit, download_window_seconds, token_cache_dir. Conn type ``zoho_crm`` (this provider's
    form, see ``zoho_crm.get_provider_info``), or ``http`` with the same extras typed as JSON.

    ``use_token_cache=False``: access tokens live in this hook object only, no file is read or written (the
    connection test uses it, so it neither needs nor changes the deployment's shared cache).

    Retries (all calls except :meth:`open_download` and :meth:`download_to_file`): 429, 5xx, connection errors and
    timeouts with exponential backoff (``retry_attempts``, ``retry_min_wait``..``retry_max_wait`` seconds). A 401
    INVALID_TOKEN / AUTHENTICATION_FAILURE invalidates the token, refreshes once and retries once. Other errors
    raise at once.
    """

    conn_name_attr = "zoho_conn_id"
    default_conn_name = "zoho_crm_default"
    conn_type = CONN_TYPE
    hook_name = "Zoho CRM"

    def __init__(
        self,
        zoho_conn_id: str = default_conn_name,
        *,
        retry_attempts: int = 5,
        retry_min_wait: float = 1.0,
        retry_max_wait: float = 30.0,
        timeout: float = 60.0,
        use_token_cache: bool = True,
    ) -> None:
        super().__init__()
        self.zoho_conn_id = zoho_conn_id
        self.retry_attempts = retry_attempts
        self.retry_min_wait = retry_min_wait
        self.retry_max_wait = retry_max_wait
        self.timeout = timeout
        self.use_token_cache = use_token_cache
        self._config: ZohoConnectionConfig | None = None
        self._own_token: AccessToken | None = None

    # -- configuration -------------------------------------------------------------------------------------
    @staticmethod
    def _loaded(config: ZohoConnectionConfig) -> ZohoConnectionConfig:
        mask_secret(config.client_secret)
        mask_secret(config.refresh_token)
        return config

    @property
    def config(self) -> ZohoConnectionConfig:
        """The parsed connection (read once per hook)."""
        if self._config is None:
            self._config = self._loaded(
                ZohoConnectionConfig.from_connection(self.get_connection(self.zoho_conn_id))
            )
        return self._config

    async def aget_config(self) -> ZohoConnectionConfig:
        """Async :attr:`config` (no sync connection read on the event loop)."""
        if self._config is None:
            conn = await self.aget_connection(self.zoho_conn_id)
            self._config = self._loaded(ZohoConnectionConfig.from_connection(conn))
        return self._config

    def _token_cache(self, config: ZohoConnectionConfig) -> TokenCache:
        from zoho_crm.hooks.shared_state import token_cache  # the connection picks the backend

        return token_cache(config)

    def download_ledger(self, margin: float) -> DownloadLedger:
        """The ledger of recent download requests made with this connection's credentials (see download_ledger)."""
        from zoho_crm.hooks.shared_state import download_ledger  # the connection picks the backend

        return download_ledger(self.config, margin=margin, unfinished_grace=self.timeout)

    def _retrying(self) -> dict[str, Any]:
        return {
            "retry": tenacity.retry_if_exception(lambda exc: isinstance(exc, ZohoError) and exc.retryable),
            "stop": tenacity.stop_after_attempt(self.retry_attempts),
            "wait": tenacity.wait_exponential(multiplier=self.retry_min_wait, max=self.retry_max_wait),
            "before_sleep": lambda state: self.log.warning(
                "Zoho call failed (attempt %d of %d), retrying: %s",
                state.attempt_number,
                self.retry_attempts,
                state.outcome.exception() if state.outcome else "",
            ),
            "reraise": True,
        }

    def _with_retries(self, call: Callable[[], T]) -> T:
        return tenacity.Retrying(**self._retrying())(call)

    async def _awith_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        return await tenacity.AsyncRetrying(**self._retrying())(call)

    # -- OAuth ---------------------------------------------------------------------------------------------
    @staticmethod
    def _token_form(config: ZohoConnectionConfig) -> dict[str, str]:
        return {
            "refresh_token": config.refresh_token,
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "grant_type": "refresh_token",
        }

    def _secrets(self, *tokens: str) -> tuple[str, ...]:
        """What an echoing answer must not carry into an error message: credentials and the tokens sent."""
        config = self._config
        return (*((config.client_secret, config.refresh_token) if config else ()), *tokens)

    def _access_token_from(self, status: int, answer: Any, requested_at: float) -> AccessToken:
        accounts = self._config.accounts_url if self._config else "the accounts server"
        if status < 500 and not isinstance(answer, dict):
            raise ZohoRequestError(
                f"the token endpoint of {accounts} answered HTTP {status} with something that is not Zoho's JSON "
                f"({redact(str(answer), self._secrets())[:120]!r})",
                code="UNEXPECTED_ANSWER",
                http_status=status,
                resolution="Check the connection's data_center or accounts_url points at Zoho's accounts server "
                "(not a proxy or login page).",
            )
        if status != 200 or "error" in answer or not answer.get("access_token"):
            raise error_from_response(status, answer, secrets=self._secrets())
        token = str(answer["access_token"])
        mask_secret(token)
        try:
            lifetime = float(answer.get("expires_in_sec") or answer.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 0.0
        if not 0 < lifetime < float("inf"):
            raise ZohoRequestError(
                f"the token endpoint of {accounts} gave a token with an unusable lifetime "
                f"(expires_in {redact(answer.get('expires_in_sec', answer.get('expires_in')))!r})",
                code="UNEXPECTED_ANSWER",
                http_status=status,
                resolution="Check the connection's accounts_url points at Zoho's accounts server.",
            )
        domain = self._trusted_api_domain(answer.get("api_domain"), accounts)
        return AccessToken(token=token, issued_at=requested_at, expires_at=requested_at + lifetime, api_domain=domain)

    def _trusted_api_domain(self, domain: Any, accounts: str) -> str | None:
        """The token answer's api_domain if it is an http(s) URL of a trusted host (a Zoho API host, or the host of
        the connection's api_domain override); an untrusted one raises when it would pick the API host."""
        if not (isinstance(domain, str) and domain.startswith(("http://", "https://"))):
            return None
        config = self._config
        trusted = config.trusts_api_domain(domain) if config else domain.rstrip("/") in ZOHO_API_HOSTS
        if trusted:
            return domain.rstrip("/")
        if config is None or config.uses_token_api_domain:
            raise ZohoConfigError(
                f"the token endpoint of {accounts} answered api_domain {redact(domain, self._secrets())[:120]!r}, "
                "which is not a Zoho API host (https://www|sandbox|developer.zohoapis.<data centre>) nor the host of "
                "the connection's api_domain extra: refusing to send the access token there",
                code="UNTRUSTED_API_DOMAIN",
                resolution="Check accounts_url points at Zoho's accounts server; to call another host on purpose "
                "(a proxy, the simulator), set the api_domain extra.",
            )
        self.log.info("Ignoring the token answer's api_domain: not a Zoho API host (the connection's api_domain "
                      "extra or environment picks the host)")
        return None

    def _fetch_token(self) -> AccessToken:
        config = self.config

        def attempt() -> AccessToken:
            requested_at = time.time()
            http = BaseUrlHttpHook(config.accounts_url, "POST", self.zoho_conn_id)
            try:
                response = http.run(
                    "/oauth/v2/token",
                    data=self._token_form(config),
                    extra_options={"check_response": False, "timeout": self.timeout},
                )
            except requests.RequestException as exc:
                raise self._connection_error(exc, config.token_url) from None
            return self._access_token_from(response.status_code, _decode(response), requested_at)

        self.log.info("Requesting a Zoho access token from %s", config.token_url)
        return self._with_retries(attempt)

    async def _afetch_token(self) -> AccessToken:
        config = await self.aget_config()

        async def attempt() -> AccessToken:
            requested_at = time.time()
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                    async with session.post(config.token_url, data=self._token_form(config)) as response:
                        answer = await self._aread(response)
                        return self._access_token_from(response.status, answer, requested_at)
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self._connection_error(exc, config.token_url) from None

        self.log.info("Requesting a Zoho access token from %s", config.token_url)
        return await self._awith_retries(attempt)

    def _token(self) -> AccessToken:
        if not self.use_token_cache:
            if self._own_token is None or not self._own_token.is_fresh():
                self._own_token = self._fetch_token()
            return self._own_token
        return self._token_cache(self.config).get(self._fetch_token)

    async def _atoken(self) -> AccessToken:
        if not self.use_token_cache:
            if self._own_token is None or not self._own_token.is_fresh():
                self._own_token = await self._afetch_token()
            return self._own_token
        return await self._token_cache(await self.aget_config()).aget(self._afetch_token)

    def get_access_token(self) -> str:
        """A valid access token from the shared cache (refreshed under the cache lock when needed)."""
        return self._token().token

    def get_token(self) -> AccessToken:
        """Like :meth:`get_access_token`, with its lifetime and api_domain (for :meth:`open_download`)."""
        return self._token()

    async def aget_access_token(self) -> str:
        """Async :meth:`get_access_token`."""
        return (await self._atoken()).token

    def _forget_own_token(self, token: str) -> bool:
        """Without the cache: drop the hook's own token if it is ``token``; True when there is no cache."""
        if self.use_token_cache:
            return False
        if self._own_token is not None and self._own_token.token == token:
            self._own_token = None
        return True

    def invalidate_token(self, token: str) -> None:
        """Drop ``token`` from the shared cache, only if the cache still holds that token."""
        if not self._forget_own_token(token):
            self._token_cache(self.config).invalidate(token)

    async def ainvalidate_token(self, token: str) -> None:
        """Async :meth:`invalidate_token`."""
        if not self._forget_own_token(token):
            await self._token_cache(await self.aget_config()).ainvalidate(token)

    # -- the UI's Test button ------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check the connection as Airflow's Test button (and ``airflow connections test``) does: refresh an access
        token and read the field metadata of Leads (one cheap GET), each once, with a short timeout.

        The token is fresh and kept in memory only: the deployment's token cache is neither read nor written
        (the api-server tests under a temporary connection id, maybe with credentials not yet saved). Returns
        ``(ok, message)``; the message names the problem as far as Zoho's answer tells it, never a secret.
        """
        probe = ZohoCRMHook(
            self.zoho_conn_id, retry_attempts=1, timeout=min(self.timeout, TEST_TIMEOUT_SECONDS),
            use_token_cache=False,
        )
        try:
            config = probe.config
        except ZohoConfigError as err:
            return False, f"The connection is incomplete: {err.details.get('problem') or err.message}."
        secrets = (config.client_secret, config.refresh_token)
        try:
            token = probe._token()
        except ZohoError as err:
            return False, redact(self._token_problem(err, config), secrets)
        base = config.api_base(token.api_domain)
        try:
            fields = probe.get_field_metadata(TEST_MODULE)
        except ZohoScopeError:
            return True, redact(
                f"Zoho accepted the credentials ({config.accounts_url} issued an access token), but the refresh "
                f"token lacks the scope ZohoCRM.settings.fields.READ, so {base} could not be read: exports work "
                "with ZohoCRM.bulk.read and the modules' READ scopes, without CSV type checks.",
                (*secrets, token.token),
            )
        except ZohoError as err:
            return False, redact(
                f"Zoho accepted the credentials ({config.accounts_url} issued an access token), but reading the "
                f"{TEST_MODULE} fields from {base} failed: {err}. Check the Environment, the API version and the "
                "API host override.",
                (*secrets, token.token),
            )
        return True, (
            f"Connected to Zoho CRM: {config.accounts_url} issued an access token for client {config.client_id} "
            f"(data centre {config.data_center}, {config.environment}), and {base} answered with the "
            f"{len(fields)} fields of {TEST_MODULE} (API {config.api_version})."
        )

    @staticmethod
    def _token_problem(err: ZohoError, config: ZohoConnectionConfig) -> str:
        """What a failed token refresh means for the person filling in the form."""
        accounts = config.accounts_url
        override = config.accounts_url_override is not None
        where = "the Accounts host override" if override else f"data centre {config.data_center!r}"
        if err.code == "invalid_client":
            return (
                f"Zoho refused the client (invalid_client) at {accounts}: either the Client ID or the Client Secret "
                f"is wrong, or the client was created in another data centre than the one asked ({where}, "
                f"{accounts}) -- Zoho knows a client only in its own data centre. Check Client ID, Client Secret "
                f"and Data centre{' (and the Accounts host override)' if override else ''}."
            )
        if err.code == "invalid_code":
            return (
                f"Zoho refused the refresh token (invalid_code) at {accounts}: it is wrong, revoked, or was "
                "generated for another client or data centre. Generate a new refresh token for this client and "
                "put it in the Refresh token field."
            )
        if err.code == "Access Denied":
            return (
                f"Zoho is throttling token requests for this refresh token (Access Denied at {accounts}: at most "
                "10 per 10 minutes). The credentials may be right: wait up to 10 minutes and test again."
            )
        if err.code == "CONNECTION":
            return (
                f"Could not reach Zoho's accounts server {accounts} ({err.details.get('error') or err.message}). "
                "Check the Data centre (or the Accounts host override) and that the Airflow api-server can reach it."
            )
        if isinstance(err, ZohoTransientError):
            return (
                f"Zoho's accounts server {accounts} failed the token request: {err}. The credentials were not "
                "checked: test again later."
            )
        return f"The token request to {config.token_url} failed: {err}"

    # -- sync calls ----------------------------------------------------------------------------------------
    @staticmethod
    def _connection_error(exc: BaseException, url: str) -> ZohoTransientError:
        return ZohoTransientError(
            f"{type(exc).__name__} while calling {url}",
            code="CONNECTION",
            details={"error": type(exc).__name__},
        )

    @staticmethod
    def _auth_headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Zoho-oauthtoken {token}"}

    def _send(
        self,
        method: str,
        path: str,
        token: AccessToken,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        module: str | None = None,
        scopes: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One request; its decoded answer (None for HTTP 204, "nothing"), or the matching ZohoError."""
        base = self.config.api_base(token.api_domain)
        http = BaseUrlHttpHook(base, method, self.zoho_conn_id)
        kwargs: dict[str, Any] = {"json": json_body} if json_body is not None else {}
        try:
            response = http.run(
                path,
                data=params,
                headers={**self._auth_headers(token.token), **(headers or {})},
                extra_options={"check_response": False, "timeout": self.timeout},
                **kwargs,
            )
        except requests.RequestException as exc:
            raise self._connection_error(exc, base + path) from None
        if response.status_code == 204:
            return None
        answer = _decode(response)
        if response.status_code >= 300:
            raise error_from_response(
                response.status_code, answer, module=module, scopes=scopes, secrets=self._secrets(token.token)
            )
        return answer

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        refreshed = False

        def attempt() -> Any:
            nonlocal refreshed
            token = self._token()
            try:
                return self._send(method, path, token, **kwargs)
            except ZohoAuthError as err:
                if not err.is_token_rejected or refreshed:
                    raise
                refreshed = True
                self.log.warning("Zoho rejected the access token (%s): refreshing once and retrying", err.code)
                self.invalidate_token(token.token)
                return self._send(method, path, self._token(), **kwargs)

        return self._with_retries(attempt)

    @staticmethod
    def _first(answer: Any, what: str) -> dict:
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise ZohoTransientError(f"Unexpected answer for {what}: no data[0]", code="UNEXPECTED_ANSWER")
        return data[0]

    def create_bulk_read_job(self, body: dict) -> dict:
        """POST a Bulk Read job; return its ``details`` (id, state, operation, created_by, created_time)."""
        module = (body.get("query") or {}).get("module", {}).get("api_name")
        answer = self._call("POST", self.config.bulk_read_path(), json_body=body, module=module)
        first = self._first(answer, "create bulk read job")
        if first.get("status") == "error":
            raise error_from_response(400, first, module=module, secrets=self._secrets())
        details = dict(first["details"]) if isinstance(first.get("details"), dict) else {}
        details["id"] = valid_job_id(details.get("id"), "the job id of Zoho's create answer (data[0].details.id)")
        self.log.info("Created Zoho bulk read job %s for %s (state %s)", details.get("id"), module, details.get("state"))
        return details

    @classmethod
    def _job_details(cls, answer: Any, job_id: str) -> dict:
        details = dict(cls._first(answer, f"job {job_id}"))
        details["id"] = valid_job_id(details.get("id"), "the job id of Zoho's job details answer (data[0].id)")
        return details

    def get_bulk_read_job(self, job_id: str) -> dict:
        """The job's details (``data[0]``: id, state, result, query, file_type ...); ids are checked to be digits."""
        job_id = valid_job_id(job_id, "job_id")
        return self._job_details(self._call("GET", self.config.bulk_read_path(job_id)), job_id)

    def get_field_metadata(self, module: str) -> list[dict]:
        """The module's fields (``GET /crm/{v}/settings/fields?module=...``)."""
        answer = self._call(
            "GET", self.config.fields_path(), params={"module": module}, module=module, scopes=[FIELDS_READ_SCOPE]
        )
        fields = answer.get("fields") if isinstance(answer, dict) else None
        if not isinstance(fields, list):
            raise ZohoTransientError(f"Unexpected field metadata answer for {module}", code="UNEXPECTED_ANSWER")
        return fields

    def get_deleted_records(
        self, module: str, *, since: datetime | None, type: str = "all", per_page: int = DELETED_PER_PAGE_MAX
    ) -> list[dict]:
        """The module's deleted records (``GET /crm/{v}/{module}/deleted``), every page in one pass.

        These calls cost API credits: call this once per sync. Each page is one call with the usual token refresh
        and retries; HTTP 204 (nothing deleted) is an empty list.

        :param module: the module API name (e.g. ``Leads``).
        :param since: only deletions after this moment (``If-Modified-Since``, timezone-aware); None: all.
        :param type: ``all``, ``recycle`` (still in the recycle bin) or ``permanent``.
        :param per_page: entries per page, 1 to 200.
        :raises ValueError: a bad argument (naming it and what is allowed).
        """
        if type not in DELETED_TYPES:
            raise ValueError(f"type {type!r} is not one of {', '.join(DELETED_TYPES)}")
        if not isinstance(per_page, int) or not 1 <= per_page <= DELETED_PER_PAGE_MAX:
            raise ValueError(f"per_page must be an integer from 1 to {DELETED_PER_PAGE_MAX}, got {per_page!r}")
        if since is not None and (not isinstance(since, datetime) or since.utcoffset() is None):
            raise ValueError(f"since must be a timezone-aware datetime (or None for every deletion), got {since!r}")
        path = f"/crm/{self.config.api_version}/{urllib.parse.quote(module, safe='')}/deleted"
        headers = {} if since is None else {"If-Modified-Since": since.isoformat(timespec="seconds")}
        scopes = [f"ZohoCRM.modules.{module.lower()}.READ"]

        entries: list[dict] = []
        page = 1
        while True:
            answer = self._call(
                "GET", path, params={"type": type, "page": page, "per_page": per_page}, module=module,
                scopes=scopes, headers=headers,
            )
            if answer is None:
                break
            data = answer.get("data") if isinstance(answer, dict) else None
            info = answer.get("info") if isinstance(answer, dict) else None
            if not isinstance(data, list) or not isinstance(info, dict):
                raise ZohoTransientError(f"Unexpected deleted records answer for {module} (page {page})",
                                         code="UNEXPECTED_ANSWER")
            entries += [entry for entry in data if isinstance(entry, dict)]
            if not info.get("more_records") or not data:
                break
            page += 1
        self.log.info("Read %d deleted %s records since %s in %d call(s)", len(entries), module, since or "ever", page)
        return entries

    @contextmanager
    def open_download(self, job_id: str, token: AccessToken | None = None) -> Iterator[requests.Response]:
        """ONE streamed GET of the job's result zip: no retries, no redirects; the caller enforces the rate limit.

        ``token``: the one to send (a caller that reserved a place in the download ledger passes the token it got
        before reserving, so no refresh happens between the reservation and the request); else one from the cache.
        The body is asked for as is (``Accept-Encoding: identity``),
        so Content-Length counts the bytes saved. A JSON/error answer raises the matching ZohoError (at most
        ``ERROR_BODY_BYTES`` of it are read); a redirect raises ZohoRequestError (Zoho serves the file itself, and
        following one would be a second request to a rate-limited URL); connection errors raise
        ZohoTransientError. The yielded response has the Authorization header removed.
        """
        config = self.config
        job_id = valid_job_id(job_id, "job_id")
        token = token if token is not None else self._token()
        base = config.api_base(token.api_domain)
        path = config.bulk_read_path(job_id, result=True)
        http = BaseUrlHttpHook(base, "GET", self.zoho_conn_id)
        try:
            response = http.run(
                path,
                headers={**self._auth_headers(token.token), "Accept-Encoding": "identity"},
                extra_options={
                    "check_response": False, "stream": True, "timeout": self.timeout, "allow_redirects": False,
                },
            )
        except requests.RequestException as exc:
            raise self._connection_error(exc, base + path) from None
        response.request.headers.pop("Authorization", None)
        try:
            if response.is_redirect:
                target = urllib.parse.urlsplit(response.headers.get("Location", "")).netloc or "(no Location)"
                raise ZohoRequestError(
                    f"the download of job {job_id} answered HTTP {response.status_code}, a redirect to {target}, "
                    "instead of the file",
                    code="UNEXPECTED_REDIRECT",
                    http_status=response.status_code,
                    resolution="Zoho serves the file itself: check api_domain, data_center and any proxy.",
                )
            if response.status_code != 200 or _is_json(response.headers.get("Content-Type")):
                try:
                    answer = _decode_bounded(response)
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise self._connection_error(exc, base + path) from None
                raise error_from_response(response.status_code, answer, secrets=self._secrets(token.token))
            yield response
        finally:
            response.close()

    def download_to_file(
        self,
        job_id: str,
        output_dir: str | os.PathLike[str],
        *,
        token: AccessToken,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> DownloadedFile:
        """ONE request (:meth:`open_download`: no retries, no redirects) streaming the job's result zip into
        ``output_dir``, named from Content-Disposition (else ``{job_id}.zip``); the caller enforces the rate limit.

        The body is written to a temp name, hashed, checked (Content-Type, Content-Length, the connection's
        ``max_download_bytes``, a readable zip) and renamed into place; no chunk for :attr:`timeout` seconds ends
        it as a stall. Raises the ZohoError of the answer, ``DownloadTooLargeError`` (not retryable) or
        ``IncompleteDownloadError`` (transient), leaving no partial file.

        :param job_id: the completed Bulk Read job (digits only).
        :param output_dir: the directory the file goes to (created if missing).
        :param token: the access token to send (taken before any download-ledger reservation: no refresh between
            the reservation and the request it counts).
        :param log: called with progress lines.
        """
        job_id = valid_job_id(job_id, "job_id")
        with self.open_download(job_id, token=token) as response:
            return stream_to_file(
                response, output_dir, f"{job_id}.zip", log,
                stall_seconds=self.timeout, max_bytes=self.config.max_download_bytes,
            )

    # -- async calls (trigger) -----------------------------------------------------------------------------
    @staticmethod
    async def _aread(response: aiohttp.ClientResponse) -> Any:
        text = await response.text()
        try:
            return await response.json(content_type=None) if text else text
        except ValueError:
            return text

    async def _asend(self, method: str, path: str, token: AccessToken) -> Any:
        config = await self.aget_config()
        url = config.api_base(token.api_domain) + path
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.request(method, url, headers=self._auth_headers(token.token)) as response:
                    answer = await self._aread(response)
                    status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._connection_error(exc, url) from None
        if status >= 300:
            raise error_from_response(status, answer, secrets=self._secrets(token.token))
        return answer

    async def _acall(self, method: str, path: str) -> Any:
        refreshed = False

        async def attempt() -> Any:
            nonlocal refreshed
            token = await self._atoken()
            try:
                return await self._asend(method, path, token)
            except ZohoAuthError as err:
                if not err.is_token_rejected or refreshed:
                    raise
                refreshed = True
                self.log.warning("Zoho rejected the access token (%s): refreshing once and retrying", err.code)
                await self.ainvalidate_token(token.token)
                return await self._asend(method, path, await self._atoken())

        return await self._awith_retries(attempt)

    async def aget_bulk_read_job(self, job_id: str) -> dict:
        """Async :meth:`get_bulk_read_job` (aiohttp; file/lock work in threads)."""
        config = await self.aget_config()
        job_id = valid_job_id(job_id, "job_id")
        return self._job_details(await self._acall("GET", config.bulk_read_path(job_id)), job_id)
