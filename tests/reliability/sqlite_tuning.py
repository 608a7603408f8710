"""SQLite settings for the reliability stack, whose many concurrent runs write to one SQLite file.

``SETTINGS`` point Airflow's sync and async engines at connect args that wait up to a minute for a
lock instead of SQLite's 5 s (a busy 2-core machine can hold a write lock longer). :func:`create_wal_database`
makes the database file use write-ahead logging before Airflow creates its tables, so readers never block the
writer (the journal mode is stored in the file).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

CONNECT_ARGS = {"timeout": 60}
ASYNC_CONNECT_ARGS = {"timeout": 60}
SETTINGS = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": f"{__name__}.CONNECT_ARGS",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": f"{__name__}.ASYNC_CONNECT_ARGS",
}


def create_wal_database(path: Path) -> str:
    """Create ``path`` as an empty SQLite database in WAL mode; return its SQLAlchemy URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"SQLite refused WAL mode for {path} (got {mode!r})")
    return f"sqlite:///{path}"
