"""ZohoCRMHook.get_deleted_records against the simulator over real HTTP: paging past 200 entries in one pass, 204,
If-Modified-Since, the scope error and bad arguments."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.hooks.zoho_conn import assert_no_secret
from tests.simulator_fixtures import SimulatorProcess, start_simulator
from zoho_crm.api.errors import ZohoScopeError
from zoho_crm.hooks.zoho_crm import ZohoCRMHook

FAST = {"retry_attempts": 3, "retry_min_wait": 0.01, "retry_max_wait": 0.05}


@pytest.fixture(scope="module")
def deleting_sim() -> Iterator[SimulatorProcess]:
    """A simulator whose Leads are deleted over simulated time (several hundred deletions by its clock's now)."""
    with start_simulator(records={"Leads": 3000}, deletions_per_day=0.03) as sim:
        yield sim


@pytest.fixture
def deleting_conn(deleting_sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimulatorProcess:
    monkeypatch.setenv(*deleting_sim.env_var(conn_type="http", token_cache_dir=tmp_path / "token-cache"))
    return deleting_sim


def deleted_calls(sim: SimulatorProcess, since_seq: int) -> list[dict]:
    return [r for r in sim.requests("deleted") if r["seq"] > since_seq]


def last_seq(sim: SimulatorProcess) -> int:
    return max((r["seq"] for r in sim.requests()), default=0)


def test_every_page_is_read_in_one_pass(deleting_conn: SimulatorProcess):
    expected = deleting_conn.deleted_records("Leads")
    assert len(expected) > 2 * 200, "the fixture must delete more than two pages"
    before = last_seq(deleting_conn)
    entries = ZohoCRMHook(**FAST).get_deleted_records("Leads", since=None)
    assert entries == expected
    assert len({e["id"] for e in entries}) == len(entries)
    calls = deleted_calls(deleting_conn, before)
    assert len(calls) == math.ceil(len(expected) / 200)
    assert all(c["status"] == 200 for c in calls)


def test_smaller_pages_and_a_type(deleting_conn: SimulatorProcess):
    expected = [e for e in deleting_conn.deleted_records("Leads") if e["type"] == "permanent"]
    before = last_seq(deleting_conn)
    entries = ZohoCRMHook(**FAST).get_deleted_records("Leads", since=None, type="permanent", per_page=50)
    assert entries == expected and expected
    assert len(deleted_calls(deleting_conn, before)) == math.ceil(len(expected) / 50)


def test_if_modified_since_returns_only_later_deletions(deleting_conn: SimulatorProcess):
    expected = deleting_conn.deleted_records("Leads")
    middle = datetime.fromisoformat(expected[len(expected) // 2]["deleted_time"])
    entries = ZohoCRMHook(**FAST).get_deleted_records("Leads", since=middle)
    later = [e for e in expected if datetime.fromisoformat(e["deleted_time"]) > middle]
    assert entries == later and 0 < len(later) < len(expected)


def test_nothing_deleted_is_an_empty_list_after_one_204(zoho_conn: SimulatorProcess):
    assert zoho_conn.deleted_records("Contacts") == []
    before = last_seq(zoho_conn)
    assert ZohoCRMHook(**FAST).get_deleted_records("Contacts", since=None) == []
    calls = deleted_calls(zoho_conn, before)
    assert [c["status"] for c in calls] == [204]


def test_deletions_after_the_clock_appear_once_they_happen(zoho_conn: SimulatorProcess):
    record = zoho_conn.record_ids("Deals")[0]
    now = datetime.fromisoformat(zoho_conn.clock()["now"])
    hook = ZohoCRMHook(**FAST)
    zoho_conn.delete_record("Deals", record, at=now.isoformat(), kind="recycle")
    entries = hook.get_deleted_records("Deals", since=datetime(2000, 1, 1, tzinfo=UTC))
    assert [(e["id"], e["type"]) for e in entries] == [(record, "recycle")]
    assert datetime.fromisoformat(entries[0]["deleted_time"]) == now
    assert hook.get_deleted_records("Deals", since=now) == []


def test_a_missing_scope_names_it_and_leaks_no_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with start_simulator(scopes="ZohoCRM.bulk.read,ZohoCRM.settings.fields.READ") as sim:
        monkeypatch.setenv(*sim.env_var(conn_type="http", token_cache_dir=tmp_path / "cache"))
        with pytest.raises(ZohoScopeError) as caught:
            ZohoCRMHook(**FAST).get_deleted_records("Leads", since=None)
        assert "ZohoCRM.modules.leads.READ" in str(caught.value)
        assert_no_secret(str(caught.value), sim)
        assert len(sim.requests("deleted")) == 1, "a scope error is not retried"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"type": "bin"}, "type 'bin' is not one of all, recycle, permanent"),
    ({"per_page": 201}, "per_page must be an integer from 1 to 200"),
    ({"per_page": 0}, "per_page must be an integer from 1 to 200"),
    ({"since": datetime(2026, 11, 1)}, "since must be a timezone-aware datetime"),
])
def test_bad_arguments_are_refused_before_any_call(zoho_conn: SimulatorProcess, kwargs: dict, message: str):
    arguments = {"since": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        ZohoCRMHook(**FAST).get_deleted_records("Leads", **arguments)
    assert zoho_conn.requests() == []
