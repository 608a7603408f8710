"""The simulator's aiohttp application: Zoho OAuth + Bulk Read + field metadata, and the /__sim__/ control API.

Choices where Zoho's documentation leaves room (see README of the simulator, ``--help``):
- no/garbled ``Authorization`` header (not ``Zoho-oauthtoken <token>``) and revoked tokens -> 401
  AUTHENTICATION_FAILURE; unknown or expired tokens -> 401 INVALID_TOKEN;
- an expired or unknown ``page_token`` -> 400 PAGE_RANGE_EXCEEDED (``details.reason``: expired/invalid);
  a page token created by another user -> 400 AUTHORIZATION_FAILED;
- download of a job that is not COMPLETED -> 400 INVALID_REQUEST (JSON, ``details.state``);
- unknown field in ``fields`` -> 400 FIELD_NOT_AVAILABLE;
- every request to ``.../result`` counts towards the download limit on arrival unless answered 429.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import secrets
import shutil
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from aiohttp import web

from .appkey import SIM
from .clock import ORG_TZ, Clock, iso
from .config import Settings
from .criteria import Criteria, matching_indices, parse_fields
from .data import MODULES, NOT_EXPORTABLE, ORG_PREFIX, USERS, Dataset
from .errors import ZohoError, json_object, json_response
from .exports import BuiltPage, build_page
from .history import Events
from .history_api import add_history_routes, deleted_records, module_snapshot
from .metadata import fields_json

CHUNK = 256 * 1024
VERSION_RE = r"{version:v[2-8]}"


@dataclass
class User:
    id: str
    name: str
    refresh_token: str


@dataclass
class AccessToken:
    token: str
    user: User
    issued: float
    expires: float
    revoked: bool = False


@dataclass
class PageToken:
    user_id: str
    module: str
    page: int
    expires: float


@dataclass
class Job:
    id: str
    version: str
    user: User
    module: str
    file_type: str
    query_echo: dict[str, Any]
    page: int
    per_page: int
    count: int
    more_records: bool
    created: float
    created_time: str
    job_seconds: float
    stuck: bool
    fail: bool
    next_page_token: str | None = None
    callback: dict[str, str] | None = None
    build: asyncio.Future[BuiltPage] | None = None
    built: BuiltPage | None = None
    build_error: str = ""
    callback_status: str = ""
    as_of: str = ""
    """The simulated moment whose data the job exports."""

    def state(self, now: float) -> str:
        elapsed = now - self.created
        if elapsed < 0.25 * self.job_seconds:
            return "ADDED"
        if elapsed < 0.5 * self.job_seconds:
            return "QUEUED"
        if self.stuck:
            return "IN PROGRESS"
        if self.fail or self.build_error:
            return "FAILURE" if elapsed >= self.job_seconds else "IN PROGRESS"
        if elapsed < self.job_seconds or self.built is None:
            return "IN PROGRESS"
        return "COMPLETED"


def now_iso() -> str:
    return datetime.now(ORG_TZ).replace(microsecond=0).isoformat()


class Simulator:
    """All state of one simulator process."""

    def __init__(self, args: Any, settings: Settings, start: datetime, clock: datetime | None = None) -> None:
        self.args = args
        self.initial = deepcopy(settings)
        self.settings = settings
        self.dataset = Dataset(args.seed, settings.records, settings.default_records, start, args.time_days)
        self.start_clock = (clock.timestamp() if clock else self.dataset.end, float(getattr(args, "clock_rate", 0)))
        self.clock = Clock(*self.start_clock)
        self.sync_dataset()
        self.own_data_dir = args.data_dir is None
        self.data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="zoho-sim-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.users = {args.refresh_token: User(USERS[0][0], f"{USERS[0][1]} {USERS[0][2]}", args.refresh_token)}
        for n, refresh in enumerate(args.extra_user, 1):
            uid, first, last = USERS[n % len(USERS)]
            self.users[refresh] = User(str(int(USERS[0][0]) + 100 + n), f"{first} {last}", refresh)
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="zip-builder")
        self.query_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="criteria")
        self.job_counter = 0
        self.api_domain = ""
        self.background: set[asyncio.Task[None]] = set()
        self._clear()

    def _clear(self) -> None:
        self.tokens: dict[str, AccessToken] = {}
        self.token_issues: dict[str, deque[float]] = {}
        self.jobs: dict[str, Job] = {}
        self.page_tokens: dict[str, PageToken] = {}
        self.download_times: deque[float] = deque()
        self.lockout_until = 0.0
        self.foreign_before_next = 0
        self.request_log: list[dict[str, Any]] = []
        self.download_log: list[dict[str, Any]] = []
        self.fault_rng = random.Random(self.args.seed)

    def reset(self) -> None:
        self._clear()
        self.settings = deepcopy(self.initial)
        self.dataset.events = Events()
        self.clock = Clock(*self.start_clock)
        self.sync_dataset()

    def sync_dataset(self) -> None:
        s, ds = self.settings, self.dataset
        ds.counts = dict(s.records)
        ds.default_count = s.default_records
        ds.ics_overrides = s.ics_overrides
        ds.changes_per_day, ds.deletions_per_day = s.changes_per_day, s.deletions_per_day
        ds.permanent_share, ds.restore_share = s.permanent_share, s.restore_share
        ds.retention_seconds = int(s.recycle_retention_days * 86400)

    def snapshot(self, at: int | None = None) -> Dataset:
        """The data at the simulated moment ``at`` (default: the clock's now), for one request or job."""
        return self.dataset.at(self.clock.now() if at is None else at)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.query_executor.shutdown(wait=False, cancel_futures=True)
        if self.own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- logging ---------------------------------------------------------------------------------------------
    def log(self, method: str, path: str, kind: str, client: str) -> dict[str, Any]:
        entry = {"seq": len(self.request_log) + 1, "t": time.monotonic(), "wall": time.time(), "method": method,
                 "path": path, "status": None, "bytes": 0, "kind": kind, "client": client}
        self.request_log.append(entry)
        return entry

    # -- auth ----------------------------------------------------------------------------------------------------
    def authenticate(self, request: web.Request) -> AccessToken:
        header = request.headers.get("Authorization", "")
        match = re.fullmatch(r"Zoho-oauthtoken (\S+)", header.strip())
        if not match:
            raise ZohoError("AUTHENTICATION_FAILURE", "Authentication failed: send 'Authorization: Zoho-oauthtoken "
                            "<access token>'", {})
        token = self.tokens.get(match.group(1))
        if token is None:
            raise ZohoError("INVALID_TOKEN", "invalid oauth token", {})
        if token.revoked:
            raise ZohoError("AUTHENTICATION_FAILURE", "Authentication failed: the access token was revoked", {})
        if time.monotonic() >= token.expires:
            raise ZohoError("INVALID_TOKEN", "invalid oauth token (expired)", {})
        request["user"] = token.user.id
        return token

    def require_scope(self, *accepted: str) -> None:
        granted = {s.lower() for s in self.settings.scopes}
        if not granted & {a.lower() for a in accepted}:
            raise ZohoError("OAUTH_SCOPE_MISMATCH", f"invalid oauth scope to access this URL; needs {accepted[0]}",
                            {"required_scope": accepted[0]})

    def require_module_scope(self, module: str) -> None:
        low = module.lower()
        self.require_scope(f"ZohoCRM.modules.{low}.READ", f"ZohoCRM.modules.{low}.ALL", "ZohoCRM.modules.ALL",
                           "ZohoCRM.modules.READ")

    def inject_error(self) -> None:
        if self.settings.error_rate > 0 and self.fault_rng.random() < self.settings.error_rate:
            raise ZohoError("INTERNAL_ERROR", "Internal Server Error (injected by the simulator)", {})

    # -- downloads' limit ------------------------------------------------------------------------------------------
    def foreign_downloads(self, count: int) -> list[int]:
        """Log ``count`` downloads of another client of the org, counted against the same allowance."""
        statuses = []
        for _ in range(count):
            entry = self.log("GET", "/crm/bulk/v8/read/foreign/result", "foreign_download", "foreign")
            entry["status"] = 200 if self.admit_download() else 429
            statuses.append(entry["status"])
        return statuses

    def admit_download(self) -> bool:
        now = time.monotonic()
        window, limit = self.settings.download_window, self.settings.download_limit
        while self.download_times and self.download_times[0] <= now - window:
            self.download_times.popleft()
        if now < self.lockout_until:
            return False
        if len(self.download_times) >= limit:
            self.lockout_until = (self.download_times[-1] if self.download_times else now) + window
            return False
        self.download_times.append(now)
        return True

    # -- jobs --------------------------------------------------------------------------------------------------------
    def next_job_id(self) -> str:
        self.job_counter += 1
        return str(ORG_PREFIX + 859_031 + self.job_counter * 1_000_003)

    def job_json(self, job: Job) -> dict[str, Any]:
        state = job.state(time.monotonic())
        body: dict[str, Any] = {"id": job.id, "operation": "read", "state": state, "query": job.query_echo,
                                "created_by": {"id": job.user.id, "name": job.user.name},
                                "created_time": job.created_time, "file_type": job.file_type}
        if state == "COMPLETED":
            result: dict[str, Any] = {"page": job.page, "per_page": job.per_page, "count": job.count,
                                      "download_url": f"/crm/bulk/{job.version}/read/{job.id}/result",
                                      "more_records": job.more_records}
            if job.next_page_token:
                result["next_page_token"] = job.next_page_token
            body["result"] = result
        elif state == "FAILURE":
            body["result"] = {"error_message": {"status": "error", "code": "INTERNAL_SERVER_ERROR",
                                                "message": "Internal server error occurred.", "details": {}}}
        return body

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise ZohoError("RESOURCE_NOT_FOUND", f"no bulk read job with id {job_id}", {"resource": job_id})
        return job


# ---------------------------------------------------------------------------------------------------------------
def error_response(err: ZohoError) -> web.Response:
    return json_response(err.body(), err.status)


def kind_of(method: str, path: str) -> str:
    if path == "/oauth/v2/token":
        return "token"
    if re.fullmatch(r"/crm/bulk/v\d+/read/[^/]+/result", path):
        return "download"
    if re.fullmatch(r"/crm/bulk/v\d+/read/[^/]+", path):
        return "details"
    if re.fullmatch(r"/crm/bulk/v\d+/read", path) and method == "POST":
        return "create"
    if re.fullmatch(r"/crm/v\d+/settings/fields", path):
        return "fields"
    if re.fullmatch(r"/crm/v\d+/[^/]+/deleted", path):
        return "deleted"
    return "other"


@web.middleware
async def zoho_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Logs every non-control request and turns errors into Zoho's JSON error answers."""
    sim: Simulator = request.app[SIM]
    if request.path.startswith("/__sim__/"):
        try:
            return await handler(request)
        except ZohoError as err:
            return error_response(err)
        except (ValueError, TypeError, json.JSONDecodeError) as err:
            return json_response({"error": str(err)}, 400)
    peer = request.transport.get_extra_info("peername") if request.transport else None
    entry = sim.log(request.method, request.path, kind_of(request.method, request.path),
                    f"{peer[0]}:{peer[1]}" if peer else "")
    request["log"] = entry
    try:
        response = await handler(request)
    except ZohoError as err:
        response = error_response(err)
    except web.HTTPMethodNotAllowed:
        response = error_response(ZohoError("INVALID_REQUEST_METHOD", f"the HTTP method {request.method} is not "
                                            f"allowed for {request.path}", {}))
    except web.HTTPNotFound:
        response = error_response(ZohoError("INVALID_URL_PATTERN", "Please check if the URL trying to access is a "
                                            "correct one", {}))
    entry["status"] = response.status
    entry["user"] = request.get("user")
    if isinstance(response, web.Response) and response.body is not None:
        entry["bytes"] = len(response.body)  # type: ignore[arg-type]
    else:
        entry["bytes"] = request.get("sent_bytes", 0)
    return response


# -- OAuth ------------------------------------------------------------------------------------------------------------
async def token_endpoint(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    form = {**request.query, **(await request.post())}
    if form.get("grant_type") != "refresh_token":
        return json_response({"error": "unsupported_grant_type"})
    if form.get("client_id") != sim.args.client_id or form.get("client_secret") != sim.args.client_secret:
        return json_response({"error": "invalid_client"})
    user = sim.users.get(str(form.get("refresh_token", "")))
    if user is None:
        return json_response({"error": "invalid_code"})
    now = time.monotonic()
    issues = sim.token_issues.setdefault(user.refresh_token, deque())
    while issues and issues[0] <= now - sim.settings.token_window:
        issues.popleft()
    if len(issues) >= sim.settings.token_limit:
        return json_response({"error_description": "You have made too many requests continuously. Please try again "
                              "after some time.", "error": "Access Denied", "status": "failure"}, 400)
    issues.append(now)
    token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
    sim.tokens[token] = AccessToken(token, user, now, now + sim.settings.token_lifetime)
    request["user"] = user.id
    return json_response({"access_token": token, "api_domain": sim.api_domain, "token_type": "Bearer",
                          "expires_in": int(sim.settings.token_lifetime)})


# -- Bulk read ----------------------------------------------------------------------------------------------------------
def module_name(query: dict[str, Any]) -> str:
    module = query.get("module")
    if isinstance(module, dict):
        name = module.get("api_name")
        if name is None and "id" in module:
            name = next((m.api_name for m in MODULES.values() if m.id == str(module["id"])), str(module["id"]))
        module = name
    if not isinstance(module, str) or not module:
        raise ZohoError("REQUEST_BODY_NOT_SUPPORTED", "query.module must be {\"api_name\": \"<module>\"}", {})
    if module in NOT_EXPORTABLE or module not in MODULES:
        raise ZohoError("MODULE_NOT_SUPPORTED", f"the module {module!r} is not supported for bulk read",
                        {"api_name": module})
    return module


def check_callback(body: dict[str, Any]) -> dict[str, str] | None:
    callback = body.get("callback")
    if callback is None:
        return None
    if not isinstance(callback, dict):
        raise ZohoError("INVALID_CALLBACK_URL", "callback must be {\"url\": ..., \"method\": \"post\"}", {})
    url = callback.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ZohoError("INVALID_CALLBACK_URL", "callback.url must be an absolute http(s) URL",
                        {"url": str(url)})
    if str(callback.get("method", "")).lower() != "post":
        raise ZohoError("INVALID_CALLBACK_METHOD", "callback.method must be 'post'",
                        {"method": str(callback.get("method"))})
    return {"url": url, "method": "post"}  # type: ignore[dict-item]


def page_range_error(message: str, max_limit: int, **details: Any) -> ZohoError:
    return ZohoError("PAGE_RANGE_EXCEEDED", message, {"max_limit": max_limit, **details})


async def create_job(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    version = request.match_info["version"]
    token = sim.authenticate(request)
    sim.require_scope("ZohoCRM.bulk.read", "ZohoCRM.bulk.ALL")
    sim.inject_error()
    if request.content_type != "application/json":
        raise ZohoError("MEDIA_TYPE_NOT_SUPPORTED", "The Media type is not supported; send Content-Type: "
                        "application/json", {})
    try:
        body = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise ZohoError("REQUEST_BODY_NOT_SUPPORTED", "the request body must be a JSON object", {})
    query = body.get("query")
    if not isinstance(query, dict):
        raise ZohoError("REQUEST_BODY_NOT_SUPPORTED", "the request body needs a query object", {})
    module = module_name(query)
    sim.require_module_scope(module)
    if module in sim.settings.no_permission_modules:
        raise ZohoError("NO_PERMISSION", f"permission denied to read {module}", {"permissions": ["Crm_Implied_View"]})
    if module in sim.settings.unauthorized_modules:
        raise ZohoError("AUTHORIZATION_FAILED", f"user does not have sufficient privilege to export {module}", {})
    file_type = body.get("file_type", query.get("file_type", "csv")) or "csv"
    if file_type not in ("csv", "ics"):
        raise ZohoError("REQUEST_BODY_NOT_SUPPORTED", "file_type must be csv or ics", {"file_type": str(file_type)})
    if file_type == "ics" and module != "Events":
        raise ZohoError("MODULE_NOT_SUPPORTED", "file_type ics is only supported for Events", {"api_name": module})
    if file_type == "ics" and query.get("fields"):
        raise ZohoError("REQUEST_BODY_NOT_SUPPORTED", "fields are not allowed with file_type ics", {})
    callback = check_callback(body)
    cvid = query.get("cvid")
    if cvid is not None and str(cvid) != MODULES[module].default_cvid:
        raise ZohoError("CVID_NOT_SUPPORTED", f"the custom view {cvid} is not supported for bulk read",
                        {"cvid": str(cvid)})
    data = sim.snapshot()
    spec = data.spec(module)
    columns = parse_fields(spec, query.get("fields")) if file_type == "csv" else []
    criteria = Criteria(spec, query["criteria"]) if query.get("criteria") is not None else None
    per_page = sim.settings.per_page_ics if file_type == "ics" else sim.settings.per_page_csv
    page = resolve_page(sim, version, token.user, module, query)
    loop = asyncio.get_running_loop()
    matches = await loop.run_in_executor(sim.query_executor, matching_indices, data, module, criteria)
    pages = max(1, math.ceil(len(matches) / per_page))
    if page > pages:
        raise page_range_error(f"page {page} is beyond the last page {pages} of this export", pages)
    indices = np.array(matches[(page - 1) * per_page: page * per_page])
    del matches
    more = page < pages
    job = Job(
        id=sim.next_job_id(), version=version, user=token.user, module=module, file_type=file_type,
        query_echo=echo_query(module, query, page), page=page, per_page=per_page, count=len(indices),
        more_records=more, created=time.monotonic(), created_time=now_iso(),
        job_seconds=sim.settings.job_seconds, stuck=sim.settings.stuck_jobs, fail=sim.settings.fail_jobs != 0,
        callback=callback, as_of=iso(data.now),
    )
    if job.fail and sim.settings.fail_jobs > 0:
        sim.settings.fail_jobs -= 1
    if more and int(version[1:]) >= 7:
        job.next_page_token = secrets.token_hex(32)
        sim.page_tokens[job.next_page_token] = PageToken(token.user.id, module, page + 1,
                                                         time.monotonic() + sim.settings.page_token_ttl)
    sim.jobs[job.id] = job
    if not (job.fail or job.stuck):
        job.build = loop.run_in_executor(sim.executor, build_page, data, module, indices, columns,
                                         file_type, job.id, sim.data_dir)
        job.build.add_done_callback(lambda fut: finish_build(job, fut))
    if callback and not job.stuck:
        task = asyncio.create_task(send_callback(sim, job))
        sim.background.add(task)
        task.add_done_callback(sim.background.discard)
    return json_response({"data": [{"status": "success", "code": "ADDED_SUCCESSFULLY",
                                    "message": "Added successfully.",
                                    "details": {"id": job.id, "operation": "read", "state": "ADDED",
                                                "created_by": {"id": job.user.id, "name": job.user.name},
                                                "created_time": job.created_time}}], "info": {}}, 201)


def finish_build(job: Job, fut: asyncio.Future[BuiltPage]) -> None:
    if fut.cancelled():
        job.build_error = "cancelled"
    elif fut.exception() is not None:
        job.build_error = repr(fut.exception())
    else:
        job.built = fut.result()


def resolve_page(sim: Simulator, version: str, user: User, module: str, query: dict[str, Any]) -> int:
    """The page to export: ``page`` (default 1) or the page a ``page_token`` (v7+) stands for."""
    page_token = query.get("page_token")
    if page_token is None:
        page = query.get("page", 1)
        if page is None:
            page = 1
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise page_range_error("page must be a positive integer", 1, page=str(page))
        return page
    if "page" in query and query["page"] is not None:
        raise ZohoError("REQUEST_BODY_NOT_SUPPORTED", "give either page or page_token, not both", {})
    if int(version[1:]) < 7:
        raise page_range_error(f"page_token is not supported in {version}; use page numbers (v7+ has tokens)", 1,
                               reason="unsupported")
    entry = sim.page_tokens.get(str(page_token))
    if entry is None or entry.module != module:
        raise page_range_error("the page_token is not valid for this export; start again from page 1", 1,
                               reason="invalid")
    if entry.user_id != user.id:
        raise ZohoError("AUTHORIZATION_FAILED", "the page_token belongs to another user", {"param": "page_token"})
    if time.monotonic() >= entry.expires:
        raise page_range_error("the page_token has expired; start again from page 1", 1, reason="expired")
    return entry.page


def echo_query(module: str, query: dict[str, Any], page: int) -> dict[str, Any]:
    echo: dict[str, Any] = {"module": {"id": MODULES[module].id, "api_name": module}, "page": page}
    for key in ("cvid", "fields", "criteria"):
        if query.get(key):
            echo[key] = query[key]
    return echo


async def send_callback(sim: Simulator, job: Job) -> None:
    """POST the job details to the callback URL once the job completes or fails (best effort)."""
    while job.state(time.monotonic()) not in ("COMPLETED", "FAILURE"):
        await asyncio.sleep(0.05)
    assert job.callback is not None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.post(job.callback["url"], json={"data": [sim.job_json(job)]}) as resp:
                job.callback_status = str(resp.status)
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        job.callback_status = f"error: {type(err).__name__}"


async def job_details(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    sim.authenticate(request)
    sim.require_scope("ZohoCRM.bulk.read", "ZohoCRM.bulk.ALL")
    sim.inject_error()
    return json_response({"data": [sim.job_json(sim.job(request.match_info["job_id"]))]})


async def download(request: web.Request) -> web.StreamResponse:
    sim: Simulator = request.app[SIM]
    sim.authenticate(request)
    sim.require_scope("ZohoCRM.bulk.read", "ZohoCRM.bulk.ALL")
    if sim.foreign_before_next:
        count, sim.foreign_before_next = sim.foreign_before_next, 0
        sim.foreign_downloads(count)
    if not sim.admit_download():
        raise ZohoError("TOO_MANY_REQUESTS", "too many download requests; wait until a full window has passed "
                        "without downloads", {"limit": sim.settings.download_limit,
                                              "window_seconds": sim.settings.download_window})
    sim.inject_error()
    job = sim.job(request.match_info["job_id"])
    state = job.state(time.monotonic())
    if state != "COMPLETED" or job.built is None:
        raise ZohoError("INVALID_REQUEST", f"the job is {state}; download its result once it is COMPLETED",
                        {"state": state})
    built = job.built
    drop = sim.settings.drop_downloads != 0
    if drop and sim.settings.drop_downloads > 0:
        sim.settings.drop_downloads -= 1
    name = f"{job.id}.zip"
    disposition = (f'attachment; filename="{name}"' if sim.settings.disposition == "quoted"
                   else f"attachment; filename*=UTF-8''{name}")
    resp = web.StreamResponse(headers={"Content-Type": sim.settings.content_type,
                                       "Content-Disposition": disposition})
    resp.content_length = built.bytes
    await resp.prepare(request)
    limit = max(1, built.bytes // 2) if drop else built.bytes
    sent = 0
    entry = {"job_id": job.id, "zip_sha256": built.zip_sha256, "member_sha256": built.member_sha256,
             "count": built.count, "bytes": built.bytes, "complete": False, "dropped": drop}
    sim.download_log.append(entry)
    slow_chunk = [1024] if job.module in sim.settings.slow_download_modules else []
    try:
        with open(built.path, "rb") as fh:
            while sent < limit:
                chunk = fh.read(min(CHUNK, limit - sent, *slow_chunk))
                if not chunk:
                    break
                await resp.write(chunk)
                sent += len(chunk)
                if job.module in sim.settings.slow_download_modules:
                    await asyncio.sleep(len(chunk) / sim.settings.slow_download_rate)  # a slow network
        request["sent_bytes"] = sent
        if drop:
            request["log"].update(status=200, bytes=sent, user=request.get("user"), dropped=True)
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError()  # the connection is gone: nothing more to send
        await resp.write_eof()
        entry["complete"] = True
    except (ConnectionResetError, ConnectionError):
        request["sent_bytes"] = sent
    return resp


async def settings_fields(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    sim.authenticate(request)
    sim.require_scope("ZohoCRM.settings.fields.READ", "ZohoCRM.settings.fields.ALL", "ZohoCRM.settings.ALL",
                      "ZohoCRM.settings.READ")
    sim.inject_error()
    module = request.query.get("module")
    if not module:
        raise ZohoError("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                        {"param_name": "module"})
    if module not in MODULES:
        raise ZohoError("INVALID_DATA", "the given module is not supported", {"param_name": "module"})
    return json_response({"fields": fields_json(sim.snapshot().spec(module))})


# -- control API ----------------------------------------------------------------------------------------------
async def ctl_health(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    return json_response({"status": "ok", "jobs": len(sim.jobs), "requests": len(sim.request_log)})


async def ctl_requests(request: web.Request) -> web.Response:
    return json_response({"requests": request.app[SIM].request_log})


async def ctl_faults(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    if request.method == "POST":
        changes = await json_object(request, "POST /__sim__/faults wants a JSON object of settings")
        sim.settings.update(changes)
        sim.sync_dataset()
    return json_response(sim.settings.to_json())


async def ctl_foreign_downloads(request: web.Request) -> web.Response:
    """``{"count": N}`` uses N downloads now; with ``"before_next": true``, just before our next download request."""
    sim: Simulator = request.app[SIM]
    body = await request.json()
    count = int(body.get("count", 1))
    if body.get("before_next"):
        sim.foreign_before_next = count
        return json_response({"armed": count})
    return json_response({"statuses": sim.foreign_downloads(count)})


async def ctl_revoke(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    for token in sim.tokens.values():
        token.revoked = True
    return json_response({"revoked": len(sim.tokens)})


async def ctl_reset(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    sim.reset()
    return json_response(sim.settings.to_json())


async def ctl_records(request: web.Request) -> web.Response:
    sim, module, data = module_snapshot(request)
    spec = data.spec(module)
    raw = request.query.get("criteria")
    criteria = Criteria(spec, json.loads(raw)) if raw else None
    loop = asyncio.get_running_loop()
    idx = await loop.run_in_executor(sim.query_executor, matching_indices, data, module, criteria)
    answer: dict[str, Any] = {"ids": [spec.record_id(i) for i in idx.tolist()], "as_of": iso(data.now)}
    if request.query.get("fields"):
        columns = parse_fields(spec, [f for f in request.query["fields"].split(",") if f])
        texts = await loop.run_in_executor(sim.query_executor, data.text_columns, module, idx, columns)
        answer["rows"] = [dict(zip(columns, row, strict=True)) for row in zip(*texts, strict=True)]
    return json_response(answer)


async def ctl_downloads(request: web.Request) -> web.Response:
    return json_response(request.app[SIM].download_log)


async def ctl_tokens(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    now = time.monotonic()
    return json_response([{"access_token": t.token, "user_id": t.user.id, "refresh_token": t.user.refresh_token,
                           "issued": t.issued, "expires": t.expires, "expired": now >= t.expires,
                           "revoked": t.revoked} for t in sim.tokens.values()])


async def ctl_jobs(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    now = time.monotonic()
    return json_response([{"id": j.id, "version": j.version, "module": j.module, "file_type": j.file_type,
                           "state": j.state(now), "query": j.query_echo, "count": j.count, "page": j.page,
                           "more_records": j.more_records, "user_id": j.user.id, "stuck": j.stuck,
                           "fail": j.fail, "callback": j.callback, "callback_status": j.callback_status,
                           "as_of": j.as_of}
                          for j in sim.jobs.values()])


def build_app(sim: Simulator) -> web.Application:
    app = web.Application(middlewares=[zoho_middleware], client_max_size=16 * 1024 * 1024)
    app[SIM] = sim
    r = app.router
    r.add_post("/oauth/v2/token", token_endpoint)
    r.add_post(f"/crm/bulk/{VERSION_RE}/read", create_job)
    r.add_get(f"/crm/bulk/{VERSION_RE}/read/{{job_id}}", job_details)
    r.add_get(f"/crm/bulk/{VERSION_RE}/read/{{job_id}}/result", download)
    r.add_get(f"/crm/{VERSION_RE}/settings/fields", settings_fields)
    r.add_get(f"/crm/{VERSION_RE}/{{module}}/deleted", deleted_records)
    r.add_get("/__sim__/health", ctl_health)
    r.add_get("/__sim__/requests", ctl_requests)
    r.add_route("*", "/__sim__/faults", ctl_faults)
    r.add_post("/__sim__/foreign-downloads", ctl_foreign_downloads)
    r.add_post("/__sim__/revoke-tokens", ctl_revoke)
    r.add_post("/__sim__/reset", ctl_reset)
    r.add_get("/__sim__/records/{module}", ctl_records)
    r.add_get("/__sim__/downloads", ctl_downloads)
    r.add_get("/__sim__/tokens", ctl_tokens)
    r.add_get("/__sim__/jobs", ctl_jobs)
    add_history_routes(r)
    return app
