"""Readiness checks for load balancers and orchestrators: can this process do its work right now?

Liveness (`/healthz`) only says the process answers. Readiness (`/readyz`) checks what a chat needs:
the database, the channel layer (a real round trip through it, so a Redis that accepts
connections but drops pub/sub still shows), Redis itself and Celery's broker. Each check has a
short timeout: a balancer asking must get an answer, never a hang. Celery workers are counted
but do not make a web process unready: taking every web process out of rotation because the
worker is down would turn a delayed archive into an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connection

from chat import layer_watch

CHECK_TIMEOUT_SECONDS = 2.0
log = logging.getLogger(__name__)
_failing: set[str] = set()  # what the last probe of this process found failing


def _database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"vendor": connection.vendor}
    finally:
        # Django runs each request on a thread of its own, and a connection left open there
        # stayed open for CONN_MAX_AGE: polled every 0.25 s (tests/chaos.py) the probes held 83
        # idle connections and PostgreSQL refused the message threads ("too many clients").
        # Not inside a transaction (a test's, or a caller's): that connection is not ours to end.
        if not connection.in_atomic_block:
            connection.close()


async def _channel_layer(layer: BaseChannelLayer) -> dict[str, Any]:
    if (outage := layer_watch.status()) is not None and layer is get_channel_layer():
        # The process' own watch saw the live stream break and it is not repaired yet, even if
        # a fresh connection (below) would work.
        raise RuntimeError(f"unreachable for {outage['down_seconds']} s: {outage['error']}")
    channel = await layer.new_channel("readyz.")
    try:
        await layer.send(channel, {"type": "readyz.probe"})
        message = await layer.receive(channel)
    finally:
        await _forget_channel(layer, channel)
    if message.get("type") != "readyz.probe":
        raise RuntimeError("the channel layer returned something else")
    return {"backend": type(layer).__name__}


async def _forget_channel(layer: BaseChannelLayer, channel: str) -> None:
    """channels-redis' pub/sub layer stays subscribed to a channel after `receive` (it unsubscribes
    only when a receive is cancelled, i.e. when a consumer goes away). A balancer polls every few
    seconds, so without this every probe would leave a subscription behind for good."""
    get_loop_layer = getattr(layer, "_get_layer", None)
    if get_loop_layer is None:
        return
    loop_layer = get_loop_layer()
    if loop_layer.channels.pop(channel, None) is not None:
        await loop_layer._get_shard(channel).unsubscribe(channel)


def _redis() -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_SECONDS,
                                  socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()
    return {}


def _celery() -> dict[str, Any]:
    from config.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"mode": "eager (tasks run in this process)"}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
    replies = app.control.ping(timeout=0.5) or []
    return {"mode": "worker", "workers": len(replies)}


async def _run(name: str, check: Any) -> tuple[str, dict[str, Any]]:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check, timeout=CHECK_TIMEOUT_SECONDS + 1)
        result = {"ok": True, **result}
    except Exception as exc:  # noqa: BLE001 - any failure is a "not ready" answer, with its reason
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return name, result


async def readiness(*, layer: BaseChannelLayer | None = None) -> dict[str, Any]:
    checks = {
        "database": sync_to_async(_database, thread_sensitive=True)(),
        "channel_layer": _channel_layer(layer or get_channel_layer()),
        "celery": sync_to_async(_celery, thread_sensitive=False)(),
    }
    if settings.REDIS_URL:
        checks["redis"] = sync_to_async(_redis, thread_sensitive=False)()
    results = dict(await asyncio.gather(*(_run(name, check) for name, check in checks.items())))
    _log_changes(results)
    return {"ready": all(r["ok"] for r in results.values()), "checks": results}


def _log_changes(results: dict[str, dict[str, Any]]) -> None:
    """A failing dependency is logged when /readyz first finds it failing and when it is back,
    not at every probe of every balancer."""
    for name, result in results.items():
        if not result["ok"] and name not in _failing:
            _failing.add(name)
            log.warning("not ready: %s failing (%s)", name, result["error"])
        elif result["ok"] and name in _failing:
            _failing.discard(name)
            log.warning("ready again: %s answers", name)
