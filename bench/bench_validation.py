"""Bench: the export DAG's page path (unzip step, then validate step, through the run's store) on 40-column CSV
pages against a naive pandas read, each in its own subprocess.

    .venv/bin/python bench/bench_validation.py [--records 20000,200000,1000000]

Builds deterministic Zoho-like zips (commas, doubled quotes, embedded line breaks, non-ASCII, ISO datetimes
with offset) where the download task leaves them (the run's staging area of a local store in a temp dir), then
runs :func:`zoho_crm.export.steps.unzip_page` and :func:`~zoho_crm.export.steps.validate_page` on them as the
DAG's ``unzip`` and ``validate`` tasks do (records from and to XCom JSON) and prints records, MB, wall seconds and
peak RSS for ours and for ``pandas.read_csv(zip, dtype=str)``. Wall time is measured inside the child around the
work (imports excluded on both sides); peak RSS is the child's ``ru_maxrss`` (whole process, imports included).
Exits 1 when the 200k targets (RSS < 100 MB, wall <= 0.5 x pandas) are missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from bench.targets import verdict  # noqa: E402
from zoho_crm.export.layout import DOWNLOADS_SUBDIR, run_key  # noqa: E402
from zoho_crm.export.records import ExportQuery, ExportRun  # noqa: E402
from zoho_crm.export.storage import LocalExportStore  # noqa: E402
from zoho_crm.files.digest import file_sha256  # noqa: E402

TARGET_RECORDS = 200_000
RSS_LIMIT_MB = 100.0
WALL_RATIO_LIMIT = 0.5
PANDAS_MAX_RECORDS = 200_000  # the naive read of 1M records would need gigabytes; it is the baseline only
TEMPLATES = 3001

FIELDS: list[tuple[str, str]] = [
    ("First_Name", "text"), ("Last_Name", "text"), ("Email", "email"), ("Phone", "phone"),
    ("Mobile", "phone"), ("Company", "text"), ("Designation", "text"), ("Lead_Source", "picklist"),
    ("Lead_Status", "picklist"), ("Industry", "picklist"), ("Annual_Revenue", "currency"),
    ("No_of_Employees", "integer"), ("Rating", "picklist"), ("Email_Opt_Out", "boolean"),
    ("Created_Time", "datetime"), ("Modified_Time", "datetime"), ("Last_Activity_Time", "datetime"),
    ("Owner", "ownerlookup"), ("Street", "textarea"), ("City", "text"), ("State", "text"),
    ("Zip_Code", "text"), ("Country", "text"), ("Description", "textarea"), ("Website", "website"),
    ("Skype_ID", "text"), ("Secondary_Email", "email"), ("Twitter", "text"), ("Salutation", "picklist"),
    ("Date_of_Birth", "date"), ("Score", "bigint"), ("Discount", "percent"), ("Budget", "double"),
    ("Converted", "boolean"), ("Tag", "text"), ("Unsubscribed_Time", "datetime"), ("Visit_Count", "integer"),
    ("Health_Notes", "textarea"), ("Created_By", "ownerlookup"),
]
NAMES = ["Zoë", "Łukasz", "José", "Chen", "Åsa", "Mary-Ann", "O'Brien", "Nguyễn", "Anne", "Søren"]
CITIES = ["München", "São Paulo", "Zürich", "New York, NY", "Kraków", "Tōkyō", "Reykjavík"]
WORDS = ["quarterly", "renewal", "budget", "pilot", "follow-up", "café", "naïve", "résumé", "deal", "demo"]


def _datetime(rng: random.Random) -> str:
    hours = rng.choice(["+00:00", "-08:00", "+05:30", "+01:00", "-03:00"])
    return (f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}{hours}")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _value(rng: random.Random, name: str, data_type: str) -> str:
    if name == "Health_Notes":
        return ""
    if data_type == "datetime":
        return _datetime(rng) if rng.random() > 0.1 else ""
    if data_type == "date":
        return f"19{rng.randint(50, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if data_type in ("currency", "double", "percent"):
        return f"{rng.uniform(0, 1e6):.2f}"
    if data_type in ("integer", "bigint"):
        return str(rng.randint(0, 10**6))
    if data_type == "boolean":
        return rng.choice(["true", "false"])
    if data_type == "ownerlookup":
        return str(5725767000000411001 + rng.randint(0, 50))
    if data_type == "email":
        return f"{rng.choice(NAMES).lower()}.{rng.randint(1, 999)}@example.com"
    if data_type == "textarea":
        if rng.random() < 0.5:
            return ""
        lines = [_text(rng, rng.randint(1, 4)) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.3:
            lines.append(f'she said "{rng.choice(WORDS)}, {rng.choice(WORDS)}"')
        return rng.choice(["\n", "\r\n"]).join(lines)
    if name in ("City", "Company"):
        return rng.choice(CITIES) + rng.choice(["", " GmbH", ", Inc.", ' "Group"'])
    if name in ("First_Name", "Last_Name"):
        return rng.choice(NAMES)
    return _text(rng, 1) if rng.random() < 0.6 else ""


def _quote(value: str) -> str:
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def build_zip(directory: Path, records: int, job_id: str) -> Path:
    """A deterministic page of ``records`` rows x 40 columns (Id first), zipped as ``<job id>.csv``."""
    rng = random.Random(records)
    templates = [
        ",".join(_quote(_value(rng, name, data_type)) for name, data_type in FIELDS).encode() + b"\r\n"
        for _ in range(TEMPLATES)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{job_id}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open(f"{job_id}.csv", "w", force_zip64=True) as member:
            member.write(("Id," + ",".join(name for name, _ in FIELDS) + "\r\n").encode())
            chunk: list[bytes] = []
            for i in range(records):
                chunk.append(b"%d," % (5725767000001000000 + i * 7) + templates[(i * 7919) % TEMPLATES])
                if len(chunk) == 10_000:
                    member.write(b"".join(chunk))
                    chunk.clear()
            member.write(b"".join(chunk))
    return path


def metadata_file(directory: Path) -> Path:
    path = directory / "fields.json"
    fields = [{"api_name": "id", "data_type": "bigint"}]
    fields += [{"api_name": name, "data_type": data_type} for name, data_type in FIELDS]
    path.write_text(json.dumps({"fields": fields}))
    return path


OURS = """
import json, resource, sys, time
from pathlib import Path
from zoho_crm.export.records import ExportRun, PageRecord
from zoho_crm.export.steps import ExportStepError, unzip_page, validate_page
from zoho_crm.export.storage import open_store
import zoho_crm.validation  # what the validate task imports before its work (pyarrow)
run, download = ExportRun.from_xcom(json.loads(sys.argv[1])), json.loads(sys.argv[2])
metadata = json.loads(Path(sys.argv[3]).read_text())["fields"]
start, cpu = time.perf_counter(), time.process_time()
page = PageRecord.from_xcom(json.loads(json.dumps(unzip_page(download, run).to_xcom())))
unzipped = time.perf_counter()
try:
    checked = validate_page(page, run, field_metadata=metadata)
    errors, records, valid = [], checked.records, True
except ExportStepError as err:
    errors, records, valid = str(err).splitlines()[1:6], None, False
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
report_key = run.staged(page.data_file.path.rsplit("/", 1)[0] + "/report.json")
timings = {"unzip": unzipped - start, "validate": wall - (unzipped - start),
           **{f"validate.{k}": v for k, v in open_store(run.store).read_json(report_key)["timings"].items()}}
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "valid": valid, "errors": errors, "records": records, "timings": timings}))
"""

NAIVE = """
import json, resource, sys, time
import pandas
start, cpu = time.perf_counter(), time.process_time()
frame = pandas.read_csv(sys.argv[1], dtype=str)
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "records": len(frame)}))
"""


def run_child(code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, env=env)
    if done.returncode:
        raise SystemExit(f"bench child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default="20000,200000,1000000")
    args = parser.parse_args()
    sizes = [int(n) for n in args.records.split(",")]
    failures: list[str] = []
    peaks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        directory = Path(tmp)
        meta = metadata_file(directory)
        store = LocalExportStore(directory / "exports")
        print(f"{'records':>9} {'CSV MB':>7} {'zip MB':>7} {'ours s':>7} {'ours RSS':>9} "
              f"{'pandas s':>9} {'pandas RSS':>11} {'wall ratio':>11} {'RSS ratio':>10}")
        for records in sizes:
            run_id = f"manual__bench-{records}"
            run = ExportRun(ExportQuery("Leads"), run_key=run_key("manual", run_id, None, None), run_id=run_id,
                            store=store.location)
            job_id = f"57257670000{records:08d}"
            # Where the download task leaves a page: {download_dir}/{job id}/{job id}.zip, with its sha256.
            zip_path = build_zip(store.local_path(run.staged(f"{DOWNLOADS_SUBDIR}/{job_id}")), records, job_id)
            download = {"page": 1, "job_id": job_id, "file_type": "csv", "count": records,
                        "key": f"{job_id}/{zip_path.name}", "sha256": file_sha256(zip_path)}
            with zipfile.ZipFile(zip_path) as archive:
                csv_mb = archive.infolist()[0].file_size / 2**20
            ours = run_child(OURS, json.dumps(run.to_xcom()), json.dumps(download), str(meta))
            if not ours["valid"] or ours["records"] != records:
                failures.append(f"{records}: our validation did not pass: {ours['errors']}")
            naive = run_child(NAIVE, str(zip_path)) if records <= PANDAS_MAX_RECORDS else None
            row = f"{records:>9} {csv_mb:>7.1f} {zip_path.stat().st_size / 2**20:>7.1f} {ours['wall']:>7.2f} " \
                  f"{ours['rss_mb']:>6.1f} MB"
            if naive:
                wall_ratio, rss_ratio = ours["wall"] / naive["wall"], ours["rss_mb"] / naive["rss_mb"]
                row += f" {naive['wall']:>9.2f} {naive['rss_mb']:>8.1f} MB {wall_ratio:>11.2f} {rss_ratio:>10.2f}"
            else:
                row += f" {'-':>9} {'-':>11} {'-':>11} {'-':>10}"
            print(row, flush=True)
            cpu = f"CPU s ours {ours['cpu']:.2f}" + (f", pandas {naive['cpu']:.2f}" if naive else "")
            print(f"{'':>9} {cpu}; our timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in ours["timings"].items()),
                  flush=True)
            peaks.append(f"{records}: {ours['rss_mb']:.1f} MB")
            if records == TARGET_RECORDS:
                if ours["rss_mb"] >= RSS_LIMIT_MB:
                    failures.append(f"200k peak RSS {ours['rss_mb']:.1f} MB, target < {RSS_LIMIT_MB:.0f} MB")
                if naive and ours["wall"] > WALL_RATIO_LIMIT * naive["wall"]:
                    failures.append(f"200k wall ratio {ours['wall'] / naive['wall']:.2f}, target <= {WALL_RATIO_LIMIT}")
            store.remove(run.staging)
    print("our peak RSS by page size: " + ", ".join(peaks))
    return verdict(failures)


if __name__ == "__main__":
    sys.exit(main())
