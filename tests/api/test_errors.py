"""Error families: Zoho codes -> exception type, retryable or fail-fast, resolution text, no secrets."""

from __future__ import annotations

import pytest

from tests.hooks.zoho_conn import assert_no_secret
from zoho_crm.api.errors import (
    ZohoAuthError,
    ZohoConfigError,
    ZohoNotFoundError,
    ZohoPermissionError,
    ZohoRateLimitError,
    ZohoRequestError,
    ZohoScopeError,
    ZohoTransientError,
    error_from_response,
)


def body(code: str, message: str = "msg") -> dict:
    return {"code": code, "details": {}, "message": message, "status": "error"}


@pytest.mark.parametrize(
    ("status", "code", "family", "retryable", "resolution_has"),
    [
        (404, "INVALID_URL_PATTERN", ZohoConfigError, False, "data_center"),
        (401, "OAUTH_SCOPE_MISMATCH", ZohoScopeError, False, "ZohoCRM.bulk.read"),
        (401, "INVALID_TOKEN", ZohoAuthError, False, "refresh it once"),
        (401, "AUTHENTICATION_FAILURE", ZohoAuthError, False, "refresh it once"),
        (403, "NO_PERMISSION", ZohoPermissionError, False, "Do not retry"),
        (400, "AUTHORIZATION_FAILED", ZohoPermissionError, False, "Do not retry"),
        (400, "INVALID_REQUEST_METHOD", ZohoRequestError, False, "client bug"),
        (404, "RESOURCE_NOT_FOUND", ZohoNotFoundError, False, "job id"),
        (429, "TOO_MANY_REQUESTS", ZohoRateLimitError, True, "wait out"),
        (500, "INTERNAL_ERROR", ZohoTransientError, True, "backoff"),
        (415, "MEDIA_TYPE_NOT_SUPPORTED", ZohoRequestError, False, "Content-Type"),
        (400, "INVALID_CRITERIA", ZohoRequestError, False, "criteria"),
        (400, "AMBIGUOUS_CRITERIA", ZohoRequestError, False, "one or the other"),
        (400, "FIELD_COMPARATOR_IN_CRITERIA_NOT_SUPPORTED", ZohoRequestError, False, "comparator"),
        (400, "GROUP_OPERATOR_NOT_SUPPORTED", ZohoRequestError, False, "'and' or 'or'"),
        (400, "MODULE_NOT_SUPPORTED", ZohoRequestError, False, "Notes"),
        (400, "CVID_NOT_SUPPORTED", ZohoRequestError, False, "cvid"),
        (400, "PAGE_RANGE_EXCEEDED", ZohoRequestError, False, "page_token"),
        (400, "INVALID_CALLBACK_URL", ZohoRequestError, False, "callback"),
        (400, "INVALID_CALLBACK_METHOD", ZohoRequestError, False, "post"),
        (400, "REQUEST_BODY_NOT_SUPPORTED", ZohoRequestError, False, "fields with ICS"),
        (502, "", ZohoTransientError, True, ""),
        (503, "SOMETHING_NEW", ZohoTransientError, True, ""),
    ],
)
def test_codes_map_to_families(status, code, family, retryable, resolution_has):
    err = error_from_response(status, body(code, "Zoho says no"))
    assert type(err) is family
    assert (err.code, err.http_status, err.message) == (code, status, "Zoho says no")
    assert err.retryable is retryable
    assert err.fails_fast is (not retryable)
    assert resolution_has in err.resolution
    assert f"HTTP {status}" in str(err) and "Zoho says no" in str(err)


def test_scope_error_names_the_module_scopes():
    err = error_from_response(401, body("OAUTH_SCOPE_MISMATCH"), module="price_books")
    assert "ZohoCRM.bulk.read" in str(err) and "ZohoCRM.modules.price_books.READ" in str(err)
    fields = error_from_response(401, body("OAUTH_SCOPE_MISMATCH"), scopes=["ZohoCRM.settings.fields.READ"])
    assert "ZohoCRM.settings.fields.READ" in str(fields)


def test_job_error_wrapped_in_data_is_unwrapped():
    err = error_from_response(400, {"data": [body("INVALID_CRITERIA", "bad")]})
    assert isinstance(err, ZohoRequestError) and err.code == "INVALID_CRITERIA"


@pytest.mark.parametrize(
    ("status", "answer", "fails_fast"),
    [
        (200, {"error": "invalid_client"}, True),
        (200, {"error": "invalid_code"}, True),
        (400, {"error": "Access Denied", "status": "failure",
               "error_description": "You have made too many requests continuously."}, False),
    ],
)
def test_oauth_answers(status, answer, fails_fast):
    err = error_from_response(status, answer)
    assert isinstance(err, ZohoAuthError)
    assert err.code == answer["error"] and not err.retryable and not err.is_token_rejected
    assert err.fails_fast is fails_fast, "the token throttle ends after 10 minutes: Airflow retries may help"
    assert err.resolution


def test_non_json_answer():
    err = error_from_response(502, "<html>Bad gateway</html>")
    assert isinstance(err, ZohoTransientError) and "Bad gateway" in str(err)
    assert_no_secret(str(err))
