"""Keeps the live stream alive through a Redis restart, and says so when it is not.

Measured with tests/realmode/test_chaos.py: after Redis restarts, channels-redis' pub/sub layer
(4.3) logs "Unexpected exception in receive task" and never receives again: every socket of the
process stays open but silent for good, and nothing tells the clients to resync. So each server
process runs this watch (started by its first socket):

- every `INTERVAL` seconds a probe goes round the layer (send to a channel of our own, receive it
  back within `PROBE_TIMEOUT`);
- when a probe fails, the outage is logged once (WARNING, with the reason) and /readyz answers
  503 naming the channel layer (`status()`); for the pub/sub layer the Redis connections are
  thrown away and every channel and group of the process subscribed again on new ones;
- once a probe succeeds again, every open chat socket of the process is closed with
  `CLOSE_RESYNC` (4503). Frames published during the outage are gone, so the clients reconnect
  with their backoff and jitter and resume from the database by sequence number, as
  docs/protocol.md says (hello with last_seq / state and sync), which also re-creates group
  memberships a restarted Redis lost (the list-based layer keeps them in Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

INTERVAL = 1.0
PROBE_TIMEOUT = 2.0
CLOSE_RESYNC = 4503

_sockets: weakref.WeakSet[Any] = weakref.WeakSet()
_task: asyncio.Task[None] | None = None
_down_since: float | None = None
_last_error = ""


def register(consumer: Any) -> None:
    """A socket to close (and so resync) when the layer comes back after an outage."""
    _sockets.add(consumer)
    _ensure_running()


def unregister(consumer: Any) -> None:
    _sockets.discard(consumer)


def status() -> dict[str, Any] | None:
    """None while the layer works (or nothing watches it); else how long it has been down, and why."""
    if _down_since is None:
        return None
    return {"down_seconds": round(time.monotonic() - _down_since, 1), "error": _last_error}


def _ensure_running() -> None:
    global _task
    layer = get_channel_layer()
    if layer is None or type(layer).__name__ == "InMemoryChannelLayer":
        return  # nothing outside the process can fail
    loop = asyncio.get_running_loop()
    if _task is not None and not _task.done() and _task.get_loop() is loop:
        return
    _task = loop.create_task(_watch(layer))


async def _watch(layer: Any) -> None:
    global _down_since, _last_error
    channel: str | None = None
    while not _being_cancelled():
        await asyncio.sleep(INTERVAL)
        try:
            if channel is None:
                channel = await layer.new_channel("layerwatch.")
            await asyncio.wait_for(_probe(layer, channel), PROBE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure is an outage, with its reason
            channel = None  # a cancelled receive unsubscribes it: take a new one next time
            _last_error = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
            if _down_since is None:
                _down_since = time.monotonic()
                log.warning("channel layer unreachable (%s): live frames are lost until it is back; "
                            "sockets will be closed then so that clients resync", _last_error)
            await _reconnect(layer)
            continue
        if _down_since is not None:
            seconds = time.monotonic() - _down_since
            _down_since = None
            sockets = list(_sockets)
            log.warning("channel layer back after %.1f s; closing %d sockets (code %d) so that clients resync",
                        seconds, len(sockets), CLOSE_RESYNC)
            for consumer in sockets:
                with contextlib.suppress(Exception):
                    await consumer.close(code=CLOSE_RESYNC)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _probe(layer: Any, channel: str) -> None:
    await layer.send(channel, {"type": "layerwatch.probe"})
    message = await layer.receive(channel)
    if message.get("type") != "layerwatch.probe":
        raise RuntimeError("the channel layer returned something else")


async def _reconnect(layer: Any) -> None:
    """channels-redis' pub/sub layer: new connections, every channel and group subscribed again.

    Uses the layer's internals (pinned in constraints.txt): `_get_layer()` is the per-loop layer,
    its `_shards` hold one Redis connection and subscription set each."""
    get_loop_layer = getattr(layer, "_get_layer", None)
    if get_loop_layer is None:
        return  # the list-based layer opens connections per call
    loop_layer = get_loop_layer()
    for shard in loop_layer._shards:
        async with shard._lock:
            if shard._receive_task is not None:
                shard._receive_task.cancel()
                try:
                    await shard._receive_task
                except asyncio.CancelledError:
                    # Its own cancellation is expected; ours (the loop shutting down) must not be
                    # swallowed, or the watch never ends and the loop's shutdown waits forever.
                    if _being_cancelled():
                        raise
                except Exception:  # noqa: BLE001 - a dead connection's task may end in any error
                    pass
                shard._receive_task = None
            if shard._redis is not None:
                with contextlib.suppress(Exception):
                    await shard._redis.aclose(close_connection_pool=True)
            shard._redis = None
            shard._pubsub = None
            shard._subscribed_to = set()
    with contextlib.suppress(Exception):
        for name in [*loop_layer.channels, *loop_layer.groups]:
            await loop_layer._get_shard(name).subscribe(name)
