"""The pipelined pub/sub layer (chat/redis_layer.py) against the machine's Redis: what the stock
layer promised still holds (order, an error for every caller when Redis is gone), with fewer
round trips, and a message once handed over goes out even if its sender stops waiting."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError

from chat.redis_layer import PipelinedPubSubChannelLayer, PipelinedShardConnection
from tests import serverprocs

pytestmark = pytest.mark.realmode


@pytest.fixture
async def layer():
    layer = PipelinedPubSubChannelLayer(hosts=[settings.REDIS_URL], prefix=f"layer-test-{uuid.uuid4().hex[:8]}")
    yield layer
    await layer.flush()


@pytest.fixture
def round_trips(monkeypatch):
    """How many batches each shard sent, and how many publishes were in each."""
    sizes: list[int] = []
    original = PipelinedShardConnection._send

    async def counting(self, batch):
        sizes.append(len(batch))
        await original(self, batch)

    monkeypatch.setattr(PipelinedShardConnection, "_send", counting)
    return sizes


async def receive_all(layer, channel: str, count: int) -> list[dict]:
    async with asyncio.timeout(10):
        return [await layer.receive(channel) for _ in range(count)]


async def test_concurrent_sends_arrive_in_order_in_fewer_round_trips(layer, round_trips):
    reader = await layer.new_channel()
    await layer.group_add("chat.1", reader)

    await asyncio.gather(*(layer.group_send("chat.1", {"type": "chat.frame", "n": n}) for n in range(300)))

    received = await receive_all(layer, reader, 300)
    assert [event["n"] for event in received] == list(range(300))
    assert sum(round_trips) == 300
    assert len(round_trips) < 300 / 10, round_trips  # sent together, not one round trip each


async def test_a_message_s_copies_go_out_together_and_in_order(layer, round_trips):
    visitor, staff = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("visitor.7", visitor)
    await layer.group_add("staff.7", staff)
    round_trips.clear()

    await layer.group_send_many([
        ("visitor.7", {"type": "chat.frame", "to": "visitor"}),
        ("staff.7", {"type": "chat.frame", "to": "staff"}),
    ])

    assert round_trips == [2]
    assert (await receive_all(layer, visitor, 1))[0]["to"] == "visitor"
    assert (await receive_all(layer, staff, 1))[0]["to"] == "staff"


async def test_a_sender_that_stops_waiting_still_delivers(layer):
    # The visitor's socket closes while its message is being sent: the agent must still get it.
    reader = await layer.new_channel()
    await layer.group_add("staff.9", reader)

    sending = asyncio.ensure_future(layer.group_send_many([("staff.9", {"type": "chat.frame", "n": 1})]))
    await asyncio.sleep(0)  # queued, not yet sent
    sending.cancel()

    assert (await receive_all(layer, reader, 1))[0]["n"] == 1


async def test_every_caller_gets_the_error_when_redis_cannot_be_reached():
    dead = PipelinedPubSubChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{serverprocs.free_port()}/0",
                                               "socket_connect_timeout": 1}])
    async with asyncio.timeout(10):  # an error, not a hang
        results = await asyncio.gather(
            *(dead.group_send("chat.1", {"type": "chat.frame", "n": n}) for n in range(20)), return_exceptions=True
        )
    assert len(results) == 20
    assert all(isinstance(result, RedisConnectionError) for result in results), results
    await dead.flush()


async def test_direct_sends_to_a_channel_still_work(layer):
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "layerwatch.probe"})
    assert (await receive_all(layer, channel, 1))[0]["type"] == "layerwatch.probe"
