"""A DAG (operator -> sensors) run by the real scheduler + triggerer (LocalExecutor, embedded PostgreSQL).

Shows: the sensor is DEFERRED (no worker slot) while the Zoho job runs, the run succeeds with the job result in
XCom, every task and the triggerer share one access token, and no secret reaches a task log.
"""

from __future__ import annotations

import pytest

from include.devtools.airflow_stack import AirflowStack, wait_until
from tests.deployments import LOCAL, SIMULATOR_OPTIONS, Deployment
from tests.hooks.zoho_conn import secrets_of

DAG_ID = "zoho_test_wait"
pytestmark = [*LOCAL, pytest.mark.timeout(900)]


def states(stack: AirflowStack, run_id: str) -> dict[str, str | None]:
    return {ti["task_id"]: ti["state"] for ti in stack.task_instances(DAG_ID, run_id)}


def test_sensor_is_deferred_while_the_job_runs(local_deployment: Deployment):
    stack = local_deployment.stack
    tokens_before = len(local_deployment.sim.requests("token"))
    jobs_before = len(local_deployment.sim.jobs())
    with local_deployment.simulator_settings(job_seconds=45) as sim:
        stack.wait_for_dag(DAG_ID)
        run_id = stack.trigger(DAG_ID)
        seen: dict[str, set] = {}

        def both_deferred() -> bool:
            stack.check_alive()
            current = states(stack, run_id)
            for task, state in current.items():
                seen.setdefault(task, set()).add(state)
            return current.get("wait_for_job") == "deferred" and current.get("create_and_wait") == "deferred"

        wait_until(both_deferred, timeout=300, interval=0.5, what="the sensor and the waiting operator to defer")
        ours = sim.jobs()[jobs_before:]
        assert len(ours) == 2 and all(job["state"] != "COMPLETED" for job in ours), "deferred while jobs run"

        def finished() -> str | None:
            current = states(stack, run_id)
            for task, state in current.items():
                seen.setdefault(task, set()).add(state)
            run_state = stack.run_state(DAG_ID, run_id)
            return run_state if run_state in ("success", "failed") else None

        final = wait_until(finished, timeout=300, interval=1, what="the run to finish")
        assert final == "success", states(stack, run_id)
        assert "up_for_reschedule" in seen["wait_rescheduled"], seen
        xcom = stack.return_value(DAG_ID, run_id, "wait_for_job")
        job_id = stack.return_value(DAG_ID, run_id, "create_job")["job_id"]
        assert (xcom["job_id"], xcom["count"], xcom["module"]) == (job_id, SIMULATOR_OPTIONS["per_page_csv"], "Leads")
        new_tokens = len(sim.requests("token")) - tokens_before
        assert new_tokens <= 1, "worker tasks and the triggerer shared one access token"
        secrets = secrets_of(sim)
        home = local_deployment.root / "airflow"
        logs = [p for p in home.rglob("*") if p.is_file() and p.suffix in (".log", ".json")]
        leaked = [str(p) for p in logs if any(s in p.read_text(errors="replace") for s in secrets)]
        assert not leaked, f"secrets found in {leaked}"
