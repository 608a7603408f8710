"""A download task's retry never starts inside the rate-limit window of its previous request, whatever the DAG says.

The scheduler schedules a retry from the serialized task (for a mapped task, from its partial kwargs), so the
floor must be in what the DAG processor serializes: these tests read the shipped DAGs back from serialization.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG
from airflow.serialization.serialized_objects import DagSerialization

from include.devtools.airflow_stack import REPO_ROOT
from zoho_crm.operators.download import MIN_RETRY_DELAY, ZohoBulkReadDownloadOperator
from zoho_crm.rate_limit.window import DEFAULT_DOWNLOAD_WINDOW_SECONDS


def serialized(dag: DAG):
    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


@pytest.fixture(scope="module")
def shipped_dags() -> dict[str, DAG]:
    bag = DagBag(str(REPO_ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, "the shipped dags/ folder defines DAGs"
    return bag.dags


def test_the_floor_is_zohos_real_window_plus_a_margin() -> None:
    assert MIN_RETRY_DELAY > timedelta(seconds=DEFAULT_DOWNLOAD_WINDOW_SECONDS)


def test_every_shipped_download_task_is_retried_after_a_full_window(shipped_dags: dict[str, DAG]) -> None:
    """The DAG factory's default_args say 30 s; what the scheduler reads must be >= 60 s + margin."""
    for dag_id, dag in shipped_dags.items():
        assert dag.default_args["retry_delay"] < MIN_RETRY_DELAY, "the case this guards: a shorter DAG default"
        task = serialized(dag).get_task("download")
        assert task.partial_kwargs["retry_delay"] >= MIN_RETRY_DELAY, dag_id
        assert task.retry_delay >= MIN_RETRY_DELAY, dag_id
        assert task.retries >= 1, dag_id
        # Other tasks keep the DAG's own default: the floor is the download's alone.
        assert serialized(dag).get_task("unzip").retry_delay == dag.default_args["retry_delay"]


@pytest.mark.parametrize("given", [timedelta(seconds=1), 30, timedelta(seconds=64)])
def test_a_short_retry_delay_is_raised_for_plain_and_mapped_tasks(given: timedelta | int, tmp_path: Path) -> None:
    with DAG("short_delays", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
             default_args={"retry_delay": given, "max_retry_delay": given}) as dag:
        ZohoBulkReadDownloadOperator(task_id="plain", job="1", output_dir=str(tmp_path), retries=1)
        ZohoBulkReadDownloadOperator.partial(
            task_id="mapped", output_dir=str(tmp_path), retries=1, retry_delay=given
        ).expand(job=["1", "2"])
    loaded = serialized(dag)
    assert loaded.get_task("plain").retry_delay == MIN_RETRY_DELAY
    assert loaded.get_task("plain").max_retry_delay == MIN_RETRY_DELAY
    assert loaded.get_task("mapped").partial_kwargs["retry_delay"] == MIN_RETRY_DELAY
    assert loaded.get_task("mapped").partial_kwargs["max_retry_delay"] == MIN_RETRY_DELAY


def test_a_longer_retry_delay_is_kept(tmp_path: Path) -> None:
    longer = timedelta(minutes=5)
    with DAG("long_delay", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        ZohoBulkReadDownloadOperator.partial(
            task_id="mapped", output_dir=str(tmp_path), retries=1, retry_delay=longer
        ).expand(job=["1"])
    assert serialized(dag).get_task("mapped").partial_kwargs["retry_delay"] == longer
