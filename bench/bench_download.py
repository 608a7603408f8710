"""Download benchmark (``make bench``): rate-limit utilisation of the shipped DAG on the default install, and
streaming memory.

1. Utilisation, measured on what a user runs: the shipped DAG ``zoho_crm_bulk_read`` (``dags/`` untouched:
   resolve query -> create job -> deferred wait -> follow every page -> mapped download in the pool), Airflow on
   the embedded PostgreSQL server with LocalExecutor (Airflow's default parallelism, 32), the README's
   connection (no window extras: Zoho's 60 s window) and ``include/config/pools.json``, the simulator at its default
   limits (10 downloads per 60 s) with small pages (200 records). ``--runs`` concurrent runs (default 4: Leads, Contacts, Deals, Accounts), each a full
   export of ``--pages-per-run`` pages (default 10: 40 downloads in all), must all succeed. From the
   simulator's request log: utilisation = achieved download rate / allowed rate (limit / window) while
   downloads were queued, i.e. from the first download request to one window after the last one (a perfectly
   paced run scores 1.0); also the peak in any sliding window (must stay <= the limit), the 429 count, and
   where the slots' idle time after their windows went (no page known yet vs. scheduling and task start-up, the
   latter split into slot free -> scheduled -> queued -> task started -> request).
2. Memory: a fresh process downloads one 200,000-record Leads page through the operator's streaming code
   (``hook.download_to_file``); its peak RSS is compared with the file size.

Run from the repo root: ``python bench/bench_download.py [--runs 4] [--pages-per-run 10] [--skip-memory]``.
The utilisation part takes about 10 minutes: start-up, about 2.5 minutes of page jobs (each run creates and waits
for its 10 jobs one after another, each wait deferred for at least 10 s), then 4 real 60 s windows of downloads.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "plugins"), str(REPO_ROOT)]

from include.devtools.airflow_stack import AirflowStack  # noqa: E402
from include.devtools.local_setup import METADATA_DATABASE, WAREHOUSE_DATABASE, default_install_env  # noqa: E402
from include.devtools.metadata_db import EmbeddedPostgres  # noqa: E402
from include.devtools.zoho_simulator.process import SimulatorProcess  # noqa: E402
from tests.operators.download_checks import LIMIT, max_in_sliding_window, utilisation  # noqa: E402
from zoho_crm.rate_limit.window import (  # noqa: E402
    DEFAULT_DOWNLOAD_WINDOW_SECONDS,
    DEFAULT_POOL,
    HOLD_MARGIN_SECONDS,
)

MEMORY_RECORDS = 200_000
DAG_ID = "zoho_crm_bulk_read"
MODULES = ("Leads", "Contacts", "Deals", "Accounts", "Tasks", "Cases")
PER_PAGE = 200
WINDOW = DEFAULT_DOWNLOAD_WINDOW_SECONDS
AIRFLOW_DEFAULT_PARALLELISM = 32


def _moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def bench_utilisation(args: argparse.Namespace, work: Path) -> None:
    modules = MODULES[: args.runs]
    records = {module: args.pages_per_run * PER_PAGE for module in modules}
    with EmbeddedPostgres(work / "postgres") as server, SimulatorProcess(records=records, per_page_csv=PER_PAGE) as sim:
        server.ensure_database(METADATA_DATABASE)
        server.ensure_database(WAREHOUSE_DATABASE)  # the shipped DAG loads its exports into the warehouse
        home = work / "airflow"
        env = {
            **default_install_env(home, server.sqlalchemy_url(METADATA_DATABASE), work / "output",
                                  warehouse_uri=server.postgres_uri(WAREHOUSE_DATABASE)),
            **dict([sim.env_var(conn_type="http")]),
        }
        # parallelism: Airflow's default, as `make airflow` runs (the harness's own default is 16).
        with AirflowStack(home, dags_folder=REPO_ROOT / "dags", database_url=server.sqlalchemy_url(METADATA_DATABASE),
                          env=env, migrate=True, parallelism=AIRFLOW_DEFAULT_PARALLELISM) as stack:
            stack.wait_for_dag(DAG_ID)
            started = time.time()
            run_ids = {module: stack.trigger(DAG_ID, conf={"module": module}) for module in modules}
            states = {module: stack.wait_for_run(DAG_ID, run_id, timeout=1800) for module, run_id in run_ids.items()}
            elapsed = time.time() - started
            failed = {module: state for module, state in states.items() if state != "success"}
            if failed:
                tasks = [(module, ti["task_id"], ti["map_index"], ti["state"]) for module in failed
                         for ti in stack.task_instances(DAG_ID, run_ids[module]) if ti["state"] != "success"]
                raise SystemExit(f"runs did not succeed: {failed}; task instances: {tasks}")
            pages_known = {}  # job id -> when its run's follow_pages ended (its download task could start)
            follow_ends = []
            phases: dict[str, tuple[float | None, ...]] = {}  # job id -> its download task's scheduled/queued/started
            for run_id in run_ids.values():
                tis = stack.task_instances(DAG_ID, run_id)
                follow = next(ti for ti in tis if ti["task_id"] == "follow_pages")
                follow_ends.append(_moment(follow["end_date"]))
                jobs = [page["job_id"] for page in stack.return_value(DAG_ID, run_id, "follow_pages")]
                for job_id in jobs:
                    pages_known[job_id] = follow_ends[-1]
                for ti in tis:
                    if ti["task_id"] == "download" and 0 <= ti["map_index"] < len(jobs):
                        phases[jobs[ti["map_index"]]] = tuple(
                            _moment(ti[key]) if ti.get(key) else None
                            for key in ("scheduled_when", "queued_when", "start_date")
                        )
        ours = sim.requests("download")
    report_utilisation(ours, pages_known, follow_ends, started=started, elapsed=elapsed, modules=modules,
                       pages_per_run=args.pages_per_run, phases=phases)


def report_utilisation(
    ours: list[dict[str, Any]],
    pages_known: dict[str, float],
    follow_ends: list[float],
    *,
    started: float,
    elapsed: float,
    modules: tuple[str, ...],
    pages_per_run: int,
    phases: dict[str, tuple[float | None, ...]] | None = None,
) -> None:
    """Print the utilisation lines from the simulator's download log (``t``: its monotonic clock, ``wall``: epoch)."""
    times = [r["t"] for r in ours]
    statuses = [r["status"] for r in ours]
    peak = max_in_sliding_window(times, WINDOW)
    busy = max(times) - min(times) + WINDOW
    score = utilisation(times, LIMIT, WINDOW)
    print(f"rate limit: {LIMIT} downloads per {WINDOW:g} s window (pool {DEFAULT_POOL}: {LIMIT} slots, "
          f"include_deferred); shipped DAG {DAG_ID}, embedded PostgreSQL, LocalExecutor, README connection")
    print(f"downloads: {len(ours)} requests ({statuses.count(200)} x 200, {statuses.count(429)} x 429) "
          f"from {len(modules)} concurrent runs ({', '.join(modules)}: {pages_per_run} pages each); runs took "
          f"{elapsed:.1f} s end to end")
    print(f"peak requests in any sliding {WINDOW:g} s window: {peak} (limit {LIMIT})")
    print(f"achieved {len(ours) / busy:.3f}/s vs allowed {LIMIT / WINDOW:.3f}/s over {busy:.1f} s")
    by_wall = sorted(ours, key=lambda r: r["wall"])
    first_wall = by_wall[0]["wall"]
    print(f"first download request {first_wall - started:.1f} s after the triggers; each run's pages known "
          f"(follow_pages done) at {', '.join(f'{t - first_wall:+.1f}' for t in sorted(follow_ends))} s from it")
    ordered = sorted(times)
    turnaround = sorted(b - a - WINDOW for a, b in zip(ordered, ordered[LIMIT:], strict=False))
    if turnaround:
        print(f"first {LIMIT} requests spread over {ordered[LIMIT - 1] - ordered[0]:.1f} s; a slot's next request "
              f"came {statistics.median(turnaround):.1f} s (median) after its window ended")
        # Each request after the first LIMIT reuses the slot of the request LIMIT places before it, free about
        # window + margin after that request (its end; these pages download in milliseconds). The slot's idle
        # time until the next request: waiting for a page to be known (its run's follow_pages still creating
        # jobs), then scheduling and task start-up (triggerer, scheduler, executor, task process, token, ledger).
        waiting = startup = 0.0
        for before, request in zip(by_wall, by_wall[LIMIT:], strict=False):
            free = before["wall"] + WINDOW + HOLD_MARGIN_SECONDS
            ready = max(free, pages_known.get(_job_id(request), free))
            waiting += max(0.0, min(ready, request["wall"]) - free)
            startup += max(0.0, request["wall"] - ready)
        print(f"slot idle time after the windows: {waiting:.1f} s waiting for pages, {startup:.1f} s scheduling "
              f"and task start-up ({len(turnaround)} slot reuses; margin {HOLD_MARGIN_SECONDS:g} s each)")
        # Where the start-up goes: slot free -> task scheduled -> queued -> started -> its download request.
        steps: list[list[float]] = [[], [], [], []]
        for before, request in zip(by_wall, by_wall[LIMIT:], strict=False):
            marks = (phases or {}).get(_job_id(request))
            if not marks or None in marks:
                continue
            points = [before["wall"] + WINDOW + HOLD_MARGIN_SECONDS, *marks, request["wall"]]
            for index, step in enumerate(steps):
                step.append(points[index + 1] - points[index])
        if steps[0]:
            names = ("slot free -> scheduled", "scheduled -> queued", "queued -> task started", "started -> request")
            print("after a slot is free, median s: " + ", ".join(
                f"{name} {statistics.median(step):.1f}" for name, step in zip(names, steps, strict=True)
            ) + f" ({len(steps[0])} reuses)")
    print(f"rate-limit utilisation: {score:.3f} (goal >= 0.95)")
    if peak > LIMIT:
        raise SystemExit(f"rate limit broken: {peak} download requests in one {WINDOW:g} s window")


def _job_id(request: dict[str, Any]) -> str:
    """The job id of a download request (``.../bulk/{job_id}/result``)."""
    return request["path"].rstrip("/").split("/")[-2]


def bench_memory(work: Path) -> None:
    with SimulatorProcess(records={"Leads": MEMORY_RECORDS}, job_seconds=0.5) as sim:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
            **dict([sim.env_var(conn_type="http", window_seconds=60)]),
            "ZOHO_CRM_TOKEN_CACHE_DIR": str(work / "mem-tokens"),
        }
        child = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(work / "mem-out")],
            env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=900,
        )
    if child.returncode != 0:
        raise SystemExit(f"memory child failed ({child.returncode}):\n{child.stderr[-3000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    size, peak, base = result["size"], result["peak_rss"], result["baseline_rss"]
    mb = 1024 * 1024
    print(f"download of a {MEMORY_RECORDS}-record Leads page: file {size / mb:.1f} MiB, "
          f"{result['seconds']:.1f} s ({size / mb / result['seconds']:.1f} MiB/s)")
    print(f"peak RSS {peak / mb:.1f} MiB (before the download {base / mb:.1f} MiB, growth {(peak - base) / mb:.1f} MiB)")
    print(f"peak RSS / file size: {peak / size:.3f}; RSS growth / file size: {(peak - base) / size:.4f}")


def memory_child(out_dir: str) -> None:
    """Create and wait for a Leads job, then download it with the operator's streaming code; print JSON."""
    from zoho_crm.hooks.zoho_crm import ZohoCRMHook

    hook = ZohoCRMHook()
    job_id = hook.create_bulk_read_job({"query": {"module": {"api_name": "Leads"}}, "file_type": "csv"})["id"]
    deadline = time.monotonic() + 600
    while hook.get_bulk_read_job(job_id)["state"] != "COMPLETED":
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not complete within 600 s")
        time.sleep(0.5)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.monotonic()
    downloaded = hook.download_to_file(job_id, out_dir, token=hook.get_token())
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"size": downloaded.size, "peak_rss": peak, "baseline_rss": baseline, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, choices=range(1, len(MODULES) + 1), metavar="N",
                        help=f"concurrent runs of {DAG_ID}, one module each (default 4)")
    parser.add_argument("--pages-per-run", type=int, default=10, help="pages (downloads) per run (default 10)")
    parser.add_argument("--skip-utilisation", action="store_true", help="only measure memory")
    parser.add_argument("--skip-memory", action="store_true", help="only measure utilisation")
    parser.add_argument("--memory-child", metavar="OUT_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        if not args.skip_utilisation:
            bench_utilisation(args, work / "utilisation")
        if not args.skip_memory:
            bench_memory(work)
    except BaseException:
        print(f"bench failed; Airflow and task logs kept in {work}", file=sys.stderr)
        raise
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
