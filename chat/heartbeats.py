"""Visitors' heartbeats, written to the database in batches.

Every visitor socket pings every 20 s, and each ping used to be one UPDATE of `last_seen_at` on
the thread Channels shares for all database work: 10,000 idle sockets made 500 writes a second,
which left that thread no time for anything else (docs/benchmarks.md: heartbeat round trips of
tens of seconds, new visitors waiting behind them). The sweeper reads `last_seen_at` against a
grace of a minute (`CHAT_VISITOR_GRACE_SECONDS`), so a second's delay costs nothing: a ping is
answered at once and only marks the visitor here, and one UPDATE a second writes every visitor
marked since the last one. A hello and a disconnect still write at once (they mark arrival and
departure, which decide missed or abandoned).
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.utils import timezone

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
_pending: set[int] = set()
_task: asyncio.Task[None] | None = None


def visitor_seen(visitor_id: int) -> None:
    """Record that this visitor is still there; written within about a second."""
    global _task
    _pending.add(visitor_id)
    loop = asyncio.get_running_loop()
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(_flush_loop())


async def _flush_loop() -> None:
    while _pending:
        await asyncio.sleep(FLUSH_SECONDS)
        await flush()


async def flush() -> None:
    ids = list(_pending)
    _pending.clear()
    if not ids:
        return
    try:
        await database_sync_to_async(_write)(ids)
    except Exception:  # the next ping marks them again; a raise here would stop the loop
        log.exception("writing %d visitor heartbeats failed", len(ids))


def _write(visitor_ids: list[int]) -> None:
    from chat.models import Visitor

    Visitor.objects.filter(pk__in=visitor_ids).update(last_seen_at=timezone.now())
