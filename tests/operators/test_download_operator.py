"""The download operator driven directly against the simulator over real HTTP (no scheduler).

Each attempt must make exactly one download request and then defer on a DateTimeTrigger until at least one
window after the request; the outcome is acted on only when the hold ends (a success ends in the triggerer).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.sdk.module_loading import import_string
from airflow.sdk.serde import deserialize, serialize
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from include.devtools.zoho_simulator.process import SimulatorProcess
from tests.export.s3_server import BUCKET, S3Server, s3_server
from tests.simulator_fixtures import start_simulator
from zoho_crm.hooks.zoho_crm import ZohoCRMHook
from zoho_crm.operators.download import AttemptOutcome, OutcomeKind, ZohoBulkReadDownloadOperator
from zoho_crm.rate_limit.window import HOLD_MARGIN_SECONDS
from zoho_crm.triggers.slot_hold import SlotHoldTrigger

WINDOW = 1.0


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with start_simulator(download_window=WINDOW, download_limit=10, job_seconds=0.2, records={"Leads": 60000}) as s:
        yield s


@pytest.fixture
def hook(sim: SimulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ZohoCRMHook:
    sim.reset()
    monkeypatch.setenv(*sim.env_var(conn_type="http", window_seconds=WINDOW))
    monkeypatch.setenv("ZOHO_CRM_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    return ZohoCRMHook(retry_attempts=1)


def completed_job(hook: ZohoCRMHook, module: str = "Contacts") -> dict[str, Any]:
    """Create a job and poll its details until COMPLETED; return the sensor-shaped result."""
    job_id = hook.create_bulk_read_job({"query": {"module": {"api_name": module}}, "file_type": "csv"})["id"]
    deadline = time.monotonic() + 30
    while (details := hook.get_bulk_read_job(job_id))["state"] != "COMPLETED":
        assert time.monotonic() < deadline, f"job {job_id} stuck in {details['state']}"
        time.sleep(0.05)
    return {"job_id": job_id, "module": module, "file_type": "csv", **details["result"]}


def operator(job: dict[str, Any], out: Path, **kwargs: Any) -> ZohoBulkReadDownloadOperator:
    return ZohoBulkReadDownloadOperator(task_id="download", job=job, output_dir=str(out), **kwargs)


class RecordingTaskInstance:
    """The one task-instance call the operator makes: ``xcom_push`` (a success pushes its result before the hold)."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


@pytest.fixture
def ctx() -> dict[str, Any]:
    return {"ti": RecordingTaskInstance()}


def defers(call: Any, *args: Any) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        call(*args)
    return deferred.value


def resume(op: ZohoBulkReadDownloadOperator, deferred: TaskDeferred, ctx: dict[str, Any]) -> Any:
    """What Airflow does when the hold ends: a success ends in the triggerer, its result being the XCom pushed
    before the hold; otherwise the task resumes (kwargs round-trip through serde, the trigger's event added)."""
    if deferred.trigger.end_from_trigger:
        assert deferred.kwargs["outcome"] == {"kind": "success"}, "a success must not carry its result in kwargs"
        return ctx["ti"].xcoms["return_value"]
    kwargs = deserialize(json.loads(json.dumps(serialize(deferred.kwargs))))
    return op.resume_execution(deferred.method_name, {**kwargs, "event": deferred.trigger.moment}, ctx)


def assert_held_a_window(deferred: TaskDeferred, sim: SimulatorProcess) -> None:
    """The hold ends at least window + margin after the last download request arrived at the server."""
    assert isinstance(deferred.trigger, DateTimeTrigger)
    arrived = sim.requests("download")[-1]["wall"]
    assert deferred.trigger.moment.timestamp() >= arrived + WINDOW + HOLD_MARGIN_SECONDS
    assert deferred.method_name == "resume_after_hold"


def wait_until_moment(deferred: TaskDeferred) -> None:
    """What the triggerer does: let the hold's moment pass (polled with a deadline)."""
    deadline = time.monotonic() + 30
    while time.time() < deferred.trigger.moment.timestamp():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_success_holds_the_slot_then_returns_the_file(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    job = completed_job(hook)
    op = operator(job, tmp_path / "out")
    deferred = defers(op.execute, ctx)
    assert [r["status"] for r in sim.requests("download")] == [200]
    assert_held_a_window(deferred, sim)
    result = resume(op, deferred, ctx)
    served = {d["job_id"]: d for d in sim.downloads()}[job["job_id"]]
    data = Path(result["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == result["sha256"] == served["zip_sha256"]
    assert result["size"] == len(data) == served["bytes"]
    assert result["file_name"] == f"{job['job_id']}.zip"
    assert (result["job_id"], result["module"], result["page"], result["file_type"]) == (
        job["job_id"], "Contacts", 1, "csv"
    )
    assert result["count"] == job["count"] and result["attempts"] == 1
    assert sorted(p.name for p in (tmp_path / "out" / job["job_id"]).iterdir()) == [result["file_name"]]
    assert result["key"] == f"{job['job_id']}/{result['file_name']}"  # under output_dir, as on any store
    assert Path(result["path"]) == tmp_path / "out" / result["key"]  # a local store: the local file too
    assert not any(t["access_token"] in json.dumps(result) for t in sim.tokens())
    assert len(sim.requests("download")) == 1, "resuming after success must not download again"


S3_CONN_ID = "zoho_download_s3"
"""A connection id of this module's own: Airflow caches an object store's filesystem per connection id in the
process, so another module's server (stopped by now) must not be reached through a shared id."""


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_conn(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """The module's aws connection to its S3 server; returns its id."""
    (conn,) = s3.conn_env.values()
    monkeypatch.setenv(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", conn)
    return S3_CONN_ID


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The process's temporary folder (where an object store's scratch folders go), empty at the start."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_download_into_a_bucket_lands_under_its_key_and_leaves_no_local_file(
    hook: ZohoCRMHook, sim: SimulatorProcess, s3: S3Server, s3_conn: str, scratch: Path, ctx: dict[str, Any]
) -> None:
    prefix = f"downloads-{uuid.uuid4().hex[:8]}"
    job = completed_job(hook)
    op = ZohoBulkReadDownloadOperator(task_id="download", job=job, output_dir=f"s3://{s3_conn}@{BUCKET}/{prefix}")
    deferred = defers(op.execute, ctx)
    assert [r["status"] for r in sim.requests("download")] == [200]
    assert_held_a_window(deferred, sim)
    result = resume(op, deferred, ctx)
    served = {d["job_id"]: d for d in sim.downloads()}[job["job_id"]]
    assert "path" not in result, "no local path: the file is on no host's disk"
    assert result["key"] == f"{job['job_id']}/{job['job_id']}.zip"
    assert s3.keys(f"{prefix}/") == [f"{prefix}/{result['key']}"]
    data = s3.client().get_object(Bucket=BUCKET, Key=f"{prefix}/{result['key']}")["Body"].read()
    assert hashlib.sha256(data).hexdigest() == result["sha256"] == served["zip_sha256"]
    assert result["size"] == len(data) and list(scratch.iterdir()) == []


def test_an_upload_failing_after_the_answer_holds_the_slot_then_fails_for_a_retry(
    hook: ZohoCRMHook, sim: SimulatorProcess, s3: S3Server, s3_conn: str, scratch: Path, ctx: dict[str, Any]
) -> None:
    job = completed_job(hook)
    op = ZohoBulkReadDownloadOperator(task_id="download", job=job, output_dir=f"s3://{s3_conn}@no-such-bucket/x")
    deferred = defers(op.execute, ctx)
    assert [r["status"] for r in sim.requests("download")] == [200]  # the request was made and counts
    assert_held_a_window(deferred, sim)
    assert deferred.kwargs["outcome"]["kind"] == "unexpected"
    wait_until_moment(deferred)
    with pytest.raises(RuntimeError):  # not AirflowFailException: Airflow's retries apply
        resume(op, deferred, ctx)
    assert list(scratch.iterdir()) == [] and "return_value" not in ctx["ti"].xcoms


def first_event(trigger: SlotHoldTrigger) -> TriggerEvent:
    """Run the trigger to its first event."""

    async def run() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger yielded no event")

    return asyncio.run(run())


def fire_now(trigger: SlotHoldTrigger) -> TriggerEvent:
    """Rebuild the trigger from its serialized form (as the triggerer does), due now, and run it."""
    classpath, kwargs = trigger.serialize()
    return first_event(import_string(classpath)(**{**kwargs, "moment": datetime.now(UTC)}))


def test_the_hold_trigger_round_trips_and_ends_a_successful_task(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    deferred = defers(operator(completed_job(hook), tmp_path / "out").execute, ctx)
    assert isinstance(deferred.trigger, SlotHoldTrigger)
    event = fire_now(deferred.trigger)
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is None, "a success ends in the triggerer"
    assert ctx["ti"].xcoms["return_value"]["sha256"], "its result was pushed by the worker before the hold"


def test_a_task_deferred_under_the_old_trigger_classpath_still_resumes() -> None:
    """Tasks deferred by an earlier version stored ``zoho_crm.operators.download.SlotHoldTrigger``: the triggerer
    still imports it, and it fires (and serializes) as the trigger it now is."""
    moment = datetime.now(UTC)
    stored = import_string("zoho_crm.operators.download.SlotHoldTrigger")(moment=moment, end_from_trigger=False)
    assert stored.serialize() == (
        "zoho_crm.triggers.slot_hold.SlotHoldTrigger", {"moment": moment, "end_from_trigger": False}
    )
    event = first_event(stored)
    assert type(event) is TriggerEvent and event.payload == moment


@pytest.mark.parametrize(
    "outcome",
    [
        AttemptOutcome(OutcomeKind.SUCCESS),
        AttemptOutcome(OutcomeKind.LEDGER_FULL),
        AttemptOutcome(OutcomeKind.RATE_LIMITED, "TOO_MANY_REQUESTS: wait"),
        AttemptOutcome(OutcomeKind.UNEXPECTED, "OSError: disk full"),
    ],
)
def test_an_outcome_round_trips_through_the_deferral_kwargs_as_plain_json(outcome: AttemptOutcome) -> None:
    stored = json.loads(json.dumps(serialize({"outcome": outcome.to_dict()})))
    assert stored["outcome"] == outcome.to_dict(), "the kwargs hold plain JSON, the form earlier versions stored"
    assert AttemptOutcome.from_dict(deserialize(stored)["outcome"]) == outcome


def test_outcomes_stored_by_an_earlier_version_are_acted_on(tmp_path: Path, ctx: dict[str, Any]) -> None:
    """The deferral kwargs of a task deferred before the outcome was a dataclass: dicts keyed by ``kind``."""
    op = operator({"job_id": "1234567890123456789"}, tmp_path / "out")
    with pytest.raises(AirflowFailException, match=r"^RESOURCE_NOT_FOUND: gone$"):
        op.resume_after_hold(ctx, attempt=1, outcome={"kind": "fatal", "message": "RESOURCE_NOT_FOUND: gone"})
    with pytest.raises(RuntimeError, match=r"^OSError: disk full$"):
        op.resume_after_hold(ctx, attempt=1, outcome={"kind": "unexpected", "message": "OSError: disk full"})
    with pytest.raises(AirflowFailException, match=r"failed 6 times in a row .*last error: TOO_MANY_REQUESTS"):
        op.resume_after_hold(ctx, attempt=6, outcome={"kind": "rate_limited", "message": "TOO_MANY_REQUESTS"})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content_type", "disposition"), [("application/x-download", "extended"), ("application/zip", "quoted")]
)
def test_both_content_types_and_disposition_forms(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any], content_type: str,
    disposition: str,
) -> None:
    sim.set_faults(content_type=content_type, disposition=disposition)
    job = completed_job(hook)
    op = operator(job, tmp_path / "out")
    result = resume(op, defers(op.execute, ctx), ctx)
    assert result["content_type"] == content_type
    assert result["file_name"] == f"{job['job_id']}.zip"


def test_429_waits_a_window_then_downloads(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    job = completed_job(hook)
    sim.foreign_downloads(10)
    op = operator(job, tmp_path / "out")
    first = defers(op.execute, ctx)
    assert [r["status"] for r in sim.requests("download")] == [429]
    assert_held_a_window(first, sim)
    assert first.kwargs["outcome"]["kind"] == "rate_limited"
    wait_until_moment(first)
    second = defers(resume, op, first, ctx)
    assert [r["status"] for r in sim.requests("download")] == [429, 200]
    assert_held_a_window(second, sim)
    result = resume(op, second, ctx)
    assert result["attempts"] == 2 and Path(result["path"]).is_file()


def test_429_every_attempt_fails_with_a_clear_message(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    job = completed_job(hook)
    sim.foreign_downloads(10)
    op = operator(job, tmp_path / "out", max_attempts=1)
    deferred = defers(op.execute, ctx)
    with pytest.raises(AirflowFailException) as failure:
        resume(op, deferred, ctx)
    message = str(failure.value)
    assert "failed 1 times" in message and "TOO_MANY_REQUESTS" in message and "another client" in message
    assert len(sim.requests("download")) == 1


def test_dropped_connection_removes_the_partial_file_and_retries(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    job = completed_job(hook, "Leads")
    sim.set_faults(drop_downloads=1)
    op = operator(job, tmp_path / "out")
    first = defers(op.execute, ctx)
    assert first.kwargs["outcome"]["kind"] == "transient"
    assert "INCOMPLETE_DOWNLOAD" in first.kwargs["outcome"]["message"]
    assert list((tmp_path / "out" / job["job_id"]).iterdir()) == [], "the partial file was left behind"
    wait_until_moment(first)
    result = resume(op, defers(resume, op, first, ctx), ctx)
    assert result["attempts"] == 2
    assert result["sha256"] == {d["job_id"]: d for d in sim.downloads() if d.get("complete", True)}[job["job_id"]][
        "zip_sha256"
    ]


def test_server_error_is_retried_after_the_hold(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    job = completed_job(hook)
    sim.set_faults(error_rate=1.0)
    op = operator(job, tmp_path / "out")
    first = defers(op.execute, ctx)
    assert first.kwargs["outcome"]["kind"] == "transient"
    assert [r["status"] for r in sim.requests("download")] == [500]
    sim.set_faults(error_rate=0.0)
    wait_until_moment(first)
    assert resume(op, defers(resume, op, first, ctx), ctx)["attempts"] == 2


def test_unknown_job_fails_without_retry_but_only_after_the_hold(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    op = operator({"job_id": "1234567890123456789"}, tmp_path / "out")
    deferred = defers(op.execute, ctx)
    assert_held_a_window(deferred, sim)
    with pytest.raises(AirflowFailException, match="RESOURCE_NOT_FOUND"):
        resume(op, deferred, ctx)
    assert len(sim.requests("download")) == 1


def test_revoked_token_is_invalidated_and_the_next_attempt_refreshes(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    job = completed_job(hook)
    tokens_before = len(sim.requests("token"))
    sim.revoke_tokens()
    op = operator(job, tmp_path / "out")
    first = defers(op.execute, ctx)
    assert first.kwargs["outcome"]["kind"] == "token_rejected"
    assert [r["status"] for r in sim.requests("download")] == [401]
    assert len(sim.requests("token")) == tokens_before, "no refresh may happen between the 401 and the hold"
    wait_until_moment(first)
    result = resume(op, defers(resume, op, first, ctx), ctx)
    assert result["attempts"] == 2
    assert len(sim.requests("token")) == tokens_before + 1
    assert not any(t["access_token"] in json.dumps(first.kwargs) for t in sim.tokens())


def test_retry_delay_shorter_than_the_window_is_refused_before_any_request(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry delay is raised to Zoho's window + margin where the task is defined; a connection declaring a
    longer window than that is refused at run time, before any request."""
    from datetime import timedelta

    monkeypatch.setenv(*sim.env_var(conn_type="http", window_seconds=600))
    op = operator({"job_id": "1"}, tmp_path / "out", retries=2, retry_delay=timedelta(seconds=0.5))
    with pytest.raises(AirflowFailException, match="retry_delay"):
        op.execute(ctx)
    assert sim.requests("download") == []


def test_progress_is_logged_by_volume_not_per_chunk(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = completed_job(hook, "Leads")
    op = operator(job, tmp_path / "out")
    capsys.readouterr()
    result = resume(op, defers(op.execute, ctx), ctx)
    progress = [line for line in capsys.readouterr().out.splitlines() if "] downloaded " in line]
    chunks = result["size"] // (1024 * 1024) + 1
    assert chunks >= 5, "the page is too small to show the difference"
    assert 1 <= len(progress) <= 1 + result["size"] // (25 * 1024 * 1024) + 1
    assert f"downloaded {result['size']} of {result['size']} bytes" in progress[-1] and "MB/s" in progress[-1]


def test_the_request_sends_the_token_taken_before_the_ledger_reservation(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any]
) -> None:
    """No token refresh (retried, maybe slow) between the reservation and the request it counts: the token in
    hand is sent, even when the cache would refresh it by then (here: past its reuse margin, not expired)."""
    sim.set_faults(token_lifetime=20)  # reused until 18 s after issue, valid at Zoho until 20 s
    job = completed_job(hook)
    [issued] = sim.requests("token")
    time.sleep(max(0.0, issued["wall"] + 16.3 - time.time()))  # still fresh when the attempt takes it
    ledger = hook.download_ledger(HOLD_MARGIN_SECONDS)
    full_until = issued["wall"] + 18.8  # the ledger frees a place after the token's reuse margin has passed
    for _ in range(ledger.limit):
        ledger.finish(ledger.reserve().request_id, full_until - WINDOW - HOLD_MARGIN_SECONDS)
    deferred = defers(operator(job, tmp_path / "out").execute, ctx)
    assert deferred.kwargs["outcome"] == {"kind": "success"}
    [download] = sim.requests("download")
    assert download["status"] == 200 and download["wall"] >= full_until - 0.1, "the attempt waited for the ledger"
    assert len(sim.requests("token")) == 1, "a token was requested after the ledger reservation"


@pytest.mark.parametrize("job_id", ["../../etc", "123/../../x", "None", "12 34", "١٢٣", "9" * 41])
def test_a_job_id_that_is_not_digits_fails_before_any_request(
    hook: ZohoCRMHook, sim: SimulatorProcess, tmp_path: Path, ctx: dict[str, Any], job_id: str
) -> None:
    for job in (job_id, {"job_id": job_id, "module": "Leads"}):
        with pytest.raises(AirflowFailException, match="job_id of task download is not a Zoho bulk read job id"):
            operator(job, tmp_path / "out").execute(ctx)
    assert sim.requests() == [] and not (tmp_path / "out").exists()
