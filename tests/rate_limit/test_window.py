"""The pure rate-limit helpers: slot release time; and the request-log measures of the tests and the bench
(sliding-window count, utilisation: tests/operators/download_checks.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.operators.download_checks import max_in_sliding_window, utilisation
from zoho_crm.rate_limit.window import hold_until


def test_hold_until_is_anchor_plus_window_plus_margin_in_utc() -> None:
    moment = hold_until(1_000.0, 60, margin=0.5)
    assert moment == datetime.fromtimestamp(1_060.5, tz=UTC)
    assert moment.tzinfo is not None


def test_hold_until_refuses_a_non_positive_window() -> None:
    with pytest.raises(ValueError, match="window must be > 0"):
        hold_until(0.0, 0)


@pytest.mark.parametrize(
    ("times", "window", "expected"),
    [
        ([], 60, 0),
        ([5.0], 60, 1),
        ([0, 1, 2, 3], 60, 4),
        ([0, 60, 120], 60, 1),  # half-open: a request exactly one window later is in a new window
        ([0, 59.9, 60, 120], 60, 2),
        ([3, 0, 2, 1, 10, 11], 5, 4),  # unsorted input
    ],
)
def test_max_in_sliding_window_checks_every_window_starting_at_a_request(
    times: list[float], window: float, expected: int
) -> None:
    assert max_in_sliding_window(times, window) == expected


def test_utilisation_of_perfectly_paced_batches_is_one() -> None:
    times = [batch * 4.0 + i * 0.01 for batch in range(3) for i in range(10)]
    assert utilisation(times, limit=10, window=4.0) == pytest.approx(1.0, abs=0.01)


def test_utilisation_counts_idle_gaps_against_the_allowance() -> None:
    times = [0.0] * 10 + [8.0] * 10  # one idle window between two full ones
    assert utilisation(times, limit=10, window=4.0) == pytest.approx(20 / 30)
