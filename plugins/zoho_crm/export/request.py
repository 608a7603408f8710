"""Turn a DAG run (its Params and data interval) into a checked Bulk Read query, before any Zoho call.

Pure code: no Airflow, no HTTP. The DAG's first task calls :func:`resolve_export`; everything Zoho would reject
(unknown module, ICS for a module other than Events, fields with ICS, malformed criteria) is refused here with a
message that says what to change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from zoho_crm.api.modules import NON_EXPORTABLE_MODULES, SEED_MODULES, api_name
from zoho_crm.api.query import InvalidBulkReadQuery, build_bulk_read_body
from zoho_crm.export.layout import INTERVAL_RUN_TYPES, run_key

TIME_FIELD = "Modified_Time"
PARAM_NAMES = ("module", "fields", "file_type", "criteria", "cvid", "modified_from", "modified_to")
"""The export's Params (the trigger form); anything else in a run's conf is a mistake, e.g. a misspelt name."""


def zoho_datetime(value: datetime | str) -> str:
    """ISO 8601 without milliseconds, with an offset, as Zoho's criteria want (``2026-11-01T00:00:00+00:00``)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise InvalidBulkReadQuery(f"time {value!r} has no offset: add one, e.g. 2026-11-01T00:00:00+00:00.")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def time_range_criteria(start: str, end: str) -> dict[str, Any]:
    """``Modified_Time >= start and < end``."""
    return {
        "group_operator": "and",
        "group": [
            {"field": {"api_name": TIME_FIELD}, "comparator": "greater_equal", "value": start},
            {"field": {"api_name": TIME_FIELD}, "comparator": "less_than", "value": end},
        ],
    }


def _known_module(module: str, custom_modules: tuple[str, ...]) -> str:
    if not isinstance(module, str) or not module.strip():
        raise InvalidBulkReadQuery("module is empty: choose a module, e.g. Leads.")
    name = api_name(module)
    if name in SEED_MODULES:
        return name
    if name in NON_EXPORTABLE_MODULES:
        raise InvalidBulkReadQuery(
            f"module {name} cannot be exported with Bulk Read (nor can Notes, Attachments, Emails or related "
            "lists): choose another module."
        )
    custom = {custom.lower(): custom for custom in custom_modules}
    if name.lower() not in custom:
        raise InvalidBulkReadQuery(
            f"unknown module {module!r}: use one of {', '.join(SEED_MODULES)}, or add the custom module's API "
            "name to custom_modules in include/config/zoho_crm_exports.json."
        )
    return custom[name.lower()]


def _time_range(params: dict[str, Any], run_type: str, start: Any, end: Any) -> tuple[str, str] | None:
    override = params.get("modified_from"), params.get("modified_to")
    if any(override):
        if not all(override):
            raise InvalidBulkReadQuery("give both modified_from and modified_to, or neither.")
        begin, finish = (zoho_datetime(v) for v in override)
    elif run_type in INTERVAL_RUN_TYPES and start and end:
        begin, finish = zoho_datetime(start), zoho_datetime(end)
    else:
        return None
    if datetime.fromisoformat(begin) >= datetime.fromisoformat(finish):
        raise InvalidBulkReadQuery(f"the time range {begin} .. {finish} is empty: the start must be before the end.")
    return begin, finish


def resolve_export(
    params: dict[str, Any],
    *,
    run_type: str,
    run_id: str,
    interval_start: datetime | None,
    interval_end: datetime | None,
    custom_modules: tuple[str, ...] = (),
    api_version: str = "v8",
) -> dict[str, Any]:
    """Return the export's query (module, fields, file_type, criteria, cvid), time range and run key.

    Scheduled and backfill runs export ``Modified_Time`` in their data interval; a manual run exports everything
    unless ``modified_from``/``modified_to`` are given. Raises :class:`InvalidBulkReadQuery` on bad input.
    """
    unknown = sorted(set(params) - set(PARAM_NAMES))
    if unknown:
        raise InvalidBulkReadQuery(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}: use only {', '.join(PARAM_NAMES)} "
            "(a misspelt name would be ignored, e.g. export everything instead of a time range)."
        )
    module = _known_module(params.get("module", ""), custom_modules)
    criteria = params.get("criteria") or None
    if isinstance(criteria, str):
        try:
            criteria = json.loads(criteria) if criteria.strip() else None
        except ValueError as err:
            raise InvalidBulkReadQuery(f"criteria is not valid JSON ({err}): give a JSON object.") from None
    time_range = _time_range(params, run_type, interval_start, interval_end)
    if time_range:
        window = time_range_criteria(*time_range)
        criteria = {"group_operator": "and", "group": [criteria, window]} if criteria else window
    body = build_bulk_read_body(
        module,
        fields=params.get("fields") or None,
        criteria=criteria,
        cvid=params.get("cvid") or None,
        file_type=params.get("file_type") or "csv",
        api_version=api_version,
    )
    query = body["query"]
    return {
        "module": module,
        "fields": query.get("fields", []),
        "file_type": body["file_type"],
        "criteria": query.get("criteria"),
        "cvid": query.get("cvid"),
        "time_range": list(time_range) if time_range else None,
        "run_key": run_key(run_type, run_id, interval_start, interval_end),
    }


def interval_gap(
    run_type: str, prev_end: datetime | None, start: datetime | None, *, dag_id: str
) -> dict[str, str] | None:
    """The time no successful run exported before this scheduled run, ``[prev_end, start)``, or None.

    ``prev_end`` is Airflow's ``prev_data_interval_end_success``: the data interval end of the latest successful
    run with an earlier logical date (None before the first success). With catchup off, intervals skipped while
    the DAG was paused or the scheduler was down are never run; a failed run leaves its interval out too. Only
    scheduled runs are checked: a backfill or a manual run may run out of order on purpose. The answer has the
    gap's bounds, an ``airflow backfill create`` command exporting it and a ``message`` for the log.
    """
    if run_type != "scheduled" or prev_end is None or start is None or prev_end >= start:
        return None
    begin, finish = zoho_datetime(prev_end), zoho_datetime(start)
    # --to-date is inclusive and matches logical dates (interval starts): every interval starting before ours.
    last = zoho_datetime(start - timedelta(seconds=1))
    command = (
        f"airflow backfill create --dag-id {dag_id} --from-date {begin} --to-date {last} "
        "--reprocess-behavior failed"
    )
    message = (
        f"{dag_id}: nothing was exported for {begin} .. {finish}: the previous successful run's data interval "
        f"ended at {begin}, this run's starts at {finish} (intervals skipped while the DAG was paused or the "
        "scheduler was down, with catchup off, or runs that failed). Backfill the gap: "
        f"{command} -- or in the UI: Trigger > Backfill, Date Range {begin} to {last}, Reprocess Behavior "
        "'Missing and Errored Runs'."
    )
    return {"start": begin, "end": finish, "backfill_command": command, "message": message}
