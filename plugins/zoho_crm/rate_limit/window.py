"""Pure helpers for the download rate limit: when a pool slot may be released, and how to check a request log.

The guarantee (see the README): at most ``limit`` download requests start in any sliding ``window``. Each pool
occupancy makes at most one request and keeps its slot until ``anchor + window + margin``, where ``anchor`` is the
wall-clock time the request ended (always at or after the moment the server saw it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

DEFAULT_POOL = "zoho_crm_downloads"
DEFAULT_DOWNLOAD_LIMIT = 10
DEFAULT_DOWNLOAD_WINDOW_SECONDS = 60.0
HOLD_MARGIN_SECONDS = 0.5


def hold_until(anchor: float, window: float, margin: float = HOLD_MARGIN_SECONDS) -> datetime:
    """The UTC moment a slot that made a request ending at ``anchor`` (epoch seconds) may be released."""
    if window <= 0:
        raise ValueError(f"download window must be > 0 seconds, got {window}")
    return datetime.fromtimestamp(anchor + window + margin, tz=UTC)


def max_in_sliding_window(times: Iterable[float], window: float) -> int:
    """Largest number of ``times`` in any half-open window ``[t, t + window)`` that starts at one of them."""
    ordered = sorted(times)
    best = 0
    end = 0
    for start_index, start in enumerate(ordered):
        end = max(end, start_index)
        while end < len(ordered) and ordered[end] < start + window:
            end += 1
        best = max(best, end - start_index)
    return best


def utilisation(times: Iterable[float], limit: int, window: float) -> float:
    """Achieved request rate over the allowed rate while requests were being made.

    The requests are taken to use the allowance from the first start until one window after the last start
    (the moment the last one stops counting), so a perfectly paced run of ``k * limit`` requests scores 1.0.
    """
    ordered = sorted(times)
    if not ordered:
        raise ValueError("no requests to measure")
    busy = ordered[-1] - ordered[0] + window
    return len(ordered) / (limit * busy / window)
