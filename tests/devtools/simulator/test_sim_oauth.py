"""OAuth refresh grant, the token throttle, expiry, revocation and scopes."""

from __future__ import annotations

import time

from tests.devtools.simulator.sim_client import (
    REFRESH,
    access_token,
    create,
    http,
    module_query,
    token_answer,
)
from tests.simulator_fixtures import start_simulator


def test_refresh_grant_answer(sim) -> None:
    answer = token_answer(sim)
    assert answer.status == 200
    body = answer.json
    assert set(body) == {"access_token", "api_domain", "token_type", "expires_in"}
    assert body["api_domain"] == sim.url and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    issued = sim.tokens()
    assert [t["access_token"] for t in issued] == [body["access_token"]]
    assert sim.requests("token")[0]["status"] == 200


def test_bad_client_and_bad_refresh_token_are_http_200_errors(sim) -> None:
    bad_client = token_answer(sim, client_secret="wrong")
    bad_code = token_answer(sim, refresh_token="1000.not.a.token")
    assert (bad_client.status, bad_client.json) == (200, {"error": "invalid_client"})
    assert (bad_code.status, bad_code.json) == (200, {"error": "invalid_code"})
    assert sim.tokens() == []


def test_token_throttle_access_denied_for_the_rest_of_the_window() -> None:
    with start_simulator(token_limit=3, token_window=1.5, extra_user=["1000.other.refresh"]) as sim:
        first = time.monotonic()
        assert all(token_answer(sim).status == 200 for _ in range(3))
        denied = token_answer(sim)
        assert denied.status == 400
        assert denied.json == {"error_description": "You have made too many requests continuously. Please try "
                               "again after some time.", "error": "Access Denied", "status": "failure"}
        assert token_answer(sim, "1000.other.refresh").status == 200, "the throttle is per refresh token"
        sim.wait_for(lambda: token_answer(sim).status == 200, timeout=10, interval=0.1)
        assert time.monotonic() - first >= 1.5
        assert len([t for t in sim.tokens() if t["refresh_token"] == REFRESH]) == 4


def test_expired_token_is_invalid_token(sim) -> None:
    sim.set_faults(token_lifetime=0.3)
    token = access_token(sim)
    assert token_answer(sim).json["expires_in"] == 0
    answer = sim.wait_for(lambda: (a := create(sim, token, module_query("Leads"))).status == 401 and a,
                          timeout=10)
    assert answer.json["code"] == "INVALID_TOKEN" and answer.json["status"] == "error"


def test_revoked_missing_and_unknown_tokens(sim) -> None:
    token = access_token(sim)
    unknown = create(sim, "1000.unknown.token", module_query("Leads"))
    assert (unknown.status, unknown.json["code"]) == (401, "INVALID_TOKEN")
    missing = http(f"{sim.url}/crm/bulk/v8/read", "POST", {"query": module_query("Leads")})
    assert (missing.status, missing.json["code"]) == (401, "AUTHENTICATION_FAILURE")
    sim.revoke_tokens()
    revoked = create(sim, token, module_query("Leads"))
    assert (revoked.status, revoked.json["code"]) == (401, "AUTHENTICATION_FAILURE")
    assert all(t["revoked"] for t in sim.tokens())


def test_scopes(sim, token) -> None:
    sim.set_faults(scopes="ZohoCRM.bulk.read,ZohoCRM.modules.leads.READ")
    assert create(sim, token, module_query("Leads")).status == 201
    contacts = create(sim, token, module_query("Contacts"))
    assert (contacts.status, contacts.json["code"]) == (401, "OAUTH_SCOPE_MISMATCH")
    fields = http(f"{sim.url}/crm/v8/settings/fields?module=Leads", token=token)
    assert (fields.status, fields.json["code"]) == (401, "OAUTH_SCOPE_MISMATCH")
    sim.set_faults(scopes="ZohoCRM.modules.ALL")
    no_bulk = create(sim, token, module_query("Leads"))
    assert (no_bulk.status, no_bulk.json["code"]) == (401, "OAUTH_SCOPE_MISMATCH")
    assert no_bulk.json["details"] == {"required_scope": "ZohoCRM.bulk.read"}
