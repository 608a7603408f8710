"""The download rate limit's defaults, and when a pool slot may be released.

The guarantee (see the README): at most ``limit`` download requests start in any sliding ``window``. Each pool
occupancy makes at most one request and keeps its slot until ``anchor + window + margin``, where ``anchor`` is the
wall-clock time the request ended (always at or after the moment the server saw it).
"""

from __future__ import annotations

from datetime import UTC, datetime

DEFAULT_POOL = "zoho_crm_downloads"
DEFAULT_DOWNLOAD_WINDOW_SECONDS = 60.0
HOLD_MARGIN_SECONDS = 0.5


def hold_until(anchor: float, window: float, margin: float = HOLD_MARGIN_SECONDS) -> datetime:
    """The UTC moment a slot that made a request ending at ``anchor`` (epoch seconds) may be released."""
    if window <= 0:
        raise ValueError(f"download window must be > 0 seconds, got {window}")
    return datetime.fromtimestamp(anchor + window + margin, tz=UTC)
