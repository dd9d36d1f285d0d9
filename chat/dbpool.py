"""Where the message path's database work runs: a small pool of threads on PostgreSQL.

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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings

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


def message_sync_to_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Like `database_sync_to_async`, on the message pool when there is one."""
    executor = _executor()
    if executor is None:
        return database_sync_to_async(fn)
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=executor)
