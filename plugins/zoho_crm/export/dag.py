"""Build the export DAG: resolve query -> create job -> wait (deferred) -> every page -> download (pool)
-> unzip -> validate -> manifest. DAG files only call :func:`build_export_dag`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetAlias, Context, CronDataIntervalTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from zoho_crm.api.errors import ZohoError
from zoho_crm.api.modules import FIELDS_READ_SCOPE, SEED_MODULES
from zoho_crm.api.query import COMPARATORS, GROUP_OPERATORS, InvalidBulkReadQuery
from zoho_crm.export.layout import final_dir, staging_dir
from zoho_crm.export.request import interval_gap, resolve_export
from zoho_crm.export.steps import DOWNLOADS_SUBDIR, ExportStepError, publish_export, unzip_page, validate_page
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.operators.bulk_read import ZohoBulkReadOperator, task_error
from zoho_crm.operators.download import ZohoBulkReadDownloadOperator
from zoho_crm.operators.pages import ZohoBulkReadPagesOperator
from zoho_crm.rate_limit.window import DEFAULT_POOL
from zoho_crm.sensors.bulk_read_job import ZohoBulkReadJobSensor

log = logging.getLogger(__name__)

RETRY_DEFAULTS: dict[str, Any] = {
    "retries": 5,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}
"""Transient failures (Zoho 5xx past the hook's own retries, a lost worker) are retried after 30 s, 1, 2, 4 and 8
minutes (plus Airflow's jitter): about a quarter of an hour, more than Zoho's 10-minute token throttle window
("Access Denied"). Bad input fails at once, without retries. The download task raises its delays to the rate-limit
window (``MIN_RETRY_DELAY``)."""


def exports_alias(dag_id: str) -> AssetAlias:
    """The alias through which a DAG's manifest task updates the exported module's Asset (one alias per DAG)."""
    return AssetAlias(f"zoho-crm-exports/{dag_id}")


def module_asset_uri(module: str) -> str:
    """The Asset a module's export updates: downstream DAGs can be scheduled on it."""
    return f"zoho-crm://{module}"


def module_names(custom_modules: list[str]) -> list[str]:
    """Every module name the form accepts: API names, the seed's lowercase names, and the custom modules."""
    names = [*SEED_MODULES, "Meetings", *custom_modules]
    return list(dict.fromkeys([*names, *(name.lower() for name in names)]))


def criteria_schema() -> dict[str, Any]:
    """JSON schema of Zoho criteria: a condition, or a group of criteria (what ``check_criteria`` checks)."""
    condition = {
        "type": "object",
        "required": ["field", "comparator", "value"],
        "properties": {
            "field": {
                "type": "object",
                "required": ["api_name"],
                "properties": {"api_name": {"type": "string", "minLength": 1}},
            },
            "comparator": {"enum": sorted(COMPARATORS)},
        },
        "not": {"anyOf": [{"required": ["group"]}, {"required": ["group_operator"]}]},
    }
    group = {
        "type": "object",
        "required": ["group_operator", "group"],
        "properties": {
            "group_operator": {"enum": [*GROUP_OPERATORS, *(op.upper() for op in GROUP_OPERATORS)]},
            "group": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/criteria"}},
        },
        "not": {"anyOf": [{"required": ["field"]}, {"required": ["comparator"]}, {"required": ["value"]}]},
    }
    return {"$defs": {"criteria": {"anyOf": [condition, group]}}, "anyOf": [{"type": "null"}, {"$ref": "#/$defs/criteria"}]}


def export_params(module: str, fields: list[str], file_type: str, custom_modules: list[str]) -> dict[str, Param]:
    """The trigger form: what the UI renders and checks before a run is created (keys: ``PARAM_NAMES``)."""
    time_help = "ISO 8601 with an offset, e.g. 2026-11-01T00:00:00+00:00 (the form's picker sends UTC)."
    return {
        "module": Param(
            module,
            type="string",
            pattern="^(?:" + "|".join(module_names(custom_modules)) + ")$",
            examples=[*SEED_MODULES, *custom_modules],
            title="Module",
            description="Module API name: pick one, or type a custom module's API name (custom modules must be "
            "listed in custom_modules of include/config/zoho_crm_exports.json).",
        ),
        "fields": Param(
            fields,
            type="array",
            items={"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_.]*$"},
            uniqueItems=True,
            title="Fields",
            description="Field API names, in the CSV's order. Empty = all fields. Must be empty for ICS.",
        ),
        "file_type": Param(
            file_type, type="string", enum=["csv", "ics"], title="File type", description="ics: Events only."
        ),
        "criteria": Param(
            None,
            type=["null", "object"],
            title="Criteria (JSON)",
            description='Optional Zoho criteria, e.g. {"field": {"api_name": "Lead_Status"}, '
            '"comparator": "equal", "value": "Contacted"}, or {"group_operator": "and", "group": [...]}.',
            **criteria_schema(),
        ),
        "cvid": Param(
            None, type=["null", "string"], pattern=r"^[0-9]*$", title="Custom view id",
            description="Optional: export only the records of this custom view (its id, digits; in Zoho's URL of "
            "the view). Empty = no view.",
        ),
        "modified_from": Param(
            None, type=["null", "string"], format="date-time", title="Modified from",
            description=f"Time range override (with Modified to): export records modified in [from, to). {time_help}",
        ),
        "modified_to": Param(
            None, type=["null", "string"], format="date-time", title="Modified to", description=time_help
        ),
    }


def _fail_fast(err: Exception) -> AirflowFailException:
    return AirflowFailException(str(err))


def build_export_dag(
    dag_id: str,
    *,
    module: str = "Leads",
    fields: list[str] | None = None,
    file_type: str = "csv",
    schedule: str | None = "@daily",  # cron or preset; runs cover [data_interval_start, data_interval_end)
    start_date: datetime | None = None,
    catchup: bool = False,
    pool: str = DEFAULT_POOL,
    zoho_conn_id: str = "zoho_crm_default",
    custom_modules: list[str] | None = None,
    poll_interval: float = 5,
    sensor_timeout: float = 6 * 3600,
    tags: list[str] | None = None,
    description: str | None = None,
) -> DAG:
    """Return the export DAG for one module's defaults (the Params let a manual run choose another)."""
    custom = tuple(custom_modules or ())
    with DAG(
        dag_id,
        schedule=CronDataIntervalTimetable(schedule, timezone="UTC") if schedule else None,
        start_date=start_date or pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=catchup,
        params=export_params(module, list(fields or []), file_type, list(custom)),
        default_args=RETRY_DEFAULTS,
        tags=["zoho-crm", *(tags or [])],
        description=description or f"Export Zoho CRM {module} with Bulk Read, validated, page by page.",
        doc_md=__doc__,
        max_active_tasks=32,
    ) as dag:

        @task(multiple_outputs=True)
        def resolve_query(**context: Any) -> dict[str, Any]:
            """Check the Params and build the query before any Zoho call; fail at once on bad input."""
            run = context["dag_run"]
            run_type = str(getattr(run.run_type, "value", run.run_type))
            try:
                query = resolve_export(
                    dict(context["params"]),
                    run_type=run_type,
                    run_id=run.run_id,
                    interval_start=context.get("data_interval_start"),
                    interval_end=context.get("data_interval_end"),
                    custom_modules=custom,
                )
            except InvalidBulkReadQuery as err:
                raise _fail_fast(err) from None
            query["staging_dir"] = str(staging_dir(query["module"], query["run_key"], run.run_id))
            query["final_dir"] = str(final_dir(query["module"], query["run_key"]))
            query["download_dir"] = str(Path(query["staging_dir"]) / DOWNLOADS_SUBDIR)
            # Only a scheduled run asks (lazily, one API call) for the previous success; Airflow hands a proxy,
            # and a proxy of None is not None.
            prev_end = context.get("prev_data_interval_end_success") if run_type == "scheduled" else None
            query["gap"] = interval_gap(
                run_type, getattr(prev_end, "__wrapped__", prev_end), context.get("data_interval_start"), dag_id=dag_id
            )
            if query["gap"]:
                log.warning("%s", query["gap"]["message"])
            return query

        @task
        def field_metadata(query: dict[str, Any]) -> list[dict] | None:
            """The module's field metadata for type checks (CSV only; without the scope, checks are skipped)."""
            if query["file_type"] != "csv":
                return None
            try:
                return ZohoCRMHook(zoho_conn_id).get_field_metadata(query["module"])
            except ZohoError as err:
                if err.code != "OAUTH_SCOPE_MISMATCH":
                    raise task_error(err) from err  # fail at once when retrying cannot help
                log.warning(
                    "No %s scope: CSV types are not checked (%s).", FIELDS_READ_SCOPE, err.code
                )
                return None

        @task
        def unzip(download: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
            try:
                return unzip_page(download, Path(query["staging_dir"]))
            except ExportStepError as err:
                raise _fail_fast(err) from None

        @task
        def validate(page: dict[str, Any], query: dict[str, Any], metadata: list[dict] | None) -> dict[str, Any]:
            try:
                return validate_page(page, fields=query["fields"], field_metadata=metadata)
            except ExportStepError as err:
                raise _fail_fast(err) from None

        # Airflow 3.3 creates an Asset, and its link to an alias, the first time the alias names it; two tasks
        # doing so at once race to insert the same row, and Airflow fails the second one ("UNIQUE constraint
        # failed") after its export was published. So every module's Asset is declared up front (as an inlet: no
        # event), each DAG has its own alias, and its manifest tasks run one at a time (they take a second).
        alias = exports_alias(dag_id)

        @task(
            outlets=[alias],
            inlets=[Asset(module_asset_uri(name)) for name in (*SEED_MODULES, *custom)],
            max_active_tis_per_dag=1,
        )
        def manifest(query: dict[str, Any], pages: list[dict[str, Any]], **context: Context) -> dict[str, Any]:
            """Write manifest.json, publish the export atomically and update the module's Asset."""
            summary = publish_export(
                query,
                list(pages),
                staging=Path(query["staging_dir"]),
                final=Path(query["final_dir"]),
                run_id=context["dag_run"].run_id,
            )
            context["outlet_events"][alias].add(
                Asset(module_asset_uri(query["module"])),
                extra={"manifest": summary["manifest"], "records": summary["record_count"]},
            )
            log.info(
                "Exported %s: %d record(s) in %d page(s) -> %s",
                query["module"], summary["record_count"], summary["page_count"], summary["manifest"],
            )
            return {key: summary[key] for key in ("module", "run_key", "path", "manifest", "record_count",
                                                  "page_count", "job_ids", "valid")}

        query = resolve_query()
        metadata = field_metadata(query)
        create_job = ZohoBulkReadOperator(
            task_id="create_job",
            zoho_conn_id=zoho_conn_id,
            module=query["module"],
            fields=query["fields"],
            criteria=query["criteria"],
            cvid=query["cvid"],
            file_type=query["file_type"],
        )
        wait_for_job = ZohoBulkReadJobSensor(
            task_id="wait_for_job",
            zoho_conn_id=zoho_conn_id,
            job_id="{{ ti.xcom_pull(task_ids='create_job')['job_id'] }}",
            poll_interval=poll_interval,
            timeout=sensor_timeout,
            deferrable=True,
        )
        pages = ZohoBulkReadPagesOperator(
            task_id="follow_pages",
            zoho_conn_id=zoho_conn_id,
            first_page=wait_for_job.output,
            query=query,
            poll_interval=poll_interval,
            page_timeout=sensor_timeout,
        )
        downloads = ZohoBulkReadDownloadOperator.partial(
            task_id="download", zoho_conn_id=zoho_conn_id, pool=pool, output_dir=query["download_dir"]
        ).expand(job=pages.output)
        extracted = unzip.partial(query=query).expand(download=downloads.output)
        checked = validate.partial(query=query, metadata=metadata).expand(page=extracted)
        create_job >> wait_for_job
        manifest(query, checked)
    return dag
