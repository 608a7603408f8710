"""The export store on object storage, against moto's S3 server (a real HTTP server process on 127.0.0.1) through
a real Airflow connection of type aws: pages handed over through the store, a versioned publish read back by its
pointer, a publish killed before the pointer write, reruns and retention, a 100 MB page in bounded memory."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.export.s3_server import BUCKET, CONN_ID, S3Server, s3_server
from tests.export.support import INTERVAL
from tests.validation.builders import FIELDS, good_csv, write_zip
from zoho_crm.export.layout import (
    DOWNLOADS_SUBDIR,
    EXPORT_SUBDIR,
    POINTER_NAME,
    STAGING,
    Retention,
    new_version_name,
    page_dir_name,
    run_key,
)
from zoho_crm.export.object_store import BLOCK_SIZE, ObjectExportStore
from zoho_crm.export.records import ExportQuery, ExportRun, ExportStepError
from zoho_crm.export.storage import (
    EXPORT_CONN_ID_ENV,
    EXPORT_DIR_ENV,
    LocalExportStore,
    Placement,
    default_store,
    open_store,
)
from zoho_crm.files.archive import extract_page
from zoho_crm.files.digest import file_sha256
from zoho_crm.validation import validate_csv

ROOT = Path(__file__).resolve().parents[2]
CHILD_ENV = {"PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
MODULE = "Leads"
KEEP_ALL = Retention()
DROP_REPLACED = Retention(versions=timedelta(0))


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("moto")) as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.conn_env.items():
            patch.setenv(name, value)
        yield server


@pytest.fixture
def store(s3: S3Server) -> ObjectExportStore:
    """A store of its own in the bucket (a fresh prefix per test)."""
    opened = open_store(f"s3://{CONN_ID}@{BUCKET}/exports-{uuid.uuid4().hex[:8]}")
    assert isinstance(opened, ObjectExportStore)
    return opened


def prefix(store: ObjectExportStore) -> str:
    return store.location.split(f"{BUCKET}/", 1)[1]


@pytest.fixture(autouse=True)
def own_scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Local scratch folders under this test's own directory, so that :func:`scratch_folders` never sees those of a
    test running at the same moment in another xdist worker (they share /tmp)."""
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))


def scratch_folders() -> set[str]:
    return {entry.name for entry in Path(tempfile.gettempdir()).glob("zoho-export-*")}


def export_run(store: ObjectExportStore, run_id: str, key: str = INTERVAL) -> ExportRun:
    return ExportRun(ExportQuery(MODULE), run_key=key, run_id=run_id, store=store.location)


def staged_page(run: ExportRun, page: int, job_id: str, count: int = 3) -> list[Placement]:
    """One page through the store as page steps on different workers hand it over: the download writes the zip
    in local scratch that lands in staging, the unzip reads it back and extracts into scratch that lands in
    staging, the validation reads the data file and writes its report. Returns what a publish places."""
    store = open_store(run.store)
    with store.write_local(run.staged(DOWNLOADS_SUBDIR)) as downloads:  # download worker
        zipped = write_zip(downloads / f"{job_id}.zip", [(f"{job_id}.csv", good_csv(count, first=page * 1000))])
        zip_sha256 = file_sha256(zipped)
    page_dir = f"{EXPORT_SUBDIR}/{page_dir_name(page)}"
    with (store.read_local(run.staged(f"{DOWNLOADS_SUBDIR}/{job_id}.zip")) as archive,  # unzip worker
          store.write_local(run.staged(page_dir)) as target):
        assert file_sha256(archive) == zip_sha256
        extracted = extract_page(archive, target, job_id=job_id, file_type="csv")
    data = f"{page_dir}/{extracted.path.name}"
    with store.read_local(run.staged(data)) as path:  # validate worker
        assert file_sha256(path) == extracted.sha256
        report = validate_csv(path, field_metadata=FIELDS, expected_count=count)
    assert report.valid, report.summary()
    store.write_json(run.staged(f"{page_dir}/report.json"), report.to_dict())
    with store.read_local(run.staged(f"{page_dir}/report.json")) as report_file:
        report_sha256 = file_sha256(report_file)
    owner = f"page {page} (job {job_id})"
    return [Placement(run.staged(data), data, extracted.sha256, owner),
            Placement(run.staged(f"{page_dir}/report.json"), f"{page_dir}/report.json", report_sha256, owner)]


def publish(run: ExportRun, staged: list[Placement], version: str | None = None) -> tuple[str, dict[str, Any]]:
    """Publish the staged pages as a new version (what publish_export asks of the store); returns its name and
    manifest. Targets are given relative to ``export/`` and placed under ``{final}/{version}/``."""
    version = version or new_version_name()
    placements, manifest = version_of(run, staged, version)
    open_store(run.store).publish_version(run.final, version, placements, manifest, staging=run.staging)
    return version, manifest


def version_of(run: ExportRun, staged: list[Placement], version: str) -> tuple[list[Placement], dict[str, Any]]:
    placements = []
    pages: dict[str, dict[str, Any]] = {}
    for item in staged:
        inside = item.target.removeprefix(f"{EXPORT_SUBDIR}/")
        placements.append(Placement(item.source, f"{run.final}/{version}/{inside}", item.sha256, item.owner))
        kind = "report" if inside.endswith("report.json") else "file"
        pages.setdefault(item.owner, {})[kind] = {"path": f"{version}/{inside}", "sha256": item.sha256}
    manifest = {"run_id": run.run_id, "version": version, "page_count": len(pages),
                "pages": [{"page": number, **files} for number, files in enumerate(pages.values(), 1)]}
    return placements, manifest


def read_by_pointer(store: ObjectExportStore, final: str) -> dict[str, Any]:
    """What a reader does: the pointer, then every file it names, streamed and checked; no listing."""
    manifest = store.read_json(f"{final}/{POINTER_NAME}")
    for page in manifest["pages"]:
        for stored in (page["file"], page["report"]):
            with store.open(f"{final}/{stored['path']}") as handle:
                assert hashlib.file_digest(handle, "sha256").hexdigest() == stored["sha256"], stored
        assert store.read_json(f"{final}/{page['report']['path']}")["valid"]
    return manifest


def three_pages(run: ExportRun) -> list[Placement]:
    return [placed for page in (1, 2, 3) for placed in staged_page(run, page, f"10{page}", count=page + 2)]


def test_three_pages_published_to_the_bucket_and_read_back_by_the_pointer(s3: S3Server, store: ObjectExportStore):
    run = export_run(store, "scheduled__1")
    before = scratch_folders()
    version, manifest = publish(run, three_pages(run))

    assert scratch_folders() == before  # every local scratch folder was removed
    assert read_by_pointer(store, run.final) == manifest
    assert manifest["page_count"] == 3
    published = s3.keys(f"{prefix(store)}/{run.final}/")
    expected = {f"{prefix(store)}/{run.final}/{POINTER_NAME}"} | {
        f"{prefix(store)}/{run.final}/{version}/{page_dir_name(page)}/{name}"
        for page in (1, 2, 3) for name in (f"10{page}.csv", "report.json")}
    assert set(published) == expected  # exactly the listed files and the pointer
    assert store.address(f"{run.final}/{POINTER_NAME}") == f"s3://{BUCKET}/{prefix(store)}/{run.final}/manifest.json"


def test_a_publish_killed_before_the_pointer_write_leaves_the_previous_export_readable(
    s3: S3Server, store: ObjectExportStore
):
    first = export_run(store, "scheduled__1")
    old_version, old_manifest = publish(first, three_pages(first))
    rerun = export_run(store, "scheduled__2")
    version = new_version_name()
    placements, manifest = version_of(rerun, three_pages(rerun), version)
    args = {"location": store.location, "final": rerun.final, "version": version, "staging": rerun.staging,
            "manifest": manifest, "files": [placement.__dict__ for placement in placements]}
    child = subprocess.Popen(
        [sys.executable, "-c", STOPPED_PUBLISH, json.dumps(args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={**os.environ, **CHILD_ENV},
    )
    try:
        assert child.stdout is not None
        lines = (line.strip() for line in child.stdout)  # Airflow's log lines come first
        assert "VERSION WRITTEN" in lines  # every object of the version is in place, the pointer not yet written
        new_objects = s3.keys(f"{prefix(store)}/{rerun.final}/{version}/")
        assert len(new_objects) == len(placements)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    assert read_by_pointer(store, first.final) == old_manifest  # readers still get the previous export, whole
    assert store.current_manifest(first.final)["version"] == old_version
    # The killed attempt's version is named by no pointer: retention removes it, the current one stays.
    removed = store.prune(MODULE, DROP_REPLACED)
    assert f"{first.final}/{version}" in removed
    assert s3.keys(f"{prefix(store)}/{rerun.final}/{version}/") == []
    assert read_by_pointer(store, first.final) == old_manifest


STOPPED_PUBLISH = """
import json, sys
from zoho_crm.export.object_store import ObjectExportStore
from zoho_crm.export.storage import Placement

class StopsBeforeThePointer(ObjectExportStore):
    def _write_pointer(self, final, manifest):
        print("VERSION WRITTEN", flush=True)
        sys.stdin.read()  # killed here
        super()._write_pointer(final, manifest)

args = json.loads(sys.argv[1])
StopsBeforeThePointer(args["location"]).publish_version(
    args["final"], args["version"], [Placement(**item) for item in args["files"]], args["manifest"],
    staging=args["staging"])
"""


def test_a_changed_staged_file_fails_the_publish_and_removes_the_half_made_version(
    s3: S3Server, store: ObjectExportStore
):
    first = export_run(store, "scheduled__1")
    _, old_manifest = publish(first, three_pages(first))
    rerun = export_run(store, "scheduled__2")
    staged = three_pages(rerun)
    staged[-2] = Placement(staged[-2].source, staged[-2].target, "0" * 64, staged[-2].owner)  # page 3's data file
    version = new_version_name()
    with pytest.raises(ExportStepError, match=r"page 3 \(job 103\): s3://.*103\.csv is not the validated file"):
        publish(rerun, staged, version)
    assert s3.keys(f"{prefix(store)}/{rerun.final}/{version}/") == []
    assert read_by_pointer(store, first.final) == old_manifest

    missing = Placement(rerun.staged("export/page_0009/gone.csv"), "export/page_0009/gone.csv", "0" * 64, "page 9")
    with pytest.raises(ExportStepError, match=r"page 9: s3://.*gone\.csv is missing: clear the run's unzip"):
        publish(rerun, [missing])


def test_a_rerun_publishes_a_new_version_and_retention_removes_the_old_one(s3: S3Server, store: ObjectExportStore):
    first = export_run(store, "scheduled__1")
    old_version, _ = publish(first, three_pages(first))
    store.remove(first.staging)
    rerun = export_run(store, "scheduled__2")
    new_version, new_manifest = publish(rerun, three_pages(rerun))
    assert new_version != old_version
    assert read_by_pointer(store, rerun.final) == new_manifest

    now = datetime.now(UTC)
    assert store.prune(MODULE, KEEP_ALL, now=now) == []  # replaced less than a day ago: kept
    assert store.prune(MODULE, KEEP_ALL, now=now + timedelta(hours=25)) == [f"{rerun.final}/{old_version}"]
    assert s3.keys(f"{prefix(store)}/{rerun.final}/{old_version}/") == []
    assert read_by_pointer(store, rerun.final) == new_manifest

    # Staging nothing wrote to for a week goes by its objects' timestamps; the published export stays.
    assert s3.keys(f"{prefix(store)}/{rerun.staging}/")
    assert store.prune(MODULE, KEEP_ALL, now=now + timedelta(days=6)) == []
    assert store.prune(MODULE, KEEP_ALL, now=now + timedelta(days=8)) == [rerun.staging]
    assert s3.keys(f"{prefix(store)}/{STAGING}/") == []
    assert read_by_pointer(store, rerun.final) == new_manifest


def test_an_expired_manual_export_is_removed_whole(s3: S3Server, store: ObjectExportStore):
    manual = export_run(store, "manual__x", key=run_key("manual", "manual__x", None, None))
    publish(manual, staged_page(manual, 1, "201"))
    store.remove(manual.staging)
    now = datetime.now(UTC)
    assert store.prune(MODULE, KEEP_ALL, now=now + timedelta(days=29)) == []
    assert store.prune(MODULE, KEEP_ALL, now=now + timedelta(days=31)) == [manual.final]
    assert s3.keys(f"{prefix(store)}/") == []
    assert store.current_manifest(manual.final) is None


LARGE_RECORDS = 200_000
LARGE_LINE = 500  # bytes per record: ~100 MB


def test_a_200000_record_page_streams_up_and_down_in_bounded_memory(
    s3: S3Server, store: ObjectExportStore, tmp_path: Path
):
    big = tmp_path / "page.csv"
    with open(big, "wb") as out:
        out.write(b"Id,Payload\r\n")
        for number in range(LARGE_RECORDS):
            head = f"{number:012d},".encode()
            out.write(head + b"x" * (LARGE_LINE - len(head) - 2) + b"\r\n")
    size = big.stat().st_size
    assert size > 100_000_000
    result = subprocess.run(
        [sys.executable, "-c", TRANSFER, store.location, str(big), str(tmp_path / "back.csv")],
        capture_output=True, text=True, env={**os.environ, **CHILD_ENV}, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    expected = file_sha256(big)
    assert measured["uploaded"] == measured["downloaded"] == expected
    assert file_sha256(tmp_path / "back.csv") == expected
    growth = measured["peak_kib"] - measured["base_kib"]
    print(f"peak RSS {measured['peak_kib'] // 1024} MiB, growth {growth // 1024} MiB for a {size // 2**20} MiB file")
    # Bounded by the transfer block (a few copies of one multipart part), not by the file.
    assert growth * 1024 < 8 * BLOCK_SIZE < size // 2, measured


TRANSFER = """
import json, sys
from pathlib import Path
from zoho_crm.export.storage import open_store

def high_water_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

location, big, back = sys.argv[1:]
store = open_store(location)
warm = Path(back).with_name("warm.bin")
warm.write_bytes(b"w" * 1024)
store.upload(warm, "warm.bin")  # the clients and buffers of a first transfer count in the base
store.download("warm.bin", warm)
base = high_water_kib()
uploaded = store.upload(Path(big), "large/page.csv")
downloaded = store.download("large/page.csv", Path(back))
print(json.dumps({"uploaded": uploaded, "downloaded": downloaded, "base_kib": base, "peak_kib": high_water_kib()}))
"""


def test_a_failed_step_uploads_nothing_and_leaves_no_scratch(s3: S3Server, store: ObjectExportStore):
    before = scratch_folders()
    with pytest.raises(RuntimeError, match="step failed"), store.write_local("work/export/page_0001") as folder:
        (folder / "half.csv").write_bytes(b"Id\r\n1\r\n")
        raise RuntimeError("step failed")
    assert s3.keys(f"{prefix(store)}/") == []
    assert scratch_folders() == before
    with pytest.raises(FileNotFoundError, match="nothing is there"), store.read_local("work/export/page_0001"):
        pass


def test_object_store_locations_and_errors(s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    named = open_store(f"s3://{CONN_ID}@{BUCKET}/a/b")
    assert isinstance(named, ObjectExportStore)
    assert named.conn_id == CONN_ID
    assert open_store(named.location).location == named.location == f"s3://{CONN_ID}@{BUCKET}/a/b"
    assert open_store(f"s3://{BUCKET}/a/", conn_id="other").location == f"s3://other@{BUCKET}/a"
    assert open_store(f"file://{tmp_path}").location == str(tmp_path.resolve())

    monkeypatch.setenv(EXPORT_DIR_ENV, f"s3://{BUCKET}/deployment")
    monkeypatch.setenv(EXPORT_CONN_ID_ENV, CONN_ID)
    assert default_store().location == f"s3://{CONN_ID}@{BUCKET}/deployment"
    monkeypatch.setenv(EXPORT_DIR_ENV, str(tmp_path))
    assert isinstance(default_store(), LocalExportStore)

    for bad, problem in [("s3://", "not an object-storage URL"), ("s3:///key", "not an object-storage URL"),
                         (f"s3://{BUCKET}/a?x=1", "drop the"), (f"s3://{BUCKET}/a/../b", "not a path inside"),
                         ("file://host/srv", "names a local path")]:
        with pytest.raises((ValueError, ExportStepError), match=problem):
            open_store(bad)
    for key in ("", "/abs", "a/../b", "a//b", "./a"):
        with pytest.raises(ExportStepError, match="is not a path inside the export store"):
            named.write_json(key, {})
    with pytest.raises(ExportStepError, match="has no local path: work on local scratch files"):
        named.local_path(".staging/Leads/x")
    with pytest.raises(ValueError, match="the Airflow connection 'no_such_conn' is not defined: create it"):
        open_store(f"s3://no_such_conn@{BUCKET}/a").read_json("x.json")
    with pytest.raises(ValueError, match=r"no filesystem for nosuch://"):
        open_store("nosuch://bucket/a").read_json("x.json")


def test_local_store_hands_files_over_in_place(tmp_path: Path):
    """On disk the same calls work on the store's own paths: no copies, nothing removed after a failure."""
    store = LocalExportStore(tmp_path / "out")
    with store.write_local("run/export/page_0001") as folder:
        (folder / "a.csv").write_bytes(b"Id\r\n1\r\n")
    assert folder == store.local_path("run/export/page_0001")
    with store.read_local("run/export/page_0001/a.csv") as path:
        assert path == folder / "a.csv"
    source = tmp_path / "local.bin"
    source.write_bytes(b"z" * 3_000_000)
    assert store.upload(source, "run/downloads/1.zip") == file_sha256(source)
    assert store.download("run/downloads/1.zip", tmp_path / "copy.bin") == file_sha256(source)
    assert store.upload(store.local_path("run/downloads/1.zip"), "run/downloads/1.zip") == file_sha256(source)
    with store.open("run/downloads/1.zip") as handle:
        assert handle.read(3) == b"zzz"
    with pytest.raises(RuntimeError), store.write_local("run/export/page_0002") as failed:
        (failed / "kept.csv").write_bytes(b"Id\r\n")
        raise RuntimeError
    assert (failed / "kept.csv").is_file()  # kept for inspection, as before
    with pytest.raises(FileNotFoundError), store.read_local("run/nothing"):
        pass
    assert not list((tmp_path / "out").rglob(".*"))  # no temporary files left beside the copies


def bucket_download(run: ExportRun, page: int, job_id: str, count: int = 3) -> dict[str, Any]:
    """What the download task leaves on a bucket store: the zip under the run's ``downloads/{job_id}/`` (uploaded
    from the download worker's scratch) and its XCom, with the key and no local path."""
    store = open_store(run.store)
    with store.write_local(run.staged(f"{DOWNLOADS_SUBDIR}/{job_id}")) as folder:
        zipped = write_zip(folder / f"{job_id}.zip", [(f"{job_id}.csv", good_csv(count, first=page * 1000))])
        sha256 = file_sha256(zipped)
    return {"page": page, "job_id": job_id, "file_type": "csv", "count": count, "key": f"{job_id}/{job_id}.zip",
            "sha256": sha256}


def test_the_page_steps_run_on_a_bucket_and_publish_by_the_pointer(s3: S3Server, store: ObjectExportStore):
    """The DAG's own steps (unzip, validate, Parquet, publish with the export check) on a store without local
    paths: each reads its input through the store and leaves its output there; nothing stays in local scratch."""
    from zoho_crm.export.steps import parquet_page, publish_export, unzip_page, validate_page

    run = export_run(store, "scheduled__steps")
    before = scratch_folders()
    pages = []
    for number in (1, 2, 3):
        unzipped = unzip_page(bucket_download(run, number, f"100{number}"), run)
        checked = validate_page(unzipped, run, field_metadata=FIELDS)
        pages.append(parquet_page(checked, run, field_metadata=FIELDS))
    checks = s3.keys(f"{prefix(store)}/{run.staged('checks')}/")
    assert [key.rsplit("/", 1)[1] for key in checks] == [
        f"{page_dir_name(page.page)}.{page.data_file.sha256[:16]}.ids" for page in pages]
    summary = publish_export(run, pages, retention=KEEP_ALL)
    assert summary["manifest"] == store.address(f"{run.final}/{POINTER_NAME}")
    manifest = store.read_json(f"{run.final}/{POINTER_NAME}")  # a reader: the pointer, then what it lists
    assert manifest["record_count"] == 9 and manifest["valid"] and manifest["warnings"] == []
    for page in manifest["pages"]:
        assert sorted(page["files"]) == ["csv", "parquet", "report"]
        for stored in page["files"].values():
            with store.open(f"{run.final}/{stored['path']}") as handle:
                assert hashlib.file_digest(handle, "sha256").hexdigest() == stored["sha256"], stored
        assert store.read_json(f"{run.final}/{page['report']}")["valid"]
    assert s3.keys(f"{prefix(store)}/{STAGING}/") == [] and scratch_folders() == before


def test_the_page_steps_on_a_bucket_refuse_a_missing_or_changed_zip_and_a_repeated_id(
    s3: S3Server, store: ObjectExportStore
):
    from zoho_crm.export.steps import publish_export, unzip_page, validate_page

    run = export_run(store, "scheduled__refused")
    missing = {**bucket_download(run, 1, "1001"), "key": "1001/other.zip"}
    with pytest.raises(ExportStepError, match=r"sha256 \(missing\).*rerun the download task"):
        unzip_page(missing, run)
    changed = {**bucket_download(run, 1, "1001"), "sha256": "0" * 64}
    with pytest.raises(ExportStepError, match="is not the file that was downloaded") as raised:
        unzip_page(changed, run)
    assert store.address(run.staged(f"{DOWNLOADS_SUBDIR}/1001/1001.zip")) in str(raised.value)
    assert s3.keys(f"{prefix(store)}/{run.staged(EXPORT_SUBDIR)}/") == []  # nothing extracted
    same_ids = [validate_page(unzip_page(bucket_download(run, number, f"100{number}"), run), run,
                              field_metadata=FIELDS) for number in (1, 1)]
    with pytest.raises(ExportStepError, match="record ids on more than one page"):
        publish_export(run, [same_ids[0], replace(same_ids[1], page=2)], retention=KEEP_ALL)
    assert s3.keys(f"{prefix(store)}/{run.final}/") == []
