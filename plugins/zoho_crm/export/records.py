"""The export's typed records: the query, the run, and each page with the files it is made of.

Pure code: no Airflow, no HTTP, no storage access. Records cross XCom as plain JSON dicts (``to_xcom`` /
``from_xcom``), never pickles. :meth:`ExportQuery.from_params` refuses everything Zoho would reject (unknown module,
ICS for a module other than Events, fields with ICS, malformed criteria) before any Zoho call, with a message that
says what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from zoho_crm.api.modules import NON_EXPORTABLE_MODULES, SEED_MODULES, api_name, not_exportable_message
from zoho_crm.api.query import (
    DEFAULT_API_VERSION,
    FILE_TYPES,
    InvalidBulkReadQuery,
    build_bulk_read_body,
    parse_criteria,
    uses_page_token,
)
from zoho_crm.export.layout import EXPORT_SUBDIR, INTERVAL_RUN_TYPES, final_key, run_key, staging_key

TIME_FIELD = "Modified_Time"
PARAM_NAMES = ("module", "fields", "file_type", "criteria", "cvid", "modified_from", "modified_to")
"""The export's Params (the trigger form); anything else in a run's conf is a mistake, e.g. a misspelt name."""


class ExportStepError(Exception):
    """A page that cannot be published: unsafe archive, invalid data or a changed file (the message says which
    and where the files are kept for inspection)."""


def zoho_datetime(value: datetime | str) -> str:
    """ISO 8601 without milliseconds, with an offset, as Zoho's criteria want (``2026-11-01T00:00:00+00:00``).

    :param value: an aware datetime or its ISO 8601 text.
    """
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise InvalidBulkReadQuery(f"time {value!r} has no offset: add one, e.g. 2026-11-01T00:00:00+00:00.")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def time_range_criteria(start: str, end: str) -> dict[str, Any]:
    """``Modified_Time >= start and < end``.

    :param start: the range's start (:func:`zoho_datetime`).
    :param end: its end, excluded.
    """
    return {
        "group_operator": "and",
        "group": [
            {"field": {"api_name": TIME_FIELD}, "comparator": "greater_equal", "value": start},
            {"field": {"api_name": TIME_FIELD}, "comparator": "less_than", "value": end},
        ],
    }


@dataclass(frozen=True)
class ExportQuery:
    """What one export asks Zoho for, checked; the same for every page of the export.

    :param module: the module's API name.
    :param fields: field API names in the file's order (empty: all fields).
    :param file_type: one of :data:`zoho_crm.api.query.FILE_TYPES`.
    :param criteria: Zoho criteria, the time range's included.
    :param cvid: a custom view id (digits).
    :param time_range: ``(start, end)`` of ``Modified_Time``, when the export covers one.
    """

    module: str
    fields: tuple[str, ...] = ()
    file_type: str = FILE_TYPES[0]
    criteria: dict[str, Any] | None = field(default=None, hash=False)
    cvid: str | None = None
    time_range: tuple[str, str] | None = None

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        *,
        run_type: str,
        interval_start: datetime | None,
        interval_end: datetime | None,
        custom_modules: tuple[str, ...] = (),
        api_version: str = DEFAULT_API_VERSION,
    ) -> ExportQuery:
        """The query of a DAG run from its Params and data interval; raises :class:`InvalidBulkReadQuery`.

        Scheduled and backfill runs export ``Modified_Time`` in their data interval; a manual run exports
        everything unless ``modified_from``/``modified_to`` are given.

        :param params: the run's Params (keys: :data:`PARAM_NAMES`).
        :param run_type: ``scheduled``, ``backfill``, ``manual``, ...
        :param interval_start: the run's data interval start.
        :param interval_end: the run's data interval end.
        :param custom_modules: custom module API names the deployment accepts.
        :param api_version: the connection's API version.
        """
        unknown = sorted(set(params) - set(PARAM_NAMES))
        if unknown:
            raise InvalidBulkReadQuery(
                f"unknown parameter(s) {', '.join(map(repr, unknown))}: use only {', '.join(PARAM_NAMES)} "
                "(a misspelt name would be ignored, e.g. export everything instead of a time range)."
            )
        module = _known_module(params.get("module", ""), custom_modules)
        criteria = parse_criteria(params.get("criteria") or None)
        time_range = _time_range(params, run_type, interval_start, interval_end)
        if time_range:
            window = time_range_criteria(*time_range)
            criteria = {"group_operator": "and", "group": [criteria, window]} if criteria else window
        body = build_bulk_read_body(
            module,
            fields=params.get("fields") or None,
            criteria=criteria,
            cvid=params.get("cvid") or None,
            file_type=params.get("file_type") or FILE_TYPES[0],
            api_version=api_version,
        )
        query = body["query"]
        return cls(
            module=module,
            fields=tuple(query.get("fields", ())),
            file_type=body["file_type"],
            criteria=query.get("criteria"),
            cvid=query.get("cvid"),
            time_range=time_range,
        )

    @property
    def partial(self) -> bool:
        """True when the export covers part of the module (time range, criteria or custom view)."""
        return bool(self.time_range or self.criteria or self.cvid)

    def to_request_body(self, api_version: str, page: int | None = None, page_token: str | None = None) -> dict:
        """The create-job body of one page (the first without ``page`` and ``page_token``).

        :param api_version: the connection's API version.
        :param page: the page number (API v2-v6).
        :param page_token: the previous job's ``next_page_token`` (API v7+).
        """
        return build_bulk_read_body(
            self.module, fields=list(self.fields) or None, criteria=self.criteria, cvid=self.cvid,
            file_type=self.file_type, page=page, page_token=page_token, api_version=api_version,
        )

    def next_page(self, finished: Mapping[str, Any], api_version: str) -> dict | None:
        """The create-job body of the page after ``finished`` (a job result), or None when it was the last.

        :param finished: the finished page's job result (``page``, ``more_records``, ``next_page_token``).
        :param api_version: the connection's API version: v7+ continues by token, older ones by page number.
        """
        if not finished.get("more_records"):
            return None
        if not uses_page_token(api_version):
            return self.to_request_body(api_version, page=int(finished["page"]) + 1)
        token = finished.get("next_page_token")
        if not token:
            raise InvalidBulkReadQuery(
                f"page {finished.get('page')} has more records but no next_page_token: Zoho answer is incomplete."
            )
        return self.to_request_body(api_version, page_token=token)

    def to_xcom(self) -> dict[str, Any]:
        """The query as JSON (the keys operators read: ``module``, ``fields``, ``file_type``, ``criteria``,
        ``cvid``; and ``time_range``)."""
        return {
            "module": self.module,
            "fields": list(self.fields),
            "file_type": self.file_type,
            "criteria": self.criteria,
            "cvid": self.cvid,
            "time_range": list(self.time_range) if self.time_range else None,
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> ExportQuery:
        """The query from :meth:`to_xcom`'s dict (other keys, such as a run's, are ignored).

        :param data: the JSON dict.
        """
        time_range = data.get("time_range")
        return cls(
            module=data["module"],
            fields=tuple(data.get("fields") or ()),
            file_type=data.get("file_type") or FILE_TYPES[0],
            criteria=data.get("criteria"),
            cvid=data.get("cvid"),
            time_range=(str(time_range[0]), str(time_range[1])) if time_range else None,
        )


@dataclass(frozen=True)
class ExportRun:
    """One DAG run's export: its query, where its output goes (run key) and the store it is staged and
    published in.

    :param query: the export's query.
    :param run_key: names the output (:func:`zoho_crm.export.layout.run_key`).
    :param run_id: the DAG run id (names the staging area).
    :param store: the store's location (:func:`zoho_crm.export.storage.open_store` opens it).
    :param interval_gap: the time no run exported before this scheduled run (:func:`interval_gap`), or None.
    """

    query: ExportQuery
    run_key: str
    run_id: str
    store: str
    interval_gap: dict[str, str] | None = field(default=None, hash=False)

    @classmethod
    def create(
        cls,
        query: ExportQuery,
        *,
        run_type: str,
        run_id: str,
        interval_start: datetime | None,
        interval_end: datetime | None,
        store: str,
        interval_gap: dict[str, str] | None = None,
    ) -> ExportRun:
        """The run of ``query`` for a DAG run (its run key from its type and data interval).

        :param query: the export's query.
        :param run_type: the DAG run's type.
        :param run_id: the DAG run id.
        :param interval_start: its data interval start.
        :param interval_end: its data interval end.
        :param store: the store's location.
        :param interval_gap: see :func:`interval_gap`.
        """
        key = run_key(run_type, run_id, interval_start, interval_end)
        return cls(query, run_key=key, run_id=run_id, store=store, interval_gap=interval_gap)

    @property
    def staging(self) -> str:
        """The run's staging area (a store key)."""
        return staging_key(self.query.module, self.run_key, self.run_id)

    @property
    def final(self) -> str:
        """The run key's place, holding the pointer and the published versions (a store key)."""
        return final_key(self.query.module, self.run_key)

    def staged(self, path: str) -> str:
        """The store key of ``path`` in the run's staging area (e.g. ``export/page_0001/1001.csv``).

        :param path: a path relative to the staging area.
        """
        return f"{self.staging}/{path}"

    def to_xcom(self) -> dict[str, Any]:
        """The run as JSON: the query's keys (so operators can read it as a query) and the run's."""
        return {
            **self.query.to_xcom(),
            "run_key": self.run_key,
            "run_id": self.run_id,
            "store": self.store,
            "interval_gap": self.interval_gap,
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> ExportRun:
        """The run from :meth:`to_xcom`'s dict.

        :param data: the JSON dict.
        """
        return cls(
            ExportQuery.from_xcom(data), run_key=data["run_key"], run_id=data["run_id"], store=data["store"],
            interval_gap=data.get("interval_gap"),
        )


@dataclass(frozen=True)
class StoredFile:
    """One file of a page in the run's staging area.

    :param path: relative to the staging area (``downloads/...`` stays there; ``export/...`` is published).
    :param sha256: its digest.
    """

    path: str
    sha256: str

    @property
    def published(self) -> bool:
        """True for files in the staging area's ``export/`` folder: the files a publish places in the version."""
        return PurePosixPath(self.path).parts[:1] == (EXPORT_SUBDIR,)

    def published_path(self, version: str) -> str:
        """Where the file is in a published version, relative to the run key: ``{version}/page_0001/...``.

        :param version: the version's name.
        """
        return f"{version}/{PurePosixPath(self.path).relative_to(EXPORT_SUBDIR).as_posix()}"

    def to_xcom(self) -> dict[str, str]:
        """``{"path", "sha256"}``."""
        return {"path": self.path, "sha256": self.sha256}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> StoredFile:
        """The file from :meth:`to_xcom`'s dict.

        :param data: the JSON dict.
        """
        return cls(path=str(data["path"]), sha256=str(data["sha256"]))


@dataclass(frozen=True)
class PageRecord:
    """One page of an export and its artifacts, as it goes through the page steps.

    :param page: the page number (1, 2, ...).
    :param job_id: the Bulk Read job that made it.
    :param file_type: the data file's type: ``files[file_type]`` is the data file.
    :param count: the record count Zoho reported for the page.
    :param files: the page's artifacts by kind: ``zip`` (the download), ``csv`` or ``ics`` (the data), ``report``
        (its validation report), and whatever later steps add (e.g. ``parquet``).
    :param records: the records the validation counted (None before validation).
    :param valid: True once the page passed validation.
    :param warnings: the validation's warning count.
    :param archive_warnings: what the unzip step noticed (e.g. a member with an unexpected name).
    """

    page: int
    job_id: str
    file_type: str
    count: int | None
    files: Mapping[str, StoredFile] = field(default_factory=dict, hash=False)
    records: int | None = None
    valid: bool = False
    warnings: int = 0
    archive_warnings: tuple[str, ...] = ()

    @property
    def data_file(self) -> StoredFile:
        """The page's data file (``files[file_type]``)."""
        try:
            return self.files[self.file_type]
        except KeyError:
            raise ExportStepError(
                f"page {self.page} (job {self.job_id}) has no {self.file_type} file yet: run the unzip step first."
            ) from None

    @property
    def owner(self) -> str:
        """``page N (job J)``, as messages name the page."""
        return f"page {self.page} (job {self.job_id})"

    def with_files(self, **files: StoredFile) -> PageRecord:
        """A copy with ``files`` added (or replaced) in :attr:`files`.

        :param files: artifacts by kind.
        """
        return replace(self, files={**self.files, **files})

    def to_xcom(self) -> dict[str, Any]:
        """The page as JSON."""
        return {
            "page": self.page,
            "job_id": self.job_id,
            "file_type": self.file_type,
            "count": self.count,
            "files": {kind: stored.to_xcom() for kind, stored in self.files.items()},
            "records": self.records,
            "valid": self.valid,
            "warnings": self.warnings,
            "archive_warnings": list(self.archive_warnings),
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> PageRecord:
        """The page from :meth:`to_xcom`'s dict.

        :param data: the JSON dict.
        """
        return cls(
            page=int(data["page"]),
            job_id=str(data["job_id"]),
            file_type=str(data["file_type"]),
            count=data.get("count"),
            files={kind: StoredFile.from_xcom(stored) for kind, stored in (data.get("files") or {}).items()},
            records=data.get("records"),
            valid=bool(data.get("valid")),
            warnings=int(data.get("warnings") or 0),
            archive_warnings=tuple(data.get("archive_warnings") or ()),
        )


def interval_gap(
    run_type: str, prev_end: datetime | None, start: datetime | None, *, dag_id: str
) -> dict[str, str] | None:
    """The time no successful run exported before this scheduled run, ``[prev_end, start)``, or None.

    ``prev_end`` is Airflow's ``prev_data_interval_end_success``: the data interval end of the latest successful
    run with an earlier logical date (None before the first success). With catchup off, intervals skipped while
    the DAG was paused or the scheduler was down are never run; a failed run leaves its interval out too. Only
    scheduled runs are checked: a backfill or a manual run may run out of order on purpose. The answer has the
    gap's bounds, an ``airflow backfill create`` command exporting it and a ``message`` for the log.

    :param run_type: the DAG run's type.
    :param prev_end: the previous successful run's data interval end.
    :param start: this run's data interval start.
    :param dag_id: the DAG, for the backfill command.
    """
    if run_type != "scheduled" or prev_end is None or start is None or prev_end >= start:
        return None
    begin, finish = zoho_datetime(prev_end), zoho_datetime(start)
    # --to-date is inclusive and matches logical dates (interval starts): every interval starting before ours.
    last = zoho_datetime(start - timedelta(seconds=1))
    command = (
        f"airflow backfill create --dag-id {dag_id} --from-date {begin} --to-date {last} "
        "--reprocess-behavior failed"
    )
    message = (
        f"{dag_id}: nothing was exported for {begin} .. {finish}: the previous successful run's data interval "
        f"ended at {begin}, this run's starts at {finish} (intervals skipped while the DAG was paused or the "
        "scheduler was down, with catchup off, or runs that failed). Backfill the gap: "
        f"{command} -- or in the UI: Trigger > Backfill, Date Range {begin} to {last}, Reprocess Behavior "
        "'Missing and Errored Runs'."
    )
    return {"start": begin, "end": finish, "backfill_command": command, "message": message}


def _known_module(module: str, custom_modules: tuple[str, ...]) -> str:
    if not isinstance(module, str) or not module.strip():
        raise InvalidBulkReadQuery("module is empty: choose a module, e.g. Leads.")
    name = api_name(module)
    if name in SEED_MODULES:
        return name
    if name in NON_EXPORTABLE_MODULES:
        raise InvalidBulkReadQuery(not_exportable_message(name))
    custom = {custom.lower(): custom for custom in custom_modules}
    if name.lower() not in custom:
        raise InvalidBulkReadQuery(
            f"unknown module {module!r}: use one of {', '.join(SEED_MODULES)}, or add the custom module's API "
            "name to custom_modules in include/config/zoho_crm_exports.json."
        )
    return custom[name.lower()]


def _time_range(
    params: Mapping[str, Any], run_type: str, start: datetime | None, end: datetime | None
) -> tuple[str, str] | None:
    override = params.get("modified_from"), params.get("modified_to")
    if any(override):
        if not all(override):
            raise InvalidBulkReadQuery("give both modified_from and modified_to, or neither.")
        begin, finish = (zoho_datetime(v) for v in override)
    elif run_type in INTERVAL_RUN_TYPES and start and end:
        begin, finish = zoho_datetime(start), zoho_datetime(end)
    else:
        return None
    if datetime.fromisoformat(begin) >= datetime.fromisoformat(finish):
        raise InvalidBulkReadQuery(f"the time range {begin} .. {finish} is empty: the start must be before the end.")
    return begin, finish
