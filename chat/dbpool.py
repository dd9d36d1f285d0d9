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

import gc
import select
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection

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


def _check_without_round_trip() -> None:
    """CONN_HEALTH_CHECKS' test of a reused connection, without its `SELECT 1` per call.

    A connection PostgreSQL (or anything between) has closed or broken shows on its idle socket:
    readable (the server's goodbye, or end of file) or marked broken by psycopg. Such a connection
    is dropped and the call opens a new one, as after a failed `SELECT 1`. One that dies after this
    check fails its statement; Django then closes it after the call (errors_occurred), the frame is
    refused with `internal` and the client resends it with its client_id, as it would have after
    a failure a moment later with the `SELECT 1`.
    """
    raw = connection.connection
    if raw is None or not connection.health_check_enabled or connection.health_check_done:
        return
    if not hasattr(raw, "broken"):  # not psycopg (SQLite)
        return
    if closed_by_peer(raw):
        connection.close()
    else:
        connection.health_check_done = True


def closed_by_peer(raw: Any) -> bool:
    """Whether an idle psycopg connection (sync or async) is closed, broken, or has its socket
    readable (the server's goodbye, or end of file), tested without a round trip."""
    if raw.closed or raw.broken:
        return True
    try:
        idle = select.poll()  # not select.select: a process with 10,000 sockets has fds > 1024
        idle.register(raw.fileno(), select.POLLIN)
        return bool(idle.poll(0))
    except (OSError, ValueError):  # no socket any more
        return True


class _MessagePoolCall(DatabaseSyncToAsync):
    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        _check_without_round_trip()
        try:
            # SyncToAsync's, not DatabaseSyncToAsync's: that would close_old_connections() again,
            # which resets the health check just done.
            return super(DatabaseSyncToAsync, self).thread_handler(loop, *args, **kwargs)
        finally:
            close_old_connections()


_runners: dict[ThreadPoolExecutor | None, Callable[..., Awaitable[Any]]] = {}


def shut_down() -> None:
    """Stop the message threads; their connections close as the threads end (tests, before their
    database is dropped). The next call starts the pool again."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        _runners.pop(pool, None)
        pool.shutdown(wait=True)
        gc.collect()  # a thread's connection may sit in a reference cycle until collected


def _runner() -> Callable[..., Awaitable[Any]]:
    # One wrapper per executor, made once: building a SyncToAsync inspects the function, which
    # showed in the per-message profile.
    executor = _executor()
    run = _runners.get(executor)
    if run is None:
        if executor is None:
            run = database_sync_to_async(events.call_collecting)
        else:
            run = _MessagePoolCall(events.call_collecting, thread_sensitive=False, executor=executor)
        _runners[executor] = run
    return run


def message_sync_to_async(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Like `database_sync_to_async`, on the message pool when there is one; the call's events
    go out on the event loop before it returns (or raises)."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        collected: list[tuple[str, dict[str, Any]]] = []
        try:
            return await _runner()(collected, fn, *args, **kwargs)
        finally:
            if collected:
                await events.send_collected(collected)  # sent even if this socket closes meanwhile

    return call
