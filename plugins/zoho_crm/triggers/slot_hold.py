"""The trigger a download task defers on while it holds its rate-limit pool slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent


class SlotHoldTrigger(DateTimeTrigger):
    """Fires at ``moment`` (the end of a download's slot hold): resumes the task, or ends it successfully.

    Unlike ``DateTimeTrigger``, which polls once a second near the end, it sleeps to the moment itself: up to a
    second of the download allowance is otherwise lost per hold. With ``end_from_trigger`` the task ends as
    success in the triggerer, freeing its slot at once instead of after one more pass through a worker.

    :param moment: the aware UTC moment the hold ends.
    :param end_from_trigger: end the task as success when it fires, instead of resuming it on a worker.
    """

    def __init__(self, moment: datetime, end_from_trigger: bool = False) -> None:
        super().__init__(moment=moment, end_from_trigger=end_from_trigger)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"moment": self.moment, "end_from_trigger": self.end_from_trigger},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while (remaining := (self.moment - datetime.now(UTC)).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, 60.0))
        yield TaskSuccessEvent() if self.end_from_trigger else TriggerEvent(self.moment)
