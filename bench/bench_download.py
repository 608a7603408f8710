"""Download benchmark (``make bench``): rate-limit utilisation under the real scheduler, and streaming memory.

1. Utilisation: the test DAG ``zoho_test_downloads`` (create job -> deferrable sensor -> mapped download in the
   pool) runs ``--runs`` concurrent runs of ``--jobs-per-run`` jobs on LocalExecutor + SQLite against the
   simulator with a compressed window. From the simulator's request log: utilisation = achieved download rate /
   allowed rate (limit / window) while downloads were queued, i.e. from the first download request to one window
   after the last one (a perfectly paced run scores 1.0). Also checks the limit held in every sliding window.
2. Memory: a fresh process downloads one 200,000-record Leads page through the operator's streaming code
   (``hook.open_download`` + ``stream_to_file``); its peak RSS is compared with the file size.

Run from the repo root: ``python bench/bench_download.py [--window 60] [--runs 4] [--skip-memory]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "plugins"), str(REPO_ROOT)]

from include.local_setup import simulator_connection  # noqa: E402
from include.zoho_simulator.process import SimulatorProcess  # noqa: E402
from tests.deployments import dags_folder  # noqa: E402
from tests.download.download_checks import LIMIT, download_log, run_download_dags  # noqa: E402
from tests.stack_support import airflow_stack  # noqa: E402
from zoho_crm.rate_limit import max_in_sliding_window, utilisation  # noqa: E402

MEMORY_RECORDS = 200_000


def bench_utilisation(args: argparse.Namespace, work: Path) -> None:
    with SimulatorProcess(download_window=args.window, download_limit=LIMIT, job_seconds=0.5) as sim:
        env = {**simulator_connection(sim, args.window), "ZOHO_CRM_TOKEN_CACHE_DIR": str(work / "tokens")}
        with airflow_stack(work / "airflow", dags_folder=dags_folder(work), env=env) as stack:
            started = time.monotonic()
            run_download_dags(stack, work / "out", runs=args.runs, jobs_per_run=args.jobs_per_run, timeout=1800)
            elapsed = time.monotonic() - started
        ours, _ = download_log(sim)
    times = [r["t"] for r in ours]
    statuses = [r["status"] for r in ours]
    peak = max_in_sliding_window(times, args.window)
    busy = max(times) - min(times) + args.window
    score = utilisation(times, LIMIT, args.window)
    print(f"rate limit: {LIMIT} downloads per {args.window:g} s window (pool zoho_crm_downloads: {LIMIT} slots, include_deferred)")
    print(f"downloads: {len(ours)} requests ({statuses.count(200)} x 200, {statuses.count(429)} x 429) "
          f"from {args.runs} concurrent runs; runs took {elapsed:.1f} s end to end")
    print(f"peak requests in any sliding {args.window:g} s window: {peak} (limit {LIMIT})")
    print(f"achieved {len(ours) / busy:.3f}/s vs allowed {LIMIT / args.window:.3f}/s over {busy:.1f} s")
    ordered = sorted(times)
    turnaround = sorted(b - a - args.window for a, b in zip(ordered, ordered[LIMIT:], strict=False))
    if turnaround:
        print(f"first {LIMIT} requests spread over {ordered[LIMIT - 1] - ordered[0]:.1f} s; a slot's next request "
              f"came {turnaround[len(turnaround) // 2]:.1f} s (median) after its window ended")
    print(f"rate-limit utilisation: {score:.3f} (goal >= 0.95)")


def bench_memory(work: Path) -> None:
    with SimulatorProcess(records={"Leads": MEMORY_RECORDS}, job_seconds=0.5) as sim:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
            **simulator_connection(sim, 60),
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
    from zoho_crm.operators.download import stream_to_file

    hook = ZohoCRMHook()
    job_id = hook.create_bulk_read_job({"query": {"module": {"api_name": "Leads"}}, "file_type": "csv"})["id"]
    deadline = time.monotonic() + 600
    while hook.get_bulk_read_job(job_id)["state"] != "COMPLETED":
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not complete within 600 s")
        time.sleep(0.5)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.monotonic()
    with hook.open_download(job_id) as response:
        downloaded = stream_to_file(response, out_dir, f"{job_id}.zip")
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"size": downloaded.size, "peak_rss": peak, "baseline_rss": baseline, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=60.0, help="download window in seconds (default 60, Zoho's)")
    parser.add_argument("--runs", type=int, default=4, help="concurrent DAG runs (default 4)")
    parser.add_argument("--jobs-per-run", type=int, default=10, help="downloads per run (default 10)")
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
