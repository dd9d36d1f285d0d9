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
- once a probe succeeds again and every channel and group is subscribed, every open chat socket
  of the process gets a `layer.resync` event: frames published during the outage are gone, so
  each socket catches up from the database on its own connection (visitor: the messages after
  the last seq it got in full, and the chat's state; agent: a fresh `state` and each held chat's
  messages after the last seq it got in full; see the consumers' `layer_resync`). What the
  sockets need is read for all of them at once first (chat/resync.py, `_prepare`).

It used to close every socket with 4503 instead, and every client of the process reconnected
within a second or two. Each handshake and resume needs the process' one database thread several
times (the origin check, the session, the staff checks, `hello` or the agent's state, then the
history), besides the subscriptions: measured with 100 sockets per process (docs/benchmarks.md,
"Chaos"), the sockets opened after 3-4 s but caught up only after 14 s (median; 23 s at most),
and with 200 per process the handshakes timed out, came back and queued again. Catching up in
place needs no handshake and no subscription, and its reads run on the message threads, not on
the one database thread (`catch_up_sync_to_async`). A socket that cannot catch up in place (a
supervisor's) is still closed with `CLOSE_RESYNC` (4503); its client reconnects with backoff and
jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from channels.layers import get_channel_layer

from chat.dbpool import message_sync_to_async

log = logging.getLogger(__name__)

INTERVAL = 1.0
PROBE_TIMEOUT = 2.0
CLOSE_RESYNC = 4503
RESYNC_EVENT = {"type": "layer.resync"}  # handled by JsonFrameConsumer.layer_resync and its subclasses

_sockets: weakref.WeakSet[Any] = weakref.WeakSet()
_prepared: dict[str, Any] = {}  # channel name -> its chat/resync.py CatchUp, until its socket takes it
_task: asyncio.Task[None] | None = None
_down_since: float | None = None
_last_error = ""


def register(consumer: Any) -> None:
    """A socket to close (and so resync) when the layer comes back after an outage."""
    _sockets.add(consumer)
    _ensure_running()


def unregister(consumer: Any) -> None:
    _sockets.discard(consumer)
    _prepared.pop(getattr(consumer, "channel_name", ""), None)


def take_prepared(consumer: Any) -> Any:
    """The catch-up read for this socket with all the others (chat/resync.py), or None: then it
    reads its own."""
    return _prepared.pop(consumer.channel_name, None)


def catch_up_sync_to_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where the reads of `layer_resync` run: catching up reads the database for every socket of
    the process at once, and on the one database thread every socket shares (Channels'
    thread-sensitive executor) that queue held up everything else for seconds. The message
    threads (chat/dbpool.py, each with its own connection) overlap the waits for PostgreSQL
    and need no connections beyond the ones the process has."""
    return message_sync_to_async(fn)


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
                            "the sockets catch up then", _last_error)
            await _reconnect(layer)
            continue
        if _down_since is not None:
            try:
                channel = await _resubscribed(layer, channel)
            except Exception as exc:  # noqa: BLE001 - still an outage, with its reason
                _last_error = f"resubscribing failed: {type(exc).__name__}: {exc}"[:300]
                channel = None
                await _reconnect(layer)
                continue
            seconds = time.monotonic() - _down_since
            _down_since = None
            sockets = list(_sockets)
            log.warning("channel layer back after %.1f s; %d sockets catch up in place (live frames of the "
                        "outage are lost)", seconds, len(sockets))
            await _resync(layer, sockets)


async def _resubscribed(layer: Any, probe_channel: str) -> str:
    """Every channel and group of the process subscribed again; returns the probe channel to use
    from now on.

    The last reconnect may have run while Redis was still down, so some may be missing. And
    subscribing only writes to the connection: a probe on a channel subscribed after all of them
    comes back only once Redis has taken every one, and only then may the sockets be told."""
    await asyncio.wait_for(_resubscribe(layer), PROBE_TIMEOUT)
    barrier = await layer.new_channel("layerwatch.")
    await asyncio.wait_for(_probe(layer, barrier), PROBE_TIMEOUT)
    await _forget_channel(layer, probe_channel)
    return barrier


async def _forget_channel(layer: Any, channel: str) -> None:
    get_loop_layer = getattr(layer, "_get_layer", None)
    if get_loop_layer is None:
        return
    loop_layer = get_loop_layer()
    if loop_layer.channels.pop(channel, None) is not None:
        await loop_layer._get_shard(channel).unsubscribe(channel)


async def _prepare(layer: Any, sockets: list[Any]) -> None:
    """Read the catch-up of all these sockets at once, for their `layer_resync`.

    Only with the pub/sub layer: it kept every group membership in the process and subscribed
    them again before the barrier probe, so whatever is published after these reads reaches the
    sockets live. The list-based layer lost the memberships with Redis; there each socket joins
    its groups again before it reads, on its own."""
    _prepared.clear()
    if getattr(layer, "_get_layer", None) is not None:
        await prepare_catch_ups(sockets)


async def prepare_catch_ups(sockets: list[Any]) -> int:
    """Read what these sockets missed in a few queries for all of them (chat/resync.py) and keep
    it until each socket's `layer_resync` takes its own; returns how many got one. A failed read
    only costs the speed: each socket then reads its own."""
    from chat import resync

    specs = [spec for consumer in sockets if (spec := _spec_of(consumer)) is not None]
    visitors = [s for s in specs if isinstance(s, resync.VisitorSocket)]
    agents = [s for s in specs if isinstance(s, resync.AgentSocket)]
    started = time.monotonic()
    results = await asyncio.gather(
        catch_up_sync_to_async(resync.visitor_catch_ups)(visitors),
        catch_up_sync_to_async(resync.agent_catch_ups)(agents),
        return_exceptions=True,
    )
    prepared = 0
    for result in results:
        if isinstance(result, BaseException):
            log.warning("reading the catch-up of all sockets at once failed (%s: %s); each reads its own",
                        type(result).__name__, result)
        else:
            _prepared.update(result)
            prepared += len(result)
    log.info("catch-up of %d of %d sockets read at once in %.2f s", prepared, len(sockets),
             time.monotonic() - started)
    return prepared


def _spec_of(consumer: Any) -> Any:
    spec = getattr(consumer, "catch_up_spec", None)
    return spec() if spec is not None else None


async def _resync(layer: Any, sockets: list[Any]) -> None:
    """Each socket is told through its own channel, so the catch-up runs in the socket's task, in
    order with its other frames; a socket the event cannot reach is closed with 4503 instead."""
    await _prepare(layer, sockets)
    for consumer in sockets:
        try:
            await layer.send(consumer.channel_name, RESYNC_EVENT)
        except Exception:  # noqa: BLE001 - the client reconnects and resumes instead
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


async def _resubscribe(layer: Any) -> None:
    get_loop_layer = getattr(layer, "_get_layer", None)
    if get_loop_layer is None:
        return  # the list-based layer: the sockets join their groups again when they resync
    loop_layer = get_loop_layer()
    for name in [*loop_layer.channels, *loop_layer.groups]:
        await loop_layer._get_shard(name).subscribe(name)  # a no-op for names already subscribed


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
                except Exception as exc:  # noqa: BLE001 - a dead connection's task may end in any error
                    log.debug("the old receive task ended with %r", exc)
                shard._receive_task = None
            if shard._redis is not None:
                with contextlib.suppress(Exception):
                    await shard._redis.aclose(close_connection_pool=True)
            shard._redis = None
            shard._pubsub = None
            shard._subscribed_to = set()
    with contextlib.suppress(Exception):  # Redis may still be down: the next probe tells
        await _resubscribe(layer)
