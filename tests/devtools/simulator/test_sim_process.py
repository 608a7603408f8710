"""The simulator process: --help, start-up time, and bounded memory while serving a 200,000-record page."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import psutil

from include.devtools.zoho_simulator.config import Settings
from include.devtools.zoho_simulator.process import REPO_ROOT, SimulatorProcess
from tests.devtools.simulator.sim_client import access_token, create_ok, module_query, wait_state


def test_help_documents_every_setting() -> None:
    out = subprocess.run([sys.executable, "-m", "include.devtools.zoho_simulator", "--help"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    for name in [f.name for f in dataclasses.fields(Settings)]:
        assert f"--{name.replace('_', '-')}" in out, f"--help does not document {name}"
    for flag in ("--host", "--port", "--seed", "--client-id", "--client-secret", "--refresh-token", "--extra-user",
                 "--time-start", "--time-days", "--api-domain", "--data-dir"):
        assert flag in out


def test_startup_under_two_seconds() -> None:
    """Best of three starts, so that a busy machine (parallel test workers) does not decide the verdict."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        with SimulatorProcess(records={"Leads": 5_000_000}) as sim:
            times.append(time.monotonic() - started)
            assert sim.health()["status"] == "ok"
        if times[-1] < 2.0:
            break
    assert min(times) < 2.0, f"ready line after {min(times):.2f} s at best ({len(times)} starts)"


def test_200k_page_keeps_rss_bounded(tmp_path: Path) -> None:
    """Build and stream a 200,000-record Leads page while sampling the simulator's RSS."""
    with SimulatorProcess(records={"Leads": 200_000}, job_seconds=0.1, data_dir=str(tmp_path / "zips")) as sim:
        proc = psutil.Process(sim.pid)
        baseline = proc.memory_info().rss
        peak, stop = [baseline], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.append(proc.memory_info().rss)
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            token = access_token(sim)
            job_id = create_ok(sim, token, module_query("Leads"))
            job = wait_state(sim, token, job_id, ("COMPLETED",), timeout=180)
            target = tmp_path / "page.zip"
            req = urllib.request.Request(f"{sim.url}{job['result']['download_url']}",
                                         headers={"Authorization": f"Zoho-oauthtoken {token}"})
            with urllib.request.urlopen(req, timeout=120) as resp, open(target, "wb") as fh:
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
        finally:
            stop.set()
            sampler.join()
        assert job["result"]["count"] == 200_000
        with zipfile.ZipFile(target) as zf:
            (member,) = zf.infolist()
            with zf.open(member) as fh:
                header = fh.readline().decode()
        assert member.filename == f"{job_id}.csv" and header.startswith("id,")
        growth = max(peak) - baseline
        assert growth < member.file_size / 2, (
            f"RSS grew by {growth / 1e6:.0f} MB while serving a {member.file_size / 1e6:.0f} MB page")
