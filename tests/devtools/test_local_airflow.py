"""`make airflow` (include/devtools/local_airflow.py): the UI comes up with the export DAG on the embedded PostgreSQL server,
takes a backfill while the scheduler runs (what the UI's Backfill dialog sends), and Ctrl-C stops every component,
the database server included.

Runs the real command (embedded PostgreSQL + simulator + ``airflow standalone``) in a throw-away AIRFLOW_HOME,
waits for the API, then sends SIGINT as a terminal's Ctrl-C does and checks that no process it started is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from include.devtools.airflow_stack import REPO_ROOT, free_port
from include.devtools.polling import wait_until
from tests.deployments import LOCAL
from tests.stack_support import postmasters

pytestmark = [*LOCAL, pytest.mark.timeout(600)]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def admin_token(url: str) -> str:
    login = urllib.request.Request(f"{url}/auth/token", data=json.dumps({"username": "admin", "password": "admin"})
                                   .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login, timeout=10) as response:
        return json.load(response)["access_token"]


def dag_listed(url: str, dag_id: str) -> bool:
    try:
        token = admin_token(url)
        request = urllib.request.Request(f"{url}/api/v2/dags/{dag_id}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["dag_id"] == dag_id
    except (urllib.error.URLError, OSError, KeyError):
        return False


def command_line(proc: psutil.Process) -> str:
    """The process's command line; empty for one that has exited (a zombie included)."""
    try:
        return " ".join(proc.cmdline())
    except psutil.NoSuchProcess:
        return ""


def is_running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_make_airflow_serves_the_ui_and_ctrl_c_stops_every_component(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://localhost:{port}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_PORT": str(port),
        "ZOHO_EXPORT_DIR": str(tmp_path / "output"),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
    }
    log = open(tmp_path / "make-airflow.log", "wb")  # noqa: SIM115 - closed below
    launcher = subprocess.Popen([sys.executable, "-m", "include.devtools.local_airflow"], env=env, cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    started: list[psutil.Process] = []
    try:
        def ready() -> bool:
            if launcher.poll() is not None:
                raise AssertionError(f"make airflow exited {launcher.returncode}: "
                                     f"{(tmp_path / 'make-airflow.log').read_text()[-3000:]}")
            return answers(f"{url}/api/v2/monitor/health") and dag_listed(url, "zoho_crm_bulk_read")

        wait_until(ready, timeout=300, interval=1, what="the Airflow UI of `make airflow` to list zoho_crm_bulk_read")
        wait_until(lambda: dag_listed(url, "zoho_crm_leads_csv"), timeout=120, interval=1,
                   what="the scheduled DAGs to be listed")
        backfill = urllib.request.Request(
            f"{url}/api/v2/backfills", method="POST",
            data=json.dumps({"dag_id": "zoho_crm_leads_csv", "from_date": "2026-11-10T00:00:00Z",
                             "to_date": "2026-11-10T00:00:00Z"}).encode(),
            headers={"Authorization": f"Bearer {admin_token(url)}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(backfill, timeout=60) as response:  # 503 on SQLite while the scheduler runs
            assert response.status == 200 and json.load(response)["dag_id"] == "zoho_crm_leads_csv"
        data_dir = tmp_path / "airflow" / "postgres"
        assert postmasters(data_dir), "make airflow runs its own PostgreSQL server"
        started = psutil.Process(launcher.pid).children(recursive=True)
        names = " ".join(map(command_line, started))
        for component in ("standalone", "include.devtools.zoho_simulator"):
            assert component in names, f"{component} is not running under make airflow: {names}"
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=90) == 0
        _, alive = psutil.wait_procs(started, timeout=30)
        alive = [p for p in alive if is_running(p)]  # a zombie has stopped; only its parent has yet to reap it
        assert not alive, f"left running after Ctrl-C: {[command_line(p) for p in alive]}"
        assert not answers(f"{url}/api/v2/monitor/health"), "the API server still answers after Ctrl-C"
        assert not postmasters(data_dir), "the database server still runs after Ctrl-C"
        printed = (tmp_path / "make-airflow.log").read_text()
        assert f"Airflow UI: {url}" in printed and "login admin / admin" in printed
    finally:
        leftovers = [*started, *([psutil.Process(launcher.pid)] if launcher.poll() is None else [])]
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        log.close()
