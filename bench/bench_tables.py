"""Bench: typed Parquet and the warehouse load of a 200,000-record x 40-column page, as ratios of floors measured
in the same run.

    .venv/bin/python bench/bench_tables.py [--records 200000] [--repeat 3] [--dsn "host=127.0.0.1 user=postgres"]

The page is the simulator's Leads module (40 columns: ids, lookups, datetimes with offsets, decimals, booleans,
dates, multi-line quoted text), written in-process. Each measurement is the best of ``--repeat`` runs.

1. Parquet (``write_page_parquet``) vs the page's validation (``validate_csv`` with the field metadata), each in
   its own child process (wall time around the work, imports excluded; peak RSS is the child's ``ru_maxrss``).
   Targets: ratio <= 1.5, Parquet peak RSS < 150 MB.
2. ``load_export`` into an empty table (the first load: COPY straight into the new table), reloading the same page
   (every row matched, none changed: the issue's "table that already holds it") and loading a newer version of
   every record (every row rewritten: the stricter reading of "all updates"), vs the floor: a plain ``COPY`` of
   the CSV into a table of text columns. Each run on a database of its own (created, then dropped).
   Target: ratio <= 2 for all three.

Prints the figures and ratios; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.targets import verdict  # noqa: E402
from include.devtools.zoho_simulator.data import MODULES, Dataset  # noqa: E402
from include.devtools.zoho_simulator.exports import build_page  # noqa: E402
from include.devtools.zoho_simulator.metadata import fields_json  # noqa: E402
from zoho_crm.tables.warehouse import load_export  # noqa: E402

MODULE = "Leads"
START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
PARQUET_RATIO_LIMIT = 1.5
RSS_LIMIT_MB = 150.0
LOAD_RATIO_LIMIT = 2.0

CHILD = """
import json, resource, sys, time
from pathlib import Path
kind, csv_path, meta_path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
metadata = json.loads(meta_path.read_text())
if kind == "parquet":
    from zoho_crm.tables.parquet import write_page_parquet
    work = lambda: write_page_parquet(csv_path, out, metadata).rows
else:
    from zoho_crm.validation import validate_csv
    def work():
        report = validate_csv(csv_path, field_metadata=metadata)
        assert report.valid, report.errors[:3]
        return report.records
start = time.perf_counter()
rows = work()
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "rows": rows, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_page(directory: Path, records: int, start: datetime, name: str) -> Path:
    """The simulator's Leads page of ``records`` records, extracted to ``<directory>/<name>.csv``."""
    spec = MODULES[MODULE]
    dataset = Dataset(42, {}, records, start, DAYS)
    built = build_page(dataset, MODULE, np.arange(records), [f.api_name for f in spec.fields], "csv", name, directory)
    with zipfile.ZipFile(built.path) as archive:
        archive.extract(f"{name}.csv", directory)
    built.path.unlink()
    return directory / f"{name}.csv"


def run_child(kind: str, csv_path: Path, meta_path: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(csv_path), str(meta_path), str(out)],
                          capture_output=True, text=True, check=False, env=env)
    if done.returncode:
        raise SystemExit(f"bench child ({kind}) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def database(admin_dsn: str):
    """A fresh database (dropped afterwards) and a connection to it."""
    name = f"bench_tables_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            with psycopg.connect(f"{admin_dsn} dbname={name}") as conn:
                yield conn
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def plain_copy(conn: psycopg.Connection, csv_path: Path, columns: list[str]) -> None:
    """The floor: COPY the CSV as it is into a table of text columns, one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE floor ({})").format(
            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)))
        with cur.copy("COPY floor FROM STDIN (FORMAT csv, HEADER true)") as copy, open(csv_path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)


def best(repeat: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeat))


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                        help="a PostgreSQL server where databases may be created")
    args = parser.parse_args()
    failures: list[str] = []
    metadata = {"fields": fields_json(MODULES[MODULE])}
    with tempfile.TemporaryDirectory(prefix="bench-tables-") as tmp:
        directory = Path(tmp)
        meta_path = directory / "fields.json"
        meta_path.write_text(json.dumps(metadata))
        started = time.perf_counter()
        page = write_page(directory, args.records, START, "page_v1")
        newer = write_page(directory, args.records, START + timedelta(days=DAYS), "page_v2")
        columns = [f.api_name for f in MODULES[MODULE].fields]
        print(f"pages: {args.records} records x {len(columns)} columns, {page.stat().st_size / 2**20:.1f} MB CSV "
              f"(written in {time.perf_counter() - started:.1f} s)", flush=True)

        validations = [run_child("validate", page, meta_path, directory / "unused") for _ in range(args.repeat)]
        parquets = [run_child("parquet", page, meta_path, directory / "page.parquet") for _ in range(args.repeat)]
        validate_s = min(v["wall"] for v in validations)
        parquet_s = min(p["wall"] for p in parquets)
        rss = max(p["rss_mb"] for p in parquets)
        ratio = parquet_s / validate_s
        print(f"validation {validate_s:.2f} s; parquet {parquet_s:.2f} s ({(directory / 'page.parquet').stat().st_size / 2**20:.1f} MB), "
              f"peak RSS {rss:.1f} MB; ratio parquet/validation {ratio:.2f} (target <= {PARQUET_RATIO_LIMIT})",
              flush=True)
        if ratio > PARQUET_RATIO_LIMIT:
            failures.append(f"parquet/validation {ratio:.2f} > {PARQUET_RATIO_LIMIT}")
        if rss >= RSS_LIMIT_MB:
            failures.append(f"parquet peak RSS {rss:.1f} MB >= {RSS_LIMIT_MB:.0f} MB")

        def floor_run() -> float:
            with database(args.dsn) as conn:
                return timed(lambda: plain_copy(conn, page, columns))

        def load(conn: psycopg.Connection, csv_path: Path, run_key: str):
            return load_export(conn, [csv_path], metadata, module=MODULE, run_key=run_key, target="bench",
                               field_subset=False)

        def empty_run() -> float:
            with database(args.dsn) as conn:
                return timed(lambda: load(conn, page, "empty"))

        results: dict[str, object] = {}

        def reload_run(kind: str) -> float:
            with database(args.dsn) as conn:
                load(conn, page, "first")
                start = time.perf_counter()
                results[kind] = load(conn, page if kind == "same" else newer, kind)
                return time.perf_counter() - start

        floor_s = best(args.repeat, floor_run)
        empty_s = best(args.repeat, empty_run)
        same_s = best(args.repeat, lambda: reload_run("same"))
        update_s = best(args.repeat, lambda: reload_run("updates"))
        print(f"plain COPY into text columns (floor) {floor_s:.2f} s", flush=True)
        for label, seconds in (("load into an empty table", empty_s),
                               ("reload of the same page (all matched, unchanged)", same_s),
                               ("load of a newer version (all rewritten)", update_s)):
            ratio = seconds / floor_s
            print(f"{label}: {seconds:.2f} s, ratio {ratio:.2f} (target <= {LOAD_RATIO_LIMIT})", flush=True)
            if ratio > LOAD_RATIO_LIMIT:
                failures.append(f"{label}: ratio {ratio:.2f} > {LOAD_RATIO_LIMIT}")
        print(f"counts: same page {results['same']}\n        newer version {results['updates']}")
    return verdict(failures)


if __name__ == "__main__":
    sys.exit(main())
