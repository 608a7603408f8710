"""How soon a deferred task may be resumed.

Airflow 3.3 can fail a deferred task whose trigger fires before the scheduler has processed the exit of the
worker that deferred it: the stale "success" of that exit meets the resumed, running attempt and the task is
failed as "state changed externally" (apache/airflow#72716, open in 3.3.2). Every deferral in this package
therefore lasts at least :data:`MIN_DEFERRAL_SECONDS`, far longer than that exit takes.
"""

from __future__ import annotations

MIN_DEFERRAL_SECONDS = 10.0
