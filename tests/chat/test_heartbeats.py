"""Visitor heartbeats: answered at once, written in one batch (chat/heartbeats.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import heartbeats
from chat.models import Visitor
from tests.chat.helpers import visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def age_all_visitors(seconds: int) -> None:
    Visitor.objects.update(last_seen_at=timezone.now() - timedelta(seconds=seconds))


@database_sync_to_async
def seen_times() -> list:
    return list(Visitor.objects.order_by("pk").values_list("last_seen_at", flat=True))


async def test_a_ping_is_answered_at_once_and_recorded_within_a_second():
    comm, _ = await visitor_socket()
    await age_all_visitors(120)  # as if the visitor had been silent for two minutes
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == {"type": "pong"}
    await heartbeats.flush()  # what the flush loop does a second later
    (seen,) = await seen_times()
    assert timezone.now() - seen < timedelta(seconds=10)  # no longer looks gone to the sweeper
    await comm.disconnect()


async def test_many_visitors_pinging_are_written_in_one_statement():
    sockets = [(await visitor_socket())[0] for _ in range(5)]
    await age_all_visitors(120)
    for comm in sockets:
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from(timeout=5) == {"type": "pong"}

    @database_sync_to_async
    def flush_counting() -> int:
        with CaptureQueriesContext(connection) as ctx:
            heartbeats._write(sorted(heartbeats._pending))
        heartbeats._pending.clear()
        return len(ctx.captured_queries)

    assert await flush_counting() == 1
    assert all(timezone.now() - seen < timedelta(seconds=10) for seen in await seen_times())
    for comm in sockets:
        await comm.disconnect()
