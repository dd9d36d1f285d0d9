"""Runs the periodic sweep inside a server process when there is no Celery beat (embedded default).

Started lazily by the first socket of a process; harmless to run in several processes at once
because `services.sweep` only makes conditional, row-locked changes.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

log = logging.getLogger(__name__)
_task: asyncio.Task[None] | None = None


def ensure_running() -> None:
    global _task
    if not settings.CHAT_INPROCESS_SWEEPER:
        return
    loop = asyncio.get_running_loop()
    if _task is not None and not _task.done() and _task.get_loop() is loop:
        return
    _task = loop.create_task(_loop())


async def _loop() -> None:
    from chat.services import sweep

    while True:
        await asyncio.sleep(settings.CHAT_SWEEP_INTERVAL_SECONDS)
        try:
            await database_sync_to_async(sweep)()
        except Exception:
            log.exception("chat sweep failed")
