"""Exceptions for Zoho CRM API errors, one type per family, built from Zoho's error answers.

Every error carries Zoho's ``code``, ``message``, ``http_status``, ``details`` and a ``resolution`` (what to do).
``retryable`` says whether retrying the same call later can succeed; ``fails_fast`` says whether a task should fail
at once without burning Airflow retries. ``str(error)`` never contains a secret: it is built only from Zoho's code,
message and our resolution text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from zoho_crm.api.modules import required_scopes

REDACTED = "***"
SECRET_KEYS = frozenset({"access_token", "refresh_token", "client_secret"})
_SECRET_PATTERNS = (
    re.compile(r"(?i)(zoho-oauthtoken\s+)[^\s\"',;]+"),
    re.compile(r"(?i)(\b(?:access_token|refresh_token|client_secret)\b[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"),
    re.compile(r"()\b\d{4}\.[0-9a-f]{16,}\.[0-9a-f]{16,}\b"),
)

RESOLUTIONS: dict[str, str] = {
    "INVALID_URL_PATTERN": "The URL is wrong (API version or data-centre host): fix the connection's data_center, "
    "environment, api_version or api_domain. Do not retry.",
    "OAUTH_SCOPE_MISMATCH": "The token lacks a scope this call needs: generate a new refresh token with the scopes "
    "named here. Do not retry.",
    "INVALID_TOKEN": "The access token expired or was revoked: refresh it once and retry.",
    "AUTHENTICATION_FAILURE": "The access token expired or was revoked: refresh it once and retry.",
    "NO_PERMISSION": "The Zoho user may not read these records: grant the profile read permission. Do not retry.",
    "AUTHORIZATION_FAILED": "The Zoho user lacks the privilege for this call: grant it in Zoho. Do not retry.",
    "INVALID_REQUEST_METHOD": "Wrong HTTP method for this URL: this is a client bug. Do not retry.",
    "RESOURCE_NOT_FOUND": "Unknown bulk read job id: check the job id (jobs are kept for a limited time). "
    "Do not retry.",
    "TOO_MANY_REQUESTS": "Zoho's rate limit was hit: wait out the window (a full minute for downloads), then retry.",
    "INTERNAL_ERROR": "Transient Zoho server error: retry with backoff.",
    "INTERNAL_SERVER_ERROR": "Zoho failed the job: run the export again; if it keeps failing, narrow the query.",
    "MEDIA_TYPE_NOT_SUPPORTED": "The request lacked Content-Type: application/json: this is a client bug.",
    "INVALID_CRITERIA": "The criteria are malformed (shape, unknown field, or a date/time without offset or with "
    "milliseconds): fix the criteria.",
    "AMBIGUOUS_CRITERIA": "A criteria node has both a condition and a group: use one or the other.",
    "FIELD_COMPARATOR_IN_CRITERIA_NOT_SUPPORTED": "The comparator does not fit the field's type: choose another.",
    "GROUP_OPERATOR_NOT_SUPPORTED": "group_operator must be 'and' or 'or'.",
    "MODULE_NOT_SUPPORTED": "This module cannot be exported with Bulk Read (Notes, Attachments, Emails, related "
    "lists; ICS only for Events): choose another module or file type.",
    "CVID_NOT_SUPPORTED": "The custom view id does not belong to this module: fix cvid.",
    "PAGE_RANGE_EXCEEDED": "The page is beyond the data, or page tokens were used on an API version before v7: "
    "fix page / page_token / api_version.",
    "INVALID_CALLBACK_URL": "The callback URL is invalid: give a reachable https URL or none.",
    "INVALID_CALLBACK_METHOD": "The callback method must be 'post'.",
    "REQUEST_BODY_NOT_SUPPORTED": "The request body is not accepted (e.g. fields with ICS, no query): fix the body.",
    "INVALID_REQUEST": "Zoho refused the request (e.g. downloading a job that is not COMPLETED): wait for "
    "the job to complete first.",
    "FIELD_NOT_AVAILABLE": "A field in 'fields' does not exist in the module: check the field API names.",
    "invalid_client": "Zoho does not know this client id/secret for this data centre: fix the connection's login, "
    "password or data_center.",
    "invalid_code": "The refresh token is invalid or revoked: generate a new one and update the connection's "
    "refresh_token extra.",
    "Access Denied": "Too many access-token requests for this refresh token (Zoho allows 10 per 10 minutes): "
    "wait up to 10 minutes; make sure every process shares the token cache (token_cache_dir).",
    "CONNECTION": "Could not reach Zoho (connection error or timeout): retry later; check network and hosts.",
    "JOB_FAILED": "Zoho failed the bulk read job: run the export again; if it keeps failing, narrow the query.",
}


class ZohoError(Exception):
    """A Zoho CRM API error (base class)."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        http_status: int | None = None,
        details: dict[str, Any] | None = None,
        resolution: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details = details or {}
        self.resolution = resolution if resolution is not None else RESOLUTIONS.get(code, "")
        self.retryable = self.default_retryable if retryable is None else retryable
        super().__init__(self._text())

    @property
    def fails_fast(self) -> bool:
        """True when a task should fail at once (no Airflow retries): retrying cannot help."""
        return not self.retryable

    def _text(self) -> str:
        head = f"Zoho CRM {self.code or 'error'}"
        if self.http_status is not None:
            head += f" (HTTP {self.http_status})"
        text = f"{head}: {self.message}"
        if self.resolution:
            text += f" -- {self.resolution}"
        return text


class ZohoAuthError(ZohoError):
    """OAuth failures: invalid_client, invalid_code, Access Denied (token throttle), INVALID_TOKEN."""

    @property
    def is_token_rejected(self) -> bool:
        """True when the access token itself was rejected (refresh once and retry once)."""
        return self.code in ("INVALID_TOKEN", "AUTHENTICATION_FAILURE")

    @property
    def fails_fast(self) -> bool:
        # The token throttle ends after Zoho's 10-minute window: let Airflow's retries (with delay) handle it.
        return self.code != "Access Denied" and not self.retryable


class ZohoScopeError(ZohoError):
    """OAUTH_SCOPE_MISMATCH: the token lacks ZohoCRM.bulk.read or the module's READ scope."""


class ZohoPermissionError(ZohoError):
    """NO_PERMISSION, AUTHORIZATION_FAILED: the Zoho user may not do this."""


class ZohoConfigError(ZohoError):
    """INVALID_URL_PATTERN and connection configuration problems."""


class ZohoRequestError(ZohoError):
    """The request itself is wrong: INVALID_REQUEST_METHOD, MEDIA_TYPE_NOT_SUPPORTED, create-body 400 codes."""


class ZohoNotFoundError(ZohoError):
    """RESOURCE_NOT_FOUND: unknown bulk read job."""


class ZohoRateLimitError(ZohoError):
    """TOO_MANY_REQUESTS: wait out the rate-limit window, then retry."""

    default_retryable = True


class ZohoTransientError(ZohoError):
    """5xx answers, connection errors and timeouts: retry with backoff."""

    default_retryable = True


class ZohoJobIdError(ZohoError):
    """A bulk read job id that is not Zoho's (digits only): never put into a URL or a path. Not retryable."""


JOB_ID_PATTERN = re.compile(r"[0-9]{1,40}")
SHOWN_CHARS = 40


def valid_job_id(value: Any, field: str) -> str:
    """``value`` as a job id string if it is one (ASCII digits, as Zoho's ids are), else raise ZohoJobIdError
    naming ``field`` and showing the bad value (truncated, redacted)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if isinstance(value, str) and JOB_ID_PATTERN.fullmatch(value):
        return value
    shown = "missing" if value is None else repr(redact(str(value))[:SHOWN_CHARS])
    if value is not None and len(str(value)) > SHOWN_CHARS:
        shown += f" (truncated, {len(str(value))} characters)"
    raise ZohoJobIdError(
        f"{field} is not a Zoho bulk read job id (digits only): {shown}",
        code="INVALID_JOB_ID",
        resolution="Zoho job ids are digits: check the job id given to the task, or the answer of the Zoho host "
        "the connection points at (api_domain). Not retried.",
    )


ERROR_FAMILIES: dict[str, type[ZohoError]] = {
    cls.__name__: cls
    for cls in (
        ZohoError, ZohoAuthError, ZohoScopeError, ZohoPermissionError, ZohoConfigError, ZohoRequestError,
        ZohoNotFoundError, ZohoRateLimitError, ZohoTransientError, ZohoJobIdError,
    )
}
"""The error classes by name (the token cache records a failed refresh's class and rebuilds it)."""


_CODE_FAMILIES: dict[str, type[ZohoError]] = {
    "INVALID_URL_PATTERN": ZohoConfigError,
    "OAUTH_SCOPE_MISMATCH": ZohoScopeError,
    "INVALID_TOKEN": ZohoAuthError,
    "AUTHENTICATION_FAILURE": ZohoAuthError,
    "invalid_client": ZohoAuthError,
    "invalid_code": ZohoAuthError,
    "Access Denied": ZohoAuthError,
    "NO_PERMISSION": ZohoPermissionError,
    "AUTHORIZATION_FAILED": ZohoPermissionError,
    "INVALID_REQUEST_METHOD": ZohoRequestError,
    "MEDIA_TYPE_NOT_SUPPORTED": ZohoRequestError,
    "INVALID_CRITERIA": ZohoRequestError,
    "AMBIGUOUS_CRITERIA": ZohoRequestError,
    "FIELD_COMPARATOR_IN_CRITERIA_NOT_SUPPORTED": ZohoRequestError,
    "GROUP_OPERATOR_NOT_SUPPORTED": ZohoRequestError,
    "MODULE_NOT_SUPPORTED": ZohoRequestError,
    "CVID_NOT_SUPPORTED": ZohoRequestError,
    "PAGE_RANGE_EXCEEDED": ZohoRequestError,
    "INVALID_CALLBACK_URL": ZohoRequestError,
    "INVALID_CALLBACK_METHOD": ZohoRequestError,
    "REQUEST_BODY_NOT_SUPPORTED": ZohoRequestError,
    "INVALID_DATA": ZohoRequestError,
    "INVALID_REQUEST": ZohoRequestError,
    "FIELD_NOT_AVAILABLE": ZohoRequestError,
    "RESOURCE_NOT_FOUND": ZohoNotFoundError,
    "TOO_MANY_REQUESTS": ZohoRateLimitError,
    "INTERNAL_ERROR": ZohoTransientError,
    "INTERNAL_SERVER_ERROR": ZohoTransientError,
}


def _family_by_status(status: int) -> type[ZohoError]:
    if status == 429:
        return ZohoRateLimitError
    if status >= 500:
        return ZohoTransientError
    if status == 401:
        return ZohoAuthError
    if status == 403:
        return ZohoPermissionError
    if status == 404:
        return ZohoConfigError
    return ZohoRequestError


def redact(value: Any, known: Iterable[str] = ()) -> Any:
    """``value`` (text, or JSON-like dicts and lists) with secrets replaced by ``***``: the ``known`` ones, and
    anything shaped like a Zoho token or a credential parameter (an answer may echo the request)."""
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in SECRET_KEYS else redact(item, known) for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, known) for item in value]
    if not isinstance(value, str):
        return value
    for secret in known:
        if secret:
            value = value.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        value = pattern.sub(lambda match: match.group(1) + REDACTED, value)
    return value


def error_from_response(
    status: int,
    body: Any,
    *,
    module: str | None = None,
    scopes: list[str] | None = None,
    secrets: Iterable[str] = (),
) -> ZohoError:
    """Turn a Zoho error answer (HTTP status + decoded JSON body, or text) into the matching ZohoError.

    Handles API errors (``{"code", "message", "details", "status": "error"}``, also wrapped in ``data[0]``) and
    OAuth answers (``{"error": "invalid_code"}``, ``{"error": "Access Denied", "error_description": ...}``).
    ``module`` (or explicit ``scopes``) names the scopes needed in OAUTH_SCOPE_MISMATCH messages. The body is
    :func:`redact`-ed first (``secrets``: the credentials and tokens the caller sent), so an answer that echoes
    the request leaks nothing into messages, logs or XCom.
    """
    body = redact(body, secrets)
    if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
        first = body["data"][0]
        if isinstance(first, dict) and first.get("status") == "error":
            body = first
    if isinstance(body, dict) and "error" in body and "code" not in body:
        code = str(body.get("error"))
        message = str(body.get("error_description") or f"OAuth token request failed: {code}")
        details: dict[str, Any] = {}
    elif isinstance(body, dict):
        code = str(body.get("code") or "")
        message = str(body.get("message") or "no message")
        details = body.get("details") if isinstance(body.get("details"), dict) else {}
    else:
        code = ""
        text = str(body or "").strip()
        message = f"unexpected answer: {text[:200]}" if text else "empty answer"
        details = {}
    family = _CODE_FAMILIES.get(code) or _family_by_status(status)
    resolution = None
    if family is ZohoScopeError:
        if scopes is None:
            scopes = required_scopes(module) if module else required_scopes("{module}")
        resolution = (
            f"Scopes needed: {', '.join(scopes)}. Generate a new refresh token with these scopes "
            "and update the connection. Do not retry."
        )
    return family(message, code=code, http_status=status, details=details, resolution=resolution)
