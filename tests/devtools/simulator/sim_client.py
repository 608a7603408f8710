"""A tiny stdlib HTTP client for the simulator tests (real HTTP, no mocks)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from include.devtools.zoho_simulator.process import SimulatorProcess

CLIENT = {"client_id": "1000.SIMULATOR", "client_secret": "simulator-secret"}
REFRESH = "1000.simulator.refresh"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    json: Any = field(default=None)


def http(url: str, method: str = "GET", body: Any = None, token: str | None = None,
         content_type: str | None = "application/json", raw: bytes | None = None, timeout: float = 60) -> Answer:
    headers = {}
    if token:
        headers["Authorization"] = f"Zoho-oauthtoken {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None and content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = Answer(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        answer = Answer(err.code, dict(err.headers), err.read())
    if answer.headers.get("Content-Type", "").startswith("application/json"):
        answer.json = json.loads(answer.body)
    return answer


def token_answer(sim: SimulatorProcess, refresh_token: str = REFRESH, **overrides: str) -> Answer:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **CLIENT, **overrides}
    return http(f"{sim.url}/oauth/v2/token", "POST", raw=urllib.parse.urlencode(form).encode(),
                content_type="application/x-www-form-urlencoded")


def access_token(sim: SimulatorProcess, refresh_token: str = REFRESH) -> str:
    answer = token_answer(sim, refresh_token)
    assert answer.status == 200 and "access_token" in answer.json, answer.json
    return answer.json["access_token"]


def create(sim: SimulatorProcess, token: str, query: dict[str, Any], version: str = "v8", **extra: Any) -> Answer:
    return http(f"{sim.url}/crm/bulk/{version}/read", "POST", {"query": query, **extra}, token)


def create_ok(sim: SimulatorProcess, token: str, query: dict[str, Any], version: str = "v8", **extra: Any) -> str:
    answer = create(sim, token, query, version, **extra)
    assert answer.status == 201, answer.json
    return answer.json["data"][0]["details"]["id"]


def details(sim: SimulatorProcess, token: str, job_id: str, version: str = "v8") -> Answer:
    return http(f"{sim.url}/crm/bulk/{version}/read/{job_id}", token=token)


def wait_state(sim: SimulatorProcess, token: str, job_id: str, states: tuple[str, ...] = ("COMPLETED", "FAILURE"),
               timeout: float = 30.0, version: str = "v8") -> dict[str, Any]:
    """Poll job details until the state is one of ``states`` (deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = details(sim, token, job_id, version)
        assert answer.status == 200, answer.json
        job = answer.json["data"][0]
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
        time.sleep(0.05)


def download(sim: SimulatorProcess, token: str, job_id: str, version: str = "v8") -> Answer:
    return http(f"{sim.url}/crm/bulk/{version}/read/{job_id}/result", token=token)


def module_query(module: str, **query: Any) -> dict[str, Any]:
    return {"module": {"api_name": module}, **query}
