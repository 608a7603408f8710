"""The export DAG's own tasks: each a named step on the records, wired by :mod:`zoho_crm.export.dag`.

Records travel between the tasks as JSON dicts (``to_xcom``/``from_xcom``); files are named by their keys in the
run's store. A problem retrying cannot fix (bad input, bad data) fails the task at once.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, AssetAlias, task

from zoho_crm.airflow_compat import unwrap_lazy_context_value
from zoho_crm.api.errors import ZohoError
from zoho_crm.api.modules import FIELDS_READ_SCOPE
from zoho_crm.api.query import InvalidBulkReadQuery
from zoho_crm.export.layout import DOWNLOADS_SUBDIR
from zoho_crm.export.records import ExportQuery, ExportRun, ExportStepError, PageRecord, interval_gap
from zoho_crm.export.steps import publish_export, unzip_page, validate_page
from zoho_crm.export.storage import default_store
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.job_waiting import fail_fast, task_error

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("module", "run_key", "path", "manifest", "record_count", "page_count", "job_ids", "valid")
"""What the manifest task returns (its XCom): where the export is and what it holds."""


def exports_alias(dag_id: str) -> AssetAlias:
    """The alias through which a DAG's manifest task updates the exported module's Asset (one alias per DAG).

    :param dag_id: the export DAG.
    """
    return AssetAlias(f"zoho-crm-exports/{dag_id}")


def module_asset_uri(module: str) -> str:
    """The Asset a module's export updates: downstream DAGs can be scheduled on it.

    :param module: the module's API name.
    """
    return f"zoho-crm://{module}"


@task(multiple_outputs=True)
def resolve_query(custom_modules: list[str] | None = None, **context: Any) -> dict[str, Any]:
    """Check the Params and build the export run before any Zoho call; fail at once on bad input.

    Returns the run's XCom (:meth:`ExportRun.to_xcom`: the query's keys and the run's) and ``download_dir``, the
    local folder the download task writes the run's zips to.
    """
    run = context["dag_run"]
    run_type = str(getattr(run.run_type, "value", run.run_type))
    try:
        query = ExportQuery.from_params(
            dict(context["params"]),
            run_type=run_type,
            interval_start=context.get("data_interval_start"),
            interval_end=context.get("data_interval_end"),
            custom_modules=tuple(custom_modules or ()),
        )
    except InvalidBulkReadQuery as err:
        raise fail_fast(str(err)) from None
    # Only a scheduled run asks (lazily, one API call) for the previous success.
    prev_end = context.get("prev_data_interval_end_success") if run_type == "scheduled" else None
    gap = interval_gap(run_type, unwrap_lazy_context_value(prev_end), context.get("data_interval_start"),
                       dag_id=run.dag_id)
    if gap:
        log.warning("%s", gap["message"])
    store = default_store()
    export = ExportRun.create(
        query, run_type=run_type, run_id=run.run_id, interval_start=context.get("data_interval_start"),
        interval_end=context.get("data_interval_end"), store=store.location, interval_gap=gap,
    )
    return {**export.to_xcom(), "download_dir": str(store.local_path(export.staged(DOWNLOADS_SUBDIR)))}


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
def manifest(run: dict[str, Any], pages: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
    """Write manifest.json, publish the export atomically and update the module's Asset."""
    export = ExportRun.from_xcom(run)
    summary = publish_export(export, [PageRecord.from_xcom(page) for page in pages])
    context["outlet_events"][exports_alias(context["dag_run"].dag_id)].add(
        Asset(module_asset_uri(export.query.module)),
        extra={"manifest": summary["manifest"], "records": summary["record_count"]},
    )
    log.info(
        "Exported %s: %d record(s) in %d page(s) -> %s",
        export.query.module, summary["record_count"], summary["page_count"], summary["manifest"],
    )
    return {key: summary[key] for key in SUMMARY_KEYS}

