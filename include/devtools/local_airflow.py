"""`make airflow`: the embedded PostgreSQL server, the simulator and `airflow standalone` (LocalExecutor), to
trigger the export (or a backfill) from the UI.

Ctrl-C stops every component: standalone runs in its own process group, which is signalled as a whole, then the
simulator and the database server stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

from include.devtools.airflow_stack import AIRFLOW_BIN, REPO_ROOT, free_port
from include.devtools.local_setup import airflow_home, default_install


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C (even when started where SIGINT is ignored) and SIGTERM both stop every component.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    home = airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({"admin": "admin"}))
    port = int(os.environ.get("AIRFLOW_PORT") or free_port())
    with default_install() as install:
        env = {
            **os.environ,
            **install.env,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        }
        subprocess.run([AIRFLOW_BIN, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([AIRFLOW_BIN, "pools", "import", str(REPO_ROOT / "include" / "config" / "pools.json")], env=env,
                       check=True)
        print(f"Zoho simulator: {install.sim.url}\nAirflow UI: http://localhost:{port}  (login admin / admin)\n"
              f"Metadata database: {install.database_url} (embedded PostgreSQL, data in {install.database.data_dir})\n"
              f"Warehouse (the tables): {install.warehouse_uri}\n"
              "Trigger 'zoho_crm_bulk_read' from the UI's form. Ctrl-C stops everything.", flush=True)
        standalone = subprocess.Popen([AIRFLOW_BIN, "standalone"], env=env, start_new_session=True)
        try:
            return standalone.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            _stop_group(standalone)


def _stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM standalone's whole process group, wait until every member has exited, SIGKILL what is left.

    Waiting for standalone alone is not enough: its scheduler can outlive it, waiting for its task workers.
    """
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _signal_group(proc.pid, 0) and time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)  # reaps standalone itself, so that only live members keep the group alive
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False once no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
