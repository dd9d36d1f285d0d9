"""channels-redis' pub/sub layer with the publishes of a process sent together.

The stock layer sends every publish of the process on one connection under one lock, one at a
time: each waits for the previous one's answer from Redis. Measured under load
(docs/benchmarks.md, "The pipelined pub/sub layer"), a chat message's frame handler took 4-72 ms
in the median, most of it waiting for that lock, while its database call took 2 ms: a message
makes two publishes (the visitor's copy and the staff's), so the lock saturated at half the rate
the bare relay, with one publish per message, reaches. Here publishes are queued and one sender
task per connection sends what is queued in one pipeline: one round trip for the lot, in the
order they were made, while the next ones queue behind it. Each caller still returns only once
Redis has its message, or gets the error.

Everything else (subscriptions, the receive task, the lock the reconnect in chat/layer_watch.py
takes) is the stock layer's; the internals this relies on are pinned with channels-redis in
constraints.txt.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close, decode_hosts

# Publishes sent in one round trip at most; a longer queue goes out in several.
BATCH_LIMIT = 500


class PipelinedShardConnection(RedisSingleShardConnection):
    def __init__(self, host: Any, channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._queued: list[tuple[str, bytes, asyncio.Future[None] | None]] = []
        self._sender: asyncio.Task[None] | None = None

    def enqueue(self, items: list[tuple[str, bytes]]) -> asyncio.Future[None]:
        """Queue publishes, in order, and return a future answered once Redis has them all.
        Queued is sent: a caller that stops waiting (a timeout, its socket closing) does not
        take its publishes back, so the other side's copy of a message still goes out."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[None] = loop.create_future()
        for channel, message in items[:-1]:
            self._queued.append((channel, message, None))
        self._queued.append((items[-1][0], items[-1][1], answered))
        if self._sender is None:
            self._sender = loop.create_task(self._send_queued())
        return answered

    async def publish(self, channel: str, message: bytes) -> None:
        await self.enqueue([(channel, message)])

    async def _send_queued(self) -> None:
        batch: list[tuple[str, bytes, asyncio.Future[None] | None]] = []
        try:
            while self._queued:
                batch, self._queued = self._queued[:BATCH_LIMIT], self._queued[BATCH_LIMIT:]
                try:
                    await self._send(batch)
                except Exception as exc:  # noqa: BLE001 - each caller gets it, as from its own publish
                    for _, _, answered in batch:
                        if answered is not None and not answered.done():
                            answered.set_exception(exc)
                else:
                    for _, _, answered in batch:
                        if answered is not None and not answered.done():  # done: its caller gave up
                            answered.set_result(None)
        finally:
            self._sender = None
            # Cancelled (the loop is shutting down): nobody will send these.
            for _, _, answered in [*batch, *self._queued]:
                if answered is not None:
                    answered.cancel()
            self._queued.clear()

    async def _send(self, batch: list[tuple[str, bytes, Any]]) -> None:
        async with self._lock:
            self._ensure_redis()
            if len(batch) == 1:
                await self._redis.publish(batch[0][0], batch[0][1])
                return
            pipe = self._redis.pipeline(transaction=False)
            for channel, message, _ in batch:
                pipe.publish(channel, message)
            await pipe.execute()


class PipelinedPubSubLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(hosts, *args, **kwargs)
        self._shards = [PipelinedShardConnection(host, self) for host in decode_hosts(hosts)]

    async def group_send_many(self, sends: list[tuple[str, dict[str, Any]]]) -> None:
        """Several group sends queued at once, in order: one round trip for all of them (a chat
        message's visitor copy and staff copy), and none dropped if the caller stops waiting."""
        by_shard: dict[PipelinedShardConnection, list[tuple[str, bytes]]] = {}
        for group, message in sends:
            name = self._get_group_channel_name(group)
            by_shard.setdefault(self._get_shard(name), []).append(
                (name, self.channel_layer.serialize(message))
            )
        answers = [shard.enqueue(items) for shard, items in by_shard.items()]
        await (answers[0] if len(answers) == 1 else asyncio.gather(*answers))


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):
    """`CHANNEL_LAYERS` backend: the pub/sub layer, per event loop, with pipelined publishes."""

    async def group_send_many(self, sends: list[tuple[str, dict[str, Any]]]) -> None:
        await self._get_layer().group_send_many(sends)

    def _get_layer(self) -> PipelinedPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = PipelinedPubSubLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)  # as the stock layer: flushed when its loop closes
        return layer
