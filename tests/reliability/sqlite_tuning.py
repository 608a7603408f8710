"""SQLite for the reliability stack, whose many concurrent runs write to one SQLite file.

The stack harness already waits up to a minute for a lock (include/sqlite_settings.py); on top of that,
:func:`create_wal_database` makes the database file use write-ahead logging before Airflow creates its tables, so
readers never block the writer (the journal mode is stored in the file).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def create_wal_database(path: Path) -> str:
    """Create ``path`` as an empty SQLite database in WAL mode; return its SQLAlchemy URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"SQLite refused WAL mode for {path} (got {mode!r})")
    return f"sqlite:///{path}"
