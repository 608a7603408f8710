"""Test DAG: create Bulk Read jobs, wait for them deferred, download each through the rate-limit pool.

Run conf: ``modules`` (one job per entry; repeats allowed) and ``output_dir``. Used by tests/download and the bench.
Retries cover Airflow 3.3's stale defer-exit race (apache/airflow#72716, #67287: a deferred task whose trigger
fires quickly can be failed by the scheduler under load). The downloads' retry_delay must stay >= the connection's
download_window_seconds (60 s at most here); the operator refuses to run otherwise.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, task

from zoho_crm.operators.bulk_read import ZohoBulkReadOperator
from zoho_crm.operators.download import ZohoBulkReadDownloadOperator
from zoho_crm.rate_limit import DEFAULT_POOL
from zoho_crm.sensors.bulk_read_job import ZohoBulkReadJobSensor

with DAG(
    dag_id="zoho_test_downloads",
    schedule=None,
    catchup=False,
    max_active_runs=16,
    params={
        "modules": Param(["Leads"] * 10, type="array", items={"type": "string"}),
        "output_dir": Param("/tmp/zoho_test_downloads", type="string"),
    },
    tags=["zoho", "test"],
):

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
        pool=DEFAULT_POOL,
        retries=2,
        retry_delay=timedelta(seconds=65),
    ).expand(job=completed.output)
