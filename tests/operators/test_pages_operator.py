"""ZohoBulkReadPagesOperator: a 450,000-record module is 3 pages (200,000 + 200,000 + 50,000), each its own job.

Real HTTP against a simulator holding 450,000 Leads at Zoho's 200,000 records per CSV page; pages follow
``next_page_token`` on v8 and page numbers on v6. Every wait is the operator's deferral, run through the real
trigger as the triggerer would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from tests.simulator_fixtures import start_simulator
from zoho_crm.operators.bulk_read import ZohoBulkReadOperator
from zoho_crm.operators.pages import ZohoBulkReadPagesOperator

LEADS = 450_000
QUERY = {"module": "Leads", "file_type": "csv"}


@pytest.fixture(scope="module")
def big_sim() -> Iterator[Any]:
    with start_simulator(records={"Leads": LEADS}, job_seconds=0.2) as sim:
        yield sim


def run_trigger(deferred: TaskDeferred) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        async for event in deferred.trigger.run():
            return event.payload
        raise AssertionError("the trigger yielded no event")

    return asyncio.run(first_event())


@pytest.mark.parametrize("api_version", ["v8", "v6"], ids=["next_page_token", "page_numbers"])
def test_450k_records_are_three_pages(
    big_sim: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api_version: str
) -> None:
    big_sim.reset()
    monkeypatch.setenv(*big_sim.env_var(conn_type="http", token_cache_dir=tmp_path / "token-cache",
                                         api_version=api_version))
    create = ZohoBulkReadOperator(task_id="create_job", module="Leads", wait_for_completion=True, deferrable=False,
                                  poll_interval=0.2)
    first = create.execute({})
    op = ZohoBulkReadPagesOperator(task_id="follow_pages", first_page=first, query=QUERY)
    pages, event, kwargs, deferrals = None, None, {}, 0
    while pages is None:  # what Airflow does: run, and after each deferral resume with the trigger's event
        try:
            pages = op.execute({}) if event is None else op.execute_complete({}, event, **kwargs)
        except TaskDeferred as deferred:
            deferrals += 1
            event, kwargs = run_trigger(deferred), deferred.kwargs or {}
    assert deferrals == 2, "pages 2 and 3 each wait for their own job, deferred"
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert [p["count"] for p in pages] == [200_000, 200_000, 50_000]
    assert [p["more_records"] for p in pages] == [True, True, False]
    assert [bool(p.get("next_page_token")) for p in pages] == [api_version == "v8"] * 2 + [False]
    jobs = big_sim.jobs()
    assert sorted(j["page"] for j in jobs) == [1, 2, 3] and {j["version"] for j in jobs} == {api_version}
    assert {j["id"] for j in jobs} == {p["job_id"] for p in pages}
