"""Command-line options of the simulator and the settings that can change at run time."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from .data import MODULES

DEFAULT_SCOPES = "ZohoCRM.bulk.read,ZohoCRM.modules.ALL,ZohoCRM.settings.fields.READ"
ICS_OVERRIDES = ("with_series", "apart")


@dataclass
class Settings:
    """Everything POST /__sim__/faults may change (names as in the JSON body)."""

    error_rate: float = 0.0
    drop_downloads: int = 0
    stuck_jobs: bool = False
    fail_jobs: int = 0
    token_lifetime: float = 3600.0
    token_limit: int = 10
    token_window: float = 600.0
    download_limit: int = 10
    download_window: float = 60.0
    scopes: list[str] = field(default_factory=lambda: DEFAULT_SCOPES.split(","))
    per_page_csv: int = 200_000
    per_page_ics: int = 20_000
    job_seconds: float = 2.0
    content_type: str = "application/zip"
    disposition: str = "quoted"
    page_token_ttl: float = 86400.0
    no_permission_modules: list[str] = field(default_factory=list)
    unauthorized_modules: list[str] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    default_records: int = 300
    slow_download_modules: list[str] = field(default_factory=list)
    slow_download_rate: float = 4096.0
    """Downloads of jobs of these modules are sent at slow_download_rate bytes/s (a slow network)."""
    ics_overrides: str = "with_series"
    changes_per_day: float = 0.0
    """Random edits per record per simulated day after its base Modified_Time (0: records never change)."""
    deletions_per_day: float = 0.0
    """Random deletions per record per simulated day after its base Modified_Time (0: nothing is deleted)."""
    permanent_share: float = 0.3
    """Share of random deletions that skip the recycle bin."""
    restore_share: float = 0.2
    """Share of random recycle-bin deletions restored (within the retention)."""
    recycle_retention_days: float = 60.0
    """Days a deletion stays in the recycle bin before it turns permanent."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON object of changes; raises ValueError naming an unknown or badly typed setting."""
        known = {f.name: f for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(sorted(known))}")
            current = getattr(self, key)
            if key in ("scopes", "no_permission_modules", "unauthorized_modules", "slow_download_modules") and isinstance(
                value, str
            ):
                value = split_list(value)
            if key == "records":
                value = {**self.records, **{str(k): int(v) for k, v in dict(value).items()}}
            elif isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
            elif isinstance(current, int | float) and not isinstance(value, bool):
                value = type(current)(value)
            elif isinstance(current, list):
                value = [str(v) for v in value]
            setattr(self, key, value)
        self.validate()

    def validate(self) -> None:
        if self.content_type not in ("application/zip", "application/x-download"):
            raise ValueError("content_type must be application/zip or application/x-download")
        if self.disposition not in ("quoted", "extended"):
            raise ValueError("disposition must be quoted or extended")
        if self.ics_overrides not in ICS_OVERRIDES:
            raise ValueError(f"ics_overrides must be one of {', '.join(ICS_OVERRIDES)}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        for name in ("permanent_share", "restore_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.changes_per_day < 0 or self.deletions_per_day < 0:
            raise ValueError("changes_per_day and deletions_per_day must be >= 0")
        if self.recycle_retention_days <= 0:
            raise ValueError("recycle_retention_days must be > 0")
        unknown = [m for m in self.records if m not in MODULES]
        if unknown:
            raise ValueError(f"unknown modules in records: {unknown}; known: {', '.join(MODULES)}")


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_records(items: list[str]) -> dict[str, int]:
    records = {}
    for item in items:
        module, sep, count = item.partition("=")
        if not sep or not count.strip().isdigit():
            raise argparse.ArgumentTypeError(f"--records wants MODULE=N, got {item!r}")
        records[module.strip()] = int(count)
    return records


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m include.devtools.zoho_simulator",
        description="Local Zoho CRM simulator: OAuth refresh grant, Bulk Read API v2-v8, field metadata, and a "
                    "control API under /__sim__/ for tests (fault injection, request log).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a("--host", default="127.0.0.1", help="interface to listen on")
    a("--port", type=int, default=8799, help="TCP port; 0 picks a free port (printed in the ready line)")
    a("--seed", type=int, default=42, help="seed of the generated data and of fault decisions")
    a("--client-id", default="1000.SIMULATOR", help="OAuth client id")
    a("--client-secret", default="simulator-secret", help="OAuth client secret")
    a("--refresh-token", default="1000.simulator.refresh", help="refresh token of the main user")
    a("--extra-user", action="append", default=[], metavar="REFRESH_TOKEN",
      help="refresh token of another user of the same client (repeatable); page tokens are tied to their user")
    a("--token-lifetime", type=float, default=3600, help="access token lifetime in seconds")
    a("--token-limit", type=int, default=10, help="access tokens per refresh token per window before 'Access Denied'")
    a("--token-window", type=float, default=600, help="token throttle window in seconds")
    a("--scopes", default=DEFAULT_SCOPES, help="granted scopes, comma separated")
    a("--records", action="append", default=[], metavar="MODULE=N", help="record count of a module (repeatable)")
    a("--default-records", type=int, default=300, help="record count of modules not given with --records")
    a("--per-page-csv", type=int, default=200_000, help="records per CSV page")
    a("--per-page-ics", type=int, default=20_000, help="events per ICS page")
    a("--job-seconds", type=float, default=2.0, help="time a job takes from ADDED to COMPLETED")
    a("--download-limit", type=int, default=10, help="downloads per sliding window (per org)")
    a("--download-window", type=float, default=60, help="download window in seconds; past the limit every "
      "download gets 429 until a full window passed with no accepted download")
    a("--content-type", default="application/zip", choices=["application/zip", "application/x-download"],
      help="Content-Type of downloads")
    a("--disposition", default="quoted", choices=["quoted", "extended"],
      help="Content-Disposition form: filename=\"ID.zip\" or filename*=UTF-8''ID.zip")
    a("--page-token-ttl", type=float, default=86400, help="next_page_token lifetime in seconds")
    a("--time-start", default="2026-11-01T00:00:00+00:00", help="earliest Created_Time of generated records")
    a("--time-days", type=float, default=28, help="days spanned by Created_Time/Modified_Time")
    a("--api-domain", default=None, help="api_domain in token answers (default http://HOST:PORT)")
    a("--error-rate", type=float, default=0.0, help="fraction of API calls (not token or control calls) "
      "answered 500 INTERNAL_ERROR")
    a("--drop-downloads", type=int, default=0, help="the next N downloads drop the connection in the middle "
      "of the body (-1 = all)")
    a("--stuck-jobs", action="store_true", help="jobs never leave IN PROGRESS")
    a("--fail-jobs", type=int, default=0, help="the next N jobs end in FAILURE (-1 = all)")
    a("--no-permission-modules", default="", help="modules answered 403 NO_PERMISSION, comma separated")
    a("--unauthorized-modules", default="", help="modules answered 400 AUTHORIZATION_FAILED, comma separated")
    a("--ics-overrides", default="with_series", choices=ICS_OVERRIDES,
      help="where an edited occurrence (RECURRENCE-ID) of an ICS export goes: right after its series, or 'apart': "
           "before the next event record and dated with its Modified_Time (another page, or a time range without "
           "its series)")
    a("--slow-download-modules", default="", help="downloads of these modules' jobs are sent slowly (a slow "
      "network), comma separated")
    a("--slow-download-rate", type=float, default=4096.0, help="bytes per second of a slow download")
    a("--changes-per-day", type=float, default=0.0, help="random edits per record per simulated day after its base "
      "Modified_Time (a newer Modified_Time, some values changed); 0 = records never change")
    a("--deletions-per-day", type=float, default=0.0, help="random deletions per record per simulated day after "
      "its base Modified_Time; 0 = nothing is deleted")
    a("--permanent-share", type=float, default=0.3, help="share of random deletions that skip the recycle bin")
    a("--restore-share", type=float, default=0.2, help="share of random recycle-bin deletions restored later")
    a("--recycle-retention-days", type=float, default=60.0, help="days in the recycle bin before a deletion "
      "turns permanent")
    a("--clock", default=None, help="the simulated now (ISO 8601 with offset); default: the end of the generated "
      "span (--time-start + --time-days), where every record exists in its base version")
    a("--clock-rate", type=float, default=0.0, help="simulated seconds per wall-clock second (0: the clock "
      "stands still until POST /__sim__/clock moves it)")
    a("--data-dir", default=None, help="directory for built zips (default: a temp dir removed at exit)")
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    s = Settings(
        error_rate=args.error_rate, drop_downloads=args.drop_downloads, stuck_jobs=args.stuck_jobs,
        fail_jobs=args.fail_jobs, token_lifetime=args.token_lifetime, token_limit=args.token_limit,
        token_window=args.token_window, download_limit=args.download_limit,
        download_window=args.download_window, scopes=split_list(args.scopes), per_page_csv=args.per_page_csv,
        per_page_ics=args.per_page_ics, job_seconds=args.job_seconds, content_type=args.content_type,
        disposition=args.disposition, page_token_ttl=args.page_token_ttl,
        no_permission_modules=split_list(args.no_permission_modules),
        unauthorized_modules=split_list(args.unauthorized_modules), records=parse_records(args.records),
        default_records=args.default_records,
        slow_download_modules=split_list(args.slow_download_modules), slow_download_rate=args.slow_download_rate,
        ics_overrides=args.ics_overrides, changes_per_day=args.changes_per_day,
        deletions_per_day=args.deletions_per_day, permanent_share=args.permanent_share,
        restore_share=args.restore_share, recycle_retention_days=args.recycle_retention_days,
    )
    s.validate()
    return s


def parse_time_start(text: str, option: str = "--time-start") -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise SystemExit(f"{option} needs an offset, e.g. 2026-11-01T00:00:00+00:00 (got {text!r})")
    return value
