"""A DAG (operator -> sensors) run by the real scheduler + triggerer (LocalExecutor, SQLite).

Shows: the sensor is DEFERRED (no worker slot) while the Zoho job runs, the run succeeds with the job result in
XCom, every task and the triggerer share one access token, and no secret reaches a task log.
"""

from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path

import pytest

from include.airflow_stack import AirflowStack, wait_until
from tests.hooks.zoho_conn import CONN_ENV, connection_json, secrets_of
from tests.simulator_fixtures import start_simulator

DAG_ID = "zoho_test_wait"
pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]


def states(stack: AirflowStack, run_id: str) -> dict[str, str | None]:
    return {ti["task_id"]: ti["state"] for ti in stack.task_instances(DAG_ID, run_id)}


def test_sensor_is_deferred_while_the_job_runs(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(Path(__file__).parents[1] / "dags" / f"{DAG_ID}.py", dags)
    with start_simulator(job_seconds=45) as sim:
        env = {CONN_ENV: connection_json(sim.url, tmp_path / "token-cache")}
        with AirflowStack(tmp_path / "airflow", dags_folder=dags, env=env) as stack:
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
            assert all(job["state"] != "COMPLETED" for job in sim.jobs()), "deferred while the jobs still run"
            assert len(sim.jobs()) == 2

            def finished() -> str | None:
                current = states(stack, run_id)
                for task, state in current.items():
                    seen.setdefault(task, set()).add(state)
                run_state = stack.run_state(DAG_ID, run_id)
                return run_state if run_state in ("success", "failed") else None

            final = wait_until(finished, timeout=300, interval=1, what="the run to finish")
            assert final == "success", states(stack, run_id)
            assert "up_for_reschedule" in seen["wait_rescheduled"], seen
            quoted = urllib.parse.quote(run_id, safe="")
            xcom = stack.api(
                "GET", f"/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances/wait_for_job/xcomEntries/return_value"
            )["value"]
            job_id = stack.api(
                "GET", f"/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances/create_job/xcomEntries/return_value"
            )["value"]["job_id"]
            assert (xcom["job_id"], xcom["count"], xcom["module"]) == (job_id, 300, "Leads")
            assert len(sim.requests("token")) == 1, "worker tasks and the triggerer shared one access token"
            secrets = secrets_of(sim)
            logs = [p for p in (tmp_path / "airflow").rglob("*") if p.is_file() and p.suffix in (".log", ".json")]
            leaked = [str(p) for p in logs if any(s in p.read_text(errors="replace") for s in secrets)]
            assert not leaked, f"secrets found in {leaked}"
