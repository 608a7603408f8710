"""Run the Zoho CRM simulator as a subprocess and talk to its control API (stdlib only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from include.devtools.polling import wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]
READY_PREFIX = "Zoho CRM simulator listening on "


def options_to_flags(options: dict[str, Any]) -> list[str]:
    """Turn keyword options into CLI flags: ``token_lifetime=5`` -> ``--token-lifetime 5``.

    Dicts become repeated ``KEY=VALUE`` flags (``records={"Leads": 10}`` -> ``--records Leads=10``),
    lists/tuples repeat the flag, ``True`` is a bare switch, ``False``/``None`` are left out.
    """
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            flags.append(flag)
        elif isinstance(value, dict):
            for k, v in value.items():
                flags += [flag, f"{k}={v}"]
        elif isinstance(value, list | tuple | set) and key not in ("scopes", "no_permission_modules",
                                                                    "unauthorized_modules"):
            for item in value:
                flags += [flag, str(item)]
        elif isinstance(value, list | tuple | set):
            flags += [flag, ",".join(value)]
        else:
            flags += [flag, str(value)]
    return flags


class SimulatorProcess:
    """The simulator in its own process group; ``with SimulatorProcess(seed=1) as sim: sim.url``.

    Keyword options become CLI flags (see ``python -m include.devtools.zoho_simulator --help``).
    """

    def __init__(self, startup_timeout: float = 30.0, python: str | None = None, **options: Any) -> None:
        self.options = {"port": 0, **options}
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0
        self.output: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> SimulatorProcess:
        """Start the subprocess and wait for its ready line (raises RuntimeError with its output if none)."""
        cmd = [self.python, "-u", "-m", "include.devtools.zoho_simulator", *options_to_flags(self.options)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True, env=env,
        )
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(ready,), daemon=True).start()
        if not ready.wait(self.startup_timeout) or not self.url:
            self.stop()
            raise RuntimeError(
                f"Zoho simulator did not print its ready line within {self.startup_timeout} s; "
                f"command {' '.join(cmd)}; output:\n" + "".join(self.output[-50:])
            )
        return self

    def _pump(self, ready: threading.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if len(self.output) > 2000:
                del self.output[:1000]
            if not self.url and line.startswith(READY_PREFIX):
                self.url = line[len(READY_PREFIX):].strip()
                self.port = urllib.parse.urlsplit(self.url).port or 0
                ready.set()
        ready.set()

    def stop(self) -> None:
        """Kill the simulator's process group and wait for it to end."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "simulator not started"
        return self.proc.pid

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control API -------------------------------------------------------------------------------------
    def control(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """Call ``/__sim__/{path}`` and return the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/__sim__/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def health(self) -> dict[str, Any]:
        return self.control("GET", "health")

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The request log (oldest first), optionally only one kind (token, create, details, download, ...)."""
        entries = self.control("GET", "requests")["requests"]
        return [e for e in entries if kind is None or e["kind"] == kind]

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Change run-time settings (error_rate, drop_downloads, stuck_jobs, fail_jobs, ...); returns all settings."""
        return self.control("POST", "faults", settings)

    def foreign_downloads(self, n: int, *, before_next: bool = False) -> dict[str, Any]:
        """Let another client of the same org use ``n`` downloads of the allowance: now, or just before our next."""
        return self.control("POST", "foreign-downloads", {"count": n, "before_next": before_next})

    def record_ids(self, module: str, criteria: dict[str, Any] | None = None) -> list[str]:
        """Ids of the module's records matching ``criteria`` (same evaluator as bulk read jobs)."""
        query = "" if criteria is None else "?" + urllib.parse.urlencode({"criteria": json.dumps(criteria)})
        return self.control("GET", f"records/{module}{query}", timeout=120)["ids"]

    def downloads(self) -> list[dict[str, Any]]:
        """Downloads served: job_id, zip_sha256, member_sha256, count, bytes, complete."""
        return self.control("GET", "downloads")

    def tokens(self) -> list[dict[str, Any]]:
        """Access tokens issued so far."""
        return self.control("GET", "tokens")

    def jobs(self) -> list[dict[str, Any]]:
        return self.control("GET", "jobs")

    def revoke_tokens(self) -> dict[str, Any]:
        return self.control("POST", "revoke-tokens", {})

    def reset(self) -> dict[str, Any]:
        """Forget jobs, tokens, logs and counters and restore the start-up settings."""
        return self.control("POST", "reset", {})

    def wait_for(self, predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll ``predicate()`` until it returns a truthy value (returned) or raise TimeoutError."""
        return wait_until(predicate, timeout=timeout, interval=interval, what="a simulator condition")

    # -- the Airflow connection to this simulator --------------------------------------------------------------
    def airflow_connection(
        self,
        conn_type: str = "zoho_crm",
        *,
        window_seconds: float | None = None,
        token_cache_dir: str | os.PathLike[str] | None = None,
        **changes: Any,
    ) -> dict[str, Any]:
        """The README's connection (client id and secret, refresh token, data centre, environment) with its two
        host overrides pointed at this simulator, as the JSON object of ``AIRFLOW_CONN_<ID>``.

        The credentials are the ones this simulator accepts (its ``client_id``, ``client_secret`` and
        ``refresh_token`` options, else their defaults).

        :param conn_type: ``zoho_crm`` (the provider's type) or ``http`` (the same extras, typed as JSON).
        :param window_seconds: only for a simulator on a compressed clock: the ``download_window_seconds`` extra,
            with ``download_limit`` 10. None: neither extra, Zoho's 60 s window.
        :param token_cache_dir: the ``token_cache_dir`` extra; None: none, the deployment's default cache.
        :param changes: ``login`` or ``password`` replace a credential; any other name sets that extra
            (``api_domain=proxy_url``, ``data_center="eu"``); a value of None removes it.
        """
        if conn_type not in ("zoho_crm", "http"):
            raise ValueError(f"conn_type {conn_type!r} is not a Zoho connection type: use 'zoho_crm' or 'http'.")
        from include.devtools.zoho_simulator.config import build_parser

        def accepted(name: str) -> str:
            return str(self.options.get(name) or build_parser().get_default(name))

        connection: dict[str, Any] = {
            "conn_type": conn_type, "login": accepted("client_id"), "password": accepted("client_secret"),
        }
        extra: dict[str, Any] = {
            "refresh_token": accepted("refresh_token"),
            "data_center": "us",
            "environment": "production",
            "api_domain": self.url,
            "accounts_url": self.url,
        }
        if window_seconds is not None:
            extra.update(download_limit=10, download_window_seconds=window_seconds)
        if token_cache_dir is not None:
            extra["token_cache_dir"] = str(token_cache_dir)
        for name, value in changes.items():
            target = connection if name in ("login", "password") else extra
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
        return {**connection, "extra": extra}

    def env_var(self, conn_id: str = "zoho_crm_default", **options: Any) -> tuple[str, str]:
        """``(AIRFLOW_CONN_<CONN_ID>, JSON)`` of :meth:`airflow_connection`: ``monkeypatch.setenv(*sim.env_var())``,
        ``env.update([sim.env_var()])``.

        :param conn_id: the Airflow connection id.
        :param options: the arguments of :meth:`airflow_connection`.
        """
        return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(self.airflow_connection(**options))

    # -- records over simulated time ---------------------------------------------------------------------------
    def set_clock(self, now: str | None = None, rate: float | None = None) -> dict[str, Any]:
        """Move the simulated clock and/or set its rate; returns ``{"now", "epoch", "rate", "end"}``.

        :param now: the new simulated moment, ISO 8601 with offset; None keeps the current one.
        :param rate: simulated seconds per wall-clock second from now on (0: the clock stands still).
        """
        return self.control("POST", "clock", {"now": now, "rate": rate})

    def clock(self) -> dict[str, Any]:
        """The simulated now: ``{"now": ISO, "epoch": int, "rate": float, "end": ISO of the generated span's end}``."""
        return self.control("GET", "clock")

    def change_record(self, module: str, record_id: str, at: str | None = None) -> dict[str, Any]:
        """Schedule an edit: from ``at`` on the record has Modified_Time ``at`` and newly drawn editable values.

        :param module: module API name.
        :param record_id: the record's id.
        :param at: ISO 8601 with offset; None: the clock's now.
        """
        return self.control("POST", "changes", {"module": module, "id": record_id, "at": at})

    def delete_record(self, module: str, record_id: str, at: str | None = None,
                      kind: str = "recycle") -> dict[str, Any]:
        """Schedule a deletion at ``at`` (replaces the record's random deletion history).

        :param module: module API name.
        :param record_id: the record's id.
        :param at: ISO 8601 with offset; None: the clock's now.
        :param kind: ``recycle`` (restorable within the retention) or ``permanent``.
        """
        return self.control("POST", "deletions", {"module": module, "id": record_id, "at": at, "type": kind})

    def restore_record(self, module: str, record_id: str, at: str | None = None) -> dict[str, Any]:
        """Restore a record that is in the recycle bin at ``at``: live again with Modified_Time ``at``.

        :param module: module API name.
        :param record_id: the record's id.
        :param at: ISO 8601 with offset; None: the clock's now.
        """
        return self.control("POST", "restores", {"module": module, "id": record_id, "at": at})

    def add_field(self, module: str, api_name: str, data_type: str, at: str | None = None,
                  **options: Any) -> dict[str, Any]:
        """Add a field to the module's metadata and all-fields CSVs from ``at`` on; returns its metadata.

        Records last modified before ``at`` have the field empty.

        :param module: module API name.
        :param api_name: the new field's API name.
        :param data_type: text, picklist, multiselectpicklist, integer, bigint, double, currency, percent,
            boolean, date, datetime, autonumber, lookup, email, phone, textarea.
        :param at: ISO 8601 with offset; None: the clock's now.
        :param options: ``values`` (pick lists), ``decimal_place``, ``prefix``/``suffix``/``start_number``
            (autonumber), ``lookup_module``.
        """
        body = {"module": module, "api_name": api_name, "data_type": data_type, "at": at, **options}
        return self.control("POST", "fields", body)

    def records(self, module: str, fields: list[str], criteria: dict[str, Any] | None = None,
                at: str | None = None) -> list[dict[str, str]]:
        """The live records (id and ``fields`` as CSV text) at ``at`` (default: the clock's now).

        :param module: module API name.
        :param fields: field API names (``id`` is always included).
        :param criteria: a Bulk Read criteria tree, evaluated like a job's.
        :param at: ISO 8601 with offset.
        """
        params = {"fields": ",".join(fields)}
        if criteria is not None:
            params["criteria"] = json.dumps(criteria)
        if at is not None:
            params["at"] = at
        return self.control("GET", f"records/{module}?{urllib.parse.urlencode(params)}", timeout=120)["rows"]

    def deleted_records(self, module: str, at: str | None = None) -> list[dict[str, Any]]:
        """Every deletion of the module at ``at`` (default: the clock's now), as the Deleted Records API's entries,
        newest first, unpaged."""
        query = "" if at is None else "?" + urllib.parse.urlencode({"at": at})
        return self.control("GET", f"deleted/{module}{query}", timeout=120)["deleted"]
