"""The simulated clock: a moment that stands still, or runs at a rate, and moves only when told."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

ORG_TZ = timezone(timedelta(hours=-8))
"""The org's time zone: times in API answers (job created_time, deleted_time) are given in it."""


@dataclass
class Clock:
    """``now()`` = ``anchor`` + (monotonic time since the anchor was set) x ``rate``, in epoch seconds."""

    anchor: float
    rate: float = 0.0
    wall: float = field(default_factory=time.monotonic)

    def now(self) -> int:
        return int(self.anchor + (time.monotonic() - self.wall) * self.rate)

    def set(self, now: float | None = None, rate: float | None = None) -> None:
        """Move to ``now`` (default: where the clock is) and/or change the rate from this moment on."""
        anchor = self.now() if now is None else now
        if rate is not None:
            if rate < 0:
                raise ValueError("the clock rate must be >= 0 (simulated seconds per wall-clock second)")
            self.rate = float(rate)
        self.anchor, self.wall = float(anchor), time.monotonic()

    def to_json(self) -> dict[str, object]:
        epoch = self.now()
        return {"now": iso(epoch), "epoch": epoch, "rate": self.rate}


def iso(epoch: int) -> str:
    """ISO 8601 in UTC with offset, without milliseconds (the form criteria and control calls take)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()
