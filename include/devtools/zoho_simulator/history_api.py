"""Records over simulated time over HTTP: Zoho's Deleted Records API, and the control calls that move the clock and
schedule edits, deletions, restores and added fields (``/__sim__/clock|changes|deletions|restores|fields``)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import web

from .appkey import SIM
from .clock import ORG_TZ, iso
from .criteria import DATETIME_RE
from .data import MODULES, USERS, Dataset, F, owner_subfield
from .errors import ZohoError, json_object, json_response
from .history import deletions
from .metadata import field_json

if TYPE_CHECKING:
    from .app import Simulator

PER_PAGE_MAX = 200
DELETED_TYPES = ("all", "recycle", "permanent")
ADDED_KINDS = {"text": "city", "textarea": "textarea", "email": "email", "phone": "phone", "picklist": "picklist",
               "multiselectpicklist": "multiselectpicklist", "integer": "integer", "bigint": "bigint",
               "double": "double", "currency": "currency", "percent": "percent", "boolean": "boolean",
               "date": "date", "datetime": "start", "autonumber": "autonumber", "lookup": "lookup"}
"""Data types a field added at run time may have, and the generator of its values."""


def parse_moment(value: Any, name: str) -> int:
    """Epoch seconds of an ISO 8601 datetime with offset (ValueError naming ``name`` otherwise)."""
    if not isinstance(value, str) or not DATETIME_RE.match(value):
        raise ValueError(f"{name} must be an ISO 8601 datetime with offset, e.g. 2026-11-10T00:00:00+00:00 "
                         f"(got {value!r})")
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def module_snapshot(request: web.Request) -> tuple[Simulator, str, Dataset]:
    """(simulator, module, data) of a control call about ``{module}``: the data at ``?at=`` or the clock's now.

    :param request: the control call.
    """
    sim: Simulator = request.app[SIM]
    module = request.match_info["module"]
    if module not in MODULES:
        raise ValueError(f"unknown module {module!r}")
    return sim, module, sim.snapshot(parse_moment(request.query["at"], "at") if request.query.get("at") else None)


# -- the Deleted Records API ------------------------------------------------------------------------------------
def deleted_list(ds: Dataset, module: str, chunk: int = 50_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index, deleted at, permanent now) of the module's records deleted and not restored at ``ds.now``."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if ds.deletions_per_day > 0 or ds.events.deletions.get(module):
        n = ds.count(module)
        for lo in range(0, n, chunk):
            idx = np.arange(lo, min(n, lo + chunk), dtype=np.int64)
            _, base = ds.base_times(module, idx)
            gone = deletions(ds, module, idx, base)
            keep = (gone.deleted <= ds.now) & (ds.now < gone.restored)
            permanent = gone.permanent | (ds.now >= gone.deleted + ds.retention_seconds)
            parts.append((idx[keep], gone.deleted[keep], permanent[keep]))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=bool)
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def display_field(ds: Dataset, module: str) -> str:
    spec = ds.spec(module)
    if spec.get("Full_Name"):
        return "Full_Name"
    return next(f.api_name for f in spec.fields if f.data_type in ("text", "autonumber"))


def user(uid: str) -> dict[str, str]:
    return {"name": owner_subfield(uid, "full_name"), "id": uid}


def deleted_page(ds: Dataset, module: str, kind: str, since: int | None, page: int,
                 per_page: int) -> tuple[list[dict[str, Any]], bool]:
    """One page of deletions, newest first (then by id), and whether more pages follow."""
    idx, deleted, permanent = deleted_list(ds, module)
    keep = np.ones(len(idx), dtype=bool)
    if kind != "all":
        keep &= permanent if kind == "permanent" else ~permanent
    if since is not None:
        keep &= deleted > since
    idx, deleted, permanent = idx[keep], deleted[keep], permanent[keep]
    order = np.lexsort((idx, -deleted))
    chosen = order[(page - 1) * per_page: page * per_page]
    more = len(order) > page * per_page
    if len(chosen) == 0:
        return [], more
    name = display_field(ds, module)
    sel = idx[chosen]
    cols = ds.raw_columns(module, sel, [name, "Created_By"])
    by = (ds.uniform(module, "deleted_by", sel) * len(USERS)).astype(np.int64)
    spec = ds.spec(module)
    entries = [{"deleted_by": user(USERS[b][0]), "id": spec.record_id(i), "display_name": display,
                "type": "permanent" if perm else "recycle", "created_by": user(creator),
                "deleted_time": datetime.fromtimestamp(t, ORG_TZ).isoformat()}
               for i, display, creator, b, t, perm in zip(sel.tolist(), cols[name].tolist(),
                                                          cols["Created_By"].tolist(), by.tolist(),
                                                          deleted[chosen].tolist(), permanent[chosen].tolist(),
                                                          strict=True)]
    return entries, more


def query_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ZohoError("INVALID_DATA", f"{name} must be a positive integer", {"param_name": name})
    return int(raw)


def if_modified_since(request: web.Request) -> int | None:
    raw = request.headers.get("If-Modified-Since")
    if raw is None:
        return None
    try:
        return parse_moment(raw.strip(), "If-Modified-Since")
    except ValueError:
        pass
    try:
        return int(parsedate_to_datetime(raw).timestamp())  # the HTTP date form is accepted too
    except (TypeError, ValueError):
        raise ZohoError("INVALID_DATA", "If-Modified-Since must be an ISO 8601 datetime with offset, e.g. "
                        "2026-11-10T00:00:00+00:00", {"header_name": "If-Modified-Since"}) from None


async def deleted_records(request: web.Request) -> web.Response:
    """``GET /crm/{version}/{module}/deleted``: 200 with a page of deletions, or 204 with no body when none match."""
    sim: Simulator = request.app[SIM]
    sim.authenticate(request)
    module = request.match_info["module"]
    if module not in MODULES:
        raise ZohoError("INVALID_MODULE", "the module name given seems to be invalid", {"resource_path_index": 0})
    sim.require_module_scope(module)
    if module in sim.settings.no_permission_modules:
        raise ZohoError("NO_PERMISSION", f"permission denied to read {module}", {"permissions": ["Crm_Implied_View"]})
    sim.inject_error()
    kind = request.query.get("type", "all")
    if kind not in DELETED_TYPES:
        raise ZohoError("INVALID_DATA", f"type must be one of {', '.join(DELETED_TYPES)}",
                        {"param_name": "type", "expected": list(DELETED_TYPES)})
    page, per_page = query_int(request, "page", 1), query_int(request, "per_page", PER_PAGE_MAX)
    if per_page > PER_PAGE_MAX:
        raise ZohoError("INVALID_DATA", f"per_page must be at most {PER_PAGE_MAX}",
                        {"param_name": "per_page", "maximum_length": PER_PAGE_MAX})
    since = if_modified_since(request)
    data = sim.snapshot()
    loop = asyncio.get_running_loop()
    entries, more = await loop.run_in_executor(sim.query_executor, deleted_page, data, module, kind, since, page,
                                               per_page)
    if not entries:
        return web.Response(status=204)
    return json_response({"data": entries, "info": {"page": page, "per_page": per_page, "count": len(entries),
                                                    "more_records": more}})


# -- control calls -----------------------------------------------------------------------------------------------
async def ctl_clock(request: web.Request) -> web.Response:
    """GET: the simulated now; POST ``{"now": ISO, "rate": seconds per second}`` (both optional) moves it."""
    sim: Simulator = request.app[SIM]
    if request.method == "POST":
        body = await json_object(request, 'POST /__sim__/clock wants {"now": "<ISO 8601 with offset>", "rate": <float>}')
        now = parse_moment(body["now"], "now") if body.get("now") is not None else None
        sim.clock.set(now, None if body.get("rate") is None else float(body["rate"]))
    return json_response({**sim.clock.to_json(), "end": iso(sim.dataset.end)})


async def _body(request: web.Request) -> tuple[Simulator, dict[str, Any], str, int, int]:
    """(simulator, body, module, record index, at) of a control call about one record."""
    sim: Simulator = request.app[SIM]
    body = await json_object(request, "the body must be a JSON object")
    module = body.get("module")
    if module not in MODULES:
        raise ValueError(f"unknown module {module!r}; known: {', '.join(MODULES)}")
    at = parse_moment(body["at"], "at") if body.get("at") is not None else sim.clock.now()
    idx = -1
    if "id" in body:
        idx = int(str(body["id"])) - MODULES[module].first_id
        if not 0 <= idx < sim.dataset.count(module):
            raise ValueError(f"{module} has no record {body['id']} (ids {MODULES[module].record_id(0)} .. "
                             f"{MODULES[module].record_id(sim.dataset.count(module) - 1)})")
        created, _ = sim.dataset.base_times(module, np.array([idx]))
        if at < int(created[0]):
            raise ValueError(f"record {body['id']} is created at {iso(int(created[0]))}: {at=} is before that")
    return sim, body, module, idx, at


async def ctl_changes(request: web.Request) -> web.Response:
    """``{"module", "id", "at"}``: the record is edited at ``at`` (Modified_Time = at, every editable field redrawn)."""
    sim, body, module, idx, at = await _body(request)
    times = sim.dataset.events.edits.setdefault(module, {}).setdefault(idx, [])
    times.append(at)
    times.sort()
    return json_response({"module": module, "id": body["id"], "at": iso(at)})


async def ctl_deletions(request: web.Request) -> web.Response:
    """``{"module", "id", "at", "type": "recycle"|"permanent"}``: the record is deleted at ``at`` (this replaces
    its random deletion history)."""
    sim, body, module, idx, at = await _body(request)
    kind = body.get("type", "recycle")
    if kind not in ("recycle", "permanent"):
        raise ValueError("type must be recycle or permanent")
    sim.dataset.events.deletions.setdefault(module, {})[idx] = (at, kind == "permanent")
    sim.dataset.events.restores.get(module, {}).pop(idx, None)
    return json_response({"module": module, "id": body["id"], "at": iso(at), "type": kind})


async def ctl_restores(request: web.Request) -> web.Response:
    """``{"module", "id", "at"}``: a record in the recycle bin at ``at`` is restored then (Modified_Time = at)."""
    sim, body, module, idx, at = await _body(request)
    data = sim.snapshot(at)
    rows = np.array([idx])
    gone = deletions(data, module, rows, data.base_times(module, rows)[1])
    deleted, permanent, restored = int(gone.deleted[0]), bool(gone.permanent[0]), int(gone.restored[0])
    if deleted > at or restored <= at or permanent or at >= deleted + data.retention_seconds:
        raise ValueError(f"record {body['id']} is not in the recycle bin at {iso(at)}; only a record deleted to "
                         "the recycle bin, within the retention and not yet restored, can be restored")
    sim.dataset.events.restores.setdefault(module, {})[idx] = at
    return json_response({"module": module, "id": body["id"], "at": iso(at), "deleted_at": iso(deleted)})


async def ctl_fields(request: web.Request) -> web.Response:
    """POST ``{"module", "api_name", "data_type", "at", ...options}``: the module's metadata and all-fields CSVs
    have the field from ``at`` on; records last modified before ``at`` have it empty. GET: fields added so far."""
    sim: Simulator = request.app[SIM]
    if request.method == "GET":
        return json_response({m: [{"api_name": f.api_name, "data_type": f.data_type, "at": iso(at)}
                                  for f, at in added] for m, added in sim.dataset.events.added_fields.items()})
    sim, body, module, _, at = await _body(request)
    name, data_type = body.get("api_name"), body.get("data_type")
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ValueError(f"api_name must be a field API name like Region_Code (got {name!r})")
    if data_type not in ADDED_KINDS:
        raise ValueError(f"data_type {data_type!r} is not supported; one of {', '.join(ADDED_KINDS)}")
    added = sim.dataset.events.added_fields.setdefault(module, [])
    if MODULES[module].get(name) or any(f.api_name == name for f, _ in added):
        raise ValueError(f"{module} already has a field {name}")
    options = {k: body[k] for k in ("decimal_place", "prefix", "suffix", "start_number") if k in body}
    values = tuple(str(v) for v in body.get("values", ("Alpha", "Beta", "Gamma")))
    lookup = str(body.get("lookup_module", "Accounts" if data_type == "lookup" else ""))
    if lookup and lookup not in MODULES:
        raise ValueError(f"lookup_module {lookup!r} is not a module")
    spec = F(name, data_type, ADDED_KINDS[data_type], values if "picklist" in data_type else (), lookup, **options)
    added.append((spec, at))
    number = len(MODULES[module].fields) + len(added) - 1
    return json_response({"module": module, "at": iso(at), "field": field_json(MODULES[module], spec, number)})


async def ctl_deleted(request: web.Request) -> web.Response:
    """Every deletion of a module at the clock's now (or ``?at=``), unpaged: the truth tests compare with."""
    sim, module, data = module_snapshot(request)
    loop = asyncio.get_running_loop()
    entries, _ = await loop.run_in_executor(sim.query_executor, deleted_page, data, module, "all", None, 1,
                                            data.count(module) or 1)
    return json_response({"as_of": iso(data.now), "deleted": entries})


def add_history_routes(router: web.UrlDispatcher) -> None:
    router.add_route("*", "/__sim__/clock", ctl_clock)
    router.add_post("/__sim__/changes", ctl_changes)
    router.add_post("/__sim__/deletions", ctl_deletions)
    router.add_post("/__sim__/restores", ctl_restores)
    router.add_route("*", "/__sim__/fields", ctl_fields)
    router.add_get("/__sim__/deleted/{module}", ctl_deleted)
