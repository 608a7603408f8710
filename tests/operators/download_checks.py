"""Shared pieces of the download tests and the bench: runs of the download test DAG, the rate-limit checks and
measures of a request log (sliding-window peak, utilisation)."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from include.devtools.airflow_stack import AirflowStack
from include.devtools.zoho_simulator.process import SimulatorProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "zoho_test_downloads"
POOL = "zoho_crm_downloads"
LIMIT = 10
MODULES = ("Leads", "Contacts", "Accounts", "Deals", "Tasks")


def run_download_dags(
    stack: AirflowStack,
    output_dir: Path,
    *,
    runs: int,
    jobs_per_run: int,
    during: Callable[[], None] = lambda: None,
    timeout: float = 600,
    dag_id: str = DAG_ID,
    pool: str = POOL,
) -> tuple[list[str], dict[str, int]]:
    """Trigger ``runs`` concurrent runs and wait for them; return run ids and the peak pool occupancy seen.

    ``during`` is called on every poll while the runs are going (e.g. to inject foreign downloads).
    """
    stack.wait_for_dag(dag_id)
    conf = {"modules": [MODULES[i % len(MODULES)] for i in range(jobs_per_run)], "output_dir": str(output_dir)}
    run_ids = [stack.trigger(dag_id, conf=conf) for _ in range(runs)]
    peak = {"occupied_slots": 0, "deferred_slots": 0}
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending:
        stack.check_alive()
        during()
        occupancy = stack.api("GET", f"/pools/{pool}")
        pending = {run for run in pending if stack.run_state(dag_id, run) not in ("success", "failed")}
        for key in peak:
            peak[key] = max(peak[key], occupancy[key])
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs {sorted(pending)} of {dag_id} did not finish within {timeout:.0f} s")
        time.sleep(0.3)
    failed = {run: stack.run_state(dag_id, run) for run in run_ids if stack.run_state(dag_id, run) != "success"}
    assert not failed, f"runs did not succeed: {failed}; task states: {failed_tasks(stack, list(failed), dag_id)}"
    return run_ids, peak


def failed_tasks(stack: AirflowStack, run_ids: list[str], dag_id: str = DAG_ID) -> list[tuple[str, int, str]]:
    return [
        (ti["task_id"], ti["map_index"], ti["state"])
        for run in run_ids
        for ti in stack.task_instances(dag_id, run)
        if ti["state"] != "success"
    ]


def download_results(stack: AirflowStack, run_ids: list[str], dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """The XCom result of every mapped download task instance of the runs."""
    results = []
    for run in run_ids:
        quoted = urllib.parse.quote(run, safe="")
        for ti in stack.task_instances(dag_id, run):
            if ti["task_id"] != "download":
                continue
            entry = stack.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/download/xcomEntries/return_value"
                f"?map_index={ti['map_index']}&deserialize=true",
            )
            results.append(entry["value"])
    return results


def assert_files_intact(sim: SimulatorProcess, results: list[dict[str, Any]], expected: int) -> None:
    """Every result's file exists, hashes to its XCom sha256 and to the simulator's zip_sha256 for the job."""
    served = {d["job_id"]: d["zip_sha256"] for d in sim.downloads()}
    assert len(results) == expected
    assert len({r["job_id"] for r in results}) == expected
    for result in results:
        data = Path(result["path"]).read_bytes()
        assert len(data) == result["size"]
        assert hashlib.sha256(data).hexdigest() == result["sha256"] == served[result["job_id"]]
        assert result["file_name"] == f"{result['job_id']}.zip"
        assert not any(name.startswith(".") for name in os.listdir(Path(result["path"]).parent)), "leftover .part"
        assert "token" not in json.dumps(result).lower().replace("next_page_token", "")


def next_request_seq(sim: SimulatorProcess) -> int:
    """The sequence number the simulator's next logged request will have."""
    return max((r["seq"] for r in sim.requests()), default=0) + 1


def download_log(sim: SimulatorProcess, since: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(our download requests, foreign downloads) from the simulator's request log, from sequence ``since`` on."""
    log = [r for r in sim.requests() if r["seq"] >= since]
    return [r for r in log if r["kind"] == "download"], [r for r in log if r["kind"] == "foreign_download"]


def assert_never_over_limit(ours: list[dict[str, Any]], *, limit: int, window: float) -> int:
    """At most ``limit`` of our download requests (any status) in every sliding window; return the peak."""
    peak = max_in_sliding_window([r["t"] for r in ours], window)
    assert peak <= limit, f"{peak} download requests started within one {window} s window (limit {limit})"
    return peak


def max_in_sliding_window(times: Iterable[float], window: float) -> int:
    """Largest number of ``times`` in any half-open window ``[t, t + window)`` that starts at one of them."""
    ordered = sorted(times)
    best = 0
    end = 0
    for start_index, start in enumerate(ordered):
        end = max(end, start_index)
        while end < len(ordered) and ordered[end] < start + window:
            end += 1
        best = max(best, end - start_index)
    return best


def utilisation(times: Iterable[float], limit: int, window: float) -> float:
    """Achieved request rate over the allowed rate while requests were being made.

    The requests are taken to use the allowance from the first start until one window after the last start
    (the moment the last one stops counting), so a perfectly paced run of ``k * limit`` requests scores 1.0.
    """
    ordered = sorted(times)
    if not ordered:
        raise ValueError("no requests to measure")
    busy = ordered[-1] - ordered[0] + window
    return len(ordered) / (limit * busy / window)
