"""Test DAG: create a Bulk Read job, wait for it deferred (and in reschedule mode), and create+wait in one task.

Run conf: ``module`` (default Leads). Used by tests/sensors/test_wait_dag_stack.py under the real scheduler.
The reschedule-mode sensor pokes every 15 s or more: with intervals close to the scheduler's event latency, Airflow
can fail a reschedule sensor on a late executor "success" (apache/airflow#71172, fix pending in PR #71194).
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from zoho_crm.operators.bulk_read import ZohoBulkReadOperator
from zoho_crm.sensors.bulk_read_job import ZohoBulkReadJobSensor

JOB_ID = "{{ ti.xcom_pull(task_ids='create_job')['job_id'] }}"

with DAG(
    dag_id="zoho_test_wait",
    schedule=None,
    catchup=False,
    params={"module": Param("Leads", type="string")},
    tags=["zoho", "test"],
):
    created = ZohoBulkReadOperator(task_id="create_job", module="{{ params.module }}")
    deferred = ZohoBulkReadJobSensor(
        task_id="wait_for_job", job_id=JOB_ID, deferrable=True, poll_interval=1, max_poll_interval=3, timeout=600
    )
    rescheduled = ZohoBulkReadJobSensor(
        task_id="wait_rescheduled", job_id=JOB_ID, deferrable=False, mode="reschedule", poll_interval=15,
        max_poll_interval=20, timeout=600,
    )
    ZohoBulkReadOperator(
        task_id="create_and_wait", module="{{ params.module }}", wait_for_completion=True, deferrable=True,
        poll_interval=1, max_poll_interval=3, timeout=600,
    )
    created >> [deferred, rescheduled]
