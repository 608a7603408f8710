"""The embedded PostgreSQL server of the default install (include/devtools/metadata_db.py): starts from the pip-installed
wheel with no system service, keeps its data across restarts, and recovers from a ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from include.devtools.airflow_stack import REPO_ROOT
from include.devtools.metadata_db import EmbeddedPostgres
from include.devtools.polling import wait_until
from tests.stack_support import alive, postmasters

pytestmark = pytest.mark.timeout(300)

START_AND_VANISH = """
import os, sys
from pathlib import Path
from include.devtools.metadata_db import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
server.start()
server.ensure_database("kept")
print(server.port, flush=True)
os.kill(os.getpid(), 9)  # the owner dies without stopping its server
"""


def databases(server: EmbeddedPostgres) -> set[str]:
    with psycopg.connect(server.admin_dsn()) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_running_twice_keeps_the_data_and_stops_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    with EmbeddedPostgres(data_dir) as server:
        assert server.ensure_database("airflow") is True
        assert len(postmasters(data_dir)) == 1
    assert postmasters(data_dir) == [], "stopped on exit"
    with EmbeddedPostgres(data_dir) as server:
        assert server.ensure_database("airflow") is False, "the second start found the first one's database"
        assert "airflow" in databases(server)
    assert postmasters(data_dir) == []


def test_a_server_left_behind_by_a_killed_owner_is_recovered(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    owner = subprocess.run(
        [sys.executable, "-c", START_AND_VANISH, str(data_dir)], cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120,
    )
    assert owner.returncode == -signal.SIGKILL, owner.stderr
    left = postmasters(data_dir)
    assert len(left) == 1, "the killed owner's server is still running"
    with EmbeddedPostgres(data_dir) as server:
        assert "kept" in databases(server)
        assert not alive(left[0]), "the leftover was stopped, not joined by a second server"
        assert len(postmasters(data_dir)) == 1
    assert postmasters(data_dir) == []


def test_a_killed_server_is_started_again(tmp_path: Path) -> None:
    """``kill -9`` of the server itself leaves a stale postmaster.pid: the next start still works."""
    data_dir = tmp_path / "pgdata"
    with EmbeddedPostgres(data_dir) as server:
        server.ensure_database("kept")
        (postmaster,) = postmasters(data_dir)
        postmaster.send_signal(signal.SIGKILL)
        wait_until(lambda: not alive(postmaster), timeout=30, what="the killed server to exit")
        assert (data_dir / "postmaster.pid").exists(), "stale pid file left behind"
    with EmbeddedPostgres(data_dir) as server:
        assert "kept" in databases(server)


def test_a_server_in_use_by_a_live_owner_is_left_alone(tmp_path: Path) -> None:
    """A second `make demo` beside a running `make airflow` must not pull the database from under it."""
    data_dir = tmp_path / "pgdata"
    with EmbeddedPostgres(data_dir) as server:
        server.ensure_database("busy")
        with pytest.raises(RuntimeError, match=r"in use by process \d+ .* stop that one first"):
            EmbeddedPostgres(data_dir).start()
        assert "busy" in databases(server), "the first owner's server still answers"
    assert postmasters(data_dir) == []
