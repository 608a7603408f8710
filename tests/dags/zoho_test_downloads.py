"""Test DAG: create Bulk Read jobs, wait for them deferred, download each through the rate-limit pool.

Run conf: ``modules`` (one job per entry; repeats allowed) and ``output_dir``. Used by tests/download and the bench.
``zoho_test_downloads_wide_pool`` is the same DAG on a pool wider than the connection's download limit.
Retries cover Airflow 3.3's stale defer-exit race (apache/airflow#72716, #67287: a deferred task whose trigger
fires quickly can be failed by the scheduler under load). The downloads' retry_delay must stay >= the connection's
download_window_seconds (60 s at most here); the operator refuses to run otherwise.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, task

from zoho_crm.operators.bulk_read import ZohoBulkReadOperator
from zoho_crm.operators.download import ZohoBulkReadDownloadOperator
from zoho_crm.rate_limit.window import DEFAULT_POOL
from zoho_crm.sensors.bulk_read_job import ZohoBulkReadJobSensor

WIDE_POOL = "zoho_test_wide_downloads"


def download_test_dag(dag_id: str, pool: str) -> DAG:
    """Jobs for ``params.modules``, each waited for (deferred) and downloaded through ``pool``."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=16,
        params={
            "modules": Param(["Leads"] * 10, type="array", items={"type": "string"}),
            "output_dir": Param("/tmp/zoho_test_downloads", type="string"),
        },
        tags=["zoho", "test"],
    ) as dag:

        @task
        def job_modules(params: dict | None = None) -> list[str]:
            return list(params["modules"])

        created = ZohoBulkReadOperator.partial(
            task_id="create_job", file_type="csv", retries=2, retry_delay=timedelta(seconds=5)
        ).expand(module=job_modules())
        completed = ZohoBulkReadJobSensor.partial(
            task_id="wait_for_job",
            deferrable=True,
            poll_interval=1,
            max_poll_interval=2,
            timeout=600,
            retries=3,
            retry_delay=timedelta(seconds=2),
        ).expand(job_id=created.output.map(lambda job: job["job_id"]))
        ZohoBulkReadDownloadOperator.partial(
            task_id="download",
            output_dir="{{ params.output_dir }}/{{ run_id | replace(':', '_') | replace('+', '_') }}",
            pool=pool,
            retries=2,
            retry_delay=timedelta(seconds=65),
        ).expand(job=completed.output)
    return dag


zoho_test_downloads = download_test_dag("zoho_test_downloads", DEFAULT_POOL)
# The same through a pool with twice the connection's download_limit: only the download ledger keeps the limit.
zoho_test_downloads_wide_pool = download_test_dag("zoho_test_downloads_wide_pool", WIDE_POOL)
