"""Helpers of the reliability suite: connections, task logs, output checks, and the threads that inject
faults while a run is in flight (a 429 storm, the token throttle lifting, a worker killed mid-download)."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from include.devtools.airflow_stack import AirflowStack
from include.devtools.zoho_simulator.process import SimulatorProcess
from zoho_crm.export.layout import final_key, run_key, staging_key

PARTIAL_MARKERS = (".part", ".tmp")


# -- where a run writes --------------------------------------------------------------------------------------


def run_dirs(export_dir: Path, run_id: str, module: str = "Leads") -> tuple[Path, Path]:
    """(staging, published) directories of a manual run."""
    key = run_key("manual", run_id, None, None)
    return export_dir / staging_key(module, key, run_id), export_dir / final_key(module, key)


def partial_files(root: Path) -> list[Path]:
    """Temporary or half-written files (``*.part*``, ``*.tmp``) under ``root``.

    ``os.walk`` skips a folder that vanishes while it is read (a run publishing removes its staging tree).
    """
    return sorted(
        Path(folder) / name
        for folder, _dirs, names in os.walk(root)
        for name in names
        if any(marker in name for marker in PARTIAL_MARKERS)
    )


def published_partials(export_dir: Path) -> list[Path]:
    """Partial files anywhere in the published tree (everything but ``.staging``)."""
    return [p for p in partial_files(export_dir) if ".staging" not in p.relative_to(export_dir).parts]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- task logs ------------------------------------------------------------------------------------------------


def _log_dir(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, map_index: int | None) -> Path:
    path = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return path / f"map_index={map_index}" if map_index is not None and map_index >= 0 else path


def task_log(
    stack: AirflowStack, dag_id: str, run_id: str, task_id: str, map_index: int | None = None,
    attempt: int | None = None,
) -> str:
    """The events and exception texts of a task's log (one attempt, or all in order), as plain text."""
    folder = _log_dir(stack, dag_id, run_id, task_id, map_index)
    files = sorted(folder.glob("attempt=*.log"), key=lambda p: int(p.name.split("=")[1].split(".")[0]))
    if attempt is not None:
        files = [p for p in files if p.name == f"attempt={attempt}.log"]
    lines: list[str] = []
    for path in files:
        for raw in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                lines.append(raw)
                continue
            lines.append(str(entry.get("event", "")))
            for detail in entry.get("error_detail") or []:
                lines.append(f"{detail.get('exc_type')}: {detail.get('exc_value')}")
    return "\n".join(lines)


def task_instance(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
    found = [t for t in stack.task_instances(dag_id, run_id) if t["task_id"] == task_id and t["map_index"] == map_index]
    assert found, f"no task instance {task_id}[{map_index}] in {dag_id} {run_id}"
    return found[0]


def run_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


# -- simulator bookkeeping ---------------------------------------------------------------------------------------


def token_request_bound(token_times: list[float], lifetime: float, rejections: int) -> int:
    """Token requests a shared cache may make: one per (0.9 x lifetime) of activity, one per rejected token,
    plus one for the start."""
    if not token_times:
        return 0
    span = max(token_times) - min(token_times)
    return math.ceil(span / (0.9 * lifetime)) + rejections + 1


# -- fault drivers (threads) -----------------------------------------------------------------------------------


class _Driver(threading.Thread):
    """A daemon thread running ``drive`` once; errors are kept for the test to raise."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.drive()
        except BaseException as err:  # reported by finish()
            self.error = err

    def drive(self) -> None:
        raise NotImplementedError

    def poll(self, condition: Callable[[], Any], timeout: float, interval: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while not self.stop_event.is_set():
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: timed out after {timeout:.0f}s waiting for {what}")
            self.stop_event.wait(interval)
        return None

    def finish(self, timeout: float = 30) -> None:
        """Stop and join; re-raise what went wrong in the thread."""
        self.stop_event.set()
        self.join(timeout)
        if self.error is not None:
            raise self.error


def task_state(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> str | None:
    """The state of an unmapped task of a run (None before it exists)."""
    states = {t["task_id"]: t["state"] for t in stack.task_instances(dag_id, run_id) if t["map_index"] == -1}
    return states.get(task_id)


class DownloadStorm(_Driver):
    """Another client of the org: as soon as the run's pages are known (``follow_pages`` done, downloads about
    to start), use the whole download allowance again and again for ``windows`` rate-limit windows, so the
    run's downloads meet 429 for several windows."""

    def __init__(self, sim: SimulatorProcess, stack: AirflowStack, dag_id: str, run_id: str, *, window: float,
                 windows: int) -> None:
        super().__init__("download-storm")
        self.sim, self.stack, self.dag_id, self.run_id = sim, stack, dag_id, run_id
        self.duration = window * windows
        self.started = self.ended = 0.0
        self.admitted = 0

    def _pages_known(self) -> bool:
        return task_state(self.stack, self.dag_id, self.run_id, "follow_pages") == "success"

    def drive(self) -> None:
        if not self.poll(self._pages_known, 900, 0.5, "follow_pages to finish"):
            return
        self.started = time.monotonic()
        while time.monotonic() - self.started < self.duration and not self.stop_event.is_set():
            self.admitted += self.sim.foreign_downloads(10)["statuses"].count(200)
            self.stop_event.wait(0.5)
        self.ended = time.monotonic()


class ThrottleLift(_Driver):
    """Lift the token throttle (restore ``token_limit``) once the run's first task attempt failed on it."""

    def __init__(self, sim: SimulatorProcess, stack: AirflowStack, dag_id: str, run_id: str) -> None:
        super().__init__("throttle-lift")
        self.sim, self.stack, self.dag_id, self.run_id = sim, stack, dag_id, run_id
        self.lifted = False

    def _first_attempt_failed(self) -> bool:
        return task_state(self.stack, self.dag_id, self.run_id, "create_job") in ("up_for_retry", "failed")

    def drive(self) -> None:
        if self.poll(self._first_attempt_failed, 900, 1, "create_job's first attempt to fail"):
            self.sim.set_faults(token_limit=10)
            self.lifted = True


class WorkerKiller(_Driver):
    """SIGKILL the task process that is writing a download's ``.part`` file, once it holds ``min_bytes``.

    The process is found with psutil: an ``airflow`` process (by its command line) holding the part file open.
    Until stopped, it also watches the published tree for partial files (there must never be one).
    """

    def __init__(self, export_dir: Path, staging: Path, *, min_bytes: int) -> None:
        super().__init__("worker-killer")
        self.export_dir, self.downloads, self.min_bytes = export_dir, staging / "downloads", min_bytes
        self.killed: dict[str, Any] = {}
        self.seen_published_partials: set[str] = set()

    def _growing_part(self) -> Path | None:
        self.seen_published_partials.update(str(p) for p in published_partials(self.export_dir))
        for part in partial_files(self.downloads):
            try:
                if part.stat().st_size >= self.min_bytes:
                    return part
            except FileNotFoundError:
                continue
        return None

    @staticmethod
    def _writer_of(part: Path) -> psutil.Process | None:
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if "airflow" not in " ".join(proc.info["cmdline"] or []):
                    continue
                if any(f.path == str(part) for f in proc.open_files()):
                    return proc
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return None

    def drive(self) -> None:
        part = self.poll(self._growing_part, 600, 0.05, "a download's part file to grow")
        if part is None:
            return
        proc = self._writer_of(part)
        if proc is None:
            raise RuntimeError(f"no airflow process holds {part} open")
        self.killed = {"pid": proc.pid, "cmdline": " ".join(proc.cmdline()), "part": str(part),
                       "part_bytes": part.stat().st_size}
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        while not self.stop_event.wait(0.2):
            self.seen_published_partials.update(str(p) for p in published_partials(self.export_dir))
