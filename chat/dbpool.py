"""Where the message path's database work runs, and how its events leave.

`database_sync_to_async` runs every call on one thread shared by the whole process
(thread_sensitive), so a process persists one message at a time, and each message waits for all
the database round trips of the messages before it. Profiled under load (docs/benchmarks.md), two
thirds of the server's samples were in that one thread, most of them waiting for PostgreSQL.

Messages need no such global order: the row lock on the conversation (chat.pipeline.run)
serialises the writers of one chat, so sequence numbers stay gapless, and a consumer handles one
frame at a time and broadcasts before it acks, so one sender's messages are still stored and sent
in the order they were written. Each pool thread keeps its own connection (CONN_MAX_AGE), so a
process holds at most CHAT_MESSAGE_DB_THREADS + 1 connections. SQLite (the embedded default)
takes one writer at a time whatever the threads, so there the shared thread stays.

The events a call sends on commit are gathered in the thread and sent here, on the event loop,
after the call returns (chat.events.call_collecting): still only what committed, still before
the consumer acks, but without a thread-to-loop hop per event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings

from chat import events

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor | None:
    global _pool
    threads = settings.CHAT_MESSAGE_DB_THREADS
    if not threads:
        return None
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chat-messages")
    return _pool


def message_sync_to_async(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Like `database_sync_to_async`, on the message pool when there is one; the call's events
    go out on the event loop before it returns (or raises)."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        executor = _executor()
        if executor is None:
            run = database_sync_to_async(events.call_collecting)
        else:
            run = DatabaseSyncToAsync(events.call_collecting, thread_sensitive=False, executor=executor)
        collected: list[tuple[str, dict[str, Any]]] = []
        try:
            return await run(collected, fn, *args, **kwargs)
        finally:
            if collected:
                # Shielded: a socket closing meanwhile must not stop the other side's copy.
                await asyncio.shield(events.send_collected(collected))

    return call
