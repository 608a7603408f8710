"""The export DAG's own tasks: each a named step on the records, wired by :mod:`zoho_crm.export.dag`.

Records travel between the tasks as JSON dicts (``to_xcom``/``from_xcom``); files are named by their keys in the
run's store. A problem retrying cannot fix (bad input, bad data) fails the task at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, AssetAlias, task

from zoho_crm.airflow_compat import unwrap_lazy_context_value
from zoho_crm.api.errors import ZohoError
from zoho_crm.api.modules import FIELDS_READ_SCOPE
from zoho_crm.api.query import InvalidBulkReadQuery
from zoho_crm.export.layout import DOWNLOADS_SUBDIR, INTERVAL_RUN_TYPES
from zoho_crm.export.load import (
    DEFAULT_DELETION_MODE,
    ICS_NOT_LOADED,
    LOAD_COUNTS,
    LOAD_KEY,
    LoadPlan,
    check_loadable_fields,
    load_published,
    needs_full_load,
    publish_load,
    table_asset_uri,
)
from zoho_crm.export.records import (
    ExportQuery,
    ExportRun,
    ExportStepError,
    PageRecord,
    interval_gap,
    zoho_datetime,
)
from zoho_crm.export.steps import (
    export_schema,
    parquet_page,
    publish_export,
    schema_drift_entry,
    unzip_page,
    validate_page,
)
from zoho_crm.export.storage import default_store
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.job_waiting import fail_fast, task_error

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("module", "run_key", "path", "manifest", "record_count", "page_count", "job_ids", "valid")
"""What the manifest task returns (its XCom): where the export is and what it holds."""
PREVIOUS_EVENTS = 20
"""How many of the module Asset's latest events the manifest task looks through for the previous export with the
same fields (its schema, for the drift report)."""


def exports_alias(dag_id: str) -> AssetAlias:
    """The alias through which a DAG's manifest task updates the exported module's Asset (one alias per DAG).

    :param dag_id: the export DAG.
    """
    return AssetAlias(f"zoho-crm-exports/{dag_id}")


def tables_alias(dag_id: str) -> AssetAlias:
    """The alias through which a DAG's load task updates the loaded table's Asset (one alias per DAG).

    :param dag_id: the export DAG.
    """
    return AssetAlias(f"zoho-crm-tables/{dag_id}")


def module_asset_uri(module: str) -> str:
    """The Asset a module's export updates: downstream DAGs can be scheduled on it.

    :param module: the module's API name.
    """
    return f"zoho-crm://{module}"


@task(multiple_outputs=True)
def resolve_query(
    custom_modules: list[str] | None = None,
    warehouse_conn_id: str | None = None,
    load_lookback_seconds: float = 0.0,
    **context: Any,
) -> dict[str, Any]:
    """Check the Params and build the export run before any Zoho call; fail at once on bad input.

    With a warehouse, an interval run of a CSV export whose module has no full load for this DAG yet exports
    everything (the first load is complete); later interval runs start ``load_lookback_seconds`` before their
    interval. Returns the run's XCom (:meth:`ExportRun.to_xcom`: the query's keys and the run's), ``download_dir``,
    the store location of the run's ``downloads/`` folder the download task writes the zips to (a local folder
    for a local store, ``s3://...`` for a bucket: :func:`~zoho_crm.export.storage.open_store` opens it), and with a
    warehouse the load plan (:data:`~zoho_crm.export.load.LOAD_KEY`).
    """
    run = context["dag_run"]
    run_type = str(getattr(run.run_type, "value", run.run_type))
    params = dict(context["params"])
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    try:
        query = _query(params, run_type, start, end, custom_modules)
        plan = None
        if warehouse_conn_id and query.file_type == "csv":
            check_loadable_fields(query.fields)
            plan, query = _load_plan(query, params, run_type, start, end, custom_modules, warehouse_conn_id,
                                     load_lookback_seconds, dag_id=run.dag_id)
    except (InvalidBulkReadQuery, ValueError) as err:
        raise fail_fast(str(err)) from None
    # Only a scheduled run asks (lazily, one API call) for the previous success.
    prev_end = context.get("prev_data_interval_end_success") if run_type == "scheduled" else None
    gap = interval_gap(run_type, unwrap_lazy_context_value(prev_end), start, dag_id=run.dag_id)
    if gap:
        log.warning("%s", gap["message"])
    store = default_store()
    export = ExportRun.create(
        query, run_type=run_type, run_id=run.run_id, interval_start=start, interval_end=end, store=store.location,
        interval_gap=gap,
    )
    result = {**export.to_xcom(), "download_dir": f"{store.location}/{export.staged(DOWNLOADS_SUBDIR)}"}
    if plan is not None:
        result[LOAD_KEY] = plan.to_xcom()
    return result


def _query(params: dict[str, Any], run_type: str, start: Any, end: Any, custom_modules: list[str] | None,
           lookback: timedelta = timedelta(0)) -> ExportQuery:
    return ExportQuery.from_params(
        params, run_type=run_type, interval_start=start - lookback if start and lookback else start,
        interval_end=end, custom_modules=tuple(custom_modules or ()),
    )


def _load_plan(
    query: ExportQuery, params: dict[str, Any], run_type: str, start: Any, end: Any,
    custom_modules: list[str] | None, conn_id: str, lookback_seconds: float, *, dag_id: str,
) -> tuple[LoadPlan, ExportQuery]:
    """The load plan of a run and its query: the first interval run exports everything, later ones look back.

    An export without a time range is the DAG's full load: every record its query selects (with criteria or a
    custom view, every record they select), so the DAG's interval runs are incremental from then on."""
    interval = run_type in INTERVAL_RUN_TYPES and start is not None and end is not None
    overridden = bool(params.get("modified_from") or params.get("modified_to"))
    interval_end = zoho_datetime(end) if interval else None
    if not interval or overridden:
        return LoadPlan(conn_id, dag_id, full_load=query.time_range is None, interval_end=interval_end), query
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    try:
        first = needs_full_load(conn, query.module, dag_id)
    finally:
        conn.close()
    if first:
        full = _query(params, "manual", None, None, custom_modules)
        log.info("%s has no full load of %s for %s in the warehouse yet: this run exports every record instead of "
                 "its interval (the first load is complete); the following runs are incremental.",
                 dag_id, query.module, conn_id)
        return LoadPlan(conn_id, dag_id, full_load=True, interval_end=interval_end), full
    lookback = timedelta(seconds=lookback_seconds)
    widened = _query(params, run_type, start, end, custom_modules, lookback)
    log.info("Incremental export of %s: Modified_Time in %s .. %s (the interval with a look-back of %s)",
             query.module, *(widened.time_range or ("", "")), lookback)
    plan = LoadPlan(conn_id, dag_id, full_load=False, interval_end=interval_end, lookback_seconds=lookback_seconds)
    return plan, widened


@task
def field_metadata(run: dict[str, Any], zoho_conn_id: str) -> list[dict] | None:
    """The module's field metadata for type checks (CSV only; without the scope, checks are skipped)."""
    query = ExportQuery.from_xcom(run)
    if query.file_type != "csv":
        return None
    try:
        return ZohoCRMHook(zoho_conn_id).get_field_metadata(query.module)
    except ZohoError as err:
        if err.code != "OAUTH_SCOPE_MISMATCH":
            raise task_error(err) from err  # fail at once when retrying cannot help
        log.warning("No %s scope: CSV types are not checked (%s).", FIELDS_READ_SCOPE, err.code)
        return None


@task
def unzip(download: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Extract one downloaded page into the run's staging area."""
    try:
        return unzip_page(download, ExportRun.from_xcom(run)).to_xcom()
    except ExportStepError as err:
        raise fail_fast(str(err)) from None


@task
def validate(page: dict[str, Any], run: dict[str, Any], metadata: list[dict] | None) -> dict[str, Any]:
    """Validate one extracted page and write its report."""
    try:
        return validate_page(PageRecord.from_xcom(page), ExportRun.from_xcom(run), field_metadata=metadata).to_xcom()
    except ExportStepError as err:
        raise fail_fast(str(err)) from None


@task
def to_parquet(page: dict[str, Any], run: dict[str, Any], metadata: list[dict] | None) -> dict[str, Any]:
    """Write one validated CSV page as typed Parquet beside it (ICS pages pass unchanged)."""
    try:
        return parquet_page(PageRecord.from_xcom(page), ExportRun.from_xcom(run), field_metadata=metadata).to_xcom()
    except ExportStepError as err:
        raise fail_fast(str(err)) from None


@task
def manifest(run: dict[str, Any], pages: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
    """Write manifest.json, publish the export atomically and update the module's Asset.

    The manifest lists each page's Parquet file (``files.parquet``), their shared ``schema`` and the
    ``schema_drift`` from the previous published export of the module with the same fields (found through the
    module Asset's latest events); with a warehouse, also ``full_load`` and ``table_load``.
    """
    export = ExportRun.from_xcom(run)
    records = [PageRecord.from_xcom(page) for page in pages]
    asset = Asset(module_asset_uri(export.query.module))
    try:
        schema = export_schema(export, records)
    except ExportStepError as err:
        raise fail_fast(str(err)) from None
    drift = schema_drift_entry(_previous_export(context, asset, export.query), schema)
    extra: dict[str, Any] = {"schema": schema, "schema_drift": drift}
    if schema is not None and schema.get("text_only"):
        log.warning("No field metadata: every Parquet column of %s is text.", export.query.module)
    if drift and drift["changed_any"]:
        log.warning("Schema drift of %s since %s: %s", export.query.module, drift["previous"]["run_key"],
                    drift["summary"])
    plan = run.get(LOAD_KEY)
    if plan:
        loaded = LoadPlan.from_xcom(plan)
        extra.update(full_load=loaded.full_load, table_load=loaded.manifest_entry(export.query.module))
    summary = publish_export(export, records, extra=extra)
    context["outlet_events"][exports_alias(context["dag_run"].dag_id)].add(
        asset,
        extra={"manifest": summary["manifest"], "records": summary["record_count"], "run_key": export.run_key,
               "fields": list(export.query.fields), "schema": schema},
    )
    log.info(
        "Exported %s: %d record(s) in %d page(s) -> %s",
        export.query.module, summary["record_count"], summary["page_count"], summary["manifest"],
    )
    return {key: summary[key] for key in SUMMARY_KEYS}


def _previous_export(context: dict[str, Any], asset: Asset, query: ExportQuery) -> dict[str, Any] | None:
    """The extra of the module Asset's latest event from an export with the same fields and a schema, if any."""
    events = context["inlet_events"][asset].ascending(False).limit(PREVIOUS_EVENTS)
    for event in events:
        extra = event.extra or {}
        if extra.get("schema") and extra.get("fields") == list(query.fields):
            return extra
    return None


@task
def load_table(run: dict[str, Any], summary: dict[str, Any], metadata: list[dict] | None,
               zoho_conn_id: str = "zoho_crm_default", deletion_mode: str = DEFAULT_DELETION_MODE,
               **context: Any) -> dict[str, Any]:
    """Merge the published export into its module's table in one transaction, with the module's deletions since
    the watermark (one Deleted Records pass); update the table's Asset and write the counts beside the export's
    pointer (``load.json``).

    Returns (and logs) the counts: records, inserted, updated, skipped (this version or a newer one already
    there), marked deleted, restored, removed, columns added, widened and nulled. An ICS export is not loaded.
    """
    import psycopg

    from zoho_crm.tables.warehouse import SchemaChangeError, WarehouseLoadError

    export = ExportRun.from_xcom(run)
    if export.query.file_type != "csv" or not run.get(LOAD_KEY):
        log.info("%s", ICS_NOT_LOADED)
        return {"loaded": False, "module": export.query.module, "reason": ICS_NOT_LOADED}
    plan = LoadPlan.from_xcom(run[LOAD_KEY])
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=plan.conn_id).get_conn()
    try:
        counts = load_published(conn, export, plan, metadata, deletion_mode=deletion_mode,
                                get_deleted=ZohoCRMHook(zoho_conn_id).get_deleted_records)
    except ZohoError as err:
        raise task_error(err) from err
    except (SchemaChangeError, ValueError, ExportStepError) as err:
        raise fail_fast(f"{summary['manifest']}: {err}") from None
    except WarehouseLoadError as err:
        if isinstance(err.__cause__, psycopg.OperationalError):
            raise  # the connection or the server: a retry can help
        raise fail_fast(f"{summary['manifest']}: {err}") from None
    finally:
        conn.close()
    context["outlet_events"][tables_alias(context["dag_run"].dag_id)].add(
        Asset(table_asset_uri(plan.conn_id, export.query.module)),
        extra={key: counts[key] for key in ("table", "run_key", "records", *LOAD_COUNTS)},
    )
    log.info(
        "Loaded %s into %s (%s): %d record(s): %d inserted, %d updated, %d skipped (this version or a newer one "
        "already there); columns added %s, widened %s, nulled %s",
        export.run_key, counts["table"], "full load" if counts["full_load"] else "incremental", counts["records"],
        counts["inserted"], counts["updated"], counts["skipped"], counts["added_columns"] or "none",
        counts["widened_columns"] or "none", counts["nulled_columns"] or "none",
    )
    log.info(
        "Deletions (%s): %d listed by Zoho since %s; %d row(s) marked deleted, %d restored, %d removed%s; "
        "watermark now %s",
        counts["deletion_mode"], counts["deletions_listed"], counts["deletions_since"] or "the beginning",
        counts["marked_deleted"], counts["restored"], counts["removed"],
        " (an unfiltered full export: rows it lacks reconciled)" if counts["reconciled"] else "",
        counts["deleted_since"] or "unchanged",
    )
    counts["load_summary"] = publish_load(export, counts)
    return {"loaded": True, **counts}
