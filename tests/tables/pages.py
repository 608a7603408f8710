"""Bulk Read CSV pages written in-process by the simulator (its own data and field metadata), for the table tests."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from include.devtools.zoho_simulator.data import MODULES, Dataset
from include.devtools.zoho_simulator.exports import build_page
from include.devtools.zoho_simulator.metadata import fields_json

START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
NEWER = START + timedelta(days=DAYS)
LOOKUP_COUNT = 1000  # records per module that lookups point into (fixed: values never depend on the page size)
"""A dataset starting here has every record modified after every record of the dataset starting at START."""


def metadata(module: str) -> dict:
    """The simulator's ``settings/fields`` answer for ``module``."""
    return {"fields": fields_json(MODULES[module])}


def write_page(directory: Path, module: str, records: int, *, start: datetime = START, columns: list[str] | None = None,
               first: int = 0, name: str | None = None) -> Path:
    """The CSV page of records ``first .. first + records - 1`` of ``module``: ``id`` and ``columns`` (like the
    simulator's ``fields``), all fields by default.

    Record values depend on ``start``: the same ids with a later ``start`` are newer versions of the records.
    """
    spec = MODULES[module]
    dataset = Dataset(42, {}, LOOKUP_COUNT, start, DAYS)
    name = name or f"{module}_{start:%Y%m%d}_{first}_{records}" + ("_subset" if columns else "")
    directory.mkdir(parents=True, exist_ok=True)
    columns = ["id", *[c for c in columns if c != "id"]] if columns else [f.api_name for f in spec.fields]
    built = build_page(dataset, module, np.arange(first, first + records), columns, "csv", name, directory)
    with zipfile.ZipFile(built.path) as archive:
        archive.extract(f"{name}.csv", directory)
    built.path.unlink()
    return directory / f"{name}.csv"
