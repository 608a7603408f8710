"""Contract: Zoho's official Python SDK (zohocrmsdk8-0, unmodified) works against the simulator."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.simulator_fixtures import start_simulator

sdk = pytest.importorskip("zohocrmsdk.src.com.zoho.crm.api.bulk_read", reason="zohocrmsdk8-0 is not installed")

from zohocrmsdk.src.com.zoho.api.authenticator import OAuthToken  # noqa: E402
from zohocrmsdk.src.com.zoho.api.authenticator.store import FileStore  # noqa: E402
from zohocrmsdk.src.com.zoho.api.logger import Logger  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api import Initializer, SDKConfig  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.fields import MinifiedField  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.modules import MinifiedModule  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.util import Choice  # noqa: E402


@pytest.fixture(scope="module")
def sdk_simulator() -> Iterator:
    with start_simulator(job_seconds=0.3, records={"Leads": 1234}) as sim:
        yield sim


def initialise_sdk(sim, tmp_path: Path) -> None:
    """Point the SDK at the simulator: a custom DataCenter.Environment plus a file token store."""
    environment = DataCenter.Environment(sim.url, f"{sim.url}/oauth/v2/token", sim.url)
    token = OAuthToken(client_id="1000.SIMULATOR", client_secret="simulator-secret",
                       refresh_token="1000.simulator.refresh", find_user=False)
    store_file = tmp_path / "sdk_tokens.txt"
    store_file.touch()
    Initializer.initialize(
        environment=environment, token=token, store=FileStore(str(store_file)),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(tmp_path), logger=Logger.get_instance(Logger.Levels.INFO, str(tmp_path / "sdk.log")),
    )


def test_sdk_create_poll_download(sdk_simulator, tmp_path: Path) -> None:
    initialise_sdk(sdk_simulator, tmp_path)
    ops = sdk.BulkReadOperations()

    query = sdk.Query()
    module = MinifiedModule()
    module.set_api_name("Leads")
    query.set_module(module)
    query.set_fields(["Last_Name", "Email", "Modified_Time"])
    query.set_page(1)
    criteria = sdk.Criteria()
    criteria.set_group_operator(Choice("and"))
    low, high = sdk.Criteria(), sdk.Criteria()
    for node, comparator, value in ((low, "greater_equal", "2026-11-01T00:00:00+00:00"),
                                    (high, "less_than", "2026-11-15T00:00:00+00:00")):
        field = MinifiedField()
        field.set_api_name("Modified_Time")
        node.set_field(field)
        node.set_comparator(Choice(comparator))
        node.set_value(value)
    criteria.set_group([low, high])
    query.set_criteria(criteria)
    body = sdk.BodyWrapper()
    body.set_query(query)
    body.set_file_type("csv")

    created = ops.create_bulk_read_job(body)
    assert created.get_status_code() == 201
    action = created.get_object().get_data()[0]
    assert isinstance(action, sdk.SuccessResponse), vars(action)
    job_id = str(action.get_details()["id"])

    deadline = time.monotonic() + 30
    while True:
        answer = ops.get_bulk_read_job_details(int(job_id))
        assert answer.get_status_code() == 200
        job = answer.get_object().get_data()[0]
        if job.get_state().get_value() == "COMPLETED":
            break
        assert time.monotonic() < deadline, f"job still {job.get_state().get_value()}"
        time.sleep(0.05)
    result = job.get_result()
    expected = sdk_simulator.record_ids("Leads", {"group_operator": "and", "group": [
        {"field": {"api_name": "Modified_Time"}, "comparator": "greater_equal", "value": "2026-11-01T00:00:00+00:00"},
        {"field": {"api_name": "Modified_Time"}, "comparator": "less_than", "value": "2026-11-15T00:00:00+00:00"}]})
    assert result.get_count() == len(expected) > 0
    assert result.get_more_records() is False

    downloaded = ops.download_result(int(job_id))
    assert downloaded.get_status_code() == 200
    wrapper = downloaded.get_object()
    assert isinstance(wrapper, sdk.FileBodyWrapper), vars(wrapper)
    stream = wrapper.get_file()
    assert stream.get_name() == f"{job_id}.zip"
    data = b"".join(stream.get_stream())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == [f"{job_id}.csv"]
        text = zf.read(f"{job_id}.csv").decode()
    assert text.splitlines()[0] == "id,Last_Name,Email,Modified_Time"
    assert len(text.splitlines()) >= len(expected) + 1
    assert [e["kind"] for e in sdk_simulator.requests()].count("token") == 1
