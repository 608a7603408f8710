"""Build the export DAG: resolve query -> create job -> wait (deferred) -> every page -> download (pool)
-> unzip -> validate -> Parquet -> manifest [-> load_table, with a warehouse]. DAG files only call
:func:`build_export_dag`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from zoho_crm.airflow_compat import asset_update_task_kwargs
from zoho_crm.api.modules import SEED_MODULES
from zoho_crm.export import tasks
from zoho_crm.export.load import (
    DEFAULT_DELETION_MODE,
    DEFAULT_LOAD_LOOKBACK,
    check_deletion_mode,
    check_lookback,
    table_asset_uri,
)
from zoho_crm.export.params import export_params
from zoho_crm.operators.bulk_read import ZohoBulkReadOperator
from zoho_crm.operators.download import ZohoBulkReadDownloadOperator
from zoho_crm.operators.pages import ZohoBulkReadPagesOperator
from zoho_crm.rate_limit.window import DEFAULT_POOL
from zoho_crm.sensors.bulk_read_job import ZohoBulkReadJobSensor

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
    warehouse_conn_id: str | None = None,
    load_lookback: timedelta = DEFAULT_LOAD_LOOKBACK,
    deletion_mode: str = DEFAULT_DELETION_MODE,
) -> DAG:
    """Return the export DAG for one module's defaults (the Params let a manual run choose another).

    :param dag_id: the DAG's id.
    :param module: the default module.
    :param fields: the default fields (empty: all).
    :param file_type: the default file type.
    :param schedule: cron or preset (None: manual runs only).
    :param start_date: the first data interval's start (default 2026-01-01 UTC).
    :param catchup: run the intervals missed since ``start_date``.
    :param pool: the download pool (one slot per download in flight).
    :param zoho_conn_id: the Zoho CRM connection.
    :param custom_modules: custom module API names the Params accept.
    :param poll_interval: seconds between job state polls (growing up to a minute).
    :param sensor_timeout: seconds to wait for each page's job.
    :param tags: extra DAG tags.
    :param description: the DAG's description.
    :param warehouse_conn_id: a Postgres connection: every CSV export is then merged into ``zoho_crm.<module>``
        of its database (task ``load_table``), the first interval run of a module exports everything, and the
        following ones are incremental with ``load_lookback``. None (the default): no load.
    :param load_lookback: how far before its data interval an incremental run of a DAG with a warehouse starts
        exporting (records Zoho makes visible late); the merge keeps the overlap duplicate-free.
    :param deletion_mode: what each load does to the rows of records deleted in Zoho (one Deleted Records pass
        per load): ``mark`` (the default: ``_zoho_deleted_at``/``_zoho_deleted_by`` set) or ``remove``.
    """
    custom = list(custom_modules or ())
    lookback_seconds = check_lookback(load_lookback)
    check_deletion_mode(deletion_mode)
    with DAG(
        dag_id,
        schedule=CronDataIntervalTimetable(schedule, timezone="UTC") if schedule else None,
        start_date=start_date or pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=catchup,
        params=export_params(module, list(fields or []), file_type, custom),
        default_args=RETRY_DEFAULTS,
        tags=["zoho-crm", *(tags or [])],
        description=description or f"Export Zoho CRM {module} with Bulk Read, validated, page by page.",
        doc_md=__doc__,
        max_active_tasks=32,
    ) as dag:
        run = tasks.resolve_query(custom_modules=custom, warehouse_conn_id=warehouse_conn_id,
                                  load_lookback_seconds=lookback_seconds)
        metadata = tasks.field_metadata(run, zoho_conn_id=zoho_conn_id)
        create_job = ZohoBulkReadOperator(
            task_id="create_job", zoho_conn_id=zoho_conn_id, multiple_outputs=True, module=run["module"],
            fields=run["fields"], criteria=run["criteria"], cvid=run["cvid"], file_type=run["file_type"],
        )
        wait_for_job = ZohoBulkReadJobSensor(
            task_id="wait_for_job", zoho_conn_id=zoho_conn_id, job_id=create_job.output["job_id"],
            poll_interval=poll_interval, timeout=sensor_timeout, deferrable=True,
        )
        pages = ZohoBulkReadPagesOperator(
            task_id="follow_pages", zoho_conn_id=zoho_conn_id, first_page=wait_for_job.output, query=run,
            poll_interval=poll_interval, page_timeout=sensor_timeout,
        )
        downloads = ZohoBulkReadDownloadOperator.partial(
            task_id="download", zoho_conn_id=zoho_conn_id, pool=pool, output_dir=run["download_dir"]
        ).expand(job=pages.output)
        extracted = tasks.unzip.partial(run=run).expand(download=downloads.output)
        checked = tasks.validate.partial(run=run, metadata=metadata).expand(page=extracted)
        typed = tasks.to_parquet.partial(run=run, metadata=metadata).expand(page=checked)
        # Every module's Asset is declared up front and the tasks updating them run one at a time (airflow_compat).
        modules = (*SEED_MODULES, *custom)
        uris = [tasks.module_asset_uri(name) for name in modules]
        summary = tasks.manifest.override(**asset_update_task_kwargs(tasks.exports_alias(dag_id), uris))(run, typed)
        if warehouse_conn_id:
            tables = [table_asset_uri(warehouse_conn_id, name) for name in modules]
            tasks.load_table.override(**asset_update_task_kwargs(tasks.tables_alias(dag_id), tables))(
                run, summary, metadata, zoho_conn_id=zoho_conn_id, deletion_mode=deletion_mode)
    return dag
